//! The size report `pack` prints and `BENCHMARKS.md` records: bytes at every
//! stage, the QR version, and the naive size side by side.
//!
//! "Naive" is what a packer without this crate's work would print: the
//! components as built, concatenated, zstd -19, no stripping, no dictionary
//! (a standard frame). It is the yardstick of the 3× target.

use crate::error::PackError;
use crate::label::{Ec, Label};
use crate::payload::{PreparedApp, SignedPayload};

/// The naive size of a pair (see the module docs).
pub fn naive_size(phone_as_built: &[u8], device_as_built: &[u8]) -> usize {
    let pair = [phone_as_built, device_as_built].concat();
    zstd::bulk::compress(&pair, 19).map(|c| c.len()).unwrap_or(usize::MAX)
}

/// Every stage's size for one payload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SizeReport {
    pub phone_as_built: usize,
    pub device_as_built: usize,
    pub naive: usize,
    pub phone_stripped: usize,
    pub device_stripped: usize,
    pub operational_stripped: Option<usize>,
    pub halves: usize,
    pub dictionary: u32,
    pub compressed_halves: usize,
    pub manifest_and_framing: usize,
    pub signed: usize,
    pub text_chars: usize,
    /// The QR version at `ec`, or None if it does not fit version 40.
    pub qr_version: Option<i16>,
    pub ec: Ec,
    /// What each part of the payload takes, after compression.
    pub parts: Parts,
}

/// The target: QR version 20 at error correction M.
pub const TARGET_VERSION: i16 = 20;

/// The largest QR version `pack` and `batch` print without `--force`, at the
/// chosen error-correction level.
pub const DEFAULT_MAX_VERSION: i16 = TARGET_VERSION;

/// The signed bytes of one payload by part, after compression: what to
/// shrink first when a label is too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Parts {
    /// The phone half, compressed alone.
    pub phone: usize,
    /// What the device half adds to the compressed halves.
    pub device: usize,
    /// What the operational application adds.
    pub operational: Option<usize>,
    /// The manifest with the bundle's and COSE_Sign1's framing.
    pub manifest: usize,
    /// The Ed25519 signature.
    pub signature: usize,
}

impl Parts {
    pub fn of(app: &PreparedApp, payload: &SignedPayload) -> Result<Self, PackError> {
        let halves = app.compressed_parts()?;
        Ok(Self {
            phone: halves.phone,
            device: halves.device,
            operational: halves.operational,
            manifest: payload.as_bytes().len().saturating_sub(app.sizes().compressed + 64),
            signature: 64,
        })
    }

    /// The largest part: its name and its bytes.
    pub fn largest(&self) -> (&'static str, usize) {
        let mut parts = vec![("phone half", self.phone), ("device half", self.device)];
        parts.extend(self.operational.map(|o| ("operational application", o)));
        parts.extend([("manifest", self.manifest), ("signature", self.signature)]);
        parts.into_iter().fold(("phone half", 0), |best, part| if part.1 > best.1 { part } else { best })
    }
}

/// Refuses a label that needs a QR version above `max` at `ec`, naming the
/// part to shrink first (the largest after compression).
pub fn check_max_version(version: i16, max: i16, ec: Ec, parts: &Parts) -> Result<(), PackError> {
    if version <= max {
        return Ok(());
    }
    let (part, bytes) = parts.largest();
    Err(PackError::AboveMaxVersion { version, max, ec: format!("{ec:?}"), part, bytes })
}

impl SizeReport {
    pub fn new(app: &PreparedApp, payload: &SignedPayload, naive: usize, ec: Ec) -> Result<Self, PackError> {
        let s = app.sizes();
        let text = payload.to_text();
        Ok(SizeReport {
            phone_as_built: s.phone_as_given,
            device_as_built: s.device_as_given,
            naive,
            phone_stripped: s.phone,
            device_stripped: s.device,
            operational_stripped: s.operational,
            halves: s.halves,
            dictionary: app.dictionary().id(),
            compressed_halves: s.compressed,
            manifest_and_framing: payload.as_bytes().len() - s.compressed - 64,
            signed: payload.as_bytes().len(),
            text_chars: text.len(),
            qr_version: Label::new(&text, ec).ok().map(|l| l.version()),
            ec,
            parts: Parts::of(app, payload)?,
        })
    }

    /// naive / signed.
    pub fn ratio(&self) -> f64 {
        self.naive as f64 / self.signed as f64
    }

    /// A human-readable, stage-by-stage table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |stage: &str, bytes: String| out.push_str(&format!("  {stage:<46} {bytes:>10}\n"));
        row("halves as built (phone + device)", format!("{} + {}", self.phone_as_built, self.device_as_built));
        row("naive: as built, zstd -19, no dictionary", self.naive.to_string());
        row("stripped (phone + device)", format!("{} + {}", self.phone_stripped, self.device_stripped));
        if let Some(op) = self.operational_stripped {
            row("operational, stripped", op.to_string());
        }
        row("halves with length trailer", self.halves.to_string());
        row(&format!("compressed (zstd -22, dictionary {})", self.dictionary), self.compressed_halves.to_string());
        let op = self.parts.operational.map_or(String::new(), |o| format!(" + {o}"));
        row("  of which phone + device (+ operational)", format!("{} + {}{op}", self.parts.phone, self.parts.device));
        row("manifest + bundle + COSE framing", self.manifest_and_framing.to_string());
        row("Ed25519 signature", "64".into());
        row("signed COSE_Sign1", self.signed.to_string());
        row("text: prefix + base45 (characters)", self.text_chars.to_string());
        row(
            &format!("QR version at EC {:?}", self.ec),
            self.qr_version.map_or("> 40".into(), |v| v.to_string()),
        );
        row("naive / signed", format!("{:.2}x", self.ratio()));
        out
    }

    /// What to change when the payload does not fit a QR code.
    pub fn advice(&self) -> String {
        let mut tips = vec![
            "shrink the halves (fewer capabilities, less code: no core::fmt, no panics with messages)".to_string(),
        ];
        if self.dictionary == crate::dictionary::NONE_ID {
            tips.push("compress with the shipped dictionary, or one trained on your family (train-dict --samples)".into());
        }
        if self.ec != Ec::L {
            tips.push("use a lower error-correction level (--ec L)".into());
        }
        if self.operational_stripped.is_some() {
            tips.push("deliver the operational application after enrollment instead of on the label".into());
        }
        tips.push("shorten manifest texts and per-device parameters".into());
        tips.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dictionary, Halves, ManufacturerKey};

    #[test]
    fn the_parts_add_up_and_the_largest_is_named() {
        let app = enrollment_apps::ZIGBEE_SENSOR;
        let key = ManufacturerKey::from_secret("acme-1", [3; 32]).unwrap();
        let manifest = crate::manifest::reference(&app).unwrap();
        // An operational app is checked against its world: the sensor's own.
        for operational in [None, Some(enrollment_apps::ZIGBEE_SENSOR_OPERATIONAL.to_vec())] {
            for dictionary in [Dictionary::none(), Dictionary::current()] {
                let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: operational.clone() };
                let prepared = PreparedApp::prepare(halves, &dictionary).unwrap();
                let payload = prepared.seal(&manifest, &key).unwrap();
                let parts = Parts::of(&prepared, &payload).unwrap();
                let sum = parts.phone + parts.device + parts.operational.unwrap_or(0) + parts.manifest + parts.signature;
                assert_eq!(sum, payload.as_bytes().len(), "{parts:?}");
                assert_eq!(parts.operational.is_some(), operational.is_some());
                let (_, largest) = parts.largest();
                assert!([parts.phone, parts.device, parts.manifest, 64].iter().all(|p| *p <= largest));
            }
        }
        // Without a dictionary the halves dominate.
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
        let prepared = PreparedApp::prepare(halves, &Dictionary::none()).unwrap();
        let parts = Parts::of(&prepared, &prepared.seal(&manifest, &key).unwrap()).unwrap();
        assert!(parts.largest().0.ends_with("half"), "{parts:?}");
    }

    #[test]
    fn only_a_version_above_the_limit_is_refused() {
        let parts = Parts { phone: 300, device: 900, operational: None, manifest: 90, signature: 64 };
        check_max_version(20, 20, Ec::M, &parts).unwrap();
        let err = check_max_version(21, 20, Ec::Q, &parts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the label needs QR version 21 at error correction Q, above the limit of version 20 (--max-version); the largest part \
             after compression is the device half (900 bytes): shrink it first, or give --force to print it anyway"
        );
    }
}
