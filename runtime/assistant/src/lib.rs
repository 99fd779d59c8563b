//! What an assisting phone or gateway runs to enroll a device.
//!
//! A gateway vendor embeds [`AssistantRuntime`] with an [`AssistantServices`]
//! implementation (what the assistant knows and can reach: owner, location,
//! network credentials, the control server, the SPs), reads a label into a
//! [`ScannedApp`] and enrolls the device at the other end of a [`Link`]
//! (`examples/assistant.rs` does it in about fifty lines). The runtime:
//!
//! 1. reads the label (text from a scanner, or a photo with the `photo`
//!    feature), verifies it against the manufacturer keys the assistant
//!    trusts and splits it ([`label`]);
//! 2. forwards the signed payload, unchanged, to the device, which verifies
//!    it itself;
//! 3. runs the phone half in its own sandbox with exactly the `assistant`
//!    capability ([`capability`]);
//! 4. relays the device's identity and public key to its SP only once the
//!    device has shown it staged exactly those, then tells it to commit.
//!
//! [`rebind`] moves a device it enrolled to another SP without the label;
//! [`status`] asks a device what it committed, for an embedder that keeps a
//! [`journal`] of enrollments whose answer was lost.
//! The gateway service built on this is the `enrollment-gateway` crate.

pub mod capability;
pub mod journal;
pub mod label;
pub mod rebind;
pub mod status;
mod runtime;

pub use capability::{AssistantServices, ConfiguredAssistant, RelayError, RelayedDevice, ResolveError};
pub use enrollment_host::credentials::NetworkCredentials;
pub use enrollment_host::frame::Enrolled;
pub use enrollment_host::handover::SpBinding;
pub use enrollment_host::trace::{Trace, TraceEvent, TraceKind};
pub use enrollment_host::{
    AccessTechnology, Compiler, Eui, FailureCode, HalfError, HalfKind, Link, Sandbox, SandboxConfig, SetupError, SpBoundId,
    SpIdentity, Timeouts, WireFailure,
};
pub use label::{LabelError, ScannedApp};
pub use qr_packer::TrustedKeys;
pub use runtime::{AssistantRuntime, EnrollError, EnrollOptions, EnrollmentReport, StageTimings, committed_identifier};
