//! Resolve answered from the table, driven from this (second) process over
//! loopback with keep-alive connections.
//!
//! `cargo bench -p control-server --bench resolve_load -- --database sqlite --connections 32 --seconds 10`
//! Reports requests/s and latency percentiles (after a 2 s warm-up).

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use support::{arg, device, percentile};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    control_server::install_crypto_provider();
    let kind = arg("--database", "sqlite");
    let connections: usize = arg("--connections", "32").parse()?;
    let seconds: u64 = arg("--seconds", "10").parse()?;
    let devices: u32 = arg("--devices", "10000").parse()?;
    let dir = tempfile::tempdir()?;
    let database = support::database(&kind, dir.path()).await?;

    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut config = format!(
        "[policy]\nmax_age_secs = 86400\n\n[[gateway]]\nid = \"gw-bench\"\ncredential = \"bench-secret\"\n\n\
         [[sp]]\nidentity = \"sp-one.example\"\nbase_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\n",
        hex::encode(key.verifying_key().to_bytes())
    );
    for n in 0..devices {
        config.push_str(&format!(
            "\n[[mapping]]\ndevice_id = \"{}\"\nsp = \"sp-one.example\"\nservice_type = \"metering\"\naccess = \"wifi\"\ngateways = [\"gw-bench\"]\n",
            device(n)
        ));
    }
    let config_path = dir.path().join("bench.toml");
    std::fs::write(&config_path, config)?;
    let (server, base) = support::start_server(&database, &config_path).await?;
    let server_pid = server.id().unwrap_or(0);
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("gw-bench:bench-secret"));

    // Warm pass: every device once (fills the server's cache), then a 2 s warm-up under load.
    let warm_client = reqwest::Client::new();
    for n in 0..devices {
        let body = format!("{{\"device_id\":\"{}\"}}", device(n));
        let r = warm_client.post(format!("{base}/v1/resolve")).header("authorization", &auth).body(body).send().await?;
        anyhow::ensure!(r.status().is_success(), "warm-up resolve failed: HTTP {}", r.status());
    }
    let warmup = Duration::from_secs(2);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let a = (support::cpu_seconds(server_pid), support::cpu_seconds(std::process::id()));
        tokio::time::sleep_until(end.into()).await;
        let b = (support::cpu_seconds(server_pid), support::cpu_seconds(std::process::id()));
        (a.0.zip(b.0).map(|(x, y)| y - x), a.1.zip(b.1).map(|(x, y)| y - x))
    });
    for c in 0..connections {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let url = format!("{base}/v1/resolve");
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(200_000);
            let mut errors = 0u64;
            let mut n = c as u32;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let body = format!("{{\"device_id\":\"{}\",\"full_identifier\":true}}", device(n % devices));
                let ok = match client.post(&url).header("authorization", &auth).body(body).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if t >= measure_from {
                    if ok {
                        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let (server_cpu, load_cpu) = cpu.await?;
    let rps = all.len() as f64 / seconds as f64;
    println!(
        "resolve from table [{kind}]: {connections} connections, {seconds} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, errors {errors}",
        rps,
        percentile(&all, 0.50) as f64 / 1000.0,
        percentile(&all, 0.99) as f64 / 1000.0,
        percentile(&all, 0.999) as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    if let (Some(s), Some(l)) = (server_cpu, load_cpu) {
        let n = all.len().max(1) as f64;
        let (s_us, l_us) = (s / n * 1e6, l / n * 1e6);
        println!(
            "  CPU per request: server {s_us:.1} µs, load generator {l_us:.1} µs; server used {:.2} cores; \
             2 cores shared by both processes would carry ≈ {:.0} req/s",
            s / seconds as f64,
            2e6 / (s_us + l_us)
        );
    }
    drop(server);
    Ok(())
}
