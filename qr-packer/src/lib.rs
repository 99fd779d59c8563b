//! Turns an enrollment application (a phone half and a device half) into a
//! payload small enough for one printed QR code, and back.
//!
//! | step | module |
//! | --- | --- |
//! | remove what the runtime does not need from a component | [`strip`] |
//! | check each half against its world of `wit/enrollment.wit` and the runtime's sandbox limits | [`check`] |
//! | what the payload says about the app and the device | [`manifest`] |
//! | the signed bundle and the halves in it | [`bundle`] |
//! | zstd dictionaries (shipped, and the signer's own); compression with a cap | [`dictionary`] |
//! | manufacturer keys and their dictionaries, COSE_Sign1 (EdDSA) | [`sign`] |
//! | the pipeline both ways, stage by stage | [`payload`] |
//! | prefix + base45 | [`text`] |
//! | QR code: PNG, SVG, terminal; reading a photo | [`label`] |
//! | labels for printing: physical size, caption, PNG / SVG / PDF, sheets | [`print`](mod@print) |
//! | the same payload on an NFC tag: NDEF, Type 2 and Type 4 tag images | [`nfc`] |
//! | every error, one variant per stage | [`error`] |
//! | size report: every stage, naive size side by side | [`report`] |
//! | one payload per device of a CSV, in parallel | [`batch`] |
//! | a manufacturer's dictionary from its family's halves, leave-one-out sizes | [`train`] |
//!
//! The byte layout is in `FORMAT.md`.

//!
//! Cargo features: a reader (device, assistant) builds with
//! `default-features = false` and gets the format and verification only;
//! `pack` adds stripping, checking and sealing, `render` label images,
//! `photo` reading a label from a photo, `batch` CSV batches, and
//! `reference-apps` the product's own apps. The `qr-packer` tool is the
//! `qr-packer-cli` crate.

#[cfg(feature = "batch")]
pub mod batch;
pub mod bundle;
#[cfg(feature = "pack")]
pub mod check;
pub mod dictionary;
pub mod error;
#[cfg(feature = "render")]
pub mod label;
pub mod manifest;
pub mod nfc;
pub mod payload;
#[cfg(feature = "render")]
pub mod print;
#[cfg(feature = "photo")]
mod photo;
#[cfg(all(feature = "pack", feature = "render"))]
pub mod report;
pub mod sign;
#[cfg(feature = "pack")]
pub mod strip;
#[cfg(feature = "pack")]
pub mod train;
pub mod text;

pub use bundle::Halves;
pub use dictionary::Dictionary;
pub use error::{KeyError, PackError, PayloadError, Stage};
#[cfg(feature = "render")]
pub use label::{Ec, Label, LabelError, render_png, render_svg, render_terminal, version_for};
#[cfg(feature = "photo")]
pub use photo::{MAX_JPEG_PIXELS, read_label_image, read_label_luma, read_label_luma_traced};
pub use manifest::{Manifest, Target, TargetError};
pub use payload::{BundleSizes, CompressedParts, FORMAT_VERSION, PreparedApp, PreparedSizes, SignedPayload, VerifiedBundle};
pub use sign::{DictionaryFile, ManufacturerKey, TrustedKeys};
