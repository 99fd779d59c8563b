//! The guest SDK of enrollment applications: what a phone half, a device
//! half or an operational app needs, `no_std`, small by construction.
//!
//! - [`phone`] and [`device`]: the bindings of the two worlds of
//!   `iot-enroll:enrollment@0.2.0`, generated once here, and the common
//!   steps ([`phone::hand_over`], [`device::take_all`]).
//! - [`operational`]: the bindings of world `operational`, the app a device
//!   runs after enrollment, and numbers kept as settings
//!   ([`operational::get_u32`], [`operational::keep_u32`]).
//! - [`text`]: decimals, fixed-point numbers, bounded label parameters,
//!   `name=value` commands and messages without `core::fmt`.
//! - [`record`]: app-defined records built and read field by field
//!   (big-endian, no allocation).
//! - A global allocator and a panic handler, so a half needs no `std`.
//!
//! A half is a `cdylib` that implements the world's `Guest` trait and
//! exports it:
//!
//! ```ignore
//! #![no_std]
//! use enrollment_sdk::phone::{self, offer};
//!
//! struct Plug;
//! impl phone::Guest for Plug {
//!     fn enroll() -> Result<(), ()> {
//!         phone::hand_over().map_err(drop)
//!     }
//! }
//! enrollment_sdk::phone_half!(Plug);
//! ```
//!
//! An operational app does the same with [`operational::Guest`] and
//! [`operational_app!`].
//!
//! Every byte of code ends up in the signed label, so nothing here formats
//! text (`core::fmt` stays out), panics trap at once, and the allocator never
//! frees (a half runs one enrollment and is thrown away).

#![no_std]

extern crate alloc;

pub mod record;
mod rt;
pub mod text;

/// Exports `$app` (a type that implements [`phone::Guest`]) as the phone half.
#[macro_export]
macro_rules! phone_half {
    ($app:ident) => {
        $crate::phone::export_phone_half!($app);
    };
}

/// Exports `$app` (a type that implements [`device::Guest`]) as the device half.
#[macro_export]
macro_rules! device_half {
    ($app:ident) => {
        $crate::device::export_device_half!($app);
    };
}

/// Exports `$app` (a type that implements [`operational::Guest`]) as the
/// operational app.
#[macro_export]
macro_rules! operational_app {
    ($app:ident) => {
        $crate::operational::export_operational!($app);
    };
}

/// The phone half's world, `phone-half`: `offer`, `assistant`, `transport`,
/// `manifest`, `diagnostics`.
pub mod phone {
    wit_bindgen::generate!({
        world: "phone-half",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_phone_half",
        default_bindings_module: "enrollment_sdk::phone",
        // Less code: no static constructors to run.
        disable_run_ctors_once_workaround: true,
    });

    pub use self::iot_enroll::enrollment::types::{AccessTechnology, Refusal};
    pub use self::iot_enroll::enrollment::{assistant, diagnostics, manifest, transport};

    /// `offer`: the generated functions, and one per value the assistant
    /// knows (`offer.assistant(value)` under the name of the value).
    pub mod offer {
        pub use super::iot_enroll::enrollment::offer::*;

        /// The owner or organisation enrolling the device.
        pub fn owner() -> Result<(), Refusal> {
            assistant(AssistantValue::Owner)
        }

        /// Where the device is installed.
        pub fn location() -> Result<(), Refusal> {
            assistant(AssistantValue::Location)
        }

        /// The credentials of the network the device should join.
        pub fn network() -> Result<(), Refusal> {
            assistant(AssistantValue::Network)
        }

        /// The device's service provider, as the assistant resolved it.
        pub fn service_provider() -> Result<(), Refusal> {
            assistant(AssistantValue::ServiceProvider)
        }
    }

    /// The common hand-over: network credentials (unless the device is BLE,
    /// which its gateway reaches), owner, location and the service provider,
    /// then `offer.finish`.
    pub fn hand_over() -> Result<(), Refusal> {
        if assistant::technology() != AccessTechnology::BluetoothLe {
            offer::network()?;
        }
        offer::owner()?;
        offer::location()?;
        offer::service_provider()?;
        offer::finish()
    }

    /// The label parameter `name` as a number in `min..=max` with up to
    /// `places` decimals, scaled by `10^places` (`"13.5"` with 1 place is
    /// 135), or `default` if the label has none ([`crate::text::bounded`]).
    /// `InvalidValue` if it is malformed, out of range, or absent without a
    /// default.
    pub fn param_number(name: &str, places: u32, default: Option<u32>, min: u32, max: u32) -> Result<u32, Refusal> {
        let value = manifest::param(name);
        crate::text::bounded(value.as_deref().map(str::as_bytes), places, default, min, max).ok_or(Refusal::InvalidValue)
    }

    /// Offers a label parameter to the device as a configuration value, if
    /// the manufacturer signed one under `name`.
    pub fn forward_param(name: &str) -> Result<(), Refusal> {
        match manifest::param(name) {
            Some(value) => offer::parameter(name, &value),
            None => Ok(()),
        }
    }
}

/// The device half's world, `device-half`: `take`, `device`, `transport`,
/// `manifest`, `diagnostics`.
pub mod device {
    wit_bindgen::generate!({
        world: "device-half",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_device_half",
        default_bindings_module: "enrollment_sdk::device",
        disable_run_ctors_once_workaround: true,
    });

    pub use self::iot_enroll::enrollment::take::Item;
    pub use self::iot_enroll::enrollment::types::{AccessTechnology, Refusal};
    pub use self::iot_enroll::enrollment::{device, diagnostics, manifest, take, transport};

    /// Takes every item the phone half offers until its end, then finishes:
    /// the host generates the key pair, writes the SP-bound identifier from
    /// the service-provider item and asks for the device to be sealed.
    /// Records, which only the app understands, are refused.
    pub fn take_all() -> Result<(), Refusal> {
        loop {
            match take::next()? {
                Item::End => return take::finish(),
                Item::Record(_) => return Err(Refusal::NotApplicable),
                _ => {}
            }
        }
    }

    /// Takes the next item and checks it is the one expected (by kind).
    pub fn expect(expected: &Item) -> Result<Item, Refusal> {
        let item = take::next()?;
        if core::mem::discriminant(&item) == core::mem::discriminant(expected) {
            Ok(item)
        } else {
            Err(Refusal::OutOfOrder)
        }
    }

    /// Takes the next item, which must be the parameter `name` (staged by
    /// the host as configuration), and returns its value.
    pub fn expect_parameter(name: &str) -> Result<alloc::string::String, Refusal> {
        match take::next()? {
            Item::Parameter((n, value)) if n == name => Ok(value),
            _ => Err(Refusal::OutOfOrder),
        }
    }

    /// The label parameter `name` as a number, as [`crate::phone::param_number`]
    /// reads it on the phone (the device reads the same signed label).
    pub fn param_number(name: &str, places: u32, default: Option<u32>, min: u32, max: u32) -> Result<u32, Refusal> {
        let value = manifest::param(name);
        crate::text::bounded(value.as_deref().map(str::as_bytes), places, default, min, max).ok_or(Refusal::InvalidValue)
    }

    /// Takes the next item, which must be a record tagged `tag`, and returns
    /// its bytes (records are the half's to check and use).
    pub fn expect_record(tag: u32) -> Result<alloc::vec::Vec<u8>, Refusal> {
        match take::next()? {
            Item::Record((t, value)) if t == tag => Ok(value),
            _ => Err(Refusal::OutOfOrder),
        }
    }
}

/// The operational app's world, `operational`: `settings`, `uplink`,
/// `schedule`, `diagnostics`. The device runs it after enrollment, once per
/// activation (`activate`), in a sandbox of its own with the limits of a
/// half; the host signs what it sends and verifies what it receives.
pub mod operational {
    wit_bindgen::generate!({
        world: "operational",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_operational",
        default_bindings_module: "enrollment_sdk::operational",
        disable_run_ctors_once_workaround: true,
        // No `#[used]` function pointer per interface to keep this world's
        // custom section linked: every phone and device half links this
        // module too, and would carry those pointers (20 bytes) for nothing.
        // An operational app gets the section from `operational_app!`.
        disable_custom_section_link_helpers: true,
    });

    pub use self::iot_enroll::enrollment::types::Refusal;
    pub use self::iot_enroll::enrollment::{diagnostics, schedule, settings, uplink};
    use crate::text;

    /// The number under `name`, kept or configured as decimal text: the
    /// value this app kept with [`keep_u32`], else the enrollment's
    /// configuration value of that name. `None` if there is none or it is
    /// not a decimal `u32`.
    pub fn get_u32(name: &str) -> Option<u32> {
        text::parse_u32(&settings::get(name)?)
    }

    /// Keeps `value` under `name` as decimal text, for later activations
    /// and across restarts (what [`get_u32`] reads).
    pub fn keep_u32(name: &str, value: u32) -> Result<(), Refusal> {
        let mut buf = [0; text::MAX_DIGITS];
        settings::keep(name, text::decimal(value.into(), &mut buf))
    }
}
