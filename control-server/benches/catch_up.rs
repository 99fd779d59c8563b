//! Gateway catch-up: `--events` pushed updates (default 100,000) wait in one
//! gateway's outbox; then the real `gateway` binary starts (a third process)
//! and follows the stream. Measured: from starting the gateway process until
//! its store has applied the last event (its own `GET /v1/stream`), and
//! until the control server has it acknowledged (the `outbox_acks` row, read
//! from the database by this process), with the transactions the gateway
//! used and the CPU time of both processes.
//!
//! ```sh
//! cargo build --release -p enrollment-gateway --bin gateway
//! cargo bench -p control-server --bench catch_up -- --database sqlite --events 100000 --rounds 3
//! eval "$(scripts/postgres env)"; cargo bench -p control-server --bench catch_up -- --database postgres
//! ```
//!
//! Both stores fsync (the control server's SQLite `synchronous=FULL`, the
//! gateway's SQLite `synchronous=FULL`; PostgreSQL as configured by
//! `scripts/postgres`). Each round starts a fresh gateway store and
//! replays the whole outbox (`after=0`), so every round catches up
//! `--events` events.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use sqlx::Row;
use support::{arg, device};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "bench-api-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    control_server::install_crypto_provider();
    let kind = arg("--database", "sqlite");
    let events: u32 = arg("--events", "100000").parse()?;
    let rounds: u32 = arg("--rounds", "3").parse()?;
    let batch: usize = arg("--batch", "1024").parse()?;
    let gateway_bin = Path::new(support::CONTROL_SERVER).with_file_name(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        gateway_bin.exists(),
        "{} is missing: cargo build --release -p enrollment-gateway --bin gateway",
        gateway_bin.display()
    );
    let dir = tempfile::tempdir()?;
    let database = support::database(&kind, dir.path()).await?;

    let keys = [ed25519_dalek::SigningKey::from_bytes(&[1; 32]), ed25519_dalek::SigningKey::from_bytes(&[2; 32])];
    let names = ["sp-one.example", "sp-two.example"];
    let mut config = format!("[policy]\nmax_batch = {events}\n");
    for (name, key) in names.iter().zip(&keys) {
        config.push_str(&format!(
            "\n[[sp]]\nidentity = \"{name}\"\nbase_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\nmay_release = true\nmay_move_to = [\"*\"]\n",
            hex::encode(key.verifying_key().to_bytes())
        ));
    }
    config.push_str("\n[[gateway]]\nid = \"gw-1\"\ncredential = \"cred-1\"\n");
    for n in 0..events {
        config.push_str(&format!(
            "\n[[mapping]]\ndevice_id = \"{}\"\nsp = \"sp-one.example\"\naccess = \"wifi\"\ngateways = [\"gw-1\"]\n",
            device(n)
        ));
    }
    let config_path = dir.path().join("catch-up.toml");
    std::fs::write(&config_path, config)?;
    let (server, base) = support::start_server(&database, &config_path).await?;
    let server_pid = server.id().unwrap_or(0);

    // The pending events: one hand-over of every device to the other SP.
    let http = control_server::http_client()?;
    let all: Vec<String> = (0..events).map(device).collect();
    let payload = MovePayload::new(names[0], names[1], all, None);
    let ack = control_server::sp_sim::send_message(&http, &base, payload.sign(&keys[0])?).await?;
    anyhow::ensure!(ack.events == events as usize, "expected {events} events, the server wrote {}", ack.events);
    println!("[{kind}] {events} events pending for gw-1 (gateway batch {batch})");

    let acked = AckReader::open(&database).await?;
    for round in 1..=rounds {
        acked.reset().await?;
        let gw_dir = dir.path().join(format!("gateway-{round}"));
        std::fs::create_dir_all(&gw_dir)?;
        let gw_config = gw_dir.join("gateway.toml");
        std::fs::write(
            &gw_config,
            format!(
                "db = \"gateway.sqlite\"\nidentity_key = \"gateway.key\"\napi_token = \"{TOKEN}\"\n\
                 trusted_manufacturer_keys = []\nmax_update_batch = {batch}\n\n\
                 [control_server]\nurl = \"{base}\"\ngateway_id = \"gw-1\"\ncredential = \"cred-1\"\n"
            ),
        )?;
        let t0 = Instant::now();
        let mut gateway = tokio::process::Command::new(&gateway_bin)
            .args(["serve", "--config"])
            .arg(&gw_config)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let gateway_pid = gateway.id().unwrap_or(0);
        let stdout = gateway.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the gateway exited before listening"))?;
        let started = t0.elapsed();
        let api = format!("http://{}/v1/stream", line.strip_prefix("listening on ").unwrap_or(&line));
        let cpu0 = (support::cpu_seconds(server_pid), support::cpu_seconds(gateway_pid));
        let (mut applied_at, mut acked_at, mut batches) = (None, None, 0u64);
        let deadline = Instant::now() + Duration::from_secs(300);
        while applied_at.is_none() || acked_at.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "not caught up within 300 s");
            if applied_at.is_none() {
                let state: serde_json::Value =
                    http.get(&api).bearer_auth(TOKEN).send().await?.error_for_status()?.json().await?;
                if state["last_seq"].as_u64() == Some(events as u64) {
                    applied_at = Some(t0.elapsed());
                    batches = state["update_batches"].as_u64().unwrap_or(0);
                }
            }
            if acked_at.is_none() && acked.position().await? == i64::from(events) {
                acked_at = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu1 = (support::cpu_seconds(server_pid), support::cpu_seconds(gateway_pid));
        let (applied_at, acked_at) = (applied_at.unwrap_or_default(), acked_at.unwrap_or_default());
        println!(
            "round {round} [{kind}]: gateway process up in {:.0} ms; {events} events applied after {:.0} ms, acknowledged after {:.0} ms (from process start), in {batches} transactions",
            started.as_secs_f64() * 1000.0,
            applied_at.as_secs_f64() * 1000.0,
            acked_at.as_secs_f64() * 1000.0,
        );
        if let (Some(s0), Some(s1), Some(g0), Some(g1)) = (cpu0.0, cpu1.0, cpu0.1, cpu1.1) {
            println!("  CPU meanwhile: control server {:.2} s, gateway {:.2} s", s1 - s0, g1 - g0);
        }
        drop(gateway);
    }
    drop(server);
    Ok(())
}

/// Reads (and resets) gw-1's acknowledged position in the control server's
/// database.
enum AckReader {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl AckReader {
    async fn open(database: &str) -> anyhow::Result<Self> {
        Ok(if database.starts_with("sqlite:") {
            Self::Sqlite(sqlx::SqlitePool::connect(database).await?)
        } else {
            Self::Postgres(sqlx::PgPool::connect(database).await?)
        })
    }

    async fn position(&self) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT COALESCE(MAX(acked_seq), 0) FROM outbox_acks WHERE gateway_id = 'gw-1'";
        Ok(match self {
            Self::Sqlite(pool) => sqlx::query(SQL).fetch_one(pool).await?.try_get(0)?,
            Self::Postgres(pool) => sqlx::query(SQL).fetch_one(pool).await?.try_get(0)?,
        })
    }

    async fn reset(&self) -> anyhow::Result<()> {
        const SQL: &str = "DELETE FROM outbox_acks WHERE gateway_id = 'gw-1'";
        match self {
            Self::Sqlite(pool) => {
                sqlx::query(SQL).execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query(SQL).execute(pool).await?;
            }
        }
        Ok(())
    }
}
