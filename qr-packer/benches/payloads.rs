//! Sizes and batch speed of QR payloads, printed as the Markdown of the
//! "QR payloads (issue 3)" section of BENCHMARKS.md.
//!
//! `cargo bench -p qr-packer --bench payloads`
//!
//! Sizes: for each reference app, the payload with a **leave-one-out**
//! dictionary (trained on the other apps only: the figure that predicts a new
//! product) and with the shipped dictionary (trained on all apps, this app
//! included), against the naive size (components as built, zstd -19, no
//! stripping, no dictionary). Every payload is read back and verified.
//!
//! Speed: `batch::produce` (what `qr-packer batch` runs, minus file writes)
//! on a rayon pool of 2 threads: signed payload texts without images, then
//! with a PNG label each (scale 4). Warm: the app is prepared (stripped,
//! checked, compressed) once before timing, as `batch` does.

use std::time::Instant;

use qr_packer::batch::{self, DeviceRow, Fit, Images};
use qr_packer::dictionary::{self, Dictionary};
use qr_packer::report::{SizeReport, naive_size};
use qr_packer::{Ec, Halves, ManufacturerKey, PreparedApp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = ManufacturerKey::from_secret("acme-1", [7; 32])?;
    println!("| app | as built (phone + device) | naive | stripped | compressed, leave-one-out | signed | base45 chars | QR version at M | naive / signed | compressed, shipped dictionary | signed | chars | QR at M |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, app) in enrollment_apps::ALL.iter().enumerate() {
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
        let naive = naive_size(app.phone, app.device);
        let loo = Dictionary::custom(200 + i as u32, "leave-one-out", dictionary::train_reference(Some(app.name))?);
        let mut manifest = qr_packer::manifest::reference(app)?;
        manifest.device_id = Some(if app.name == "zigbee-sensor" { "AC-DE-48-00-00-00-00-80" } else { "AC-DE-48-00-00-80" }.into());
        manifest.one_time_secret = Some(vec![0xA5; 16]);
        let mut row = Vec::new();
        for dict in [&loo, &Dictionary::current()] {
            let prepared = PreparedApp::prepare(halves.clone(), dict)?;
            let payload = prepared.seal(&manifest, &key)?;
            let check = payload.verify_traced(&key.trusted(), std::slice::from_ref(dict), &mut |_| {})?;
            assert_eq!(check.halves, *prepared.halves());
            row.push(SizeReport::new(&prepared, &payload, naive, Ec::M)?);
        }
        let (l, s) = (&row[0], &row[1]);
        let v = |r: &SizeReport| r.qr_version.map_or("> 40".into(), |v| v.to_string());
        println!(
            "| {} | {} + {} | {} | {} + {} | {} | {} | {} | {} | {:.2}× | {} | {} | {} | {} |",
            app.name, l.phone_as_built, l.device_as_built, l.naive, l.phone_stripped, l.device_stripped,
            l.compressed_halves, l.signed, l.text_chars, v(l), l.ratio(), s.compressed_halves, s.signed, s.text_chars, v(s)
        );
    }

    let threads = 2;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let app = enrollment_apps::WIFI_METER;
    let prepared = PreparedApp::prepare(
        Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None },
        &Dictionary::current(),
    )?;
    let template = qr_packer::manifest::reference(&app)?;
    let rows = |n: usize| -> Vec<DeviceRow> {
        (0..n)
            .map(|i| DeviceRow {
                line: i + 2,
                device_id: format!("AC-DE-48-{:02X}-{:02X}-{:02X}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
                one_time_secret: Some((i as u128).to_le_bytes().to_vec()),
                params: Default::default(),
            })
            .collect()
    };
    println!();
    println!("| batch ({threads} threads, wifi-meter, shipped dictionary) | devices | seconds | per second |");
    println!("| --- | ---: | ---: | ---: |");
    let fit = Fit { ec: Ec::M, max_version: None };
    for (what, n, images) in [
        ("signed payload texts, no images", 50_000, None),
        ("payload + PNG label (scale 4)", 3_000, Some(Images { ec: Ec::M, scale: 4, print: None, svg: false })),
    ] {
        let rows = rows(n);
        // Warm-up.
        pool.install(|| batch::produce(&prepared, &template, &key, &rows[..n / 10], fit, images, &|| {}));
        let start = Instant::now();
        let out = pool.install(|| batch::produce(&prepared, &template, &key, &rows, fit, images, &|| {}));
        let secs = start.elapsed().as_secs_f64();
        assert!(out.iter().all(Result::is_ok));
        println!("| {what} | {n} | {secs:.3} | {:.0} |", n as f64 / secs);
    }
    Ok(())
}
