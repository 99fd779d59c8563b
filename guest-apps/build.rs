//! Builds the guest halves and operational apps in `apps/` and turns each
//! into a component.
//!
//! The halves are `no_std` crates for `wasm32-unknown-unknown` with a release
//! profile tuned for size, so they live in a cargo workspace of their own
//! (`apps/`, excluded from the main one). This script runs the nested build
//! with a target dir shared by the workspace (`<target>/guest-apps`) and
//! componentizes each core module, both with `enrollment-builder` (the same
//! code `qr-packer build` uses for anyone's app), and writes to `OUT_DIR`
//! `<app>-<half>.wasm` (the component) and `<app>-<half>.core.wasm` (the core
//! module as the compiler produced it), for `src/lib.rs` to include. An
//! operational app (world `operational`) is built the same way, as the
//! "half" `operational` of the apps in [`OPERATIONAL`]: the world of a
//! component is the one its bindings were generated for.

use anyhow::{Context, Result};
use enrollment_builder::{TARGET, cargo_build, componentize};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The apps, by directory under `apps/`; each has a `phone` and a `device` crate
/// named `<app>-phone` and `<app>-device`.
const APPS: &[&str] = &[
    "wifi-meter",
    "zigbee-sensor",
    "ethernet-controller",
    "ble-lock",
    "bench-thread-plug",
    "bench-lorawan-sensor",
    "bench-cellular-tracker",
    "seed-full",
    "seed-template",
];
const HALVES: &[&str] = &["phone", "device"];
/// The apps that also have an operational app, the crate `<app>-operational`
/// (the dictionary seed has one too).
const OPERATIONAL: &[&str] = &["wifi-meter", "zigbee-sensor", "seed-full"];

fn main() {
    if let Err(error) = run() {
        // The chain of contexts, not the backtrace anyhow captures under
        // `RUST_BACKTRACE`, which would bury the nested build's errors.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?);

    // Not `apps/` as a whole: a stray `apps/target` would trigger reruns.
    for path in ["build.rs", "apps/Cargo.toml", "apps/Cargo.lock", "apps/.cargo/config.toml", "sdk/src", "sdk/Cargo.toml", "../wit"]
    {
        println!("cargo:rerun-if-changed={path}");
    }
    for app in APPS {
        println!("cargo:rerun-if-changed=apps/{app}");
    }

    // One nested target dir for the whole workspace target (not one per
    // OUT_DIR): `cargo build`, `cargo test` and `cargo bench` each get their
    // own OUT_DIR, and would otherwise rebuild the guests from scratch each.
    // Cargo locks the nested dir, so concurrent builds take turns.
    let target_dir = shared_target_dir(&out_dir).unwrap_or_else(|| out_dir.join("apps-target"));
    let built = cargo_build(env::var_os("CARGO"), &manifest_dir.join("apps"), Some(&target_dir), true)?;
    for line in built.warnings {
        println!("cargo:warning={line}");
    }

    let built = target_dir.join(TARGET).join("release");
    let halves = APPS.iter().flat_map(|app| HALVES.iter().map(move |half| (app, half)));
    let operational = OPERATIONAL.iter().map(|app| (app, &"operational"));
    for (app, half) in halves.chain(operational) {
        let name = format!("{app}-{half}");
        let core_path = built.join(format!("{}.wasm", name.replace('-', "_")));
        let core = fs::read(&core_path).with_context(|| format!("reading {}", core_path.display()))?;
        let component = componentize(&core).with_context(|| format!("componentizing {}", core_path.display()))?;
        fs::write(out_dir.join(format!("{name}.core.wasm")), &core)?;
        fs::write(out_dir.join(format!("{name}.wasm")), &component)?;
    }
    Ok(())
}

/// `<workspace target>/guest-apps`, found from `OUT_DIR`
/// (`<target>/<profile>/build/<pkg>-<hash>/out`, or with a target triple
/// folder in between when cross-compiling).
fn shared_target_dir(out_dir: &Path) -> Option<PathBuf> {
    let build = out_dir.ancestors().find(|p| p.file_name().is_some_and(|n| n == "build"))?;
    let profile = build.parent()?;
    let mut target = profile.parent()?;
    if target.join("CACHEDIR.TAG").exists() || target.join(".rustc_info.json").exists() {
        return Some(target.join("guest-apps"));
    }
    target = target.parent()?;
    Some(target.join("guest-apps"))
}
