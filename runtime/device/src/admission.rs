//! Payload admission: the device runs only code its manufacturer signed for
//! this device.
//!
//! The device does not take the assistant's word for anything: it verifies
//! the signed payload the assistant forwarded against its own manufacturer
//! keys, checks that the payload names this device and its access
//! technology, and only then takes its half out of it. A phone that swaps the
//! device half, or replays another device's label, is refused here.
//!
//! A label packed `--unbound` names no device: one copy of it runs on every
//! device of its product, so a label taken from one box enrolls another.
//! The device refuses such labels unless its operator chose to accept them
//! ([`UnboundLabels::Accept`], `device-agent serve --accept-unbound`), e.g.
//! for a product printed with one label for all its units.

use enrollment_host::manifest::ManifestView;
use qr_packer::{SignedPayload, TrustedKeys};
use sp_bound_id::{AccessTechnology, Eui};

use crate::failure::DeviceFailure;

/// Whether the device runs a label that names no device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnboundLabels {
    /// Only labels that name this device (the default).
    #[default]
    Refuse,
    /// Also labels that name no device, if signed and for this access
    /// technology.
    Accept,
}

/// What the device takes out of an admitted payload: its half, and what the
/// half may read of the manifest. Nothing else of the payload is kept.
pub struct Admitted {
    pub device_half: Vec<u8>,
    pub manifest: ManifestView,
    /// The operational app the label carries (covered by the same signature),
    /// not yet checked against its world: see `crate::operational`.
    pub operational: Option<Vec<u8>>,
}

/// Verifies `payload` with the device's own trusted keys, checks it names
/// this device (or, with [`UnboundLabels::Accept`], no device), and returns
/// the device half.
pub fn admit_device_half(
    payload: Vec<u8>,
    trusted: &TrustedKeys,
    device: Eui,
    access: AccessTechnology,
    unbound: UnboundLabels,
) -> Result<Admitted, DeviceFailure> {
    let bundle = SignedPayload::from_bytes(payload)
        .verify(trusted)
        .map_err(|e| DeviceFailure::Untrusted(e.to_string()))?;
    let target = bundle.manifest.target().map_err(|e| DeviceFailure::NotForThisDevice(e.to_string()))?;
    target.check(device, access).map_err(|e| DeviceFailure::NotForThisDevice(e.to_string()))?;
    if target.device.is_none() && unbound == UnboundLabels::Refuse {
        return Err(DeviceFailure::UnboundLabel);
    }
    Ok(Admitted {
        manifest: ManifestView::of(&bundle.manifest),
        device_half: bundle.halves.device,
        operational: bundle.halves.operational,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qr_packer::{Dictionary, Halves, Manifest, ManufacturerKey, PreparedApp};

    const DEVICE: &str = "AC-DE-48-00-00-80";

    fn key() -> ManufacturerKey {
        ManufacturerKey::from_secret("acme-admission", [7; 32]).unwrap()
    }

    /// A signed bundle around a placeholder half (admission does not look
    /// inside the half), for `device_id`.
    fn payload(device_id: Option<&str>) -> Vec<u8> {
        let manifest = Manifest {
            format_version: qr_packer::FORMAT_VERSION,
            app_id: "meter".into(),
            app_version: "1".into(),
            manufacturer: "Acme".into(),
            product: "M1".into(),
            access: "wifi".into(),
            capabilities: Vec::new(),
            device_id: device_id.map(str::to_owned),
            one_time_secret: None,
            params: Default::default(),
        };
        let halves = Halves { phone: b"phone".to_vec(), device: b"device half".to_vec(), operational: None };
        let prepared = PreparedApp::unchecked(halves, &Dictionary::current()).unwrap();
        prepared.seal(&manifest, &key()).unwrap().into_bytes()
    }

    fn admit(payload: Vec<u8>, unbound: UnboundLabels) -> Result<Admitted, DeviceFailure> {
        admit_device_half(payload, &key().trusted(), DEVICE.parse().unwrap(), AccessTechnology::Wifi, unbound)
    }

    #[test]
    fn an_unbound_label_is_refused_unless_the_device_accepts_them() {
        let error = admit(payload(None), UnboundLabels::Refuse).err().unwrap();
        assert_eq!(error, DeviceFailure::UnboundLabel);
        assert_eq!(error.code(), enrollment_host::failure::FailureCode::NotForThisDevice);
        assert!(error.to_string().contains("--accept-unbound"), "{error}");
        let admitted = admit(payload(None), UnboundLabels::Accept).unwrap();
        assert_eq!(admitted.device_half, b"device half");
    }

    #[test]
    fn a_label_for_this_device_is_admitted_either_way_and_one_for_another_never() {
        for unbound in [UnboundLabels::Refuse, UnboundLabels::Accept] {
            assert!(admit(payload(Some(DEVICE)), unbound).is_ok());
            let other = admit(payload(Some("AC-DE-48-00-00-81")), unbound).err().unwrap();
            assert!(matches!(other, DeviceFailure::NotForThisDevice(_)), "{other:?}");
        }
    }
}
