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
//! policy.

use std::sync::Arc;

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

    /// From a photo or scan of the printed label (PNG or JPEG).
    #[cfg(feature = "photo")]
    pub fn from_image(image: &[u8], trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let text = qr_packer::read_label_image(image)?;
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
