//! Checks that a half is what the runtime will accept: a valid component
//! that targets its world of `wit/enrollment.wit` (at the WIT version of this
//! build), imports nothing that world does not offer, exports `enroll`, and
//! stays within the runtime's sandbox limits (linear memory, tables, no start
//! function).
//!
//! The runtime checks the same when it loads a half, but a label is printed
//! on thousands of devices: a half it would refuse must be caught before
//! printing, by `pack`. The WIT is embedded, so the packer and the runtime
//! agree on the contract of this build; the interfaces a world offers and the
//! package version are read from it, never written out here.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use wasmparser::{ComponentExternalKind, Parser, Payload, Validator};

use crate::error::PackError;

/// The contract, as the runtime implements it.
pub const ENROLLMENT_WIT: &str = include_str!("../../wit/enrollment.wit");

/// The most linear memory a half may start with, in bytes: the default
/// `max_memory_bytes` of the runtime's `SandboxConfig`
/// (`enrollment_host::sandbox`), 128 KiB (2 wasm pages).
///
/// Only the *initial* size is checked. A memory without a maximum, or with a
/// maximum above the cap, is accepted as long as its initial size is within
/// it: the runtime's limiter makes `memory.grow` beyond the cap fail, so the
/// half traps (or its allocator reports out of memory) when it outgrows it,
/// instead of being refused at instantiation.
pub const MAX_MEMORY_BYTES: u64 = 128 * 1024;

/// The most linear memories a half may define: the runtime's pooling
/// allocator gives a component one (`max_memories_per_component(1)`).
pub const MAX_MEMORIES: usize = 1;

/// The most initial elements a table of a half may have: the pooling
/// allocator's `table_elements(1024)`.
pub const MAX_TABLE_ELEMENTS: u64 = 1024;

/// The largest half the runtime compiles, in bytes: the runtime's
/// `enrollment_host::sandbox::check::MAX_HALF_BYTES` (a test there keeps the
/// two equal). A larger half is refused before signing, not on the device.
pub const MAX_HALF_BYTES: usize = 32 * 1024;

/// The most locals a half may declare in all its functions: the runtime's
/// `enrollment_host::sandbox::check::MAX_HALF_LOCALS`.
pub const MAX_HALF_LOCALS: u64 = 10_000;

/// Which world a half targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Phone,
    Device,
    /// The operational app a label may carry (run by the device after enrollment).
    Operational,
}

/// What the embedded WIT says, parsed once.
struct Contract {
    /// `namespace:name` of the package, e.g. `iot-enroll:enrollment`.
    package: String,
    /// The package's version, e.g. `0.1.0`.
    version: Option<String>,
    phone: BTreeSet<String>,
    device: BTreeSet<String>,
    operational: BTreeSet<String>,
}

fn contract() -> Result<&'static Contract, String> {
    static CONTRACT: OnceLock<Result<Contract, String>> = OnceLock::new();
    CONTRACT.get_or_init(parse_contract).as_ref().map_err(Clone::clone)
}

fn parse_contract() -> Result<Contract, String> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("enrollment.wit", ENROLLMENT_WIT).map_err(|e| format!("embedded WIT: {e}"))?;
    let name = &resolve.packages[package].name;
    let (qualified, version) = (format!("{}:{}", name.namespace, name.name), name.version.as_ref().map(ToString::to_string));
    let imports = |world: World| -> Result<BTreeSet<String>, String> {
        let id = resolve.select_world(&[package], Some(world.name())).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        for key in resolve.worlds[id].imports.keys() {
            if let wit_parser::WorldKey::Interface(id) = key {
                names.extend(resolve.id_of(*id));
            }
        }
        Ok(names)
    };
    Ok(Contract {
        package: qualified,
        version,
        phone: imports(World::Phone)?,
        device: imports(World::Device)?,
        operational: imports(World::Operational)?,
    })
}

/// The embedded WIT package's version (`0.1.0`), which every
/// `iot-enroll:enrollment/...@version` import of a half must name.
pub fn wit_version() -> Option<&'static str> {
    contract().ok().and_then(|c| c.version.as_deref())
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Phone => "phone-half",
            World::Device => "device-half",
            World::Operational => "operational",
        }
    }

    /// The one function a component of this world exports.
    pub fn export(self) -> &'static str {
        match self {
            World::Phone | World::Device => "enroll",
            World::Operational => "activate",
        }
    }

    fn half(self) -> &'static str {
        match self {
            World::Phone => "phone",
            World::Device => "device",
            World::Operational => "operational",
        }
    }

    /// The interfaces the world offers, by full name
    /// (`iot-enroll:enrollment/transport@0.1.0`), including those its
    /// interfaces `use` (types).
    pub fn allowed_imports(self) -> Result<BTreeSet<String>, PackError> {
        let contract = contract().map_err(|reason| PackError::WrongWorld { half: self.half(), world: self.name(), reason })?;
        Ok(match self {
            World::Phone => contract.phone.clone(),
            World::Device => contract.device.clone(),
            World::Operational => contract.operational.clone(),
        })
    }
}

/// Checks one half against its world and the runtime's limits.
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
    check_wit_version(&imports, half)?;
    for import in imports {
        if !allowed.contains(&import) {
            return Err(PackError::ForbiddenImport { half, world: world.name(), import });
        }
    }
    let export = world.export();
    if exports != [(export.to_string(), ComponentExternalKind::Func)] {
        let names: Vec<_> = exports.iter().map(|(n, k)| format!("{n} ({})", k.desc())).collect();
        return Err(PackError::WrongWorld {
            half,
            world: world.name(),
            reason: format!("it must export exactly the function `{export}`, it exports [{}]", names.join(", ")),
        });
    }
    check_runtime_limits(component, half)
}

/// Refuses an import of the enrollment package at another version than the
/// embedded WIT's: a half built against another contract, told apart from a
/// merely foreign import.
fn check_wit_version(imports: &[String], half: &'static str) -> Result<(), PackError> {
    let contract = contract().map_err(|reason| PackError::NotAComponent { half, reason })?;
    let supported = contract.version.clone().unwrap_or_default();
    let prefix = format!("{}/", contract.package);
    for import in imports {
        let Some(rest) = import.strip_prefix(&prefix) else { continue };
        let found = rest.split_once('@').map(|(_, v)| v);
        if found != contract.version.as_deref() {
            let found = found.map_or_else(|| "(none)".to_owned(), str::to_owned);
            return Err(PackError::UnsupportedWitVersion { half, found, supported });
        }
    }
    Ok(())
}

/// Checks every core module of a (valid) component against the runtime's
/// sandbox: initial linear memory within [`MAX_MEMORY_BYTES`], at most
/// [`MAX_MEMORIES`] memories in the whole half, tables of at most
/// [`MAX_TABLE_ELEMENTS`] initial elements, and no start function (of a core
/// module or of the component).
pub fn check_runtime_limits(component: &[u8], half: &'static str) -> Result<(), PackError> {
    let malformed = |e: wasmparser::BinaryReaderError| PackError::NotAComponent { half, reason: e.to_string() };
    if component.len() > MAX_HALF_BYTES {
        return Err(PackError::HalfOverSandboxCap { half, bytes: component.len(), max: MAX_HALF_BYTES });
    }
    let mut memories = 0usize;
    let mut locals = 0u64;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(malformed)? {
            Payload::CodeSectionEntry(body) => {
                let mut reader = body.get_locals_reader().map_err(malformed)?;
                for _ in 0..reader.get_count() {
                    let (count, _) = reader.read().map_err(malformed)?;
                    locals = locals.saturating_add(u64::from(count));
                }
                if locals > MAX_HALF_LOCALS {
                    return Err(PackError::TooManyLocals { half, locals, max: MAX_HALF_LOCALS });
                }
            }
            Payload::MemorySection(section) => {
                for memory in section {
                    let memory = memory.map_err(malformed)?;
                    memories += 1;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let bytes = memory.initial.saturating_mul(page);
                    if bytes > MAX_MEMORY_BYTES {
                        return Err(PackError::InitialMemoryTooLarge { half, bytes, cap: MAX_MEMORY_BYTES });
                    }
                }
            }
            Payload::TableSection(section) => {
                for table in section {
                    let elements = table.map_err(malformed)?.ty.initial;
                    if elements > MAX_TABLE_ELEMENTS {
                        return Err(PackError::TableTooLarge { half, elements, max: MAX_TABLE_ELEMENTS });
                    }
                }
            }
            Payload::StartSection { .. } | Payload::ComponentStartSection { .. } => {
                return Err(PackError::StartFunction { half });
            }
            _ => {}
        }
    }
    if memories > MAX_MEMORIES {
        return Err(PackError::TooManyMemories { half, count: memories, max: MAX_MEMORIES });
    }
    Ok(())
}

/// An operational application (run by the device after enrollment) is
/// checked like a half: a component of world `operational` that exports
/// `activate` and fits the runtime's limits, refused before anything is
/// signed (the device refuses the same at admission).
pub fn check_operational(wasm: &[u8]) -> Result<(), PackError> {
    check_half(wasm, World::Operational)
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
    fn worlds_offer_their_interfaces_and_types() {
        let phone = World::Phone.allowed_imports().unwrap();
        assert!(phone.contains("iot-enroll:enrollment/offer@0.2.0"));
        assert!(phone.contains("iot-enroll:enrollment/types@0.2.0"));
        assert!(!phone.contains("iot-enroll:enrollment/take@0.2.0"));
        let device = World::Device.allowed_imports().unwrap();
        assert!(device.contains("iot-enroll:enrollment/take@0.2.0") && !device.contains("iot-enroll:enrollment/offer@0.2.0"));
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

    /// A device half exporting `enroll` from core module(s) `modules` (the
    /// first one exports `f`), with `imports` at the top.
    fn component(imports: &str, modules: &[&str]) -> Vec<u8> {
        let mut wat = format!("(component {imports}");
        for (i, body) in modules.iter().enumerate() {
            let export = if i == 0 { r#"(func (export "f") (result i32) i32.const 0)"# } else { "" };
            wat.push_str(&format!("(core module $m{i} {body} {export}) (core instance $i{i} (instantiate $m{i}))"));
        }
        wat.push_str(r#"(func (export "enroll") (result (result)) (canon lift (core func $i0 "f"))))"#);
        wat::parse_str(&wat).unwrap()
    }

    #[test]
    fn the_runtime_limits_are_checked_with_the_limit_named() {
        let err = check_half(&component("", &["(memory 17)"]), World::Device).unwrap_err();
        assert!(matches!(err, PackError::InitialMemoryTooLarge { bytes: 1_114_112, cap: MAX_MEMORY_BYTES, .. }));
        assert_eq!(
            err.to_string(),
            "the device half's core module asks for 1114112 bytes of initial linear memory; the runtime's cap is 131072 \
             (link with -zstack-size=16384 --initial-memory=65536 --max-memory=131072, as the .cargo/config.toml that `qr-packer new` writes does)"
        );
        let err = check_half(&component("", &["(memory 1)", "(memory 1)"]), World::Device).unwrap_err();
        assert_eq!(err.to_string(), "the device half defines 2 linear memories; the runtime gives a half at most 1");
        let err = check_half(&component("", &["(table 1025 funcref)"]), World::Device).unwrap_err();
        assert_eq!(err.to_string(), "the device half has a table of 1025 initial elements; the runtime's cap is 1024");
        let err = check_half(&component("", &["(func $s) (start $s)"]), World::Phone).unwrap_err();
        assert_eq!(err.to_string(), "the phone half has a start function; the runtime runs a half only through its `enroll` export");
    }

    #[test]
    fn halves_the_sandbox_would_not_compile_are_refused_before_signing() {
        // 200 functions of 60 locals each: 12,000 in all, in a few bytes.
        let many_locals: String = (0..200).map(|_| "(func (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64) (local f32 f32 f32 f32 f32 f32 f32 f32 f32 f32) (local f64 f64 f64 f64 f64 f64 f64 f64 f64 f64) (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64))").collect();
        let err = check_half(&component("", &[&many_locals]), World::Device).unwrap_err();
        assert!(matches!(err, PackError::TooManyLocals { locals: 10_020, max: MAX_HALF_LOCALS, .. }), "{err}");
        // Padding in a data segment makes a half larger than the runtime compiles.
        let padding = format!("(memory 1) (data (i32.const 0) \"{}\")", "x".repeat(MAX_HALF_BYTES));
        let err = check_half(&component("", &[&padding]), World::Device).unwrap_err();
        assert!(matches!(err, PackError::HalfOverSandboxCap { max: MAX_HALF_BYTES, .. }), "{err}");
    }

    #[test]
    fn a_memory_without_a_maximum_or_above_the_cap_is_fine_within_the_initial_cap() {
        for memory in ["(memory 2)", "(memory 1 100)", "(memory 0)", "(memory 2 2)"] {
            check_half(&component("", &[memory, "(table 1024 funcref)"]), World::Device).unwrap();
        }
        assert!(matches!(
            check_half(&component("", &["(memory 3 3)"]), World::Device),
            Err(PackError::InitialMemoryTooLarge { bytes: 196_608, .. })
        ));
    }

    #[test]
    fn another_wit_version_is_told_apart_from_a_foreign_import() {
        let supported = wit_version().expect("the embedded WIT has a version");
        let package = &contract().unwrap().package;
        let other = component(&format!(r#"(import "{package}/transport@9.9.9" (instance))"#), &[""]);
        let err = check_half(&other, World::Device).unwrap_err();
        assert!(
            matches!(&err, PackError::UnsupportedWitVersion { half: "device", found, supported: s } if found == "9.9.9" && s == supported),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the device half was built against WIT version 9.9.9 of the enrollment contract; this qr-packer supports version {supported} only (rebuild the half against its wit/enrollment.wit)"
            )
        );
        let unversioned = component(&format!(r#"(import "{package}/transport" (instance))"#), &[""]);
        assert!(matches!(check_half(&unversioned, World::Device), Err(PackError::UnsupportedWitVersion { found, .. }) if found == "(none)"));
        // An interface the package does not have, at the right version, is a
        // foreign import, not a version mismatch.
        let unknown = component(&format!(r#"(import "{package}/nonexistent@{supported}" (instance))"#), &[""]);
        assert!(matches!(check_half(&unknown, World::Device), Err(PackError::ForbiddenImport { .. })));
    }
}
