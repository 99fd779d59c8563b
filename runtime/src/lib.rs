//! The enrollment runtime: runs the two halves of an IoT enrollment
//! application in wasmtime sandboxes and binds the device to its service
//! provider.
//!
//! Where each part of the product lives:
//!
//! | part | module |
//! | --- | --- |
//! | the WIT worlds, as host bindings | [`bindings`] |
//! | wasmtime, narrowed: pooling, epochs, memory caps, compiled cache | [`sandbox`] |
//! | the local link and its frames (in-process, TCP) | [`link`] |
//! | `transport`: messages between the halves | [`transport`] |
//! | `device`: what the device offers its half (staged writes) | [`device`] |
//! | `assistant`: what the phone/gateway offers its half | [`phone`] |
//! | network credentials, the runtime's encoding | [`credentials`] |
//! | the SP-bound identifier (SP + EUI-48/64 + access technology) | [`identifier`] |
//! | the device's durable state, one atomic commit per enrollment | [`device_store`] |
//! | a label: decoded, verified against manufacturer keys, split (both sides' policy) | [`label`] |
//! | one enrollment, both sides, two-phase commit | [`enroll`] |
//! | moving an enrolled device to another SP (authenticated) | [`rebind`] |
//! | the device gateway: device table, control-server client, update stream | [`gateway`] |

pub mod bindings;
pub mod credentials;
pub mod device;
pub mod device_store;
pub mod enroll;
pub mod gateway;
pub mod label;
pub use sp_bound_id as identifier;
pub mod link;
pub mod phone;
pub mod rebind;
pub mod sandbox;
pub mod transport;

pub use enroll::{AssistantRuntime, DeviceRuntime, EnrollError, EnrollOptions, EnrollmentReport, Timeouts};
pub use identifier::{AccessTechnology, Eui, SpBoundId, SpIdentity};
pub use sandbox::{Compiler, HalfError, Sandbox, SandboxConfig};
