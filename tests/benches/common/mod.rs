//! Set-up shared by the benches: assistant configuration and device ids.

use std::sync::Arc;

use enrollment_apps::AppPair;
use qr_packer::{ManufacturerKey, Manifest};
use enrollment_assistant::NetworkCredentials;
use enrollment_assistant::ScannedApp;
use enrollment_assistant::ConfiguredAssistant;
use enrollment_assistant::{AccessTechnology, Eui, SpIdentity};

/// An assistant that resolves every device to one SP and has credentials for
/// both reference apps' networks.
pub fn services() -> Arc<ConfiguredAssistant> {
    Arc::new(ConfiguredAssistant {
        location: Some("geo:52.3676,4.9041".into()),
        owner: Some("ACME Utilities".into()),
        networks: vec![
            NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse battery".into() },
            NetworkCredentials::Zigbee { pan_id: 0x1A62, extended_pan_id: [1; 8], channel: 15, network_key: [2; 16] },
        ],
        default_sp: Some(SpIdentity::new("sp-one.example").expect("valid")),
        ..Default::default()
    })
}

/// The n-th device id for an access technology (universally administered,
/// individual; EUI-48 for Wi-Fi, EUI-64 otherwise).
pub fn device_id(access: AccessTechnology, n: u64) -> Eui {
    let b = n.to_be_bytes();
    let bytes: Vec<u8> = match access {
        AccessTechnology::Wifi => vec![0xAC, 0xDE, 0x48, b[5], b[6], b[7]],
        _ => vec![0x00, 0x0D, 0x6F, b[3], b[4], b[5], b[6], b[7]],
    };
    Eui::from_bytes(&bytes).expect("valid EUI")
}

/// The manufacturer key the benches' labels are signed with.
pub fn manufacturer() -> ManufacturerKey {
    ManufacturerKey::from_secret("acme-bench", [0x42; 32]).expect("valid key id")
}

/// A product-wide label of a reference app (no device id in the manifest, so
/// one label serves every simulated device), as the assistant scans it.
pub fn label(app: &AppPair, access: AccessTechnology) -> ScannedApp {
    let manifest = Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: app.name.into(),
        app_version: "0.1.0".into(),
        manufacturer: "Acme".into(),
        product: app.name.into(),
        access: access.to_string(),
        capabilities: Vec::new(),
        device_id: None,
        one_time_secret: None,
        params: Default::default(),
    };
    enrollment_assistant::label::seal(app.phone, app.device, &manifest, &manufacturer()).expect("reference app packs")
}
