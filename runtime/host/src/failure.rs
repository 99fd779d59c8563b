//! Why a side gave up, as it crosses the link.
//!
//! A failure travels as a [`WireFailure`]: a stable numeric [`FailureCode`]
//! and an optional human detail. The code is what a peer matches on; the
//! detail is for people and logs, and never parsed. Codes map to numbers in
//! one place ([`FailureCode::to_wire`] / [`FailureCode::from_wire`]), so
//! renaming or rewording a Rust error never changes the protocol, and a
//! device of an older build still understands a newer assistant (unknown
//! numbers arrive as [`FailureCode::Unknown`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The stable reason codes of the link protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCode {
    // Device → assistant (`Failed`).
    /// The device is sealed and a re-bind was not authorized.
    Sealed,
    /// A re-bind signature did not verify or came from another assistant.
    BadRebindAuthorization,
    /// The payload does not verify against the device's manufacturer keys.
    Untrusted,
    /// The payload names another device or access technology.
    NotForThisDevice,
    /// The device half returned without staging everything an enrollment needs.
    Incomplete,
    /// Another enrollment of the device committed first.
    Conflict,
    /// The device's store failed.
    Store,
    /// The peer broke the link protocol.
    Protocol,
    /// The device stopped because the assistant aborted.
    Aborted,
    /// A status request was not signed by the assistant the device enrolled with.
    BadStatusAuthorization,
    // A half (either side) could not be loaded or did not finish.
    HalfCoreModule,
    HalfInvalidComponent,
    HalfForeignImport,
    HalfWrongWorld,
    HalfDeadline,
    HalfMemoryCap,
    HalfMessageTooLarge,
    HalfPeerSilent,
    HalfTrap,
    HalfFailed,
    HalfExhausted,
    HalfHost,
    HalfUnsupportedWit,
    HalfTooLarge,
    HalfCompileTimeout,
    // Assistant → device (`Abort`).
    /// The label does not fit the device on the link.
    LabelRefused,
    /// The device is sealed and this assistant did not ask for a re-bind.
    DeviceSealed,
    /// The phone half failed.
    PhoneHalfFailed,
    /// The phone half finished without relaying the device's identity.
    NotRelayed,
    /// What the device staged is not what the phone half relayed.
    RelayMismatch,
    /// The service provider could not be told.
    RelayFailed,
    /// A re-bind was asked of a device that is not enrolled.
    NotEnrolled,
    /// A code this build does not know (a newer peer).
    Unknown(u16),
}

impl FailureCode {
    /// The number on the wire. Numbers are never reused.
    pub fn to_wire(self) -> u16 {
        use FailureCode::*;
        match self {
            Sealed => 1,
            BadRebindAuthorization => 2,
            Untrusted => 3,
            NotForThisDevice => 4,
            Incomplete => 5,
            Conflict => 6,
            Store => 7,
            Protocol => 8,
            Aborted => 9,
            BadStatusAuthorization => 10,
            HalfCoreModule => 20,
            HalfInvalidComponent => 21,
            HalfForeignImport => 22,
            HalfWrongWorld => 23,
            HalfDeadline => 24,
            HalfMemoryCap => 25,
            HalfMessageTooLarge => 26,
            HalfPeerSilent => 27,
            HalfTrap => 28,
            HalfFailed => 29,
            HalfExhausted => 30,
            HalfHost => 31,
            HalfUnsupportedWit => 32,
            HalfTooLarge => 33,
            HalfCompileTimeout => 34,
            LabelRefused => 40,
            DeviceSealed => 41,
            PhoneHalfFailed => 42,
            NotRelayed => 43,
            RelayMismatch => 44,
            RelayFailed => 45,
            NotEnrolled => 46,
            Unknown(n) => n,
        }
    }

    /// The code for a number on the wire.
    pub fn from_wire(n: u16) -> Self {
        Self::ALL.iter().copied().find(|c| c.to_wire() == n).unwrap_or(Self::Unknown(n))
    }

    /// Every known code.
    pub const ALL: &'static [FailureCode] = {
        use FailureCode::*;
        &[
            Sealed,
            BadRebindAuthorization,
            Untrusted,
            NotForThisDevice,
            Incomplete,
            Conflict,
            Store,
            Protocol,
            Aborted,
            BadStatusAuthorization,
            HalfCoreModule,
            HalfInvalidComponent,
            HalfForeignImport,
            HalfWrongWorld,
            HalfDeadline,
            HalfMemoryCap,
            HalfMessageTooLarge,
            HalfPeerSilent,
            HalfTrap,
            HalfFailed,
            HalfExhausted,
            HalfHost,
            HalfUnsupportedWit,
            HalfTooLarge,
            HalfCompileTimeout,
            LabelRefused,
            DeviceSealed,
            PhoneHalfFailed,
            NotRelayed,
            RelayMismatch,
            RelayFailed,
            NotEnrolled,
        ]
    };

    /// A short description, for people.
    pub fn describe(self) -> &'static str {
        use FailureCode::*;
        match self {
            Sealed => "the device is sealed; a re-bind needs the authorization of the assistant it enrolled with",
            BadRebindAuthorization => "the re-bind authorization does not verify",
            Untrusted => "the device refuses the app",
            NotForThisDevice => "the app is not for this device",
            Incomplete => "the device half returned without finishing",
            Conflict => "another enrollment of this device committed first",
            Store => "the device could not store the enrollment",
            Protocol => "link protocol error",
            Aborted => "the enrollment was aborted by the assistant",
            BadStatusAuthorization => "the status request is not from the assistant the device enrolled with",
            HalfCoreModule => "the half is a core module, not a component",
            HalfInvalidComponent => "the half is not a valid component",
            HalfForeignImport => "the half imports what its world does not offer",
            HalfWrongWorld => "the half does not target its world",
            HalfDeadline => "the half ran past its deadline",
            HalfMemoryCap => "the half asked for more memory than its cap",
            HalfMessageTooLarge => "the half sent an oversized message",
            HalfPeerSilent => "the half's peer went silent",
            HalfTrap => "the half trapped",
            HalfFailed => "the half reported failure",
            HalfExhausted => "no sandbox slot was free",
            HalfHost => "the host failed while serving the half",
            HalfUnsupportedWit => "the half was built for another WIT version",
            HalfTooLarge => "the half is larger than this runtime compiles",
            HalfCompileTimeout => "compiling the half took too long",
            LabelRefused => "the label does not fit the device on the link",
            DeviceSealed => "the device is sealed and no re-bind was requested",
            PhoneHalfFailed => "the phone half failed",
            NotRelayed => "the phone half did not relay the device's identity",
            RelayMismatch => "the relay does not match what the device staged",
            RelayFailed => "relaying to the service provider failed",
            NotEnrolled => "the device is not enrolled",
            Unknown(_) => "a failure this build does not know",
        }
    }
}

impl Serialize for FailureCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.to_wire())
    }
}

impl<'de> Deserialize<'de> for FailureCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_wire)
    }
}

/// Longest detail carried on the link, in bytes; longer ones are cut.
pub const MAX_DETAIL: usize = 512;

/// A failure as it crosses the link: a code to match on, a detail to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFailure {
    pub code: FailureCode,
    pub detail: Option<String>,
}

impl WireFailure {
    /// A failure with a detail (cut to [`MAX_DETAIL`] bytes).
    pub fn new(code: FailureCode, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        truncate_on_char_boundary(&mut detail, MAX_DETAIL);
        Self { code, detail: Some(detail) }
    }

    /// A failure with its code alone.
    pub fn code(code: FailureCode) -> Self {
        Self { code, detail: None }
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
pub(crate) fn truncate_on_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

impl std::fmt::Display for WireFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{}: {detail}", self.code.describe()),
            None => f.write_str(self.code.describe()),
        }
    }
}

impl std::error::Error for WireFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_numbers_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in FailureCode::ALL {
            assert!(seen.insert(code.to_wire()), "{code:?} reuses a number");
            assert_eq!(FailureCode::from_wire(code.to_wire()), *code);
        }
        assert_eq!(FailureCode::from_wire(999), FailureCode::Unknown(999));
    }

    #[test]
    fn details_are_bounded_on_a_char_boundary() {
        let f = WireFailure::new(FailureCode::Store, "é".repeat(400));
        assert!(f.detail.as_ref().is_some_and(|d| d.len() <= MAX_DETAIL));
    }
}
