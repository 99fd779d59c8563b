//! An app author's path, with the built `qr-packer` only: `new` in an empty
//! folder outside the workspace, `build`, `simulate`, `keygen`, `pack`, and
//! a real `device-agent` enrolled with the label. Plus the refusals an
//! author meets on the way, with their exact words.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context;
use end_to_end_tests::{DeviceAgent, binary};

fn qr_packer(args: &[&str], dir: &Path) -> anyhow::Result<Output> {
    Command::new(binary("qr-packer")?).args(args).current_dir(dir).output().context("running qr-packer")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A new app in a fresh temporary folder (outside the workspace).
fn new_app(access: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    new_app_with(access, &[])
}

fn new_app_with(access: &str, extra: &[&str]) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let root = tempfile::tempdir()?;
    let app = root.path().join("smart-plug");
    let mut args = vec!["new", app.to_str().context("utf-8 path")?, "--access", access];
    args.extend(extra);
    let out = qr_packer(&args, root.path())?;
    anyhow::ensure!(out.status.success(), "new: {}", text(&out));
    Ok((root, app))
}

#[test]
fn from_an_empty_folder_to_an_enrolled_device_agent() -> anyhow::Result<()> {
    let (root, app) = new_app("thread")?;
    let out = qr_packer(&["build", "."], &app)?;
    assert!(out.status.success(), "build: {}", text(&out));
    assert!(text(&out).contains("within every runtime limit"), "{}", text(&out));
    assert!(app.join("target/enrollment/phone.wasm").exists());

    let out = qr_packer(&["simulate", "."], &app)?;
    assert!(out.status.success(), "simulate: {}", text(&out));
    let said = text(&out);
    assert!(said.contains("device half staged   thread network credentials"), "{said}");
    assert!(said.contains("enrolled, as simulate.toml expects"), "{said}");

    let out = qr_packer(&["keygen", "--kid", "plug-maker-1", "--out", "maker.key"], root.path())?;
    assert!(out.status.success(), "keygen: {}", text(&out));
    let device_id = "00-0D-6F-FF-FE-00-00-01";
    let phone = app.join("target/enrollment/phone.wasm");
    let device = app.join("target/enrollment/device.wasm");
    let out = qr_packer(
        &[
            "pack", "--phone", phone.to_str().context("utf-8")?, "--device", device.to_str().context("utf-8")?,
            "--key", "maker.key", "--app-id", "smart-plug", "--app-version", "1.0.0", "--manufacturer", "Plug Maker",
            "--product", "Plug P1", "--access", "thread", "--device-id", device_id, "--out-dir", "labels",
        ],
        root.path(),
    )?;
    assert!(out.status.success(), "pack: {}", text(&out));

    // A real device agent that trusts the maker's key, enrolled with the
    // label by the scenario's fake assistant.
    let agent = DeviceAgent::spawn_trusting(
        &root.path().join("plug.sqlite"),
        device_id,
        "thread",
        &root.path().join("maker.pub.json"),
    )?;
    let label = root.path().join(format!("labels/{device_id}.txt"));
    let out = qr_packer(
        &[
            "simulate", label.to_str().context("utf-8")?, "--trusted", "maker.pub.json", "--config",
            app.join("simulate.toml").to_str().context("utf-8")?, "--device", &agent.addr.to_string(),
        ],
        root.path(),
    )?;
    assert!(out.status.success(), "simulate --device: {}", text(&out));
    let state = DeviceAgent::show(&agent.db, device_id)?;
    assert_eq!(state["sp_bound_id"], format!("sp.example/thread/{device_id}").as_str());
    assert_eq!(state["sealed"], true);
    Ok(())
}

#[test]
fn an_app_with_an_operational_app_builds_and_packs_all_three() -> anyhow::Result<()> {
    let (root, app) = new_app_with("wifi", &["--operational"])?;
    let manifest = std::fs::read_to_string(app.join("Cargo.toml"))?;
    assert!(manifest.contains(r#"members = ["phone", "device", "operational"]"#), "{manifest}");

    // Left out of the workspace's members, it is not built: said so.
    std::fs::write(app.join("Cargo.toml"), manifest.replace(r#", "operational"]"#, "]"))?;
    let out = qr_packer(&["build", "."], &app)?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("operational/ was not built: add it to the workspace members"), "{}", text(&out));

    std::fs::write(app.join("Cargo.toml"), manifest)?;
    let out = qr_packer(&["build", "."], &app)?;
    let said = text(&out);
    assert!(out.status.success(), "build: {said}");
    assert!(said.contains("the halves and the operational app are components of their worlds"), "{said}");
    assert!(said.contains("operational, stripped"), "{said}");
    let operational = app.join("target/enrollment/operational.wasm");
    assert!(operational.exists());

    let out = qr_packer(&["keygen", "--kid", "meter-maker-1", "--out", "maker.key"], root.path())?;
    assert!(out.status.success(), "keygen: {}", text(&out));
    let (phone, device) = (app.join("target/enrollment/phone.wasm"), app.join("target/enrollment/device.wasm"));
    // Within pack's default --max-version: the shipped dictionary knows world `operational`.
    let out = qr_packer(
        &[
            "pack", "--phone", phone.to_str().context("utf-8")?, "--device", device.to_str().context("utf-8")?,
            "--operational", operational.to_str().context("utf-8")?, "--key", "maker.key", "--app-id", "meter",
            "--app-version", "1.0.0", "--manufacturer", "Meter Maker", "--product", "Meter M1", "--access", "wifi",
            "--device-id", "AC-DE-48-00-00-01", "--out-dir", "labels",
        ],
        root.path(),
    )?;
    assert!(out.status.success(), "pack: {}", text(&out));
    Ok(())
}

#[test]
fn a_protocol_mismatch_is_shown_with_the_last_steps_of_each_half() -> anyhow::Result<()> {
    let (_root, app) = new_app("wifi")?;
    // The device half wants the owner first; the phone half offers the network first.
    let device = app.join("device/src/lib.rs");
    let source = std::fs::read_to_string(&device)?;
    let swapped = source.replacen("device::expect(&Item::Network)", "device::expect(&Item::Owner)", 1);
    std::fs::write(&device, swapped)?;
    let out = qr_packer(&["simulate", "."], &app)?;
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("the enrollment failed: device: the device half reported failure"), "{said}");
    assert!(said.contains("last of the phone half:"), "{said}");
    assert!(said.contains("last of the device half:"), "{said}");
    assert!(said.contains("device half received network credentials"), "{said}");
    assert!(said.contains("nothing committed: the device is as it was"), "{said}");
    assert!(said.contains("expected the enrollment to be enrolled, it was refused"), "{said}");
    Ok(())
}

#[test]
fn build_refuses_a_half_over_the_memory_cap_before_anything_is_signed() -> anyhow::Result<()> {
    let (_root, app) = new_app("wifi")?;
    // Without the template's linker flags Rust reserves a 1 MiB stack.
    std::fs::write(app.join(".cargo/config.toml"), "[build]\ntarget = \"wasm32-unknown-unknown\"\n")?;
    let out = qr_packer(&["build", "."], &app)?;
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("half's core module asks for"), "{said}");
    assert!(said.contains("bytes of initial linear memory; the runtime's cap is 131072"), "{said}");
    assert!(!app.join("target/enrollment/phone.wasm").exists() || !app.join("target/enrollment/device.wasm").exists());
    Ok(())
}

#[test]
fn new_refuses_a_folder_that_is_not_empty() -> anyhow::Result<()> {
    let (root, app) = new_app("ble")?;
    let out = qr_packer(&["new", app.to_str().context("utf-8")?, "--access", "ble"], root.path())?;
    assert!(!out.status.success());
    assert!(text(&out).contains("exists and is not empty: give `qr-packer new` a new folder"), "{}", text(&out));
    // A BLE app hands over no network.
    let phone = std::fs::read_to_string(app.join("phone/src/lib.rs"))?;
    assert!(!phone.contains("offer::network"), "{phone}");
    Ok(())
}
