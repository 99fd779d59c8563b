//! The shared host of an IoT enrollment: what the device runtime
//! (`enrollment-device`) and the assistant runtime (`enrollment-assistant`)
//! both need, and nothing either side alone needs.
//!
//! A gateway vendor or device maker does not embed this crate directly; they
//! take one of the two runtimes, which re-export what they need of it. It is
//! its own crate so that both sides agree on the contract by construction:
//! one wasmtime configuration, one set of bindings, one link protocol.
//!
//! | part | module |
//! | --- | --- |
//! | wasmtime, narrowed: pooling, epochs, memory caps, compiled cache | [`sandbox`] |
//! | the WIT worlds, as host bindings (generated once, for both worlds) | [`bindings`] |
//! | the local link (in-process, TCP) and its codec | [`link`] |
//! | the frames of the link protocol | [`frame`] |
//! | failures on the link: stable codes and a detail | [`failure`] |
//! | `transport`: messages between the halves, and the one ordered stream of frames | [`transport`] |
//! | hand-over items: their wire form and checks, both ends | [`handover`] |
//! | `manifest` and `diagnostics`, the same for both halves | [`manifest`] |
//! | what each half did, for the simulator and tests | [`trace`] |
//! | network credentials, the runtime's encoding | [`credentials`] |
//! | timeouts and the end of a session, both sides | [`session`] |

pub mod bindings;
pub mod credentials;
pub mod failure;
pub mod frame;
pub mod handover;
pub mod link;
pub mod logging;
pub mod manifest;
pub mod sandbox;
pub mod session;
pub mod trace;
pub mod transport;

pub use failure::{FailureCode, WireFailure};
pub use link::Link;
pub use sandbox::{Compiler, HalfError, HalfKind, Sandbox, SandboxConfig, SetupError};
pub use session::Timeouts;
pub use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};
