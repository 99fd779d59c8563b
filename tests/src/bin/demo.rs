//! The enrollment demo, end to end, with real processes on loopback:
//! control server (SQLite), two SP networks, a device agent per reference
//! app, a gateway. Labels are packed by `qr-packer` and left in `out/labels`;
//! both devices are enrolled from the label images; then SP 1 hands the
//! meter to SP 2 with a signed unsolicited update and the new identifier
//! shows on the gateway and on the device. The meter's label also carries
//! its operational app: its readings are verified at SP 1, then, after the
//! hand-over, at SP 2 and no more at SP 1, and SP 2 changes its reporting
//! interval with a signed command.
//!
//! `demo [OUT_DIR]` (default `out`). Every child process is killed on exit
//! and on Ctrl-C.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use end_to_end_tests::system::{DEVICES, SP_ONE, SP_TWO, System};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1);
    if let Some(flag) = arg.as_deref().filter(|a| a.starts_with('-')) {
        if flag == "-h" || flag == "--help" {
            println!("demo [OUT_DIR]: the whole enrollment system on loopback, state and labels in OUT_DIR (default out)");
            return Ok(());
        }
        anyhow::bail!("{flag}: demo takes no flags, only the output folder (demo [OUT_DIR]; demo --help)");
    }
    let out = arg.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("out"));
    if out.join("state").exists() {
        std::fs::remove_dir_all(out.join("state")).context("clearing the previous run's state")?;
    }
    tokio::select! {
        result = demo(&out) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ninterrupted; stopping every process");
            Ok(())
        }
    }
}

async fn demo(out: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut step = 0;
    let mut say = |text: &str| {
        step += 1;
        println!("{step:>2}. {text}");
    };
    say(&format!("starting the system in {}", out.display()));
    let mut system = System::start(out, &mut say).await?;
    // The meter runs its operational app after enrollment; the demo wakes
    // it every second (the app asks for 60 s).
    let meter = DEVICES[0].device_id;
    system.restart_agent_with(meter, &["--max-wake-ms".to_string(), "1000".into()])?;
    let meter_label = system.pack_operational_label(meter)?;

    for d in &DEVICES {
        let t = Instant::now();
        let (report, from) = if d.device_id == meter {
            let addr = system.agent(meter)?.1.addr;
            (system.enroll_text(&meter_label, addr).await?, format!("{}-op.txt (with its operational app)", d.app))
        } else {
            (system.enroll_from_label(d.device_id).await.with_context(|| format!("enrolling {}", d.device_id))?, format!("{}.png", d.app))
        };
        let tm = &report["timings"];
        say(&format!(
            "enrolled {} from {} in {:.1} ms (label {:.1}, halves {:.1} incl. control server {:.1}, SP relay {:.1}, device commit {:.1})",
            d.device_id,
            from,
            t.elapsed().as_secs_f64() * 1e3,
            ms(&tm["decode_verify_us"]),
            ms(&tm["run_us"]),
            ms(&tm["control_server_us"]),
            ms(&tm["relay_us"]),
            ms(&tm["commit_us"]),
        ));
        println!("      SP-bound identifier: {}", report["identifier"].as_str().unwrap_or("?"));
        println!("      public key:          {}", report["public_key"].as_str().unwrap_or("?"));
    }
    let reported = system.sp_devices(&system.sp_one).await?;
    say(&format!("{SP_ONE} has recorded {} device(s): {}", count(&reported), identifiers(&reported)));

    let old_id = format!("{SP_ONE}/{}/{meter}", DEVICES[0].access);
    let readings = wait_for_readings(&system, &system.sp_one, &old_id, 2).await?;
    say(&format!("{SP_ONE} verified {} readings from {meter} (signed by the device's key): {}", readings.len(), bodies(&readings)));

    let t = Instant::now();
    let ack = system.hand_over(&[meter])?;
    say(&format!("{SP_ONE} hands {meter} to {SP_TWO} (signed unsolicited update): {}", ack.trim()));
    let expected = format!("{SP_TWO}/{}/{meter}", DEVICES[0].access);
    let (gw, dev) = system.wait_for_identifier(meter, &expected, Duration::from_secs(30)).await?;
    say(&format!("pushed to the gateway and re-bound on the device in {:.1} ms", t.elapsed().as_secs_f64() * 1e3));
    println!("      gateway: {}", gw["identifier"].as_str().unwrap_or("?"));
    println!("      device:  {} (generation {})", dev["sp_bound_id"].as_str().unwrap_or("?"), dev["generation"]);
    println!(
        "      device's SP: {} (key {}…, from the control server)",
        dev["sp_endpoint"].as_str().unwrap_or("?"),
        dev["sp_public_key"].as_str().and_then(|k| k.get(..16)).unwrap_or("?")
    );
    let at_one = readings_from(&system, &system.sp_one, &old_id).await?.len();
    let at_two = wait_for_readings(&system, &system.sp_two, &expected, 2).await?;
    let at_one_now = readings_from(&system, &system.sp_one, &old_id).await?.len();
    say(&format!(
        "{SP_TWO} now verifies the meter's readings ({}); {SP_ONE} got {} more after the hand-over",
        bodies(&at_two),
        at_one_now.saturating_sub(at_one)
    ));
    system.sp_command(&system.sp_two, &expected, "interval=5").await?;
    let t = Instant::now();
    loop {
        let state = system.device_state(meter)?;
        if state["operational"]["kept"]["interval"] == "5" {
            say(&format!(
                "{SP_TWO} set the reporting interval to 5 s with a signed command; the device verified it with {SP_TWO}'s key and applied it in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the device did not apply the interval: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other = DEVICES[1].device_id;
    let unchanged = system.gateway_device(other).await?;
    println!("      {other} stays {}", unchanged["identifier"].as_str().unwrap_or("?"));

    say(&format!(
        "done in {:.1} s; labels in {}, logs in {}",
        started.elapsed().as_secs_f64(),
        system.paths.root.join("labels").display(),
        system.paths.root.join("logs").display()
    ));
    Ok(())
}

async fn readings_from(system: &System, sp: &end_to_end_tests::system::Service, id: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(system.sp_messages(sp).await?.into_iter().filter(|m| m["identifier"] == id).collect())
}

async fn wait_for_readings(
    system: &System,
    sp: &end_to_end_tests::system::Service,
    id: &str,
    n: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let t = Instant::now();
    loop {
        let got = readings_from(system, sp, id).await?;
        if got.len() >= n {
            return Ok(got);
        }
        if t.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("{id}: {} of {n} readings at {}", got.len(), sp.url());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bodies(messages: &[serde_json::Value]) -> String {
    messages.iter().rev().take(2).rev().filter_map(|m| m["body"].as_str()).collect::<Vec<_>>().join("; ")
}

fn ms(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / 1e3
}

fn count(v: &serde_json::Value) -> usize {
    v.as_array().map(Vec::len).unwrap_or(0)
}

fn identifiers(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| a.iter().filter_map(|d| d["identifier"].as_str()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
