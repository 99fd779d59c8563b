//! End-to-end enrollments per second through the real system on loopback:
//! gateway, a device-agent process simulating 100 devices (each on its own
//! port), control server (SQLite) validating every association with an SP
//! network (`max_age_secs = 0`), SP relay. Labels are per device, packed
//! beforehand (not timed) and sent to the gateway as text.
//!
//! `cargo build --release --workspace --bins && cargo bench -p end-to-end-tests --bench end_to_end`
//! (env `E2E_DEVICES`, default 100; `E2E_CONCURRENCY`, default 8).

use std::time::Instant;

use futures::StreamExt;
use end_to_end_tests::system::System;
use qr_packer::{Dictionary, Halves, ManufacturerKey, PreparedApp};

const STAGES: [(&str, &str); 7] = [
    ("decode_verify_us", "label decode + signature verify"),
    ("prepare_us", "phone half: compile or cache"),
    ("run_us", "halves running (minus control server)"),
    ("control_server_us", "control server round trip (incl. SP validation)"),
    ("relay_us", "relay to the SP"),
    ("commit_us", "device commit (fsync) + answer"),
    ("record_us", "gateway store"),
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let n = env("E2E_DEVICES", 100);
    let concurrency = env("E2E_CONCURRENCY", 8);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let mut system = System::start_with_fleet(dir.path(), n, &mut |_| {}).await?;
        let (_fleet, devices) = system.spawn_fleet_agent()?;

        // One label per device, as `qr-packer batch` would print them.
        let key = ManufacturerKey::from_file(&system.paths.state("manufacturer.key"))?;
        let app = enrollment_apps::WIFI_METER;
        let prepared = PreparedApp::prepare(
            Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None },
            &Dictionary::current(),
        )?;
        let mut labels = Vec::new();
        for (id, addr) in &devices {
            let manifest = qr_packer::Manifest {
                format_version: qr_packer::FORMAT_VERSION,
                app_id: app.name.into(),
                app_version: "0.1.0".into(),
                manufacturer: "Acme".into(),
                product: app.name.into(),
                access: "wifi".into(),
                capabilities: Vec::new(),
                device_id: Some(id.clone()),
                one_time_secret: None,
                params: Default::default(),
            };
            labels.push((prepared.seal(&manifest, &key)?.to_text(), *addr));
        }

        // Warm: the first enrollment compiles the phone half (and the device half).
        let (text, addr) = labels.remove(0);
        let first = system.enroll_text(&text, addr).await?;
        println!("first enrollment (cold compile): {} us", first["timings"]["total_us"]);

        let start = Instant::now();
        let reports: Vec<anyhow::Result<serde_json::Value>> = futures::stream::iter(labels)
            .map(|(text, addr)| {
                let system = &system;
                async move { system.enroll_text(&text, addr).await }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let elapsed = start.elapsed();
        let reports: Vec<serde_json::Value> = reports.into_iter().collect::<anyhow::Result<_>>()?;
        let count = reports.len();
        println!(
            "machine: {} cores; {count} enrollments, {concurrency} in flight: {:.2} s, {:.0} enrollments/s",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64()
        );
        let sum = |key: &str| reports.iter().map(|r| r["timings"][key].as_u64().unwrap_or(0)).sum::<u64>();
        let total = sum("total_us");
        let mut mean_total = total as f64 / count as f64;
        mean_total = mean_total.max(1.0);
        println!("mean latency {:.1} ms; share of each enrollment's time:", mean_total / 1e3);
        for (key, what) in STAGES {
            let mut v = sum(key);
            if key == "run_us" {
                v = v.saturating_sub(sum("control_server_us"));
            }
            let mean = v as f64 / count as f64;
            println!("  {what:<50} {:>8.2} ms  {:>5.1} %", mean / 1e3, 100.0 * mean / mean_total);
        }
        let other = total.saturating_sub(STAGES.iter().map(|(k, _)| sum(k)).sum::<u64>() - sum("control_server_us"));
        println!("  {:<50} {:>8.2} ms  {:>5.1} %", "other (connect, handshake, waits)", other as f64 / count as f64 / 1e3, 100.0 * other as f64 / total.max(1) as f64);
        anyhow::Ok(())
    })
}
