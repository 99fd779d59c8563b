//! What a device runs to be enrolled, and nothing else.
//!
//! A device maker embeds [`DeviceRuntime`] with the device's own store and
//! the manufacturer keys it trusts, and serves each assistant that connects
//! over the device's local link (`examples/device.rs` does it in a few
//! lines; the `device-agent` binary is the same with a command line). The
//! device:
//!
//! 1. greets the assistant with its id, access technology and a fresh nonce;
//! 2. verifies the signed payload the assistant forwards against its own
//!    trusted keys and checks it names this device ([`admission`]);
//! 3. runs the device half in its own sandbox with exactly the `device`
//!    capability ([`capability`]): everything the half asks for is staged;
//! 4. on the assistant's `Commit`, writes the enrollment and seals itself in
//!    one durable transaction ([`store`]); or re-binds to another SP when
//!    the assistant it enrolled with asks (the `rebind` module).
//!
//! This crate has no HTTP stack, no image decoding and no packer: a device
//! build holds wasmtime (baseline compiler only, where wasmtime has one),
//! SQLite and the label verification of `qr-packer` without its features.

pub mod admission;
pub mod capability;
mod failure;
pub mod metrics;
pub mod operational;
mod rebind;
mod runtime;
mod status;
pub mod store;

pub use enrollment_host::frame::Enrolled;
pub use enrollment_host::trace::{Trace, TraceEvent, TraceKind};
pub use enrollment_host::{
    AccessTechnology, Compiler, Eui, FailureCode, HalfError, HalfKind, Link, Sandbox, SandboxConfig, SetupError, SpBoundId,
    SpIdentity, Timeouts, WireFailure,
};
pub use failure::DeviceFailure;
pub use qr_packer::TrustedKeys;
pub use runtime::{DeviceReport, DeviceRuntime};
pub use store::{DeviceState, DeviceStore};
