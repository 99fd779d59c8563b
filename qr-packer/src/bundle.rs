//! The signed bundle: what the COSE_Sign1 carries, and the halves inside it.
//!
//! ```text
//! bundle  = [ version: uint, dictionary: uint, manifest: {int => any}, halves: bstr ]
//! halves  = zstd frame (magicless, with the named dictionary) of
//!           phone ‖ device ‖ operational ‖ len(phone): u16le ‖ len(device): u16le
//! ```
//!
//! Version and dictionary come first and are plain integers, so a reader
//! learns whether it can read the rest before it touches it. The manifest is
//! per device and small, so it is not compressed; the halves are the same for
//! every device of a product, so they are compressed once ([`crate::PreparedApp`]).

use ciborium::Value;

use crate::error::{PackError, PayloadError};

/// The halves of an enrollment application, stripped of custom sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Halves {
    /// The phone half (world `phone-half`).
    pub phone: Vec<u8>,
    /// The device half (world `device-half`).
    pub device: Vec<u8>,
    /// An operational application or configuration to install on the device
    /// after enrollment.
    pub operational: Option<Vec<u8>>,
}

/// The most bytes the halves may decompress to. A QR code holds at most
/// 2,953 bytes; even at 40:1 the real halves stay far below this, so more
/// is a bomb.
pub const MAX_HALVES: usize = 128 * 1024;

impl Halves {
    /// The uncompressed halves: `phone ‖ device ‖ operational ‖ trailer`,
    /// the trailer being the phone's and the device's length as u16
    /// little-endian. Lengths last, not first: a header between the halves
    /// would break zstd's matches against the dictionary, which holds halves
    /// back to back (measured: 7–9 bytes more than CBOR framing).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackError> {
        let len16 = |half: &'static str, b: &[u8]| {
            u16::try_from(b.len()).map_err(|_| PackError::HalfTooLarge { half, len: b.len() })
        };
        let (p, d) = (len16("phone", &self.phone)?, len16("device", &self.device)?);
        let op = self.operational.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(self.phone.len() + self.device.len() + op.len() + TRAILER);
        for part in [&self.phone[..], &self.device, op, &p.to_le_bytes(), &d.to_le_bytes()] {
            out.extend_from_slice(part);
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PayloadError> {
        let bad = |why: String| PayloadError::MalformedBundle(format!("halves: {why}"));
        let Some(body_len) = bytes.len().checked_sub(TRAILER) else {
            return Err(bad(format!("{} bytes, shorter than the {TRAILER}-byte trailer", bytes.len())));
        };
        let (body, trailer) = bytes.split_at(body_len);
        let phone_len = usize::from(u16::from_le_bytes([trailer[0], trailer[1]]));
        let device_len = usize::from(u16::from_le_bytes([trailer[2], trailer[3]]));
        if phone_len + device_len > body.len() {
            return Err(bad(format!("lengths {phone_len} + {device_len} exceed the {} bytes present", body.len())));
        }
        if phone_len == 0 || device_len == 0 {
            return Err(bad("an empty half".into()));
        }
        let (phone, rest) = body.split_at(phone_len);
        let (device, operational) = rest.split_at(device_len);
        Ok(Self {
            phone: phone.to_vec(),
            device: device.to_vec(),
            operational: (!operational.is_empty()).then(|| operational.to_vec()),
        })
    }
}

/// The halves' trailer: two u16 lengths.
const TRAILER: usize = 4;

/// The signed bundle, split into its parts but not yet decompressed.
pub(crate) struct RawBundle {
    pub dictionary: u64,
    pub manifest: Value,
    pub halves: Vec<u8>,
}

/// Encodes the bundle (what gets signed). Public for test vectors, which
/// need bundles with any version, dictionary or halves.
pub fn encode(version: u16, dictionary: u32, manifest: Value, compressed_halves: &[u8]) -> Vec<u8> {
    let bundle = Value::Array(vec![
        Value::from(version),
        Value::from(dictionary),
        manifest,
        Value::Bytes(compressed_halves.to_vec()),
    ]);
    cbor_bytes(&bundle)
}

/// The format version of a signed bundle: its first element. Anything that is
/// not an array starting with an unsigned integer is malformed.
pub(crate) fn version_of(bundle: &Value) -> Result<u64, PayloadError> {
    match bundle {
        Value::Array(items) => items.first().and_then(|v| v.as_integer()).and_then(|i| u64::try_from(i).ok()),
        _ => None,
    }
    .ok_or_else(|| PayloadError::MalformedBundle("the signed payload is not an array starting with a version".into()))
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Value, PayloadError> {
    decode_exact(bytes).map_err(|e| PayloadError::MalformedBundle(format!("signed payload: {e}")))
}

/// One CBOR item that uses every byte.
fn decode_exact(bytes: &[u8]) -> Result<Value, String> {
    let mut cursor = std::io::Cursor::new(bytes);
    let value: Value = ciborium::from_reader(&mut cursor).map_err(|e| e.to_string())?;
    match bytes.len() as u64 - cursor.position() {
        0 => Ok(value),
        n => Err(format!("{n} bytes after the CBOR item")),
    }
}

/// Splits a version-1 bundle: exactly four elements of the right types.
pub(crate) fn split_v1(bundle: Value) -> Result<RawBundle, PayloadError> {
    let bad = |why: &str| PayloadError::MalformedBundle(why.to_owned());
    let Value::Array(items) = bundle else { return Err(bad("not an array")) };
    let [version, dictionary, manifest, halves]: [Value; 4] =
        items.try_into().map_err(|items: Vec<Value>| bad(&format!("{} elements, version 1 has 4", items.len())))?;
    let uint = |v: &Value| v.as_integer().and_then(|i| u64::try_from(i).ok());
    let (Some(_), Some(dictionary)) = (uint(&version), uint(&dictionary)) else {
        return Err(bad("version or dictionary is not an unsigned integer"));
    };
    let Value::Bytes(halves) = halves else { return Err(bad("the compressed halves are not a byte string")) };
    Ok(RawBundle { dictionary, manifest, halves })
}

pub(crate) fn cbor_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_trip_with_and_without_operational() {
        let h = Halves { phone: vec![1, 2], device: vec![3], operational: None };
        assert_eq!(Halves::from_bytes(&h.to_bytes().unwrap()).unwrap(), h);
        let h = Halves { operational: Some(vec![9; 40]), ..h };
        assert_eq!(Halves::from_bytes(&h.to_bytes().unwrap()).unwrap(), h);
    }

    #[test]
    fn malformed_halves_are_refused() {
        for bytes in [&[1u8, 0, 1][..], &[1, 5, 0, 1, 0], &[1, 0, 0, 0], &[0, 0, 1, 0]] {
            assert!(matches!(Halves::from_bytes(bytes), Err(PayloadError::MalformedBundle(_))), "{bytes:?}");
        }
        let huge = Halves { phone: vec![0; 70_000], device: vec![1], operational: None };
        assert!(matches!(huge.to_bytes(), Err(PackError::HalfTooLarge { .. })));
    }

    #[test]
    fn bundles_split_and_refuse_wrong_shapes() {
        let bytes = encode(1, 1, Value::Map(vec![]), &[5, 6]);
        let raw = split_v1(parse(&bytes).unwrap()).unwrap();
        assert_eq!((raw.dictionary, raw.halves), (1, vec![5, 6]));
        assert!(split_v1(Value::Array(vec![Value::from(1u8)])).is_err());
        assert!(version_of(&Value::Map(vec![])).is_err());
    }
}
