//! Shared bench plumbing: a database for the run, and the `control-server`
//! binary started as a separate process.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CONTROL_SERVER: &str = env!("CARGO_BIN_EXE_control-server");

/// `sqlite` (a file in `dir`) or `postgres` (a fresh database on the server
/// of `TEST_POSTGRES_URL`).
pub async fn database(kind: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    match kind {
        "sqlite" => Ok(format!("sqlite://{}", dir.join("bench.db").display())),
        "postgres" => {
            let base = std::env::var("TEST_POSTGRES_URL")
                .map_err(|_| anyhow::anyhow!("set TEST_POSTGRES_URL (eval \"$(scripts/postgres env)\")"))?;
            let name = format!("cs_bench_{}", control_server::random_hex(6));
            let mut conn = sqlx::PgConnection::connect(&base).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
            let (prefix, _) = base.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("TEST_POSTGRES_URL lacks /db"))?;
            Ok(format!("{prefix}/{name}"))
        }
        other => anyhow::bail!("--database is sqlite or postgres, not {other}"),
    }
}

/// Starts `control-server serve` and returns it with its base URL.
pub async fn start_server(database: &str, config: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(CONTROL_SERVER)
        .args(["--database", database, "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "control_server=warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await??
        .ok_or_else(|| anyhow::anyhow!("control-server exited before listening"))?;
    let addr = line.strip_prefix("listening on ").ok_or_else(|| anyhow::anyhow!("unexpected line {line:?}"))?;
    let base = format!("http://{addr}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, base))
}

/// Value of `--name VALUE` in the arguments, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// The n-th bench device id (universally administered, individual).
pub fn device(n: u32) -> String {
    let b = n.to_be_bytes();
    format!("AC-DE-48-{:02X}-{:02X}-{:02X}", b[1], b[2], b[3])
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}
