//! The size report `pack` prints and `BENCHMARKS.md` records: bytes at every
//! stage, the QR version, and the naive size side by side.
//!
//! "Naive" is what a packer without this crate's work would print: the
//! components as built, concatenated, zstd -19, no stripping, no dictionary
//! (a standard frame). It is the yardstick of the 3× target.

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
}

/// The target: QR version 20 at error correction M.
pub const TARGET_VERSION: i16 = 20;

impl SizeReport {
    pub fn new(app: &PreparedApp, payload: &SignedPayload, naive: usize, ec: Ec) -> Self {
        let s = app.sizes();
        let text = payload.to_text();
        SizeReport {
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
        }
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
            tips.push("compress with the shipped dictionary".into());
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
