//! Host bindings for the two worlds of `wit/enrollment.wit`.
//!
//! Both worlds share the `transport` and `types` interfaces; they are
//! generated once, in [`device`], and reused by [`phone`] through `with`, so a
//! single host implementation of the transport serves both halves.
//!
//! Every import is `async` (the transport waits for the peer, the assistant
//! waits for the control server) and `trappable`: a host can end a half that
//! breaks the contract (an oversized message, say) with a specific error
//! instead of handing it an error value it may ignore.

/// Bindings of the `device-half` world.
pub mod device {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "device-half",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of the `phone-half` world.
pub mod phone {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "phone-half",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "iot-enroll:enrollment/transport": super::device::iot_enroll::enrollment::transport,
            "iot-enroll:enrollment/types": super::device::iot_enroll::enrollment::types,
        },
    });
}

pub use device::iot_enroll::enrollment::transport::LinkError;
pub use device::iot_enroll::enrollment::types::{AccessTechnology as WitAccessTechnology, Refusal};
