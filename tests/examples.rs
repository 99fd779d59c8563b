//! The embedding examples of the device and assistant crates, run as the
//! programs they are: the device example waits on a loopback port, the
//! assistant example enrolls it from a label file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use end_to_end_tests::{DeviceAgent, METER_ID, SP, binary, label, manufacturer};
use enrollment_apps::WIFI_METER;

/// `cargo test` builds every example into `target/<profile>/examples/`.
fn example(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let bin = binary("device-agent")?;
    let path = bin.parent().context("no folder")?.join("examples").join(name);
    anyhow::ensure!(path.exists(), "{} is not built: `cargo test --workspace` builds the examples", path.display());
    Ok(path)
}

#[test]
fn the_assistant_example_enrolls_the_device_example_from_a_label_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("acme.pub.json");
    manufacturer().public_to_file(&key)?;
    let text = qr_packer::SignedPayload::from_bytes(label(&WIFI_METER, METER_ID).signed_bytes().to_vec()).to_text();
    let label_file = dir.path().join("label.txt");
    std::fs::write(&label_file, text)?;
    let store = dir.path().join("device.sqlite");

    let mut device = Command::new(example("device")?)
        .arg(&store)
        .args([METER_ID, "wifi"])
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the device example")?;
    let mut lines = BufReader::new(device.stdout.take().context("no stdout")?).lines();
    let first = lines.next().context("the device example printed nothing")??;
    let addr = first.strip_prefix("listening on ").with_context(|| format!("unexpected line: {first}"))?.to_owned();

    let assistant = Command::new(example("assistant")?)
        .arg(&label_file)
        .arg(&key)
        .args([addr.as_str(), SP])
        .output()
        .context("running the assistant example")?;
    let said = String::from_utf8_lossy(&assistant.stdout);
    assert!(assistant.status.success(), "{said}{}", String::from_utf8_lossy(&assistant.stderr));
    let expected = format!("{SP}/wifi/{METER_ID}");
    assert!(said.contains(&format!("enrolled {expected}")), "{said}");

    let done = lines.next().context("the device example stopped without a word")??;
    assert!(done.starts_with(&format!("enrolled {expected}")), "{done}");
    for _ in 0..100 {
        if device.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = device.kill();
    let state = DeviceAgent::show(&store, METER_ID)?;
    assert_eq!(state["sp_bound_id"], expected.as_str());
    assert_eq!(state["sealed"], true);
    Ok(())
}

#[test]
fn demo_help_explains_itself_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--help", "-h"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo")).arg(flag).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("demo [OUT_DIR]"));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo")).arg("--fast").current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("demo takes no flags"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no folder named after a flag");
}
