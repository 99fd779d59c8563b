//! Why the device refused or failed an enrollment, in the device's own terms,
//! and the one mapping of each to its code on the link.

use enrollment_host::failure::{FailureCode, WireFailure};
use enrollment_host::sandbox::HalfError;

/// Why the device refused or failed an enrollment. The device is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceFailure {
    #[error("the device is sealed; a re-bind needs the authorization of the assistant it enrolled with")]
    Sealed,
    #[error("the re-bind authorization does not verify")]
    BadRebindAuthorization,
    #[error("the status request is not signed by the assistant this device enrolled with")]
    BadStatusAuthorization,
    #[error("the device refuses the app: {0}")]
    Untrusted(String),
    #[error("the app is not for this device: {0}")]
    NotForThisDevice(String),
    #[error("the label names no device (it was packed --unbound); this device runs only labels packed for its own id, unless its operator accepts unbound labels (`device-agent serve --accept-unbound`, `DeviceRuntime::accept_unbound_labels`)")]
    UnboundLabel,
    #[error("{0}")]
    Half(HalfError),
    #[error("the device half returned without {0}")]
    Incomplete(String),
    #[error("another enrollment of this device committed first")]
    Conflict,
    #[error("the device could not store the enrollment: {0}")]
    Store(String),
    #[error("the enrollment was aborted by the assistant: {0}")]
    Aborted(WireFailure),
    #[error("link protocol error: {0}")]
    Protocol(String),
}

impl DeviceFailure {
    /// The stable code this failure travels under.
    pub fn code(&self) -> FailureCode {
        match self {
            DeviceFailure::Sealed => FailureCode::Sealed,
            DeviceFailure::BadRebindAuthorization => FailureCode::BadRebindAuthorization,
            DeviceFailure::BadStatusAuthorization => FailureCode::BadStatusAuthorization,
            DeviceFailure::Untrusted(_) => FailureCode::Untrusted,
            DeviceFailure::NotForThisDevice(_) | DeviceFailure::UnboundLabel => FailureCode::NotForThisDevice,
            DeviceFailure::Half(e) => e.code(),
            DeviceFailure::Incomplete(_) => FailureCode::Incomplete,
            DeviceFailure::Conflict => FailureCode::Conflict,
            DeviceFailure::Store(_) => FailureCode::Store,
            DeviceFailure::Aborted(_) => FailureCode::Aborted,
            DeviceFailure::Protocol(_) => FailureCode::Protocol,
        }
    }

    /// This failure as the assistant receives it.
    pub fn to_wire(&self) -> WireFailure {
        match self {
            DeviceFailure::Sealed
            | DeviceFailure::BadRebindAuthorization
            | DeviceFailure::BadStatusAuthorization
            | DeviceFailure::Conflict => {
                WireFailure::code(self.code())
            }
            DeviceFailure::Half(e) => e.to_wire(),
            DeviceFailure::UnboundLabel => WireFailure::new(self.code(), self.to_string()),
            DeviceFailure::Aborted(why) => WireFailure::new(self.code(), why.to_string()),
            DeviceFailure::Untrusted(detail)
            | DeviceFailure::NotForThisDevice(detail)
            | DeviceFailure::Incomplete(detail)
            | DeviceFailure::Store(detail)
            | DeviceFailure::Protocol(detail) => WireFailure::new(self.code(), detail.clone()),
        }
    }
}
