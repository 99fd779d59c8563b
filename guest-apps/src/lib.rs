//! The reference enrollment applications, as the components the runtime runs.
//!
//! An enrollment application is a pair of components, a phone half (world
//! `phone-half` of `wit/enrollment.wit`) and a device half (world
//! `device-half`). The guests' sources are the `no_std` crates in `apps/`, a
//! cargo workspace of its own with a size-tuned release profile; `build.rs`
//! builds them for `wasm32-unknown-unknown` and encodes them as components at
//! build time, so the runtime, its tests and its tools get ready-made bytes
//! from this crate, with no wasm toolchain step of their own.
//!
//! Both the components and the core modules they were made from are exposed:
//! the runtime runs the components, size reports need both (the signed pair
//! has to fit one printed QR code).
//!
//! The Wi-Fi meter and the Zigbee sensor also have an operational app, a
//! component of world `operational` the device runs after enrollment
//! ([`WIFI_METER_OPERATIONAL`], [`ZIGBEE_SENSOR_OPERATIONAL`], [`OPERATIONAL`]).
//! It is kept apart from [`AppPair`]: a label may carry it or not
//! (`qr-packer pack --with-operational`).

use std::fmt;

/// The two halves of one enrollment application.
#[derive(Clone, Copy)]
pub struct AppPair {
    /// The application's name, e.g. `wifi-meter`.
    pub name: &'static str,
    /// The phone half, a component of world `phone-half`, as `wit-component`
    /// encodes it (custom sections included; the QR packer strips them).
    pub phone: &'static [u8],
    /// The device half, a component of world `device-half`.
    pub device: &'static [u8],
    /// The core module `phone` was made from, as the compiler produced it
    /// (with its `component-type` custom section).
    pub phone_core: &'static [u8],
    /// The core module `device` was made from, likewise.
    pub device_core: &'static [u8],
}

impl fmt::Debug for AppPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppPair")
            .field("name", &self.name)
            .field("phone", &format_args!("{} bytes", self.phone.len()))
            .field("device", &format_args!("{} bytes", self.device.len()))
            .field("phone_core", &format_args!("{} bytes", self.phone_core.len()))
            .field("device_core", &format_args!("{} bytes", self.device_core.len()))
            .finish()
    }
}

macro_rules! app_pair {
    ($name:literal) => {
        AppPair {
            name: $name,
            phone: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-phone.wasm")),
            device: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-device.wasm")),
            phone_core: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-phone.core.wasm")),
            device_core: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-device.core.wasm")),
        }
    };
}

/// A Wi-Fi smart meter (EUI-48): the phone hands it Wi-Fi credentials, its
/// owner, its location and its service provider.
pub const WIFI_METER: AppPair = app_pair!("wifi-meter");

/// A Zigbee sensor (EUI-64) without Wi-Fi: the phone hands it the credentials
/// of the gateway's Zigbee network and its service provider.
pub const ZIGBEE_SENSOR: AppPair = app_pair!("zigbee-sensor");

/// A wired building controller (EUI-48, Ethernet): it needs no network
/// credentials; the phone hands it its owner, its location and its service
/// provider.
pub const ETHERNET_CONTROLLER: AppPair = app_pair!("ethernet-controller");

/// A Bluetooth LE smart lock (EUI-48): it joins no network; the phone hands
/// it its owner and its service provider.
pub const BLE_LOCK: AppPair = app_pair!("ble-lock");

/// Every reference application.
pub const ALL: &[AppPair] = &[WIFI_METER, ZIGBEE_SENSOR, ETHERNET_CONTROLLER, BLE_LOCK];

/// The operational app of a reference application: a component of world
/// `operational`, which the device runs after enrollment, once per
/// activation.
#[derive(Clone, Copy)]
pub struct OperationalApp {
    /// The name of the application it belongs to ([`AppPair::name`]).
    pub app: &'static str,
    /// The component, as `wit-component` encodes it.
    pub component: &'static [u8],
    /// The core module it was made from.
    pub core: &'static [u8],
}

impl fmt::Debug for OperationalApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationalApp")
            .field("app", &self.app)
            .field("component", &format_args!("{} bytes", self.component.len()))
            .field("core", &format_args!("{} bytes", self.core.len()))
            .finish()
    }
}

macro_rules! operational_app {
    ($name:literal) => {
        OperationalApp {
            app: $name,
            component: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-operational.wasm")),
            core: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, "-operational.core.wasm")),
        }
    };
}

/// The Wi-Fi meter's operational app, the component: each activation
/// applies the SP's `interval=SECONDS` commands, asks to be woken after the
/// interval (default: the configuration's `interval`, else 60 s) and sends
/// `reading=R seq=N` (N = 1, 2, ... kept as `seq`; R = 1000 + 7 N).
pub const WIFI_METER_OPERATIONAL: &[u8] = OPERATIONAL[0].component;

/// The Zigbee sensor's operational app, the component: as the meter's, and
/// sends `temperature=T seq=N` (T = 2000 + 25 (N mod 10), hundredths of a
/// degree Celsius).
pub const ZIGBEE_SENSOR_OPERATIONAL: &[u8] = OPERATIONAL[1].component;

/// Every operational app of a reference application.
pub const OPERATIONAL: &[OperationalApp] = &[operational_app!("wifi-meter"), operational_app!("zigbee-sensor")];

/// The operational app of the reference application `app`, if it has one.
pub fn operational(app: &str) -> Option<&'static OperationalApp> {
    OPERATIONAL.iter().find(|o| o.app == app)
}

/// A Thread smart plug, written for the size benchmark: app-defined records
/// (commissioning, schedule, power limit) the device checks itself.
pub const THREAD_PLUG: AppPair = app_pair!("bench-thread-plug");

/// A LoRaWAN sensor, written for the size benchmark: radio configuration
/// from label parameters, normalized by the phone, cross-checked by the device.
pub const LORAWAN_SENSOR: AppPair = app_pair!("bench-lorawan-sensor");

/// A cellular tracker, written for the size benchmark: a multi-step exchange
/// over `transport` with a keyed check over the label's secret.
pub const CELLULAR_TRACKER: AppPair = app_pair!("bench-cellular-tracker");

/// The apps written for the size benchmark, in styles unlike the reference
/// apps (not in any dictionary).
pub const BENCH: &[AppPair] = &[THREAD_PLUG, LORAWAN_SENSOR, CELLULAR_TRACKER];

/// What the shipped compression dictionary is trained on, and nothing else:
/// not apps, but what every app shares. `seed-full` calls every import of
/// each world and every SDK helper once (the WIT-derived component
/// structure, the import shims, the SDK's code); `seed-template` is the
/// app `qr-packer new` writes. No reference or benchmark app is in it, so a
/// size measured with the shipped dictionary is what a new app gets.
pub const SEEDS: &[AppPair] = &[app_pair!("seed-full"), app_pair!("seed-template")];

/// The operational dictionary seed: an operational app that calls every
/// import of world `operational` and every SDK helper for it once, for
/// labels that carry an operational app. Not an app, not in [`OPERATIONAL`].
pub const SEED_OPERATIONAL: OperationalApp = operational_app!("seed-full");

/// The SDK's text and record helpers, compiled for the host so their tests
/// run here (the SDK itself builds only for wasm32).
#[cfg(test)]
#[path = "../sdk/src"]
mod sdk {
    pub mod record;
    pub mod text;
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{ComponentExternalKind, Parser, Payload, TypeRef, Validator};

    const TYPES: &str = "iot-enroll:enrollment/types@0.2.0";
    const PHONE_WORLD: &[&str] = &[
        "iot-enroll:enrollment/transport@0.2.0",
        "iot-enroll:enrollment/manifest@0.2.0",
        "iot-enroll:enrollment/diagnostics@0.2.0",
        "iot-enroll:enrollment/assistant@0.2.0",
        "iot-enroll:enrollment/offer@0.2.0",
    ];
    const DEVICE_WORLD: &[&str] = &[
        "iot-enroll:enrollment/transport@0.2.0",
        "iot-enroll:enrollment/manifest@0.2.0",
        "iot-enroll:enrollment/diagnostics@0.2.0",
        "iot-enroll:enrollment/take@0.2.0",
        "iot-enroll:enrollment/device@0.2.0",
    ];
    /// The interface every half of a world uses: the hand-over.
    const OFFER: &str = "iot-enroll:enrollment/offer@0.2.0";
    const TAKE: &str = "iot-enroll:enrollment/take@0.2.0";

    /// One half of one app, as the tests look at it.
    struct Half {
        label: String,
        component: &'static [u8],
        core: &'static [u8],
        /// The interfaces its world gives it, besides `types` (which only
        /// holds types, so importing it is optional).
        world: &'static [&'static str],
        /// The one it must import.
        required: &'static str,
    }

    fn halves() -> Vec<Half> {
        ALL.iter()
            .flat_map(|app| {
                [
                    Half {
                        label: format!("{}-phone", app.name),
                        component: app.phone,
                        core: app.phone_core,
                        world: PHONE_WORLD,
                        required: OFFER,
                    },
                    Half {
                        label: format!("{}-device", app.name),
                        component: app.device,
                        core: app.device_core,
                        world: DEVICE_WORLD,
                        required: TAKE,
                    },
                ]
            })
            .collect()
    }

    /// Top-level component imports and exports (not those of nested modules).
    fn component_imports_exports(component: &[u8]) -> (Vec<String>, Vec<(String, ComponentExternalKind)>) {
        let (mut imports, mut exports) = (Vec::new(), Vec::new());
        let mut depth = 0;
        for payload in Parser::new(0).parse_all(component) {
            match payload.unwrap() {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                Payload::ComponentImportSection(s) if depth == 0 => {
                    imports.extend(s.into_iter().map(|i| i.unwrap().name.full_name().into_owned()))
                }
                Payload::ComponentExportSection(s) if depth == 0 => exports.extend(s.into_iter().map(|e| {
                    let e = e.unwrap();
                    (e.name.full_name().into_owned(), e.kind)
                })),
                _ => {}
            }
        }
        (imports, exports)
    }

    /// The function imports (module, name) of the component's first core
    /// module, the one compiled from the half.
    fn main_module_imports(component: &[u8]) -> Vec<(String, String)> {
        let (mut imports, mut depth, mut modules) = (Vec::new(), 0, 0);
        for payload in Parser::new(0).parse_all(component) {
            match payload.unwrap() {
                Payload::ModuleSection { .. } => {
                    depth += 1;
                    modules += 1;
                }
                Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                Payload::ImportSection(s) if depth == 1 && modules == 1 => {
                    imports.extend(s.into_imports().map(|i| {
                        let i = i.unwrap();
                        (i.module.to_string(), i.name.to_string())
                    }))
                }
                _ => {}
            }
        }
        imports
    }

    /// The builder gives every half every import of its world in one order
    /// (`enrollment-builder`'s `canonical`), whatever the half calls: the
    /// BLE lock's phone half never offers a record or calls the transport,
    /// and still imports them, at the seeds' positions.
    #[test]
    fn every_half_of_a_world_imports_the_whole_world_in_one_order() {
        let phones: Vec<_> = ALL.iter().chain(BENCH).chain(SEEDS).map(|a| (a.name, main_module_imports(a.phone))).collect();
        let devices: Vec<_> = ALL.iter().chain(BENCH).chain(SEEDS).map(|a| (a.name, main_module_imports(a.device))).collect();
        for (halves, must) in [(&phones, ("iot-enroll:enrollment/offer@0.2.0", "record")), (&devices, ("iot-enroll:enrollment/take@0.2.0", "next"))] {
            let (first, imports) = &halves[0];
            assert!(imports.iter().any(|(m, n)| (m.as_str(), n.as_str()) == must), "{first}: {imports:?}");
            for (name, other) in halves.iter() {
                assert_eq!(other, imports, "{name} imports differ from {first}'s");
            }
        }
        assert_ne!(phones[0].1, devices[0].1);
        let ble = &phones.iter().find(|(n, _)| *n == "ble-lock").unwrap().1;
        assert!(ble.iter().any(|(m, n)| m == "iot-enroll:enrollment/transport@0.2.0" && n == "send"));
    }

    #[test]
    fn halves_are_valid_components_made_from_core_modules() {
        for Half { label, component, core, .. } in halves() {
            assert!(Parser::is_component(component), "{label}: not a component");
            assert!(Parser::is_core_wasm(core), "{label}: core module is not a core module");
            // Default features: nothing beyond what a stock runtime accepts.
            if let Err(e) = Validator::new().validate_all(component) {
                panic!("{label}: invalid component: {e}");
            }
        }
    }

    #[test]
    fn core_modules_start_at_one_page_and_stay_within_two() {
        let operational = OPERATIONAL.iter().chain([&SEED_OPERATIONAL]).map(|o| (format!("{}-operational", o.app), o.core));
        for (label, core) in halves().into_iter().map(|h| (h.label, h.core)).chain(operational) {
            let mut memories = Vec::new();
            for payload in Parser::new(0).parse_all(core) {
                match payload.unwrap() {
                    Payload::MemorySection(s) => memories.extend(s.into_iter().map(Result::unwrap)),
                    Payload::ImportSection(s) => {
                        for imports in s {
                            for import in imports.unwrap() {
                                let (_, import) = import.unwrap();
                                assert!(!matches!(import.ty, TypeRef::Memory(_)), "{label}: imports a memory");
                            }
                        }
                    }
                    _ => {}
                }
            }
            let [memory] = memories[..] else { panic!("{label}: {} memories", memories.len()) };
            assert!(!memory.memory64 && !memory.shared && memory.page_size_log2.is_none(), "{label}: {memory:?}");
            assert_eq!((memory.initial, memory.maximum), (1, Some(2)), "{label}: memory pages (initial, maximum)");
        }
    }

    #[test]
    fn halves_import_only_their_world_and_export_enroll() {
        for Half { label, component, world, required, .. } in halves() {
            let (imports, exports) = component_imports_exports(component);
            for import in &imports {
                assert!(import == TYPES || world.contains(&import.as_str()), "{label}: imports {import}");
            }
            assert!(imports.iter().any(|i| i == required), "{label}: does not import {required}");
            assert_eq!(exports, [("enroll".to_string(), ComponentExternalKind::Func)], "{label}: exports");
        }
    }

    /// The size of a component or module without its custom sections, at any
    /// nesting level: what is left once the QR packer has stripped it.
    fn len_without_custom_sections(wasm: &[u8]) -> usize {
        let custom: usize = Parser::new(0)
            .parse_all(wasm)
            .map(|payload| match payload.unwrap() {
                Payload::CustomSection(c) => {
                    // The section id, the LEB128 length, then name and data.
                    let len = (c.range().end - c.range().start) as usize;
                    1 + (len.ilog2() as usize / 7 + 1) + len
                }
                _ => 0,
            })
            .sum();
        wasm.len() - custom
    }

    /// The signed pair has to fit one QR code; a half that suddenly grows by
    /// kilobytes has pulled in `core::fmt` or similar. (Stripped, the largest
    /// half is 3.6 KB today, most of it the structure of every import of its
    /// world, which the builder gives every half and the shipped dictionary
    /// holds.)
    #[test]
    fn halves_stay_small() {
        const BUDGET: usize = 4 * 1024;
        for Half { label, component, .. } in halves() {
            let len = len_without_custom_sections(component);
            assert!(len <= BUDGET, "{label}: {len} bytes without custom sections, over the {BUDGET}-byte budget");
        }
    }

    const OPERATIONAL_WORLD: &[&str] = &[
        "iot-enroll:enrollment/settings@0.2.0",
        "iot-enroll:enrollment/uplink@0.2.0",
        "iot-enroll:enrollment/schedule@0.2.0",
        "iot-enroll:enrollment/diagnostics@0.2.0",
    ];

    #[test]
    fn operational_apps_import_only_their_world_export_activate_and_stay_small() {
        assert_eq!(OPERATIONAL.iter().map(|o| o.app).collect::<Vec<_>>(), ["wifi-meter", "zigbee-sensor"]);
        assert_eq!(WIFI_METER_OPERATIONAL, operational("wifi-meter").unwrap().component);
        assert_eq!(ZIGBEE_SENSOR_OPERATIONAL, operational("zigbee-sensor").unwrap().component);
        assert!(operational("ble-lock").is_none());
        for op in OPERATIONAL.iter().chain([&SEED_OPERATIONAL]) {
            let label = format!("{}-operational", op.app);
            assert!(ALL.iter().chain(SEEDS).any(|a| a.name == op.app), "{label}: no such app");
            assert!(Parser::is_component(op.component) && Parser::is_core_wasm(op.core), "{label}");
            if let Err(e) = Validator::new().validate_all(op.component) {
                panic!("{label}: invalid component: {e}");
            }
            let (imports, exports) = component_imports_exports(op.component);
            for import in &imports {
                assert!(import == TYPES || OPERATIONAL_WORLD.contains(&import.as_str()), "{label}: imports {import}");
            }
            for required in ["iot-enroll:enrollment/uplink@0.2.0", "iot-enroll:enrollment/schedule@0.2.0"] {
                assert!(imports.iter().any(|i| i == required), "{label}: does not import {required}");
            }
            assert_eq!(exports, [("activate".to_string(), ComponentExternalKind::Func)], "{label}: exports");
            // Stripped, 3.7 KB today: every import of its world (as for a
            // half), and its own formatting and parsing.
            const BUDGET: usize = 4 * 1024;
            let len = len_without_custom_sections(op.component);
            assert!(len <= BUDGET, "{label}: {len} bytes without custom sections, over the {BUDGET}-byte budget");
        }
    }
}
