//! `qr-packer build DIR`: compiles both halves of an app for wasm32 (and its
//! operational app, if it has an `operational/` crate), componentizes them
//! in-process (`enrollment-builder`, the same code the product's reference
//! apps are built with), checks every runtime limit and the worlds before
//! anything is signed, writes the components and prints the size report
//! with the QR version the label would need.

use crate::stdout::{say, say_raw};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use qr_packer::check::{World, check_half, check_operational};
use qr_packer::report::{DEFAULT_MAX_VERSION, SizeReport, naive_size};
use qr_packer::{Dictionary, Ec, Halves, Manifest, ManufacturerKey, PreparedApp};

/// The SDK version this `qr-packer` writes with `new`.
const SDK_VERSION: &str = "0.2.0";

/// The components of a built app.
pub struct BuiltApp {
    pub phone: Vec<u8>,
    pub device: Vec<u8>,
    pub phone_path: PathBuf,
    pub device_path: PathBuf,
    /// The operational app and where it was written, if the app has one.
    pub operational: Option<(Vec<u8>, PathBuf)>,
}

/// Builds, componentizes and checks the app in `dir`.
pub fn build_app(dir: &Path) -> Result<BuiltApp> {
    for half in ["phone", "device"] {
        if !dir.join(half).join("Cargo.toml").exists() {
            bail!("{} has no {half}/Cargo.toml: `qr-packer build` expects the layout `qr-packer new` writes", dir.display());
        }
    }
    check_sdk(dir)?;
    let built = enrollment_builder::cargo_build(None, dir, None, false)?;
    for warning in built.warnings {
        eprintln!("{warning}");
    }
    let out = dir.join("target").join("enrollment");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let built_component = |crate_dir: &str, what: &str| -> Result<(Vec<u8>, PathBuf)> {
        let package = package_name(&dir.join(crate_dir).join("Cargo.toml"))?;
        let core_path = dir
            .join("target")
            .join(enrollment_builder::TARGET)
            .join("release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        if crate_dir == "operational" && !core_path.exists() {
            bail!(
                "operational/ was not built: add it to the workspace members in {}/Cargo.toml (members = [\"phone\", \"device\", \"operational\"])",
                dir.display()
            );
        }
        let core = std::fs::read(&core_path)
            .with_context(|| format!("reading {} (is {crate_dir}/Cargo.toml a cdylib?)", core_path.display()))?;
        let component = enrollment_builder::componentize(&core)
            .with_context(|| format!("componentizing the {what} ({})", core_path.display()))?;
        Ok((component, out.join(format!("{crate_dir}.wasm"))))
    };
    let write = |(component, path): &(Vec<u8>, PathBuf)| {
        std::fs::write(path, component).with_context(|| format!("writing {}", path.display()))
    };
    let mut halves = Vec::new();
    for (half, world) in [("phone", World::Phone), ("device", World::Device)] {
        let built = built_component(half, &format!("{half} half"))?;
        // Every runtime limit and the world, before anything is signed.
        check_half(&built.0, world)?;
        write(&built)?;
        halves.push(built);
    }
    let operational = if dir.join("operational").join("Cargo.toml").exists() {
        let built = built_component("operational", "operational app")?;
        check_operational(&built.0)?;
        write(&built)?;
        Some(built)
    } else {
        None
    };
    let (device, device_path) = halves.pop().context("two halves")?;
    let (phone, phone_path) = halves.pop().context("two halves")?;
    Ok(BuiltApp { phone, device, phone_path, device_path, operational })
}

/// The size report of a label for one device, packed with the shipped
/// dictionary and a throwaway key (signatures are all 64 bytes).
pub fn size_report(app: &BuiltApp, access: &str, device_id: &str, ec: Ec) -> Result<SizeReport> {
    let operational = app.operational.as_ref().map(|(component, _)| component.clone());
    let prepared =
        PreparedApp::prepare(Halves { phone: app.phone.clone(), device: app.device.clone(), operational }, &Dictionary::current())?;
    let manifest = Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: "size-report".into(),
        app_version: "0.1.0".into(),
        manufacturer: "size report".into(),
        product: "size report".into(),
        access: access.into(),
        capabilities: Vec::new(),
        device_id: Some(device_id.into()),
        one_time_secret: None,
        params: Default::default(),
    };
    let key = ManufacturerKey::generate("size-report")?;
    let signed = prepared.seal(&manifest, &key)?;
    Ok(SizeReport::new(&prepared, &signed, naive_size(&app.phone, &app.device), ec)?)
}

/// Prints what `build` did.
pub fn print(app: &BuiltApp, report: &SizeReport) {
    say!("built {} ({} bytes)", app.phone_path.display(), app.phone.len());
    say!("built {} ({} bytes)", app.device_path.display(), app.device.len());
    if let Some((component, path)) = &app.operational {
        say!("built {} ({} bytes)", path.display(), component.len());
        say!("the halves and the operational app are components of their worlds and within every runtime limit\n");
    } else {
        say!("both halves are components of their worlds and within every runtime limit\n");
    }
    say!("label for one device, shipped dictionary:");
    say_raw!("{}", report.table());
    match report.qr_version {
        Some(v) if v <= DEFAULT_MAX_VERSION => say!("fits QR version {v} at {:?} (pack's limit: {DEFAULT_MAX_VERSION})", report.ec),
        Some(v) => {
            let (part, bytes) = report.parts.largest();
            say!(
                "needs QR version {v} at {:?}, above pack's limit of {DEFAULT_MAX_VERSION}: the largest part is the {part} ({bytes} bytes compressed)",
                report.ec
            );
        }
        None => say!("too large for any QR version at {:?}", report.ec),
    }
}

fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(String::from)
        .with_context(|| format!("{} names no package", manifest.display()))
}

/// An app made by an older `qr-packer new` carries an older SDK: say so
/// before the build fails on a WIT it does not speak.
fn check_sdk(dir: &Path) -> Result<()> {
    let manifest = dir.join("sdk").join("Cargo.toml");
    if !manifest.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let version = value.get("package").and_then(|p| p.get("version")).and_then(|v| v.as_str()).unwrap_or("");
    if version != SDK_VERSION {
        bail!(
            "{} is the guest SDK {version}; this qr-packer builds with SDK {SDK_VERSION} (WIT iot-enroll:enrollment@{SDK_VERSION}): \
             replace the sdk folder with the one `qr-packer new` writes",
            manifest.display()
        );
    }
    Ok(())
}
