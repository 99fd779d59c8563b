//! Device messages through one gateway (issue 12): how many signed messages
//! per second a fleet of device agents sustains when every message goes
//! through the gateway's forwarding (`--uplink-via`), and the latency from
//! the device's send to the SP's verified record.
//!
//! Real processes on loopback: control server (SQLite), two `sp-sim`, the
//! gateway, one `device-agent` process simulating the fleet (each device on
//! its own port, one store). Every device is enrolled from its own label
//! carrying the meter's operational app; the agent activates each device at
//! most every `--wake-ms` (the app asks for 60 s; the agent caps it), so the
//! offered load is `devices / wake` messages per second. Each activation
//! ends with one durable transaction in the fleet's store (group-committed,
//! `synchronous=FULL`); each message is signed on the device, forwarded by
//! the gateway, verified by the SP with the key relayed at enrollment.
//! Latency: the SP records when it verified a message, and a device's
//! sequence number is its send time in milliseconds (one clock: one
//! machine), so latency = verified_at - seq, millisecond resolution.
//!
//! `cargo bench -p end-to-end-tests --bench fleet_messages -- [--devices 1000] [--wake-ms 1000] [--seconds 10]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use end_to_end_tests::system::System;
use futures::StreamExt;
use serde_json::Value;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let devices = arg("--devices", 1000) as usize;
    let wake_ms = arg("--wake-ms", 1000);
    let seconds = arg("--seconds", 10);
    let dir = tempfile::tempdir()?;
    let mut system = System::start_with_fleet(dir.path(), devices, &mut |_| {}).await?;
    let t = Instant::now();
    let labels_dir = system.pack_fleet_labels_with("wifi-meter", &["--with-operational"])?;
    let mut labels = HashMap::new();
    for id in system.fleet_ids() {
        labels.insert(id.clone(), std::fs::read_to_string(labels_dir.join(format!("{id}.txt")))?.trim().to_string());
    }
    println!("{devices} labels packed in {:.1} s", t.elapsed().as_secs_f64());
    let via = format!("{}/v1/uplink", system.gateway.url());
    let extra = ["--uplink-via".to_string(), via, "--max-wake-ms".into(), wake_ms.to_string()];
    let (agent, addrs) = system.spawn_fleet_agent_with("127.0.0.1:0", &extra)?;

    let t = Instant::now();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(addrs.iter())
        .map(|(id, addr)| {
            let (system, label) = (&system, labels[id].clone());
            async move { system.enroll_text(&label, *addr).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!("{} enrolled in {:.1} s ({failed} failed)", devices - failed, t.elapsed().as_secs_f64());

    // Let the schedule settle, then count what the SP verified over the window.
    tokio::time::sleep(Duration::from_millis(2 * wake_ms)).await;
    let before = system.sp_stats(&system.sp_one).await?;
    let start_ms = now_ms();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = system.sp_stats(&system.sp_one).await?;
    let window = t.elapsed().as_secs_f64();
    let verified = after["messages_verified"].as_u64().context("stats")? - before["messages_verified"].as_u64().context("stats")?;
    let rejected = after["messages_rejected"].as_u64().unwrap_or(0);
    let offered = devices as f64 * 1000.0 / wake_ms as f64;
    println!(
        "messages verified at the SP: {verified} in {window:.1} s = {:.0} /s (offered at most {offered:.0} /s); rejected in all: {rejected}",
        verified as f64 / window
    );
    let mut latencies: Vec<u64> = system
        .sp_messages(&system.sp_one)
        .await?
        .iter()
        .filter_map(|m| Some((m["seq"].as_u64()?, m["verified_at_ms"].as_u64()?)))
        .filter(|(seq, _)| *seq >= start_ms)
        .map(|(seq, at)| at.saturating_sub(seq))
        .collect();
    latencies.sort_unstable();
    if !latencies.is_empty() {
        let q = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "send → verified at the SP, over {} messages: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            latencies.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            latencies[latencies.len() - 1]
        );
    }
    drop(agent);
    system.gateway.kill();
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
