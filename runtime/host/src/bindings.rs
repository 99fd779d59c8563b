//! Host bindings for the worlds of `wit/enrollment.wit`: the two halves and
//! the operational app.
//!
//! Both worlds share the `types`, `transport`, `manifest` and `diagnostics`
//! interfaces; they are generated once, in [`device`], and reused by
//! [`phone`] through `with`, so one host implementation of each serves both
//! halves.
//!
//! Every import is `async` (the transport waits for the peer, the assistant
//! waits for the control server) and `trappable`: a host can end a half that
//! breaks the contract (an oversized message, say) with a specific error
//! instead of handing it an error value it may ignore.

/// Bindings of the `device-half` world.
pub mod device {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "device-half",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of the `phone-half` world.
pub mod phone {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "phone-half",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "iot-enroll:enrollment/transport": super::device::iot_enroll::enrollment::transport,
            "iot-enroll:enrollment/types": super::device::iot_enroll::enrollment::types,
            "iot-enroll:enrollment/manifest": super::device::iot_enroll::enrollment::manifest,
            "iot-enroll:enrollment/diagnostics": super::device::iot_enroll::enrollment::diagnostics,
        },
    });
}

/// Bindings of the `operational` world (the app a device runs after
/// enrollment); `types` and `diagnostics` are the halves' own.
pub mod operational {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "operational",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "iot-enroll:enrollment/types": super::device::iot_enroll::enrollment::types,
            "iot-enroll:enrollment/diagnostics": super::device::iot_enroll::enrollment::diagnostics,
        },
    });
}

pub use device::iot_enroll::enrollment::types::{AccessTechnology as WitAccessTechnology, Refusal};

use sp_bound_id::AccessTechnology;

/// The WIT form of an access technology.
pub fn to_wit(access: AccessTechnology) -> WitAccessTechnology {
    match access {
        AccessTechnology::Wifi => WitAccessTechnology::Wifi,
        AccessTechnology::Zigbee => WitAccessTechnology::Zigbee,
        AccessTechnology::Thread => WitAccessTechnology::Thread,
        AccessTechnology::BluetoothLe => WitAccessTechnology::BluetoothLe,
        AccessTechnology::Lorawan => WitAccessTechnology::Lorawan,
        AccessTechnology::Ethernet => WitAccessTechnology::Ethernet,
        AccessTechnology::Cellular => WitAccessTechnology::Cellular,
    }
}

/// An access technology from its WIT form.
pub fn from_wit(access: WitAccessTechnology) -> AccessTechnology {
    match access {
        WitAccessTechnology::Wifi => AccessTechnology::Wifi,
        WitAccessTechnology::Zigbee => AccessTechnology::Zigbee,
        WitAccessTechnology::Thread => AccessTechnology::Thread,
        WitAccessTechnology::BluetoothLe => AccessTechnology::BluetoothLe,
        WitAccessTechnology::Lorawan => AccessTechnology::Lorawan,
        WitAccessTechnology::Ethernet => AccessTechnology::Ethernet,
        WitAccessTechnology::Cellular => AccessTechnology::Cellular,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_technologies_round_trip_through_wit() {
        for a in AccessTechnology::ALL {
            assert_eq!(from_wit(to_wit(a)), a);
        }
    }
}
