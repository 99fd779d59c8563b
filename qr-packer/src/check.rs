//! Checks that a half is what the runtime will accept: a valid component
//! that targets its world of `wit/enrollment.wit`, imports nothing that world
//! does not offer, and exports `enroll`.
//!
//! The runtime checks the same when it loads a half, but a label is printed
//! on thousands of devices: a half it would refuse must be caught before
//! printing, by `pack`. The WIT is embedded, so the packer and the runtime
//! agree on the contract of this build.

use std::collections::BTreeSet;

use wasmparser::{ComponentExternalKind, Parser, Payload, Validator};

use crate::error::PackError;

/// The contract, as the runtime implements it.
pub const ENROLLMENT_WIT: &str = include_str!("../../wit/enrollment.wit");

/// Which world a half targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Phone,
    Device,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Phone => "phone-half",
            World::Device => "device-half",
        }
    }

    fn half(self) -> &'static str {
        match self {
            World::Phone => "phone",
            World::Device => "device",
        }
    }

    /// The interfaces the world offers, by full name
    /// (`iot-enroll:enrollment/transport@0.1.0`), including those its
    /// interfaces `use` (types).
    pub fn allowed_imports(self) -> Result<BTreeSet<String>, PackError> {
        let wrong = |reason: String| PackError::WrongWorld { half: self.half(), world: self.name(), reason };
        let mut resolve = wit_parser::Resolve::default();
        let package = resolve.push_str("enrollment.wit", ENROLLMENT_WIT).map_err(|e| wrong(format!("embedded WIT: {e}")))?;
        let world = resolve.select_world(&[package], Some(self.name())).map_err(|e| wrong(e.to_string()))?;
        let mut names = BTreeSet::new();
        for key in resolve.worlds[world].imports.keys() {
            if let wit_parser::WorldKey::Interface(id) = key {
                names.extend(resolve.id_of(*id));
            }
        }
        Ok(names)
    }
}

/// Checks one half against its world.
pub fn check_half(component: &[u8], world: World) -> Result<(), PackError> {
    let half = world.half();
    if !Parser::is_component(component) {
        let what = if Parser::is_core_wasm(component) { "a core module" } else { "not WebAssembly" };
        return Err(PackError::NotAComponent { half, reason: format!("it is {what}") });
    }
    Validator::new()
        .validate_all(component)
        .map_err(|e| PackError::NotAComponent { half, reason: e.to_string() })?;
    let allowed = world.allowed_imports()?;
    let (imports, exports) = top_level_imports_exports(component).map_err(|e| PackError::NotAComponent { half, reason: e })?;
    for import in imports {
        if !allowed.contains(&import) {
            return Err(PackError::ForbiddenImport { half, world: world.name(), import });
        }
    }
    if exports != [("enroll".to_string(), ComponentExternalKind::Func)] {
        let names: Vec<_> = exports.iter().map(|(n, k)| format!("{n} ({})", k.desc())).collect();
        return Err(PackError::WrongWorld {
            half,
            world: world.name(),
            reason: format!("it must export exactly the function `enroll`, it exports [{}]", names.join(", ")),
        });
    }
    Ok(())
}

/// An operational application (installed after enrollment) only has to be
/// valid WebAssembly: its world is the device's business.
pub fn check_operational(wasm: &[u8]) -> Result<(), PackError> {
    Validator::new()
        .validate_all(wasm)
        .map(drop)
        .map_err(|e| PackError::NotAComponent { half: "operational", reason: e.to_string() })
}

/// The capabilities a half uses: the functions of its imported interfaces
/// other than `transport` (always used), as `interface.function`, e.g.
/// `device.set-owner`. wit-component imports only the functions the core
/// module calls, so this is what the half can do, read from its binary.
pub fn used_capabilities(component: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::{ComponentType, ComponentTypeRef, InstanceTypeDeclaration};
    // The component's type index space: for instance types, their function
    // exports; None for every other type.
    let mut types: Vec<Option<Vec<String>>> = Vec::new();
    let mut imports: Vec<(String, u32)> = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            Payload::ComponentTypeSection(s) => {
                for ty in s {
                    types.push(match ty.map_err(|e| e.to_string())? {
                        ComponentType::Instance(decls) => Some(
                            decls
                                .iter()
                                .filter_map(|d| match d {
                                    InstanceTypeDeclaration::Export { name, ty: ComponentTypeRef::Func(_) } => {
                                        Some(name.name.to_string())
                                    }
                                    _ => None,
                                })
                                .collect(),
                        ),
                        _ => None,
                    });
                }
            }
            Payload::ComponentAliasSection(s) => {
                for alias in s {
                    let kind = match alias.map_err(|e| e.to_string())? {
                        wasmparser::ComponentAlias::InstanceExport { kind, .. } => Some(kind),
                        wasmparser::ComponentAlias::Outer { kind, .. } => {
                            (kind == wasmparser::ComponentOuterAliasKind::Type).then_some(ComponentExternalKind::Type)
                        }
                        wasmparser::ComponentAlias::CoreInstanceExport { .. } => None,
                    };
                    if kind == Some(ComponentExternalKind::Type) {
                        types.push(None);
                    }
                }
            }
            Payload::ComponentImportSection(s) => {
                for import in s {
                    let import = import.map_err(|e| e.to_string())?;
                    match import.ty {
                        ComponentTypeRef::Instance(idx) => imports.push((import.name.full_name().into_owned(), idx)),
                        ComponentTypeRef::Type(_) => types.push(None),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let mut capabilities = Vec::new();
    for (name, idx) in imports {
        // `iot-enroll:enrollment/device@0.1.0` → `device`
        let interface = name.rsplit('/').next().unwrap_or(&name).split('@').next().unwrap_or_default();
        if interface == "transport" {
            continue;
        }
        let Some(Some(funcs)) = types.get(idx as usize) else {
            return Err(format!("import {name} does not name an instance type"));
        };
        capabilities.extend(funcs.iter().map(|f| format!("{interface}.{f}")));
    }
    Ok(capabilities)
}

type Exports = Vec<(String, ComponentExternalKind)>;

fn top_level_imports_exports(component: &[u8]) -> Result<(Vec<String>, Exports), String> {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(s) if depth == 0 => {
                for import in s {
                    imports.push(import.map_err(|e| e.to_string())?.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(s) if depth == 0 => {
                for export in s {
                    let export = export.map_err(|e| e.to_string())?;
                    exports.push((export.name.full_name().into_owned(), export.kind));
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use enrollment_apps::ALL;

    #[test]
    fn reference_halves_pass_and_swapped_worlds_fail() {
        for app in ALL {
            check_half(app.phone, World::Phone).unwrap();
            check_half(app.device, World::Device).unwrap();
            assert!(matches!(check_half(app.phone, World::Device), Err(PackError::ForbiddenImport { .. })));
            assert!(matches!(check_half(app.device, World::Phone), Err(PackError::ForbiddenImport { .. })));
        }
    }

    #[test]
    fn capabilities_are_read_from_the_halves() {
        let wifi = used_capabilities(enrollment_apps::WIFI_METER.phone).unwrap();
        assert!(wifi.contains(&"assistant.network-credentials".to_string()), "{wifi:?}");
        let lock = used_capabilities(enrollment_apps::BLE_LOCK.phone).unwrap();
        assert!(!lock.contains(&"assistant.network-credentials".to_string()), "{lock:?}");
        assert!(lock.contains(&"assistant.owner".to_string()), "{lock:?}");
        let device = used_capabilities(enrollment_apps::ZIGBEE_SENSOR.device).unwrap();
        assert!(device.contains(&"device.seal".to_string()) && !device.contains(&"device.set-owner".to_string()), "{device:?}");
        for app in ALL {
            for half in [app.phone, app.device] {
                for cap in used_capabilities(half).unwrap() {
                    assert!(crate::manifest::CAPABILITIES.contains(&cap.as_str()), "{}: {cap}", app.name);
                }
            }
        }
    }

    #[test]
    fn worlds_offer_their_interfaces_and_types() {
        let phone = World::Phone.allowed_imports().unwrap();
        assert!(phone.contains("iot-enroll:enrollment/assistant@0.1.0"));
        assert!(phone.contains("iot-enroll:enrollment/types@0.1.0"));
        assert!(!phone.contains("iot-enroll:enrollment/device@0.1.0"));
    }

    #[test]
    fn modules_garbage_and_foreign_imports_are_refused() {
        let module = wat::parse_str("(module)").unwrap();
        assert!(matches!(check_half(&module, World::Device), Err(PackError::NotAComponent { .. })));
        assert!(matches!(check_half(b"\0asm\x0d\0\x01\0garbage", World::Device), Err(PackError::NotAComponent { .. })));
        let wasi = wat::parse_str(
            r#"(component (import "wasi:cli/environment@0.2.0" (instance)) (core module $m (func (export "f") (result i32) i32.const 0))
                (core instance $i (instantiate $m)) (func (export "enroll") (result (result)) (canon lift (core func $i "f"))))"#,
        )
        .unwrap();
        assert!(matches!(check_half(&wasi, World::Device), Err(PackError::ForbiddenImport { import, .. }) if import.starts_with("wasi:")));
        let no_enroll = wat::parse_str("(component)").unwrap();
        assert!(matches!(check_half(&no_enroll, World::Device), Err(PackError::WrongWorld { .. })));
    }
}
