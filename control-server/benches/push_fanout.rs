//! One signed SP message moving 100,000 devices spread over 1,000 gateways:
//! time from the POST until every gateway's SSE stream (1,000 connections in
//! this, a second, process) has received all of its events.
//!
//! `cargo bench -p control-server --bench push_fanout -- --database sqlite --rounds 3`

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use support::{arg, device};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    control_server::install_crypto_provider();
    let kind = arg("--database", "sqlite");
    let gateways: u32 = arg("--gateways", "1000").parse()?;
    let devices: u32 = arg("--devices", "100000").parse()?;
    let rounds: u32 = arg("--rounds", "3").parse()?;
    let dir = tempfile::tempdir()?;
    let database = support::database(&kind, dir.path()).await?;

    let keys = [ed25519_dalek::SigningKey::from_bytes(&[1; 32]), ed25519_dalek::SigningKey::from_bytes(&[2; 32])];
    let names = ["sp-one.example", "sp-two.example"];
    let mut config = String::from("[policy]\nmax_batch = 100000\n");
    for (name, key) in names.iter().zip(&keys) {
        config.push_str(&format!(
            "\n[[sp]]\nidentity = \"{name}\"\nbase_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\nmay_release = true\nmay_move_to = [\"*\"]\n",
            hex::encode(key.verifying_key().to_bytes())
        ));
    }
    for g in 0..gateways {
        config.push_str(&format!("\n[[gateway]]\nid = \"gw-{g}\"\ncredential = \"cred-{g}\"\n"));
    }
    for n in 0..devices {
        config.push_str(&format!(
            "\n[[mapping]]\ndevice_id = \"{}\"\nsp = \"sp-one.example\"\ngateways = [\"gw-{}\"]\n",
            device(n),
            n % gateways
        ));
    }
    let config_path = dir.path().join("fanout.toml");
    std::fs::write(&config_path, config)?;
    let t = Instant::now();
    let (server, base) = support::start_server(&database, &config_path).await?;
    let server_pid = server.id().unwrap_or(0);
    println!("server up with {devices} devices / {gateways} gateways in {:.1} s", t.elapsed().as_secs_f64());

    // One SSE stream per gateway; each task reports when it has `expected` events.
    let per_gateway = devices / gateways;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(gateways as usize);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(u32, Instant)>();
    for g in 0..gateways {
        let client = reqwest::Client::builder().build()?;
        let url = format!("{base}/v1/updates?after=0");
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("gw-{g}:cred-{g}")));
        let ready_tx = ready_tx.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let Ok(mut response) = client.get(url).header("authorization", auth).send().await else { return };
            let mut buffer = String::new();
            let mut received = 0u32;
            let mut signalled_ready = false;
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                let mut consumed = 0;
                while let Some(end) = buffer[consumed..].find("\n\n") {
                    let block = &buffer[consumed..consumed + end + 2];
                    consumed += end + 2;
                    if !signalled_ready {
                        signalled_ready = true;
                        let _ = ready_tx.send(()).await;
                    }
                    if block.contains("event: association") {
                        received += 1;
                        if received.is_multiple_of(per_gateway) {
                            let _ = done_tx.send((received / per_gateway, Instant::now()));
                        }
                    }
                }
                buffer.drain(..consumed);
            }
        });
    }
    for _ in 0..gateways {
        ready_rx.recv().await.ok_or_else(|| anyhow::anyhow!("a stream failed to open"))?;
    }
    println!("{gateways} SSE streams open");

    let http = control_server::http_client()?;
    let all: Vec<String> = (0..devices).map(device).collect();
    for round in 1..=rounds {
        let from = ((round - 1) % 2) as usize;
        let to = 1 - from;
        let payload = MovePayload::new(names[from], names[to], all.clone(), None);
        let message = payload.sign(&keys[from])?;
        let cpu0 = (support::cpu_seconds(server_pid), support::cpu_seconds(std::process::id()));
        let t0 = Instant::now();
        let ack = control_server::sp_sim::send_message(&http, &base, message).await?;
        let acked = t0.elapsed();
        let mut last = t0;
        let mut finished = 0;
        while finished < gateways {
            let (r, at) = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("streams ended"))?;
            if r == round {
                finished += 1;
                last = last.max(at);
            }
        }
        println!(
            "round {round} [{kind}]: {} devices, {} events to {} gateways: stored and acknowledged in {:.0} ms; all {gateways} streams had all their events after {:.0} ms",
            ack.changed,
            ack.events,
            ack.gateways,
            acked.as_secs_f64() * 1000.0,
            (last - t0).as_secs_f64() * 1000.0
        );
        let cpu1 = (support::cpu_seconds(server_pid), support::cpu_seconds(std::process::id()));
        if let (Some(s0), Some(s1), Some(l0), Some(l1)) = (cpu0.0, cpu1.0, cpu0.1, cpu1.1) {
            println!("  CPU used meanwhile: server {:.2} s, load process (1,000 SSE clients) {:.2} s", s1 - s0, l1 - l0);
        }
    }
    drop(server);
    Ok(())
}
