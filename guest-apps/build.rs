//! Builds the guest halves in `apps/` and turns each into a component.
//!
//! The halves are `no_std` crates for `wasm32-unknown-unknown` with a release
//! profile tuned for size, so they live in a cargo workspace of their own
//! (`apps/`, excluded from the main one). This script runs a nested
//! `cargo build --release --target wasm32-unknown-unknown --locked` there, with
//! a target dir shared by the workspace (`<target>/guest-apps`), then encodes each core module as a component
//! with `wit-component` (no external tools needed) and writes to `OUT_DIR`
//! `<app>-<half>.wasm` (the component) and `<app>-<half>.core.wasm` (the core
//! module as the compiler produced it), for `src/lib.rs` to include.
//!
//! Every byte of a component counts towards the QR code the signed pair has to
//! fit, so before encoding, the exports the linker adds to the core module and
//! no component uses are dropped: `__heap_base` and `__data_end` (rustc exports
//! them for wasm32-unknown-unknown tooling) and wit-bindgen's versioned
//! `cabi_realloc_wit_bindgen_*` (a `#[no_mangle]` function, so a cdylib exports
//! it; the component uses `cabi_realloc`). That is about 60 bytes per half.
//! Custom sections (`component-name`, `producers`: some 2.3 KB per half) are
//! kept: removing them is the QR packer's step, not the build's.

use anyhow::{Context, Result, bail};
use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasmparser::{BinaryReader, Export};

/// The apps, by directory under `apps/`; each has a `phone` and a `device` crate
/// named `<app>-phone` and `<app>-device`.
const APPS: &[&str] = &["wifi-meter", "zigbee-sensor", "ethernet-controller", "ble-lock"];
const HALVES: &[&str] = &["phone", "device"];
const TARGET: &str = "wasm32-unknown-unknown";

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
    for path in ["build.rs", "apps/Cargo.toml", "apps/Cargo.lock", "apps/.cargo/config.toml", "apps/support", "../wit"]
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
    build_guests(&manifest_dir.join("apps"), &target_dir)?;

    let built = target_dir.join(TARGET).join("release");
    for app in APPS {
        for half in HALVES {
            let name = format!("{app}-{half}");
            let core_path = built.join(format!("{}.wasm", name.replace('-', "_")));
            let core = fs::read(&core_path).with_context(|| format!("reading {}", core_path.display()))?;
            let component = componentize(&core).with_context(|| format!("componentizing {}", core_path.display()))?;
            fs::write(out_dir.join(format!("{name}.core.wasm")), &core)?;
            fs::write(out_dir.join(format!("{name}.wasm")), &component)?;
        }
    }
    Ok(())
}

/// Runs the nested cargo build of the `apps` workspace.
///
/// The environment cargo gives a build script would break or skew that build,
/// so the variables that steer compilation are removed:
/// - `CARGO_ENCODED_RUSTFLAGS` (always set, if only to empty) and `RUSTFLAGS`
///   would replace the `rustflags` of `apps/.cargo/config.toml` (the stack size
///   and memory limits), and a host build's flags (coverage, sanitizers, `-C
///   target-cpu=native`) make no sense for wasm32;
/// - `CARGO_TARGET_*`, `CARGO_BUILD_*` and `CARGO_PROFILE_*` would move the
///   output or override the size-tuned profile; `CARGO_INCREMENTAL` likewise;
/// - `RUSTC_WORKSPACE_WRAPPER` is `clippy-driver` under `cargo clippy`;
/// - the jobserver (`CARGO_MAKEFLAGS`, `MAKEFLAGS`, `MFLAGS`): the nested build
///   runs its own rather than depend on inherited file descriptors.
///
/// `RUSTC` is kept, so the guests are built by the same compiler as the host
/// crates, and so are `RUSTC_WRAPPER` (e.g. sccache) and `CARGO_HOME`.
fn build_guests(apps: &Path, target_dir: &Path) -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(apps)
        .args(["build", "--release", "--locked", "--quiet", "--color=never", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let remove = matches!(
            key,
            "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTFLAGS"
                | "CARGO_INCREMENTAL"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_MAKEFLAGS"
                | "MAKEFLAGS"
                | "MFLAGS"
        ) || ["CARGO_TARGET_", "CARGO_BUILD_", "CARGO_PROFILE_"].iter().any(|p| key.starts_with(p));
        if remove {
            cmd.env_remove(key);
        }
    }

    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "building the guest apps failed ({}):\n  {cmd:?}\n\
             ---- nested cargo stderr ----\n{stderr}---- end of nested cargo stderr ----",
            output.status
        );
    }
    // With `--quiet` only diagnostics are left: surface the guests' warnings.
    for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
        println!("cargo:warning={line}");
    }
    Ok(())
}

/// Encodes a core module built with `wit_bindgen::generate!` as a component,
/// without the exports nothing uses (see the top of this file).
fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    let core = drop_exports(core, |name| {
        matches!(name, "__heap_base" | "__data_end") || name.starts_with("cabi_realloc_wit_bindgen_")
    })?;
    wit_component::ComponentEncoder::default().validate(true).module(&core)?.encode()
}

const EXPORT_SECTION: u8 = 7;

/// Copies a core module without the exports `drop` picks.
fn drop_exports(module: &[u8], drop: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let (preamble, sections) = sections(module)?;
    let mut out = preamble.to_vec();
    for (id, contents) in sections {
        if id != EXPORT_SECTION {
            push_section(&mut out, id, contents);
            continue;
        }
        let mut reader = BinaryReader::new(contents, 0);
        let (mut kept, mut count) = (Vec::new(), 0);
        for _ in 0..reader.read_var_u32()? {
            let start = reader.original_position() as usize;
            let export: Export = reader.read()?;
            if !drop(export.name) {
                kept.extend_from_slice(&contents[start..reader.original_position() as usize]);
                count += 1;
            }
        }
        let mut section = Vec::new();
        push_leb128(&mut section, count);
        section.extend(kept);
        push_section(&mut out, id, &section);
    }
    Ok(out)
}

/// A section of a core module: its id and contents.
type Section<'a> = (u8, &'a [u8]);

/// The preamble (magic and version) of a core module, and its sections.
fn sections(wasm: &[u8]) -> Result<(&[u8], Vec<Section<'_>>)> {
    let mut reader = BinaryReader::new(wasm, 0);
    let preamble = reader.read_bytes(8)?;
    let mut sections = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8()?;
        let len = reader.read_var_u32()? as usize;
        sections.push((id, reader.read_bytes(len)?));
    }
    Ok((preamble, sections))
}

fn push_section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    push_leb128(out, contents.len());
    out.extend_from_slice(contents);
}

fn push_leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
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
