//! The enrollment demo, end to end, with real processes on loopback:
//! control server (SQLite), two SP networks, a device agent per reference
//! app, a gateway. Labels are packed by `qr-packer` and left in `out/labels`;
//! both devices are enrolled from the label images; then SP 1 hands the
//! meter to SP 2 with a signed unsolicited update and the new identifier
//! shows on the gateway and on the device.
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
    let system = System::start(out, &mut say).await?;

    for d in &DEVICES {
        let t = Instant::now();
        let report = system.enroll_from_label(d.device_id).await.with_context(|| format!("enrolling {}", d.device_id))?;
        let tm = &report["timings"];
        say(&format!(
            "enrolled {} from {}.png in {:.1} ms (label {:.1}, halves {:.1} incl. control server {:.1}, SP relay {:.1}, device commit {:.1})",
            d.device_id,
            d.app,
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

    let meter = DEVICES[0].device_id;
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
