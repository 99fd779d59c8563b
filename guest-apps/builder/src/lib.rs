//! Builds the two halves of an enrollment app, in-process and with no tool
//! but cargo: the nested `cargo build --release --target wasm32-unknown-unknown`
//! with an environment that cannot skew it, and the componentizing of each
//! core module with `wit-component`.
//!
//! Used by `guest-apps/build.rs` for the reference apps and by
//! `qr-packer build` for anyone's app, so both build a half the same way.

mod canonical;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use wasmparser::{BinaryReader, Export};

/// The target every half is built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("running {command}: {cause}")]
    Spawn { command: String, cause: std::io::Error },
    #[error("building the halves failed ({status}):\n  {command}\n---- cargo's output ----\n{stderr}---- end of cargo's output ----")]
    Cargo { command: String, status: String, stderr: String },
    #[error("the core module is not valid WebAssembly: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    #[error("componentizing: {0:#}")]
    Componentize(String),
}

/// What a finished nested build printed besides its artifacts: warnings.
pub struct Built {
    pub warnings: Vec<String>,
}

/// Runs `cargo build --release --target wasm32-unknown-unknown` in
/// `workspace`.
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
pub fn cargo_build(cargo: Option<OsString>, workspace: &Path, target_dir: Option<&Path>, locked: bool) -> Result<Built, BuildError> {
    let cargo = cargo.unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args(["build", "--release", "--quiet", "--color=never", "--target", TARGET]);
    if locked {
        cmd.arg("--locked");
    }
    if let Some(dir) = target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    for (key, _) in std::env::vars_os() {
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

    let command = format!("{cmd:?}");
    let output = cmd.output().map_err(|cause| BuildError::Spawn { command: command.clone(), cause })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(BuildError::Cargo { command, status: output.status.to_string(), stderr });
    }
    // With `--quiet` only diagnostics are left: the halves' warnings.
    Ok(Built { warnings: stderr.lines().filter(|line| !line.trim().is_empty()).map(String::from).collect() })
}

/// Encodes a core module built with `wit_bindgen::generate!` as a component,
/// without the exports nothing uses (see the top of this file).
///
/// Every byte of a component counts towards the QR code the signed pair has
/// to fit, so the exports the linker adds to the core module and no
/// component uses are dropped first: `__heap_base` and `__data_end` (rustc
/// exports them for wasm32-unknown-unknown tooling) and wit-bindgen's
/// versioned `cabi_realloc_wit_bindgen_*` (the component uses
/// `cabi_realloc`). Before that, the module gets every import of its world
/// in the world's order (this crate's private `canonical` module), so every
/// app of a world has the component structure of the dictionary seeds. Custom sections are kept
/// (but for the `name` section, whose indices would be stale): removing them
/// is the packer's step, not the build's.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, BuildError> {
    let core = canonical::with_whole_world(core);
    let core = drop_exports(&core, |name| {
        matches!(name, "__heap_base" | "__data_end") || name.starts_with("cabi_realloc_wit_bindgen_")
    })?;
    let encode = || -> Result<Vec<u8>, String> {
        wit_component::ComponentEncoder::default()
            .validate(true)
            .module(&core)
            .map_err(|e| format!("{e:#}"))?
            .encode()
            .map_err(|e| format!("{e:#}"))
    };
    encode().map_err(BuildError::Componentize)
}

const EXPORT_SECTION: u8 = 7;

/// Copies a core module without the exports `drop` picks.
fn drop_exports(module: &[u8], drop: impl Fn(&str) -> bool) -> Result<Vec<u8>, BuildError> {
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
fn sections(wasm: &[u8]) -> Result<(&[u8], Vec<Section<'_>>), BuildError> {
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

