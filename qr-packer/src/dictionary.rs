//! The zstd dictionaries the halves are compressed with, by id.
//!
//! A stripped half is mostly component boilerplate every enrollment app
//! shares: the WIT types of `transport`, `device` and `assistant`, the
//! interface names, the adapter shims wit-component adds for lowering
//! imports, wit-bindgen's glue. A dictionary holding that boilerplate lets
//! zstd print a reference instead of the bytes.
//!
//! The dictionaries are **raw-content** dictionaries: the stripped halves of
//! the training apps, concatenated (see [`train`]). zstd's trainer
//! (`ZDICT_trainFromBuffer`) was measured against this on the reference apps
//! and loses: with a handful of 2–3 KB samples it has too little to pick
//! segments from, and raw content keeps whole functions and type sections that
//! match verbatim. The figures are in `BENCHMARKS.md` (leave-one-out: a
//! dictionary is never measured on an app it was trained on).
//!
//! A payload names its dictionary by an id of 0 to 255; readers must have the
//! same bytes, so a dictionary is never changed once labels name it, only
//! added. Id 0 means no dictionary; ids 1 to 127 ([`SHIPPED_IDS`]) are the
//! product's, shipped in this crate; ids 128 to 255 ([`MANUFACTURER_IDS`])
//! are the signer's own, trained on a manufacturer's family
//! (`qr-packer train-dict --samples`) and resolved among the dictionaries
//! attached to the trusted key that signed the payload
//! ([`crate::TrustedKeys::add_dictionary`]): two manufacturers' id 128 never
//! clash.

use std::ops::RangeInclusive;

use crate::error::{PackError, PayloadError};

/// A compression dictionary and the id a payload names it by.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    id: u32,
    name: String,
    bytes: std::borrow::Cow<'static, [u8]>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dictionary {{ id: {}, name: {:?}, {} bytes }}", self.id, self.name, self.bytes.len())
    }
}

/// The shipped dictionaries: (id, file name, bytes). Never edit an entry:
/// add a new id.
const SHIPPED: &[(u32, &str, &[u8])] = &[
    // WIT 0.1.0, trained on the reference apps themselves (kept: ids are never reused).
    (1, "enroll-v1.zdict", include_bytes!("../dictionaries/enroll-v1.zdict")),
    // WIT 0.2.0, trained on the dictionary seeds only: what every app shares.
    (2, "enroll-v2.zdict", include_bytes!("../dictionaries/enroll-v2.zdict")),
    // WIT 0.2.0, the seeds again, now with the SDK's parameter and record
    // helpers and the operational seed (world `operational`).
    (3, "enroll-v3.zdict", include_bytes!("../dictionaries/enroll-v3.zdict")),
];

/// The id payloads are packed with by default.
pub const CURRENT_ID: u32 = 3;

/// The id meaning "no dictionary".
pub const NONE_ID: u32 = 0;

/// The ids of dictionaries shipped with the product (this crate), the same
/// for every signer.
pub const SHIPPED_IDS: RangeInclusive<u32> = 1..=127;

/// The ids of a signer's own dictionaries, resolved among those attached to
/// the signer's trusted key.
pub const MANUFACTURER_IDS: RangeInclusive<u32> = 128..=255;

/// An id outside [`MANUFACTURER_IDS`] given for a manufacturer dictionary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dictionary id {0} is not a manufacturer dictionary id: those are 128 to 255 (0 is no dictionary, 1 to 127 are shipped with qr-packer)"
)]
pub struct NotAManufacturerId(pub u32);

impl Dictionary {
    /// The dictionary new payloads use.
    pub fn current() -> Self {
        Self::by_id(CURRENT_ID).unwrap_or_else(Self::none)
    }

    /// No dictionary at all (id 0).
    pub fn none() -> Self {
        Self { id: NONE_ID, name: "none".into(), bytes: std::borrow::Cow::Borrowed(&[]) }
    }

    /// A shipped dictionary (or id 0, none).
    pub fn by_id(id: u32) -> Option<Self> {
        if id == NONE_ID {
            return Some(Self::none());
        }
        SHIPPED
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(id, name, bytes)| Self { id: *id, name: (*name).into(), bytes: std::borrow::Cow::Borrowed(bytes) })
    }

    /// A dictionary that is not shipped (a freshly trained one, or a
    /// leave-one-out one for measurements), with any id. Payloads packed with
    /// it can only be read by a reader given the same dictionary.
    pub fn custom(id: u32, name: &str, bytes: Vec<u8>) -> Self {
        Self { id, name: name.into(), bytes: std::borrow::Cow::Owned(bytes) }
    }

    /// A manufacturer's own dictionary: an id in [`MANUFACTURER_IDS`].
    pub fn manufacturer(id: u32, name: &str, bytes: Vec<u8>) -> Result<Self, NotAManufacturerId> {
        if !MANUFACTURER_IDS.contains(&id) {
            return Err(NotAManufacturerId(id));
        }
        Ok(Self::custom(id, name, bytes))
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Every shipped dictionary.
pub fn shipped() -> Vec<Dictionary> {
    SHIPPED.iter().filter_map(|(id, ..)| Dictionary::by_id(*id)).collect()
}

/// The zstd level halves are compressed with (the maximum; it runs once per
/// product, not per device).
pub const LEVEL: i32 = 22;

/// Compresses `data` as one magicless zstd frame with no checksum, no content
/// size and no dictionary id: the signature already protects the bytes, the
/// size cap bounds the output, and the bundle names the dictionary, so those
/// 10 bytes of frame header and trailer would be printed for nothing.
pub fn compress(data: &[u8], dictionary: &Dictionary) -> Result<Vec<u8>, PackError> {
    use zstd::zstd_safe::{CParameter, FrameFormat};
    let err = |e: std::io::Error| PackError::Compress(e.to_string());
    let mut compressor = zstd::bulk::Compressor::with_dictionary(LEVEL, dictionary.bytes()).map_err(err)?;
    for p in [
        CParameter::Format(FrameFormat::Magicless),
        CParameter::ContentSizeFlag(false),
        CParameter::ChecksumFlag(false),
        CParameter::DictIdFlag(false),
        CParameter::WindowLog(WINDOW_LOG_MAX),
    ] {
        compressor.set_parameter(p).map_err(err)?;
    }
    compressor.compress(data).map_err(err)
}

/// zstd's window for a frame is at most 2^17 bytes here: more than the
/// decompressed cap, and it bounds the decoder's memory.
const WINDOW_LOG_MAX: u32 = 17;

/// zstd's message for a frame whose window exceeds the decoder's limit.
const WINDOW_TOO_LARGE: &str = "Frame requires too much memory for decoding";

/// Decompresses a frame made by [`compress`], refusing output beyond `max`
/// bytes. The output buffer is `max + 1` bytes, whatever the frame claims:
/// a bomb is stopped at the cap, never allocated.
pub fn decompress(frame: &[u8], dictionary: &Dictionary, max: usize) -> Result<Vec<u8>, PayloadError> {
    use zstd::zstd_safe::{DCtx, DParameter, FrameFormat, InBuffer, OutBuffer};
    let zerr = |code: usize| match zstd::zstd_safe::get_error_name(code) {
        // ZSTD_error_frameParameter_windowTooLarge: the frame asks for a
        // window beyond WINDOW_LOG_MAX, i.e. more memory than any real
        // bundle needs.
        WINDOW_TOO_LARGE => PayloadError::TooLarge { max },
        name => PayloadError::BadZstd(name.to_owned()),
    };
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::Format(FrameFormat::Magicless)).map_err(zerr)?;
    dctx.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX)).map_err(zerr)?;
    dctx.load_dictionary(dictionary.bytes()).map_err(zerr)?;
    let mut out = Vec::with_capacity(max + 1);
    let mut input = InBuffer::around(frame);
    let mut pos = 0usize;
    loop {
        let in_before = input.pos();
        let mut output = OutBuffer::around_pos(&mut out, pos);
        let hint = dctx.decompress_stream(&mut output, &mut input).map_err(zerr)?;
        let new_pos = output.pos();
        if new_pos > max {
            return Err(PayloadError::TooLarge { max });
        }
        if hint == 0 {
            // The frame is complete: nothing may follow it.
            if input.pos() != frame.len() {
                return Err(PayloadError::BadZstd(format!("{} bytes after the frame", frame.len() - input.pos())));
            }
            out.truncate(new_pos);
            return Ok(out);
        }
        if new_pos == pos && input.pos() == in_before {
            // No progress with room left in the output: the input ran out
            // before the frame did.
            return Err(PayloadError::BadZstd("the frame is truncated".into()));
        }
        pos = new_pos;
    }
}

/// One training app: its name and its stripped halves.
pub struct TrainingApp<'a> {
    pub name: &'a str,
    pub phone: &'a [u8],
    pub device: &'a [u8],
}

/// Builds a raw-content dictionary from training apps: the halves,
/// concatenated, device halves last (zstd codes nearer matches, those at the
/// end of the dictionary, in fewer bits; and the halves are packed phone
/// first, device last).
pub fn train(apps: &[TrainingApp<'_>]) -> Vec<u8> {
    let mut dict = Vec::new();
    for app in apps {
        dict.extend_from_slice(app.phone);
    }
    for app in apps {
        dict.extend_from_slice(app.device);
    }
    dict
}

/// A dictionary trained on the reference apps of `enrollment-apps`,
/// stripped, leaving out the app named `leave_out` (for leave-one-out
/// measurements: a dictionary is never measured on an app it was trained on).
/// The shipped dictionary: raw content of the stripped dictionary seeds
/// (`enrollment_apps::SEEDS`: every import of each world and the SDK's
/// helpers, and the app `qr-packer new` writes), and of no app; the
/// operational seed first (farthest from the end: fewer labels carry an
/// operational app, and nearer matches cost fewer bits).
#[cfg(feature = "reference-apps")]
pub fn train_shipped() -> Result<Vec<u8>, crate::strip::StripError> {
    let mut dict = crate::strip::strip_custom_sections(enrollment_apps::SEED_OPERATIONAL.component)?;
    dict.extend(train_from(enrollment_apps::SEEDS.iter())?);
    Ok(dict)
}

#[cfg(feature = "reference-apps")]
fn train_from<'a>(apps: impl Iterator<Item = &'a enrollment_apps::AppPair>) -> Result<Vec<u8>, crate::strip::StripError> {
    let mut stripped = Vec::new();
    for app in apps {
        let phone = crate::strip::strip_custom_sections(app.phone)?;
        let device = crate::strip::strip_custom_sections(app.device)?;
        stripped.push((app.name, phone, device));
    }
    let apps: Vec<TrainingApp<'_>> =
        stripped.iter().map(|(name, phone, device)| TrainingApp { name, phone, device }).collect();
    Ok(train(&apps))
}

#[cfg(feature = "reference-apps")]
pub fn train_reference(leave_out: Option<&str>) -> Result<Vec<u8>, crate::strip::StripError> {
    train_from(enrollment_apps::ALL.iter().filter(|a| Some(a.name) != leave_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_a_dictionary() {
        let data = b"component component component boilerplate".repeat(20);
        for dict in [Dictionary::none(), Dictionary::custom(9, "t", b"component boilerplate".to_vec())] {
            let frame = compress(&data, &dict).unwrap();
            assert!(frame.len() < data.len() / 4);
            assert_eq!(decompress(&frame, &dict, 4096).unwrap(), data);
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        let frame = compress(&zeros, &Dictionary::none()).unwrap();
        assert!(frame.len() < 2048, "{} bytes", frame.len());
        assert_eq!(decompress(&frame, &Dictionary::none(), 65536), Err(PayloadError::TooLarge { max: 65536 }));
        // A frame asking for a 128 MiB window is refused before any output.
        let mut big_window = zstd::bulk::Compressor::new(19).unwrap();
        big_window.set_parameter(zstd::zstd_safe::CParameter::WindowLog(27)).unwrap();
        big_window.set_parameter(zstd::zstd_safe::CParameter::Format(zstd::zstd_safe::FrameFormat::Magicless)).unwrap();
        let frame = big_window.compress(&zeros).unwrap();
        assert_eq!(decompress(&frame, &Dictionary::none(), 65536), Err(PayloadError::TooLarge { max: 65536 }));
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_bad_zstd() {
        let data = b"hello hello hello world".repeat(10);
        let frame = compress(&data, &Dictionary::none()).unwrap();
        assert!(matches!(decompress(&frame[..frame.len() - 2], &Dictionary::none(), 4096), Err(PayloadError::BadZstd(_))));
        let mut longer = frame.clone();
        longer.push(0);
        assert!(matches!(decompress(&longer, &Dictionary::none(), 4096), Err(PayloadError::BadZstd(_))));
        assert!(matches!(decompress(&[0xff; 16], &Dictionary::none(), 4096), Err(PayloadError::BadZstd(_))));
    }

    #[test]
    fn the_shipped_dictionary_is_what_train_dict_makes_from_the_seeds() {
        // Fails when the SDK or the WIT change and `qr-packer train-dict --shipped`
        // was not rerun (and then a new id must be added: old labels name the old bytes).
        assert_eq!(Dictionary::current().bytes(), train_shipped().unwrap(), "run `qr-packer train-dict --shipped`");
    }

    #[test]
    fn manufacturer_dictionaries_take_only_their_ids() {
        assert_eq!(Dictionary::manufacturer(128, "f", vec![1]).unwrap().id(), 128);
        assert!(Dictionary::manufacturer(255, "f", vec![1]).is_ok());
        for id in [0, 1, 127, 256] {
            assert_eq!(Dictionary::manufacturer(id, "f", vec![1]), Err(NotAManufacturerId(id)));
        }
        assert!(Dictionary::by_id(128).is_none(), "not shipped");
    }

    #[test]
    fn shipped_dictionaries_have_distinct_ids() {
        let ids: Vec<u32> = shipped().iter().map(Dictionary::id).collect();
        assert!(ids.contains(&CURRENT_ID) && !ids.contains(&NONE_ID));
        assert!(ids.iter().all(|id| SHIPPED_IDS.contains(id)), "{ids:?}");
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique, ids);
    }
}
