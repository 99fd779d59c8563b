//! Two control-server replicas (separate processes) on one PostgreSQL
//! database. Measured:
//!
//! * cross-replica delivery: a hand-over of one device posted to replica B,
//!   from just before the POST until gw-0's SSE stream on replica A has the
//!   event (`--changes` times, one at a time);
//! * the mapping cache: after B answered the hand-over, how long A's resolve
//!   keeps answering the old SP (A cached the row just before);
//! * idle load: database transactions per second (`pg_stat_database`
//!   `xact_commit + xact_rollback` of the bench database) over `--idle-secs`
//!   with no stream, then with `--streams` idle SSE streams open on A.
//!
//! `eval "$(scripts/postgres env)"; cargo bench -p control-server --bench cross_replica -- --changes 100 --streams 1000`

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use sqlx::Row;
use support::{arg, device, percentile};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    control_server::install_crypto_provider();
    let changes: u32 = arg("--changes", "100").parse()?;
    let streams: u32 = arg("--streams", "1000").parse()?;
    let idle_secs: u64 = arg("--idle-secs", "30").parse()?;
    let dir = tempfile::tempdir()?;
    let database = support::database("postgres", dir.path()).await?;
    let name = database.rsplit('/').next().unwrap_or_default().to_owned();

    let keys = [ed25519_dalek::SigningKey::from_bytes(&[1; 32]), ed25519_dalek::SigningKey::from_bytes(&[2; 32])];
    let names = ["sp-one.example", "sp-two.example"];
    let mut config = String::new();
    for (sp, key) in names.iter().zip(&keys) {
        config.push_str(&format!(
            "[[sp]]\nidentity = \"{sp}\"\nbase_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\nmay_release = true\nmay_move_to = [\"*\"]\n\n",
            hex::encode(key.verifying_key().to_bytes())
        ));
    }
    for g in 0..streams.max(1) {
        config.push_str(&format!("[[gateway]]\nid = \"gw-{g}\"\ncredential = \"cred-{g}\"\n\n"));
    }
    for n in 0..changes {
        config.push_str(&format!("[[mapping]]\ndevice_id = \"{}\"\nsp = \"sp-one.example\"\ngateways = [\"gw-0\"]\n\n", device(n)));
    }
    let config_path = dir.path().join("replicas.toml");
    std::fs::write(&config_path, config)?;
    let (_a, base_a) = support::start_server(&database, &config_path).await?;
    let (_b, base_b) = support::start_server(&database, &config_path).await?;
    let http = control_server::http_client()?;
    let auth = |g: u32| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("gw-{g}:cred-{g}")));

    // Idle load, first without streams.
    let stats = sqlx::PgPool::connect(&database).await?;
    let xacts = || async {
        let row = sqlx::query("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&stats)
            .await?;
        anyhow::Ok(row.try_get::<i64, _>(0)?)
    };
    let idle = |label: String| {
        let xacts = &xacts;
        async move {
            // Backends report to pg_stat_database up to ~10 s late when idle:
            // let what came before (start-up, opening the streams) settle.
            tokio::time::sleep(Duration::from_secs(12)).await;
            let x0 = xacts().await?;
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            let x1 = xacts().await?;
            // The two stats queries themselves are transactions too.
            let rate = (x1 - x0 - 1) as f64 / idle_secs as f64;
            println!("idle, {label}: {rate:.2} database transactions/s over {idle_secs} s (both replicas)");
            anyhow::Ok(rate)
        }
    };
    let quiet = idle("no streams".into()).await?;

    // gw-0's stream (timed) and the idle ones, all on A.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(streams as usize + 1);
    for g in 0..streams.max(1) {
        let (http, url, auth, tx, ready_tx) = (http.clone(), format!("{base_a}/v1/updates?after=0"), auth(g), tx.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let Ok(mut response) = http.get(url).header("authorization", auth).send().await else { return };
            let mut buffer = String::new();
            let mut ready = false;
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = Instant::now();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if !ready {
                        ready = true;
                        let _ = ready_tx.send(()).await;
                    }
                    if g == 0
                        && let Some(id) = block.lines().find_map(|l| l.strip_prefix("id: "))
                        && let Ok(seq) = id.trim().parse()
                    {
                        let _ = tx.send((seq, at));
                    }
                }
            }
        });
    }
    for _ in 0..streams.max(1) {
        ready_rx.recv().await.ok_or_else(|| anyhow::anyhow!("a stream failed"))?;
    }
    let busy = idle(format!("{} idle SSE streams on replica A", streams.max(1))).await?;
    println!(
        "  per stream: {:.4} transactions/s ({:.2} with, {:.2} without)",
        (busy - quiet) / f64::from(streams.max(1)),
        busy,
        quiet
    );

    // Cross-replica delivery and the mapping cache.
    let (mut delivery, mut stale) = (Vec::new(), Vec::new());
    for n in 0..changes {
        let d = device(n);
        let resolve = |base: &str| {
            http.post(format!("{base}/v1/resolve"))
                .header("authorization", auth(0))
                .json(&serde_json::json!({ "device_id": d }))
                .send()
        };
        let before: serde_json::Value = resolve(&base_a).await?.json().await?; // A caches the row
        anyhow::ensure!(before["sp"] == "sp-one.example", "{before}");
        let message = MovePayload::new(names[0], names[1], vec![d.clone()], None).sign(&keys[0])?;
        let t0 = Instant::now();
        control_server::sp_sim::send_message(&http, &base_b, message).await?;
        let answered = Instant::now();
        loop {
            let now: serde_json::Value = resolve(&base_a).await?.json().await?;
            if now["sp"] == "sp-two.example" {
                stale.push((Instant::now() - answered).as_micros() as u32);
                break;
            }
            anyhow::ensure!(answered.elapsed() < Duration::from_secs(120), "A never saw the change");
        }
        let (seq, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
        anyhow::ensure!(seq == u64::from(n) + 1, "event {seq} out of order");
        delivery.push((at - t0).as_micros() as u32);
    }
    delivery.sort_unstable();
    stale.sort_unstable();
    let ms = |us: u32| f64::from(us) / 1000.0;
    println!(
        "cross-replica delivery (POST to B -> event on A's stream), n = {changes}: min {:.1} / p50 {:.1} / p99 {:.1} / max {:.1} ms",
        ms(delivery[0]),
        ms(percentile(&delivery, 0.5)),
        ms(percentile(&delivery, 0.99)),
        ms(delivery[delivery.len() - 1])
    );
    println!(
        "A's resolve answers the new SP after B answered the hand-over: min {:.1} / p50 {:.1} / p99 {:.1} / max {:.1} ms",
        ms(stale[0]),
        ms(percentile(&stale, 0.5)),
        ms(percentile(&stale, 0.99)),
        ms(stale[stale.len() - 1])
    );
    Ok(())
}
