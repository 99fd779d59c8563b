//! The SP-bound identifier: which service provider a device belongs to.
//!
//! A device's unique identifier is its service provider's identity, the
//! manufacturer's device id and the access technology it uses (US
//! 2017/0257341). The manufacturer id alone is unique but says nothing about
//! who operates the device; binding it to an SP identity makes the identifier
//! routable, and re-binding (a device sold on, an SP merger) replaces only the
//! SP part while the rest stays — see [`SpBoundId::with_sp`].
//!
//! Every part is validated when it is built, so holding a value is proof that
//! it is well formed, and every part has exactly one canonical text:
//!
//! * [`Eui`]: the manufacturer id, an EUI-48 or EUI-64 in the IEEE RA form
//!   (`AC-DE-48-00-00-80`). Group and locally administered addresses are
//!   refused: neither names one device made by a manufacturer.
//! * [`AccessTechnology`]: a fixed lowercase word (`wifi`, `ble`, ...).
//! * [`SpIdentity`]: a lowercase DNS-name-like string (`meters.sp.example`,
//!   or a PLMN id such as `310-410`).
//!
//! The identifier's text is `{sp}/{access}/{eui}`. It is unambiguous because
//! `/` cannot occur in any part (SP identities are `[a-z0-9.-]`, access
//! technologies are lowercase letters, a canonical EUI is `[0-9A-F-]`), so
//! splitting at `/` recovers the parts exactly. Parsing an identifier accepts
//! only the canonical text, which makes text and value a bijection: two
//! identifiers are equal exactly when their texts are, so the text can be
//! compared, hashed, signed or used as a database key without normalising.
//! (Parsing a bare [`Eui`] is lenient about spelling — people type MAC
//! addresses in many ways — but an EUI inside an identifier must be canonical.)

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a device id, access technology, SP identity or SP-bound identifier was
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// The device id has a length other than 6 (EUI-48) or 8 (EUI-64) octets.
    #[error("a device id is 6 octets (EUI-48) or 8 octets (EUI-64), not {len}")]
    WrongLength { len: usize },
    /// A device id written without separators has the wrong number of digits.
    #[error("a device id is 12 (EUI-48) or 16 (EUI-64) hex digits, not {digits}")]
    BadDigitCount { digits: usize },
    /// The I/G bit is set: a group (multicast) address names no single device.
    #[error("a group (multicast) address is not a device id: the I/G bit of the first octet is set")]
    GroupAddress,
    /// The U/L bit is set: a locally administered address carries no OUI, so
    /// no manufacturer vouches for its uniqueness.
    #[error("a locally administered address is not a manufacturer device id: the U/L bit of the first octet is set")]
    LocallyAdministered,
    /// All zeros or all ones: reserved, never assigned to a device.
    #[error("a device id of all zeros or all ones is reserved")]
    Reserved,
    /// A character that is neither a hex digit nor a separator.
    #[error("{found:?} is not a hex digit")]
    BadHex { found: char },
    /// Separators that are mixed, doubled, misplaced, or not `-`/`:`, or a
    /// group that is not exactly two hex digits.
    #[error("a device id is two-digit hex groups separated all by '-' or all by ':' (or not separated at all)")]
    BadSeparator,
    /// Not one of the access technologies' names.
    #[error("unknown access technology {0:?} (expected wifi, zigbee, thread, ble, lorawan, ethernet or cellular)")]
    UnknownAccessTechnology(String),
    /// The service-provider identity is not a lowercase DNS-name-like string.
    #[error("invalid SP identity: {reason}")]
    InvalidSpIdentity { reason: SpIdentityFault },
    /// The access technology does not use this kind of EUI (e.g. an EUI-64
    /// for Wi-Fi, whose devices have EUI-48 MAC addresses).
    #[error("{access} devices are identified by {}, not by an {kind}", expected_kind(*access))]
    EuiKindMismatch { access: AccessTechnology, kind: EuiKind },
    /// The device id inside an SP-bound identifier is valid but not spelt
    /// canonically.
    #[error("the device id in an SP-bound identifier must be written canonically, as {canonical}")]
    NotCanonical { canonical: String },
    /// An SP-bound identifier lacks a part, or a part is empty.
    #[error("the SP-bound identifier has no {0}: expected `sp-identity/access-technology/device-id`")]
    MissingPart(IdPart),
    /// An SP-bound identifier has more than three `/`-separated parts.
    #[error("the SP-bound identifier has more than three '/'-separated parts")]
    ExtraPart,
}

fn expected_kind(access: AccessTechnology) -> &'static str {
    match (access.accepts(EuiKind::Eui48), access.accepts(EuiKind::Eui64)) {
        (true, true) => "an EUI-48 or an EUI-64",
        (true, false) => "an EUI-48",
        _ => "an EUI-64",
    }
}

/// What exactly is wrong with an SP identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpIdentityFault {
    Empty,
    /// Longer than 253 bytes.
    TooLong {
        len: usize,
    },
    /// Two dots in a row, or a leading or trailing dot.
    EmptyLabel,
    /// A label longer than 63 bytes.
    LabelTooLong {
        len: usize,
    },
    /// A label starts or ends with `-`.
    HyphenAtLabelEdge,
    /// An uppercase letter: identities are canonical lowercase
    /// ([`SpIdentity::parse_lenient`] folds case).
    Uppercase,
    /// Anything but `a-z`, `0-9`, `-` and `.`.
    BadCharacter(char),
}

impl fmt::Display for SpIdentityFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::TooLong { len } => write!(f, "it is {len} bytes long, more than 253"),
            Self::EmptyLabel => f.write_str("it has an empty label (a leading, trailing or doubled '.')"),
            Self::LabelTooLong { len } => write!(f, "a label is {len} bytes long, more than 63"),
            Self::HyphenAtLabelEdge => f.write_str("a label starts or ends with '-'"),
            Self::Uppercase => f.write_str("it has uppercase letters; SP identities are lowercase"),
            Self::BadCharacter(c) => write!(f, "{c:?} is not allowed (only a-z, 0-9, '-' and '.')"),
        }
    }
}

/// A part of an SP-bound identifier, for [`IdentifierError::MissingPart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPart {
    SpIdentity,
    AccessTechnology,
    DeviceId,
}

impl fmt::Display for IdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SpIdentity => "SP identity",
            Self::AccessTechnology => "access technology",
            Self::DeviceId => "device id",
        })
    }
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`: every
/// identifier type travels as its text.
macro_rules! serde_as_text {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Eui

/// Whether a device id is an EUI-48 or an EUI-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EuiKind {
    Eui48,
    Eui64,
}

impl EuiKind {
    /// Length in octets: 6 or 8.
    pub fn octet_count(self) -> usize {
        match self {
            Self::Eui48 => 6,
            Self::Eui64 => 8,
        }
    }
}

impl fmt::Display for EuiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eui48 => "EUI-48",
            Self::Eui64 => "EUI-64",
        })
    }
}

/// A manufacturer device id: a universally administered, individual EUI-48
/// or EUI-64.
///
/// `Display` gives the canonical IEEE RA form (`AC-DE-48-00-00-80`);
/// `FromStr` also accepts `:` separators, lowercase, and bare hex digits, and
/// [`Eui::from_canonical`] only the canonical form. Serde writes the
/// canonical text and reads what `FromStr` reads.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eui {
    /// The octets, left-aligned; octets past `len` are always zero so that
    /// the derived `Eq` and `Hash` compare only the id.
    octets: [u8; 8],
    len: u8,
}

impl Eui {
    /// A device id from its raw octets (6 or 8).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentifierError> {
        if bytes.len() != 6 && bytes.len() != 8 {
            return Err(IdentifierError::WrongLength { len: bytes.len() });
        }
        if bytes.iter().all(|&b| b == 0) || bytes.iter().all(|&b| b == 0xFF) {
            return Err(IdentifierError::Reserved);
        }
        if bytes[0] & 0x01 != 0 {
            return Err(IdentifierError::GroupAddress);
        }
        if bytes[0] & 0x02 != 0 {
            return Err(IdentifierError::LocallyAdministered);
        }
        let mut octets = [0u8; 8];
        octets[..bytes.len()].copy_from_slice(bytes);
        Ok(Self { octets, len: bytes.len() as u8 })
    }

    /// Parses only the canonical text (`AC-DE-48-00-00-80`): any other valid
    /// spelling is [`IdentifierError::NotCanonical`].
    pub fn from_canonical(text: &str) -> Result<Self, IdentifierError> {
        let eui: Self = text.parse()?;
        let canonical = eui.to_string();
        if canonical != text {
            return Err(IdentifierError::NotCanonical { canonical });
        }
        Ok(eui)
    }

    /// The raw octets, 6 or 8 of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }

    pub fn kind(&self) -> EuiKind {
        if self.len == 6 { EuiKind::Eui48 } else { EuiKind::Eui64 }
    }

    /// The first three octets: the manufacturer's OUI. (For ids from an
    /// MA-M or MA-S block these are the IEEE's shared OUI; the assignee is
    /// told apart by the following bits.)
    pub fn oui(&self) -> [u8; 3] {
        [self.octets[0], self.octets[1], self.octets[2]]
    }
}

impl fmt::Display for Eui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{octet:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Eui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eui({self})")
    }
}

impl PartialOrd for Eui {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders by octets, an EUI-48 before an EUI-64 that starts with it.
impl Ord for Eui {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl FromStr for Eui {
    type Err = IdentifierError;

    /// Accepts `AC-DE-48-00-00-80`, `ac:de:48:00:00:80`, `acde48000080` (and
    /// the same for EUI-64), in either case; nothing else.
    fn from_str(text: &str) -> Result<Self, IdentifierError> {
        let (mut dashes, mut colons) = (false, false);
        for c in text.chars() {
            match c {
                c if c.is_ascii_hexdigit() => {}
                '-' => dashes = true,
                ':' => colons = true,
                c if c.is_ascii_punctuation() || c.is_whitespace() => return Err(IdentifierError::BadSeparator),
                found => return Err(IdentifierError::BadHex { found }),
            }
        }
        // From here on every byte is an ASCII hex digit or a separator.
        let mut octets = [0u8; 8];
        let len = match (dashes, colons) {
            (true, true) => return Err(IdentifierError::BadSeparator),
            (false, false) => {
                let digits = text.len();
                if digits != 12 && digits != 16 {
                    return Err(IdentifierError::BadDigitCount { digits });
                }
                for (octet, pair) in octets.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                    *octet = hex_pair(pair);
                }
                digits / 2
            }
            (true, false) | (false, true) => {
                let separator = if dashes { '-' } else { ':' };
                let groups = text.split(separator);
                let mut count = 0;
                for group in groups {
                    if group.len() != 2 {
                        return Err(IdentifierError::BadSeparator);
                    }
                    if let Some(octet) = octets.get_mut(count) {
                        *octet = hex_pair(group.as_bytes());
                    }
                    count += 1;
                }
                if count != 6 && count != 8 {
                    return Err(IdentifierError::WrongLength { len: count });
                }
                count
            }
        };
        Self::from_bytes(&octets[..len])
    }
}

/// Two ASCII hex digits (already checked) as an octet.
fn hex_pair(pair: &[u8]) -> u8 {
    fn nibble(digit: u8) -> u8 {
        match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => unreachable!("the caller checked for hex digits"),
        }
    }
    (nibble(pair[0]) << 4) | nibble(pair[1])
}

serde_as_text!(Eui);

// ---------------------------------------------------------------------------
// AccessTechnology

/// How a device reaches its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessTechnology {
    Wifi,
    Zigbee,
    Thread,
    BluetoothLe,
    Lorawan,
    Ethernet,
    Cellular,
}

impl AccessTechnology {
    /// Every access technology, in declaration order.
    pub const ALL: [Self; 7] =
        [Self::Wifi, Self::Zigbee, Self::Thread, Self::BluetoothLe, Self::Lorawan, Self::Ethernet, Self::Cellular];

    /// The canonical text, as used in an SP-bound identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wifi => "wifi",
            Self::Zigbee => "zigbee",
            Self::Thread => "thread",
            Self::BluetoothLe => "ble",
            Self::Lorawan => "lorawan",
            Self::Ethernet => "ethernet",
            Self::Cellular => "cellular",
        }
    }

    /// Whether devices of this technology are identified by this kind of
    /// EUI: IEEE 802 MAC addresses (Wi-Fi, Ethernet, BLE) are EUI-48;
    /// 802.15.4 radios (Zigbee, Thread) and LoRaWAN DevEUIs are EUI-64;
    /// cellular modules are seen with either.
    pub fn accepts(self, kind: EuiKind) -> bool {
        match self {
            Self::Wifi | Self::Ethernet | Self::BluetoothLe => kind == EuiKind::Eui48,
            Self::Zigbee | Self::Thread | Self::Lorawan => kind == EuiKind::Eui64,
            Self::Cellular => true,
        }
    }
}

impl fmt::Display for AccessTechnology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessTechnology {
    type Err = IdentifierError;

    /// Exactly the canonical text: lowercase, `ble` for Bluetooth LE.
    fn from_str(text: &str) -> Result<Self, IdentifierError> {
        Self::ALL
            .into_iter()
            .find(|access| access.as_str() == text)
            .ok_or_else(|| IdentifierError::UnknownAccessTechnology(text.to_owned()))
    }
}

serde_as_text!(AccessTechnology);

// ---------------------------------------------------------------------------
// SpIdentity

/// A service provider's identity: a lowercase DNS-name-like string (labels of
/// `a-z`, `0-9` and `-`, 1–63 bytes, not starting or ending with `-`; at most
/// 253 bytes), which also admits PLMN-style ids such as `310-410`.
///
/// [`SpIdentity::new`] (and `FromStr`, and serde) refuse uppercase instead of
/// folding it: an identity is part of an identifier that is compared as text,
/// so a value must have exactly one spelling, and silently changing what a
/// caller passed would hide a mismatch with whoever issued it. Input typed by
/// people may go through [`SpIdentity::parse_lenient`], which folds ASCII
/// case first.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpIdentity(String);

impl SpIdentity {
    /// Longest identity, as for a DNS name.
    pub const MAX_LEN: usize = 253;
    /// Longest label, as for a DNS label.
    pub const MAX_LABEL_LEN: usize = 63;

    /// Validates a canonical (lowercase) identity.
    pub fn new(text: &str) -> Result<Self, IdentifierError> {
        check_sp_identity(text).map_err(|reason| IdentifierError::InvalidSpIdentity { reason })?;
        Ok(Self(text.to_owned()))
    }

    /// Like [`SpIdentity::new`], after folding ASCII uppercase to lowercase.
    pub fn parse_lenient(text: &str) -> Result<Self, IdentifierError> {
        Self::new(&text.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_sp_identity(text: &str) -> Result<(), SpIdentityFault> {
    if text.is_empty() {
        return Err(SpIdentityFault::Empty);
    }
    if text.len() > SpIdentity::MAX_LEN {
        return Err(SpIdentityFault::TooLong { len: text.len() });
    }
    for label in text.split('.') {
        if label.is_empty() {
            return Err(SpIdentityFault::EmptyLabel);
        }
        if label.len() > SpIdentity::MAX_LABEL_LEN {
            return Err(SpIdentityFault::LabelTooLong { len: label.len() });
        }
        for c in label.chars() {
            match c {
                'a'..='z' | '0'..='9' | '-' => {}
                'A'..='Z' => return Err(SpIdentityFault::Uppercase),
                other => return Err(SpIdentityFault::BadCharacter(other)),
            }
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(SpIdentityFault::HyphenAtLabelEdge);
        }
    }
    Ok(())
}

impl fmt::Display for SpIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SpIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpIdentity({:?})", self.0)
    }
}

impl FromStr for SpIdentity {
    type Err = IdentifierError;

    /// Strict, as [`SpIdentity::new`].
    fn from_str(text: &str) -> Result<Self, IdentifierError> {
        Self::new(text)
    }
}

impl AsRef<str> for SpIdentity {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_as_text!(SpIdentity);

// ---------------------------------------------------------------------------
// SpBoundId

/// A device's unique identifier: SP identity + access technology +
/// manufacturer device id, with the text `{sp}/{access}/{eui}`, e.g.
/// `meter-sp.example/wifi/AC-DE-48-00-00-80`.
///
/// `FromStr` (and serde) accept only that canonical text; see the module
/// documentation for why this is unambiguous and a bijection.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpBoundId {
    sp: SpIdentity,
    access: AccessTechnology,
    device: Eui,
}

impl SpBoundId {
    /// Binds a device to a service provider. Refuses a device id of a kind
    /// the access technology does not use.
    pub fn new(sp: SpIdentity, device: Eui, access: AccessTechnology) -> Result<Self, IdentifierError> {
        if !access.accepts(device.kind()) {
            return Err(IdentifierError::EuiKindMismatch { access, kind: device.kind() });
        }
        Ok(Self { sp, access, device })
    }

    pub fn sp(&self) -> &SpIdentity {
        &self.sp
    }

    pub fn device(&self) -> &Eui {
        &self.device
    }

    pub fn access(&self) -> AccessTechnology {
        self.access
    }

    /// The same device and access technology bound to another service
    /// provider (a re-bind).
    pub fn with_sp(&self, sp: SpIdentity) -> SpBoundId {
        Self { sp, access: self.access, device: self.device }
    }
}

impl fmt::Display for SpBoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.sp, self.access, self.device)
    }
}

impl fmt::Debug for SpBoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpBoundId({self})")
    }
}

impl FromStr for SpBoundId {
    type Err = IdentifierError;

    /// Exactly the canonical text `{sp}/{access}/{eui}`.
    fn from_str(text: &str) -> Result<Self, IdentifierError> {
        let mut parts = text.split('/');
        let mut next = |part| parts.next().filter(|p| !p.is_empty()).ok_or(IdentifierError::MissingPart(part));
        let sp = next(IdPart::SpIdentity)?;
        let access = next(IdPart::AccessTechnology)?;
        let device = next(IdPart::DeviceId)?;
        if parts.next().is_some() {
            return Err(IdentifierError::ExtraPart);
        }
        Self::new(SpIdentity::new(sp)?, Eui::from_canonical(device)?, access.parse()?)
    }
}

serde_as_text!(SpBoundId);

#[cfg(test)]
mod tests {
    use super::*;

    fn eui(text: &str) -> Eui {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn sp(text: &str) -> SpIdentity {
        SpIdentity::new(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    // --- Eui -------------------------------------------------------------

    const CANONICAL_EUIS: &[&str] = &[
        "AC-DE-48-00-00-80",
        "AC-DE-48-FF-FE-00-00-80",
        "00-0D-6F-FF-FE-12-34-56",
        "00-1B-63-84-45-E6",
        "F0-9F-C2-12-34-56",
        "00-00-00-00-00-01",
        "FC-FF-FF-FF-FF-FF",
        "70-B3-D5-7E-D0-00-12-34",
    ];

    #[test]
    fn eui_text_round_trips() {
        for &text in CANONICAL_EUIS {
            let value = eui(text);
            assert_eq!(value.to_string(), text);
            assert_eq!(Eui::from_bytes(value.as_bytes()), Ok(value));
            assert_eq!(Eui::from_canonical(text), Ok(value));
            let json = serde_json::to_string(&value).expect("serialize");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Eui>(&json).expect("deserialize"), value);
        }
    }

    #[test]
    fn eui_accepts_colons_lowercase_and_bare_digits() {
        let eui48 = Eui::from_bytes(&[0xAC, 0xDE, 0x48, 0x00, 0x00, 0x80]).expect("valid");
        for text in [
            "AC-DE-48-00-00-80",
            "ac-de-48-00-00-80",
            "AC:DE:48:00:00:80",
            "ac:de:48:00:00:80",
            "ACDE48000080",
            "acde48000080",
            "Ac-dE-48-00-00-80",
        ] {
            assert_eq!(eui(text), eui48, "{text}");
        }
        let eui64 = Eui::from_bytes(&[0xAC, 0xDE, 0x48, 0xFF, 0xFE, 0x00, 0x00, 0x80]).expect("valid");
        for text in ["AC-DE-48-FF-FE-00-00-80", "ac:de:48:ff:fe:00:00:80", "ACDE48FFFE000080", "acde48fffe000080"] {
            assert_eq!(eui(text), eui64, "{text}");
        }
        // Only the canonical spelling passes the strict parser.
        assert_eq!(
            Eui::from_canonical("ac:de:48:00:00:80"),
            Err(IdentifierError::NotCanonical { canonical: "AC-DE-48-00-00-80".into() })
        );
        assert_eq!(
            Eui::from_canonical("acde48fffe000080"),
            Err(IdentifierError::NotCanonical { canonical: "AC-DE-48-FF-FE-00-00-80".into() })
        );
    }

    #[test]
    fn eui_kind_oui_and_bytes() {
        let a = eui("AC-DE-48-00-00-80");
        assert_eq!(a.kind(), EuiKind::Eui48);
        assert_eq!(a.as_bytes(), &[0xAC, 0xDE, 0x48, 0x00, 0x00, 0x80]);
        assert_eq!(a.oui(), [0xAC, 0xDE, 0x48]);
        let b = eui("00-0D-6F-FF-FE-12-34-56");
        assert_eq!(b.kind(), EuiKind::Eui64);
        assert_eq!(b.as_bytes().len(), 8);
        assert_eq!(b.oui(), [0x00, 0x0D, 0x6F]);
        assert_eq!(EuiKind::Eui48.octet_count(), 6);
        assert_eq!(EuiKind::Eui64.octet_count(), 8);
        // An EUI-48 and the EUI-64 that starts with the same octets differ.
        assert_ne!(eui("AC-DE-48-00-00-80"), eui("AC-DE-48-00-00-80-00-00"));
        assert!(eui("AC-DE-48-00-00-80") < eui("AC-DE-48-00-00-80-00-00"));
    }

    #[test]
    fn eui_rejects_bad_octets() {
        use IdentifierError::*;
        let cases: &[(&[u8], IdentifierError)] = &[
            (&[], WrongLength { len: 0 }),
            (&[0xAC, 0xDE, 0x48, 0, 0], WrongLength { len: 5 }),
            (&[0xAC, 0xDE, 0x48, 0, 0, 0x80, 0], WrongLength { len: 7 }),
            (&[0xAC, 0xDE, 0x48, 0, 0, 0x80, 0, 0, 0], WrongLength { len: 9 }),
            (&[0x01, 0x00, 0x5E, 0x00, 0x00, 0x01], GroupAddress),
            (&[0x33, 0x33, 0, 0, 0, 1, 0, 0], GroupAddress),
            (&[0x02, 0x00, 0x00, 0x00, 0x00, 0x01], LocallyAdministered),
            (&[0xAE, 0xDE, 0x48, 0, 0, 0x80, 0, 0], LocallyAdministered),
            (&[0; 6], Reserved),
            (&[0; 8], Reserved),
            (&[0xFF; 6], Reserved),
            (&[0xFF; 8], Reserved),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Eui::from_bytes(bytes).as_ref(), Err(expected), "{bytes:02X?}");
        }
    }

    #[test]
    fn eui_rejects_bad_text() {
        use IdentifierError::*;
        let cases: &[(&str, IdentifierError)] = &[
            ("", BadDigitCount { digits: 0 }),
            ("ACDE4800008", BadDigitCount { digits: 11 }),
            ("ACDE480000800", BadDigitCount { digits: 13 }),
            ("ACDE48000080000000", BadDigitCount { digits: 18 }),
            ("AC-DE-48-00-00", WrongLength { len: 5 }),
            ("AC-DE-48-00-00-80-00", WrongLength { len: 7 }),
            ("AC-DE-48-00-00-80-00-00-00", WrongLength { len: 9 }),
            ("AC-DE-48-00-00-8G", BadHex { found: 'G' }),
            ("AC-DE-48-00-00-8é", BadHex { found: 'é' }),
            ("0x-DE-48-00-00-80", BadHex { found: 'x' }),
            ("AC-DE:48-00-00-80", BadSeparator),
            ("AC-DE-48-0-00-80", BadSeparator),
            ("AC-DE-48-000-00-80", BadSeparator),
            ("ACDE-48-00-00-80", BadSeparator),
            ("AC--DE-48-00-00-80", BadSeparator),
            ("-AC-DE-48-00-00-80", BadSeparator),
            ("AC-DE-48-00-00-80-", BadSeparator),
            ("AC.DE.48.00.00.80", BadSeparator),
            ("ACDE.4800.0080", BadSeparator),
            ("AC DE 48 00 00 80", BadSeparator),
            (" AC-DE-48-00-00-80", BadSeparator),
            ("AC-DE-48-00-00-80\n", BadSeparator),
            ("01-00-5E-00-00-01", GroupAddress),
            ("02:00:00:00:00:01", LocallyAdministered),
            ("000000000000", Reserved),
            ("FF-FF-FF-FF-FF-FF-FF-FF", Reserved),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Eui>().as_ref(), Err(expected), "{text:?}");
        }
        assert!(serde_json::from_str::<Eui>("\"01-00-5E-00-00-01\"").is_err());
        assert!(serde_json::from_str::<Eui>("[172,222,72,0,0,128]").is_err());
    }

    // --- AccessTechnology ------------------------------------------------

    #[test]
    fn access_technology_text_round_trips() {
        let texts = ["wifi", "zigbee", "thread", "ble", "lorawan", "ethernet", "cellular"];
        for (access, text) in AccessTechnology::ALL.into_iter().zip(texts) {
            assert_eq!(access.as_str(), text);
            assert_eq!(access.to_string(), text);
            assert_eq!(text.parse::<AccessTechnology>(), Ok(access));
            assert_eq!(serde_json::to_string(&access).expect("serialize"), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<AccessTechnology>(&format!("\"{text}\"")).expect("deserialize"), access);
        }
        for bad in ["", "Wifi", "WIFI", "wi-fi", "bluetooth-le", "bluetooth", "wifi ", "5g"] {
            assert_eq!(
                bad.parse::<AccessTechnology>(),
                Err(IdentifierError::UnknownAccessTechnology(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn access_technology_accepts_its_eui_kinds() {
        use AccessTechnology::*;
        use EuiKind::*;
        let table = [
            (Wifi, true, false),
            (Ethernet, true, false),
            (BluetoothLe, true, false),
            (Zigbee, false, true),
            (Thread, false, true),
            (Lorawan, false, true),
            (Cellular, true, true),
        ];
        assert_eq!(table.len(), AccessTechnology::ALL.len());
        for (access, eui48, eui64) in table {
            assert_eq!(access.accepts(Eui48), eui48, "{access} / EUI-48");
            assert_eq!(access.accepts(Eui64), eui64, "{access} / EUI-64");
        }
    }

    // --- SpIdentity ------------------------------------------------------

    #[test]
    fn sp_identity_accepts_dns_like_names() {
        let label63 = "a".repeat(63);
        let long = [label63.as_str(); 4].join(".")[..253].trim_end_matches('.').to_owned();
        assert!(long.len() >= 250);
        let valid = [
            "meter-sp.example",
            "310-410",
            "a",
            "x1",
            "sp.example.com",
            "xn--bcher-kva.example",
            label63.as_str(),
            long.as_str(),
        ];
        for text in valid {
            let value = sp(text);
            assert_eq!(value.as_str(), text);
            assert_eq!(value.to_string(), text);
            assert_eq!(text.parse::<SpIdentity>().as_ref(), Ok(&value));
            let json = serde_json::to_string(&value).expect("serialize");
            assert_eq!(serde_json::from_str::<SpIdentity>(&json).expect("deserialize"), value);
        }
    }

    #[test]
    fn sp_identity_rejects_each_fault() {
        use SpIdentityFault::*;
        let label64 = "a".repeat(64);
        let too_long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63));
        let cases: Vec<(&str, SpIdentityFault)> = vec![
            ("", Empty),
            (too_long.as_str(), TooLong { len: 255 }),
            (".example", EmptyLabel),
            ("sp.example.", EmptyLabel),
            ("sp..example", EmptyLabel),
            (label64.as_str(), LabelTooLong { len: 64 }),
            ("-sp.example", HyphenAtLabelEdge),
            ("sp-.example", HyphenAtLabelEdge),
            ("sp.example-", HyphenAtLabelEdge),
            ("Meter-SP.example", Uppercase),
            ("sp_one.example", BadCharacter('_')),
            ("sp/one", BadCharacter('/')),
            ("sp one", BadCharacter(' ')),
            ("spé.example", BadCharacter('é')),
        ];
        for (text, reason) in cases {
            let expected = IdentifierError::InvalidSpIdentity { reason };
            assert_eq!(SpIdentity::new(text).as_ref(), Err(&expected), "{text:?}");
            assert_eq!(text.parse::<SpIdentity>().as_ref(), Err(&expected), "{text:?}");
        }
        assert!(serde_json::from_str::<SpIdentity>("\"SP.example\"").is_err());
    }

    #[test]
    fn sp_identity_lenient_parse_folds_case_only() {
        assert_eq!(SpIdentity::parse_lenient("Meter-SP.Example"), Ok(sp("meter-sp.example")));
        assert_eq!(
            SpIdentity::parse_lenient("meter_sp.example"),
            Err(IdentifierError::InvalidSpIdentity { reason: SpIdentityFault::BadCharacter('_') })
        );
    }

    // --- SpBoundId -------------------------------------------------------

    #[test]
    fn sp_bound_id_canonical_text() {
        let id =
            SpBoundId::new(sp("meter-sp.example"), eui("ac:de:48:00:00:80"), AccessTechnology::Wifi).expect("valid");
        assert_eq!(id.to_string(), "meter-sp.example/wifi/AC-DE-48-00-00-80");
        assert_eq!(id.sp(), &sp("meter-sp.example"));
        assert_eq!(id.device(), &eui("AC-DE-48-00-00-80"));
        assert_eq!(id.access(), AccessTechnology::Wifi);
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"meter-sp.example/wifi/AC-DE-48-00-00-80\"");
    }

    #[test]
    fn sp_bound_id_round_trips() {
        let texts = [
            "meter-sp.example/wifi/AC-DE-48-00-00-80",
            "310-410/cellular/AC-DE-48-00-00-80",
            "310-410/cellular/AC-DE-48-FF-FE-00-00-80",
            "meters.sp-one.example/zigbee/00-0D-6F-FF-FE-12-34-56",
            "a/thread/70-B3-D5-7E-D0-00-12-34",
            "sp.example/ble/F0-9F-C2-12-34-56",
            "sp.example/lorawan/70-B3-D5-7E-D0-00-12-34",
            "sp.example/ethernet/00-1B-63-84-45-E6",
        ];
        for text in texts {
            // text -> value -> text
            let id: SpBoundId = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(id.to_string(), text);
            // value -> text -> value
            let rebuilt = SpBoundId::new(id.sp().clone(), *id.device(), id.access()).expect("valid");
            assert_eq!(rebuilt.to_string().parse::<SpBoundId>().as_ref(), Ok(&id));
            let json = serde_json::to_string(&id).expect("serialize");
            assert_eq!(serde_json::from_str::<SpBoundId>(&json).expect("deserialize"), id);
        }
    }

    #[test]
    fn sp_bound_id_rejects_non_canonical_and_malformed_text() {
        use IdentifierError::*;
        let cases: &[(&str, IdentifierError)] = &[
            ("", MissingPart(IdPart::SpIdentity)),
            ("meter-sp.example", MissingPart(IdPart::AccessTechnology)),
            ("meter-sp.example/wifi", MissingPart(IdPart::DeviceId)),
            ("meter-sp.example/wifi/", MissingPart(IdPart::DeviceId)),
            ("/wifi/AC-DE-48-00-00-80", MissingPart(IdPart::SpIdentity)),
            ("meter-sp.example//AC-DE-48-00-00-80", MissingPart(IdPart::AccessTechnology)),
            ("meter-sp.example/wifi/AC-DE-48-00-00-80/", ExtraPart),
            ("meter-sp.example/wifi/AC-DE-48-00-00-80/x", ExtraPart),
            ("meter-sp.example/wifi/ac-de-48-00-00-80", NotCanonical { canonical: "AC-DE-48-00-00-80".into() }),
            ("meter-sp.example/wifi/AC:DE:48:00:00:80", NotCanonical { canonical: "AC-DE-48-00-00-80".into() }),
            ("meter-sp.example/wifi/ACDE48000080", NotCanonical { canonical: "AC-DE-48-00-00-80".into() }),
            ("meter-sp.example/wifi/AC-DE-48-00-00", WrongLength { len: 5 }),
            ("meter-sp.example/wifi/01-00-5E-00-00-01", GroupAddress),
            ("meter-sp.example/Wifi/AC-DE-48-00-00-80", UnknownAccessTechnology("Wifi".into())),
            ("meter-sp.example/bluetooth-le/AC-DE-48-00-00-80", UnknownAccessTechnology("bluetooth-le".into())),
            ("Meter-SP.example/wifi/AC-DE-48-00-00-80", InvalidSpIdentity { reason: SpIdentityFault::Uppercase }),
            ("meter-sp.example./wifi/AC-DE-48-00-00-80", InvalidSpIdentity { reason: SpIdentityFault::EmptyLabel }),
            (
                "meter-sp.example/wifi/AC-DE-48-FF-FE-00-00-80",
                EuiKindMismatch { access: AccessTechnology::Wifi, kind: EuiKind::Eui64 },
            ),
            (
                "meter-sp.example/zigbee/AC-DE-48-00-00-80",
                EuiKindMismatch { access: AccessTechnology::Zigbee, kind: EuiKind::Eui48 },
            ),
            (
                " meter-sp.example/wifi/AC-DE-48-00-00-80",
                InvalidSpIdentity { reason: SpIdentityFault::BadCharacter(' ') },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<SpBoundId>().as_ref(), Err(expected), "{text:?}");
        }
        assert!(serde_json::from_str::<SpBoundId>("\"meter-sp.example/wifi/ac-de-48-00-00-80\"").is_err());
    }

    #[test]
    fn sp_bound_id_new_checks_eui_kind() {
        assert_eq!(
            SpBoundId::new(sp("sp.example"), eui("00-0D-6F-FF-FE-12-34-56"), AccessTechnology::BluetoothLe),
            Err(IdentifierError::EuiKindMismatch { access: AccessTechnology::BluetoothLe, kind: EuiKind::Eui64 })
        );
        assert_eq!(
            SpBoundId::new(sp("sp.example"), eui("AC-DE-48-00-00-80"), AccessTechnology::Lorawan),
            Err(IdentifierError::EuiKindMismatch { access: AccessTechnology::Lorawan, kind: EuiKind::Eui48 })
        );
        for kind_text in ["AC-DE-48-00-00-80", "00-0D-6F-FF-FE-12-34-56"] {
            assert!(SpBoundId::new(sp("sp.example"), eui(kind_text), AccessTechnology::Cellular).is_ok());
        }
    }

    #[test]
    fn with_sp_keeps_device_and_access() {
        let id = SpBoundId::new(sp("old-sp.example"), eui("00-0D-6F-FF-FE-12-34-56"), AccessTechnology::Zigbee)
            .expect("valid");
        let moved = id.with_sp(sp("310-410"));
        assert_eq!(moved.sp(), &sp("310-410"));
        assert_eq!(moved.device(), id.device());
        assert_eq!(moved.access(), id.access());
        assert_eq!(moved.to_string(), "310-410/zigbee/00-0D-6F-FF-FE-12-34-56");
        assert_ne!(moved, id);
        assert_eq!(moved.with_sp(sp("old-sp.example")), id);
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let message = |text: &str| text.parse::<SpBoundId>().expect_err("invalid").to_string();
        assert_eq!(
            message("sp.example/wifi/00-0D-6F-FF-FE-12-34-56"),
            "wifi devices are identified by an EUI-48, not by an EUI-64"
        );
        assert_eq!(
            message("sp.example/zigbee/AC-DE-48-00-00-80"),
            "zigbee devices are identified by an EUI-64, not by an EUI-48"
        );
        assert_eq!(
            message("sp.example/wifi/ac-de-48-00-00-80"),
            "the device id in an SP-bound identifier must be written canonically, as AC-DE-48-00-00-80"
        );
        assert_eq!(
            message("sp.example/wifi"),
            "the SP-bound identifier has no device id: expected `sp-identity/access-technology/device-id`"
        );
        assert_eq!(
            message("SP/wifi/AC-DE-48-00-00-80"),
            "invalid SP identity: it has uppercase letters; SP identities are lowercase"
        );
        assert_eq!("AC-DE-48-00-00-8G".parse::<Eui>().expect_err("bad").to_string(), "'G' is not a hex digit");
    }

    // --- property-style --------------------------------------------------

    /// xorshift64*: deterministic, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn random_euis_round_trip_in_every_spelling() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let sps = [sp("sp.example"), sp("310-410"), sp("meters.sp-one.example")];
        let mut checked = [0usize; 2];
        for _ in 0..5_000 {
            let word = rng.next().to_be_bytes();
            let len = if rng.next() & 1 == 0 { 6 } else { 8 };
            let mut bytes = word[..len].to_vec();
            // The same octets as a group or local address must be refused...
            bytes[0] |= 0x01;
            assert!(Eui::from_bytes(&bytes).is_err(), "{bytes:02X?}");
            bytes[0] = (bytes[0] & !0x01) | 0x02;
            assert!(Eui::from_bytes(&bytes).is_err(), "{bytes:02X?}");
            // ...and as an individual, universal address accepted.
            bytes[0] &= !0x03;
            let Ok(value) = Eui::from_bytes(&bytes) else {
                assert!(bytes.iter().all(|&b| b == 0), "only all-zero may fail: {bytes:02X?}");
                continue;
            };
            checked[len / 2 - 3] += 1;
            assert_eq!(value.as_bytes(), &bytes[..]);
            let canonical = value.to_string();
            assert_eq!(canonical.len(), len * 3 - 1);
            let colons = canonical.replace('-', ":").to_lowercase();
            let bare = canonical.replace('-', "");
            for spelling in [&canonical, &colons, &bare, &bare.to_lowercase()] {
                assert_eq!(spelling.parse::<Eui>(), Ok(value), "{spelling}");
            }
            assert_eq!(Eui::from_canonical(&canonical), Ok(value));
            assert!(Eui::from_canonical(&colons).is_err());

            let access = match (value.kind(), rng.next() % 4) {
                (_, 0) => AccessTechnology::Cellular,
                (EuiKind::Eui48, 1) => AccessTechnology::Wifi,
                (EuiKind::Eui48, 2) => AccessTechnology::Ethernet,
                (EuiKind::Eui48, _) => AccessTechnology::BluetoothLe,
                (EuiKind::Eui64, 1) => AccessTechnology::Zigbee,
                (EuiKind::Eui64, 2) => AccessTechnology::Thread,
                (EuiKind::Eui64, _) => AccessTechnology::Lorawan,
            };
            let sp = sps[(rng.next() % 3) as usize].clone();
            let id = SpBoundId::new(sp, value, access).expect("compatible kind");
            let text = id.to_string();
            assert_eq!(text, format!("{}/{access}/{canonical}", id.sp()));
            assert_eq!(text.parse::<SpBoundId>().as_ref(), Ok(&id));
            if canonical.bytes().any(|c| c.is_ascii_alphabetic()) {
                let lowercase = format!("{}/{access}/{}", id.sp(), canonical.to_lowercase());
                let expected = IdentifierError::NotCanonical { canonical: canonical.clone() };
                assert_eq!(lowercase.parse::<SpBoundId>(), Err(expected));
            }
        }
        assert!(checked[0] > 2_000 && checked[1] > 2_000, "{checked:?}");
    }
}
