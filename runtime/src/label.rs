//! An enrollment application as it arrives: a label, verified, split.
//!
//! The assisting phone or gateway reads the label (the payload text from a
//! QR scanner, or a photo of the printed code), verifies it against the
//! manufacturer keys it trusts and splits it into the phone half, which it
//! runs, and the signed payload, which it forwards to the device *as is*
//! (US 2025/0254525 claim 1: obtain, split, transfer).
//!
//! The device does not take the phone's word for anything: it verifies the
//! same signed payload against its own manufacturer's keys, checks that the
//! payload names this device and its access technology, and only then takes
//! its half out of it ([`admit_device_half`]). A phone that swaps the device
//! half, or replays another device's label, is refused by the device itself.
//! The format and every check are `qr_packer`'s (shared by both sides); what
//! lives here is the policy of each side.

use std::sync::Arc;

use qr_packer::{Dictionary, Halves, ManufacturerKey, Manifest, PackError, PayloadError, PreparedApp, SignedPayload, TrustedKeys, VerifiedBundle};

use crate::identifier::{AccessTechnology, Eui};
use crate::link::DeviceFailure;

/// Why a label was refused by the assistant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// One stage of decoding or verification failed (`qr_packer` says which).
    #[error("{0}")]
    Payload(#[from] PayloadError),
    #[error("the manifest names access technology {0:?}, which this runtime does not know")]
    UnknownAccess(String),
    #[error("the manifest's device id {0:?} is not a canonical EUI-48/EUI-64")]
    BadDeviceId(String),
    #[error("the label is for device {label}, but the device on the link is {device}")]
    OtherDevice { label: Eui, device: Eui },
    #[error("the label is for a {label} device, but the device on the link uses {device}")]
    OtherAccess { label: AccessTechnology, device: AccessTechnology },
}

/// A verified label, split for the assistant.
#[derive(Debug, Clone)]
pub struct ScannedApp {
    signed: Arc<Vec<u8>>,
    signer: String,
    manifest: Manifest,
    phone_half: Vec<u8>,
    device: Option<Eui>,
    access: AccessTechnology,
}

impl ScannedApp {
    /// From the payload text a QR scanner read.
    pub fn from_text(text: &str, trusted: &TrustedKeys) -> Result<Self, LabelError> {
        Self::from_signed(SignedPayload::from_text(text.trim())?, trusted)
    }

    /// From a photo or scan of the printed label (PNG or JPEG).
    pub fn from_image(image: &[u8], trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let text = qr_packer::read_label_image(image)?;
        Self::from_text(&text, trusted)
    }

    /// From the signed payload's bytes.
    pub fn from_signed(signed: SignedPayload, trusted: &TrustedKeys) -> Result<Self, LabelError> {
        let bundle = signed.verify(trusted)?;
        let (device, access) = targets(&bundle.manifest)?;
        let VerifiedBundle { signer, manifest, halves, .. } = bundle;
        Ok(Self {
            signed: Arc::new(signed.into_bytes()),
            signer,
            manifest,
            phone_half: halves.phone,
            device,
            access,
        })
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
        check_target(self.device, self.access, device, access)
    }
}

/// Packs and signs an app for one device in memory, as `qr-packer pack`
/// does, and reads it back as the assistant would: for tools, tests and
/// benchmarks that enroll without printing a label.
pub fn seal(phone: &[u8], device: &[u8], manifest: &Manifest, key: &ManufacturerKey) -> Result<ScannedApp, SealError> {
    let halves = Halves { phone: phone.to_vec(), device: device.to_vec(), operational: None };
    let signed = PreparedApp::prepare(halves, &Dictionary::current())?.seal(manifest, key)?;
    Ok(ScannedApp::from_signed(signed, &key.trusted())?)
}

/// Why [`seal`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("packing: {0}")]
    Pack(#[from] PackError),
    #[error("reading back: {0}")]
    Label(#[from] LabelError),
}

/// Device side: verifies the payload the assistant forwarded with the
/// device's own trusted keys, checks it names this device, and returns the
/// device half. Nothing else of the payload is kept.
pub fn admit_device_half(
    payload: Vec<u8>,
    trusted: &TrustedKeys,
    device: Eui,
    access: AccessTechnology,
) -> Result<Vec<u8>, DeviceFailure> {
    let bundle = SignedPayload::from_bytes(payload)
        .verify(trusted)
        .map_err(|e| DeviceFailure::Untrusted(e.to_string()))?;
    let (label_device, label_access) =
        targets(&bundle.manifest).map_err(|e| DeviceFailure::NotForThisDevice(e.to_string()))?;
    check_target(label_device, label_access, device, access)
        .map_err(|e| DeviceFailure::NotForThisDevice(e.to_string()))?;
    Ok(bundle.halves.device)
}

/// The device and access technology a manifest names.
fn targets(manifest: &Manifest) -> Result<(Option<Eui>, AccessTechnology), LabelError> {
    let access = manifest.access.parse().map_err(|_| LabelError::UnknownAccess(manifest.access.clone()))?;
    let device = match &manifest.device_id {
        None => None,
        Some(text) => Some(Eui::from_canonical(text).map_err(|_| LabelError::BadDeviceId(text.clone()))?),
    };
    Ok((device, access))
}

fn check_target(
    label_device: Option<Eui>,
    label_access: AccessTechnology,
    device: Eui,
    access: AccessTechnology,
) -> Result<(), LabelError> {
    if let Some(label) = label_device
        && label != device
    {
        return Err(LabelError::OtherDevice { label, device });
    }
    if label_access != access {
        return Err(LabelError::OtherAccess { label: label_access, device: access });
    }
    Ok(())
}
