//! The `device-agent` binary's own commands, run for real.

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_device-agent")).args(args).output().expect("device-agent runs")
}

#[test]
fn show_on_a_mistyped_path_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("meter.sqlit");
    let out = agent(&["show", "--db", missing.to_str().unwrap(), "--device-id", "AC-DE-48-00-00-80"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no device state file there; give the --db that `device-agent serve` was started with"), "{stderr}");
    assert!(!missing.exists(), "show must not create a store");
}

#[test]
fn show_of_a_device_not_in_the_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.sqlite");
    let store = enrollment_device::DeviceStore::open(&db).unwrap();
    store.provision("AC-DE-48-00-00-80".parse().unwrap(), enrollment_device::AccessTechnology::Wifi).unwrap();
    drop(store);
    let shown = agent(&["show", "--db", db.to_str().unwrap(), "--device-id", "AC-DE-48-00-00-80"]);
    assert!(shown.status.success());
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["sealed"], false);
    let other = agent(&["show", "--db", db.to_str().unwrap(), "--device-id", "AC-DE-48-00-00-81"]);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("device AC-DE-48-00-00-81 is not in"));
}
