//! Turns an enrollment application (a phone half and a device half) into a
//! payload small enough for one printed QR code, and back.
//!
//! | step | module |
//! | --- | --- |
//! | remove what the runtime does not need from a component | [`strip`] |
//! | check each half against its world of `wit/enrollment.wit` | [`check`] |
//! | what the payload says about the app and the device | [`manifest`] |
//! | the signed bundle and the halves in it | [`bundle`] |
//! | the shipped zstd dictionaries; compression with a cap | [`dictionary`] |
//! | manufacturer keys, COSE_Sign1 (EdDSA) | [`sign`] |
//! | the pipeline both ways, stage by stage | [`payload`] |
//! | prefix + base45 | [`text`] |
//! | QR code: PNG, SVG, terminal; reading a photo | [`label`] |
//! | every error, one variant per stage | [`error`] |
//! | size report: every stage, naive size side by side | [`report`] |
//! | one payload per device of a CSV, in parallel | [`batch`] |
//!
//! The byte layout is in `FORMAT.md`.

pub mod batch;
pub mod bundle;
pub mod check;
pub mod dictionary;
pub mod error;
pub mod label;
pub mod manifest;
pub mod payload;
pub mod report;
pub mod sign;
pub mod strip;
pub mod text;

pub use bundle::Halves;
pub use dictionary::Dictionary;
pub use error::{KeyError, PackError, PayloadError, Stage};
pub use label::{Ec, Label, LabelError, read_label_image, render_png, render_svg, render_terminal, version_for};
pub use manifest::Manifest;
pub use payload::{BundleSizes, FORMAT_VERSION, PreparedApp, PreparedSizes, SignedPayload, VerifiedBundle};
pub use sign::{ManufacturerKey, TrustedKeys};
