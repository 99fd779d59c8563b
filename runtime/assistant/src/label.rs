//! An enrollment application as it arrives: a label, verified, split.
//!
//! The assisting phone or gateway reads the label (the payload text from a
//! QR scanner, or a photo of the printed code), verifies it against the
//! manufacturer keys it trusts and splits it into the phone half, which it
//! runs, and the signed payload, which it forwards to the device *as is*
//! (US 2025/0254525 claim 1: obtain, split, transfer).
//!
//! The device does not take the phone's word for anything: it verifies the
//! same signed payload against its own manufacturer's keys (see
//! `enrollment_device::admission`). The format and every check are
//! `qr_packer`'s, shared by both sides; what lives here is the assistant's
//! policy, and the bounds on reading a photo of a label ([`photo`]).

use std::sync::Arc;

#[cfg(feature = "photo")]
pub mod photo;

#[cfg(feature = "pack")]
use qr_packer::{Dictionary, Halves, ManufacturerKey, PackError, PreparedApp};
use qr_packer::{Manifest, PayloadError, SignedPayload, Target, TargetError, TrustedKeys, VerifiedBundle};
use sp_bound_id::{AccessTechnology, Eui};

/// Why a label was refused by the assistant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// One stage of decoding or verification failed (`qr_packer` says which).
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// The manifest names no device this runtime knows, or another one.
    #[error("{0}")]
    Target(#[from] TargetError),
    /// The label image file is larger than a photo of a label needs to be.
    #[error("the label image is {bytes} bytes; at most {max} are read (crop the photo to the label or save it smaller)")]
    ImageTooLarge { bytes: u64, max: u64 },
    /// The label image declares more pixels than are decoded.
    #[error("the label image is {width} x {height} pixels; at most {max_pixels} pixels are decoded (crop the photo to the label or scale it down)")]
    ImageTooManyPixels { width: u32, height: u32, max_pixels: u64 },
    /// Decoding the image could not run (its thread failed).
    #[error("decoding the label image: {0}")]
    ImageDecoder(String),
}

/// A verified label, split for the assistant.
#[derive(Debug, Clone)]
pub struct ScannedApp {
    signed: Arc<Vec<u8>>,
    signer: String,
    manifest: Manifest,
    phone_half: Vec<u8>,
    target: Target,
}

impl ScannedApp {
    /// From the payload text a QR scanner read.
    pub fn from_text(text: &str, trusted: &TrustedKeys) -> Result<Self, LabelError> {
        Self::from_signed(SignedPayload::from_text(text.trim())?, trusted)
    }

    /// From a photo or scan of the printed label (PNG or JPEG), decoded in
    /// the calling thread: for tools. An async caller (a gateway, a phone
    /// app's runtime) uses [`ScannedApp::from_image_async`]. Both refuse an
    /// image over [`photo::MAX_LABEL_IMAGE_BYTES`] or
    /// [`photo::MAX_LABEL_IMAGE_PIXELS`] before decoding it.
    #[cfg(feature = "photo")]
    pub fn from_image(image: &[u8], trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let text = photo::read_text(image)?;
        Self::from_text(&text, trusted)
    }

    /// From a photo or scan of the printed label, decoded on a blocking
    /// thread, at most [`photo::MAX_CONCURRENT_DECODES`] at once.
    #[cfg(feature = "photo")]
    pub async fn from_image_async(image: Vec<u8>, trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let text = photo::read_text_off_executor(image).await?;
        Self::from_text(&text, trusted)
    }

    /// From the signed payload's bytes.
    pub fn from_signed(signed: SignedPayload, trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let bundle = signed.verify(trusted)?;
        let target = bundle.manifest.target()?;
        let VerifiedBundle { signer, manifest, halves, .. } = bundle;
        Ok(Self { signed: Arc::new(signed.into_bytes()), signer, manifest, phone_half: halves.phone, target })
    }

    /// The key id of the manufacturer key that signed the label.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The phone half, to run here.
    pub fn phone_half(&self) -> &[u8] {
        &self.phone_half
    }

    /// The signed payload, forwarded to the device unchanged.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// Checks, before anything is sent, that the label is for this device.
    pub fn check_target(&self, device: Eui, access: AccessTechnology) -> Result<(), LabelError> {
        Ok(self.target.check(device, access)?)
    }
}

/// Packs and signs an app for one device in memory, as `qr-packer pack`
/// does, and reads it back as the assistant would: for tools, tests and
/// benchmarks that enroll without printing a label.
#[cfg(feature = "pack")]
pub fn seal(phone: &[u8], device: &[u8], manifest: &Manifest, key: &ManufacturerKey) -> Result<ScannedApp, SealError> {
    let halves = Halves { phone: phone.to_vec(), device: device.to_vec(), operational: None };
    let signed = PreparedApp::prepare(halves, &Dictionary::current())?.seal(manifest, key)?;
    Ok(ScannedApp::from_signed(signed, &key.trusted())?)
}

/// Why [`seal`] failed.
#[cfg(feature = "pack")]
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("packing: {0}")]
    Pack(#[from] PackError),
    #[error("reading back: {0}")]
    Label(#[from] LabelError),
}
