//! Payload admission: the device runs only code its manufacturer signed for
//! this device.
//!
//! The device does not take the assistant's word for anything: it verifies
//! the signed payload the assistant forwarded against its own manufacturer
//! keys, checks that the payload names this device and its access
//! technology, and only then takes its half out of it. A phone that swaps the
//! device half, or replays another device's label, is refused here.

use enrollment_host::manifest::ManifestView;
use qr_packer::{SignedPayload, TrustedKeys};
use sp_bound_id::{AccessTechnology, Eui};

use crate::failure::DeviceFailure;

/// What the device takes out of an admitted payload: its half, and what the
/// half may read of the manifest. Nothing else of the payload is kept.
pub struct Admitted {
    pub device_half: Vec<u8>,
    pub manifest: ManifestView,
}

/// Verifies `payload` with the device's own trusted keys, checks it names
/// this device, and returns the device half.
pub fn admit_device_half(
    payload: Vec<u8>,
    trusted: &TrustedKeys,
    device: Eui,
    access: AccessTechnology,
) -> Result<Admitted, DeviceFailure> {
    let bundle = SignedPayload::from_bytes(payload)
        .verify(trusted)
        .map_err(|e| DeviceFailure::Untrusted(e.to_string()))?;
    bundle
        .manifest
        .target()
        .and_then(|target| target.check(device, access))
        .map_err(|e| DeviceFailure::NotForThisDevice(e.to_string()))?;
    Ok(Admitted { manifest: ManifestView::of(&bundle.manifest), device_half: bundle.halves.device })
}
