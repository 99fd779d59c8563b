//! Fail-over time (issue 13): two `control-server` processes on one
//! PostgreSQL database, an in-process gateway (real HTTP on loopback) that
//! prefers replica A. Each trial: SIGKILL A while the gateway streams from
//! it, post a hand-over of one device to B at once, and measure from the
//! kill until (1) the gateway streams from B again and (2) B's event is
//! applied in the gateway's store; then A is restarted on its port and the
//! gateway returns to it (`prefer_primary_after_ms = 300`). Checks every
//! trial that no event was missed or applied twice.
//!
//! `eval "$(scripts/postgres env)"; cargo build --release -p control-server --bins;
//!  cargo bench -p end-to-end-tests --bench failover -- --trials 20`

#[path = "../replicas_support.rs"]
mod replicas;

use std::time::{Duration, Instant};

use replicas::{Replicas, SP_ONE, SP_TWO, device, postgres_database, wait_for};

const WITHIN: Duration = Duration::from_secs(30);

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!("{name}: min {:.0} / median {:.0} / p90 {:.0} / max {:.0} ms (n = {})", at(0.0), at(0.5), at(0.9), at(1.0), ms.len());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let trials: u32 = arg("--trials", "20").parse()?;
    let database = postgres_database().await.ok_or_else(|| anyhow::anyhow!("set TEST_POSTGRES_URL"))?;
    let mut replicas = Replicas::start(database, trials).await?;
    let (gateway, _stop) = replicas.gateway(300)?;
    let (a, b) = (replicas.a.url(), replicas.b.url());
    let (mut to_stream, mut to_event, mut back) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 0..trials {
        wait_for(&gateway, WITHIN, "on A", |s| s.connected && s.control_url.as_deref() == Some(a.as_str())).await?;
        let before = gateway.stream_state().borrow().last_seq;
        let killed = Instant::now();
        replicas.a.kill();
        let moved = [device(trial)];
        let post = replicas.hand_over(&b, SP_ONE, SP_TWO, &moved);
        let on_b = wait_for(&gateway, WITHIN, "on B", |s| s.connected && s.control_url.as_deref() == Some(b.as_str()));
        let (events, on_b) = tokio::join!(post, on_b);
        anyhow::ensure!(events? == 1, "one event per hand-over");
        let on_b = on_b?;
        let applied = wait_for(&gateway, WITHIN, "B's event", |s| s.last_seq == before + 1).await?;
        to_stream.push((on_b - killed).as_secs_f64() * 1000.0);
        to_event.push((applied - killed).as_secs_f64() * 1000.0);
        let restarted = Instant::now();
        replicas.restart_a()?;
        let home = wait_for(&gateway, WITHIN, "back on A", |s| s.connected && s.control_url.as_deref() == Some(a.as_str())).await?;
        back.push((home - restarted).as_secs_f64() * 1000.0);
    }
    let state = gateway.stream_state().borrow().clone();
    anyhow::ensure!(
        state.last_seq == u64::from(trials) && state.updates_applied == u64::from(trials),
        "missed or repeated events: {state:?}"
    );
    println!("{trials} trials, {} events, each applied once (last_seq {}, applied {})", trials, state.last_seq, state.updates_applied);
    summary("SIGKILL of A -> gateway streaming from B", to_stream);
    summary("SIGKILL of A -> the event posted to B applied by the gateway", to_event);
    summary("A restarted -> gateway streaming from A again (prefer_primary_after_ms = 300)", back);
    Ok(())
}
