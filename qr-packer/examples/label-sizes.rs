//! Label sizes of every reference app and every benchmark app, with the
//! shipped dictionary (trained on the dictionary seeds only: no app in this
//! table is in it), printed as the Markdown table of BENCHMARKS.md.
//!
//! `cargo run --release -p qr-packer --example label-sizes`
//!
//! Per app: as built, stripped, compressed without and with the dictionary,
//! signed, base45 characters, QR version at M, and where the signed bytes
//! are (phone, device, manifest, framing, signature). Every payload is read
//! back and verified.

use std::collections::BTreeMap;

use enrollment_apps::{ALL, AppPair, BENCH};
use qr_packer::report::{Parts, SizeReport, naive_size};
use qr_packer::{Dictionary, Ec, Halves, Manifest, ManufacturerKey, PreparedApp};

/// The manifest a manufacturer would sign for one device of `app`: the
/// parameters each benchmark app reads from its label, a device id of the
/// right length, a 16-byte one-time secret.
fn manifest(app: &AppPair) -> Manifest {
    let (access, device, params): (&str, &str, &[(&str, &str)]) = match app.name {
        "wifi-meter" => ("wifi", "AC-DE-48-00-00-80", &[]),
        "zigbee-sensor" => ("zigbee", "00-0D-6F-FF-FE-12-34-56", &[]),
        "ethernet-controller" => ("ethernet", "AC-DE-48-00-00-90", &[]),
        "ble-lock" => ("ble", "AC-DE-48-00-00-A0", &[]),
        "bench-thread-plug" => (
            "thread",
            "00-0D-6F-FF-FE-00-00-01",
            &[("vendor-id", "4660"), ("product-id", "22136"), ("max-power", "2300"), ("max-current", "10.5")],
        ),
        "bench-lorawan-sensor" => ("lorawan", "70-B3-D5-7E-D0-00-12-34", &[("sf", "9"), ("interval", "15m")]),
        _ => ("cellular", "AC-DE-48-00-00-C0", &[]),
    };
    Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: app.name.into(),
        app_version: "1.0.0".into(),
        manufacturer: "Acme IoT".into(),
        product: "Product".into(),
        access: access.into(),
        capabilities: Vec::new(),
        device_id: Some(device.into()),
        one_time_secret: Some(vec![0xA5; 16]),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = ManufacturerKey::from_secret("acme-1", [7; 32])?;
    println!("| app | as built (phone + device) | stripped (phone + device) | compressed, no dictionary | compressed, shipped dictionary | of which phone + device | manifest + framing | signature | signed | base45 chars | QR version at M |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for app in ALL.iter().chain(BENCH) {
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
        let manifest = manifest(app);
        let bare = PreparedApp::prepare(halves.clone(), &Dictionary::none())?;
        let prepared = PreparedApp::prepare(halves, &Dictionary::current())?;
        let payload = prepared.seal(&manifest, &key)?;
        payload.verify(&key.trusted())?;
        let report = SizeReport::new(&prepared, &payload, naive_size(app.phone, app.device), Ec::M)?;
        let Parts { phone, device, .. } = report.parts;
        println!(
            "| {} | {} + {} | {} + {} | {} | {} | {} + {} | {} | 64 | {} | {} | {} |",
            app.name,
            report.phone_as_built,
            report.device_as_built,
            report.phone_stripped,
            report.device_stripped,
            bare.sizes().compressed,
            report.compressed_halves,
            phone,
            device,
            report.manifest_and_framing,
            report.signed,
            report.text_chars,
            report.qr_version.map_or("> 40".into(), |v| v.to_string()),
        );
    }
    Ok(())
}
