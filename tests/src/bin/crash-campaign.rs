//! The crash campaign: SIGKILL the device agent, the gateway or the control
//! server in the middle of enrollments, restart it, and check that device,
//! gateway and SP agree about every device once the gateway's retry interval
//! has passed.
//!
//! ```text
//! crash-campaign [--trials N] [--seed S] [--out DIR]
//! ```
//!
//! Each trial enrolls one fleet device (a bound label per device, real
//! processes on loopback: control server, two sp-sim, a gateway, one
//! device-agent process serving the fleet on fixed ports) and kills one of
//! the three processes (in turn) after a random delay within the measured
//! length of an enrollment (half of them in its last quarter), so kills land
//! in every phase: before the relay, between relay and Commit, between
//! Commit and Committed, after.
//! The process is started again at once; the next trial goes on.
//!
//! After the last trial the campaign waits for the gateway to settle (no
//! enrollment in doubt), then checks each device:
//! * sealed on the device with key K ⇒ the gateway has it `enrolled` with K
//!   and the same identifier, and SP 1 holds K and no other key of it;
//! * not sealed ⇒ the gateway does not have it enrolled and SP 1 holds no key
//!   of it.
//!
//! It prints one line per trial and a summary; exits 1 on any disagreement.
//! `scripts/crash-campaign` runs it; CI runs a short campaign
//! (`tests/crash_campaign.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use end_to_end_tests::system::{STEP, System};
use rand::{Rng, SeedableRng};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    DeviceAgent,
    Gateway,
    ControlServer,
}

const VICTIMS: [Victim; 3] = [Victim::DeviceAgent, Victim::Gateway, Victim::ControlServer];

struct Options {
    trials: usize,
    seed: u64,
    out: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options { trials: 30, seed: 1, out: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--trials" => o.trials = value("--trials")?.parse().context("--trials takes a number")?,
            "--seed" => o.seed = value("--seed")?.parse().context("--seed takes a number")?,
            "--out" => o.out = Some(PathBuf::from(value("--out")?)),
            "-h" | "--help" => {
                println!("crash-campaign [--trials N (30)] [--seed S (1)] [--out DIR (a temporary folder)]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    if o.trials == 0 {
        bail!("--trials must be at least 1");
    }
    Ok(o)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let temp = tempfile::tempdir()?;
    let root = o.out.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let warm_up = 3;
    let mut system = System::start_with_fleet(&root, o.trials + warm_up, &mut |_| {}).await?;
    let labels_dir = system.pack_fleet_labels("wifi-meter")?;
    let mut labels = HashMap::new();
    for id in system.fleet_ids() {
        let text = std::fs::read_to_string(labels_dir.join(format!("{id}.txt")))
            .with_context(|| format!("the label of {id} in {}", labels_dir.display()))?;
        labels.insert(id, text.trim().to_string());
    }
    let base = free_port_range(system.fleet_ids().len() as u16)?;
    let listen = format!("127.0.0.1:{base}");
    let (mut agent, devices) = system.spawn_fleet_agent_at(&listen)?;
    let addr: HashMap<String, std::net::SocketAddr> = devices.into_iter().collect();
    let ids = system.fleet_ids();

    // How long an enrollment takes here, warm: the window the kills fall in.
    let mut lengths = Vec::new();
    for id in &ids[..warm_up] {
        let t = Instant::now();
        system.enroll_text(&labels[id], addr[id]).await.with_context(|| format!("warm-up enrollment of {id}"))?;
        lengths.push(t.elapsed());
    }
    lengths.sort();
    let window = lengths[lengths.len() / 2].mul_f64(1.2);
    println!("enrollment (warm, median of {warm_up}): {} ms; kills fall within {} ms", lengths[1].as_millis(), window.as_millis());

    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let mut outcomes: BTreeMap<(Victim, &'static str), usize> = BTreeMap::new();
    for (trial, id) in ids[warm_up..].iter().enumerate() {
        let victim = VICTIMS[trial % VICTIMS.len()];
        // Half the kills anywhere in the enrollment, half in its last
        // quarter (relay, Commit, Committed: the narrow window that leaves
        // an enrollment in doubt).
        let at = if rng.gen_bool(0.5) { rng.gen_range(0.0..1.0) } else { rng.gen_range(0.75..1.05) };
        let delay = window.mul_f64(at);
        let http = reqwest::Client::new();
        let url = format!("{}/v1/enroll", system.gateway.url());
        let body = serde_json::json!({ "label_text": labels[id], "device": addr[id] });
        let enrollment = tokio::spawn(async move {
            let answer = http
                .post(url)
                .bearer_auth(end_to_end_tests::system::GATEWAY_API_TOKEN)
                .json(&body)
                .timeout(STEP)
                .send()
                .await;
            match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (status, v["error"].as_str().unwrap_or(if status == 200 { "enrolled" } else { "?" }).to_string())
                }
                Err(_) => (0, "no answer (gateway killed)".to_string()),
            }
        });
        tokio::time::sleep(delay).await;
        match victim {
            Victim::DeviceAgent => {
                agent.kill();
                let (restarted, _) = system.spawn_fleet_agent_at(&listen)?;
                agent = restarted;
            }
            Victim::Gateway => system.restart_gateway()?,
            Victim::ControlServer => system.restart_control_server()?,
        }
        let (status, code) = enrollment.await.context("the enrollment task")?;
        let outcome: &'static str = match (status, code.as_str()) {
            (200, _) => "enrolled",
            (0, _) => "no answer",
            (504, _) => "in doubt",
            (_, "device_link_failed") => "link failed",
            (_, "control_server_failed") => "control server failed",
            (_, "device_unreachable") => "device unreachable",
            (_, "sp_unreachable") => "sp unreachable",
            // A half lost its peer, or resolve-sp its control server.
            (_, "app_failed") => "app failed",
            _ => "other failure",
        };
        *outcomes.entry((victim, outcome)).or_default() += 1;
        println!("trial {trial:>3}: {id} kill {victim:?} after {:>4} ms: {status} {code}", delay.as_millis());
    }

    // Settle: the gateway's retry interval (300 ms here) does it; wait until
    // nothing is in doubt.
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    loop {
        let notes = system.gateway_in_doubt().await?;
        if notes.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if Instant::now() > deadline {
            bail!("enrollments still in doubt after 60 s: {notes}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("nothing in doubt {} ms after the last trial", t.elapsed().as_millis());

    let reports = system.sp_devices(&system.sp_one).await?;
    let mut sp_keys: HashMap<String, Vec<String>> = HashMap::new();
    for r in reports.as_array().into_iter().flatten() {
        if let (Some(d), Some(k)) = (r["device_id"].as_str(), r["public_key"].as_str()) {
            let keys = sp_keys.entry(d.to_string()).or_default();
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
    }
    let (mut sealed, mut unsealed, mut disagreements) = (0, 0, Vec::new());
    for id in &ids {
        let device = system.fleet_device_state(id)?;
        let gateway = system.gateway_device(id).await?;
        let at_sp = sp_keys.get(id).cloned().unwrap_or_default();
        if device["sealed"] == true {
            sealed += 1;
            let key = device["public_key"].as_str().unwrap_or_default().to_string();
            let ok = gateway["state"] == "enrolled"
                && gateway["public_key"] == key
                && gateway["identifier"] == device["sp_bound_id"]
                && at_sp == vec![key.clone()];
            if !ok {
                disagreements.push(format!("{id}: device sealed with {key}; gateway {gateway}; SP keys {at_sp:?}"));
            }
        } else {
            unsealed += 1;
            if gateway["state"] == "enrolled" || !at_sp.is_empty() {
                disagreements.push(format!("{id}: device not enrolled; gateway {gateway}; SP keys {at_sp:?}"));
            }
        }
    }
    println!("\n{} trials (+{warm_up} warm-up), seed {}:", o.trials, o.seed);
    for ((victim, outcome), n) in &outcomes {
        println!("  kill {victim:?}: {outcome}: {n}");
    }
    let stats: Value = reqwest::get(format!("{}/admin/stats", system.sp_one.url())).await?.json().await?;
    println!("SP 1 was told to withdraw {} relayed keys that no device committed", stats["withdrawals"]);
    println!("devices: {sealed} enrolled, {unsealed} not enrolled; disagreements: {}", disagreements.len());
    for d in &disagreements {
        println!("  {d}");
    }
    drop(agent);
    if !disagreements.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// A loopback port `p` with `p .. p + count` all free now.
fn free_port_range(count: u16) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let first = probe.local_addr()?.port();
        drop(probe);
        if first.checked_add(count).is_none() {
            continue;
        }
        let free = (first..first + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(first);
        }
    }
    bail!("no {count} consecutive free loopback ports")
}
