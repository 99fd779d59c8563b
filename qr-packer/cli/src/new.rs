//! `qr-packer new DIR --access TECH`: a complete two-half app from the
//! template, with the guest SDK and the WIT this `qr-packer` ships, so a
//! third party needs nothing from this repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sp_bound_id::AccessTechnology;

/// The template (`qr-packer/template/`), the SDK (`guest-apps/sdk/`) and
/// the contract (`wit/`), as this build of `qr-packer` ships them.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../template/Cargo.toml")),
    (".cargo/config.toml", include_str!("../../template/.cargo/config.toml")),
    ("rust-toolchain.toml", include_str!("../../template/rust-toolchain.toml")),
    ("simulate.toml", include_str!("../../template/simulate.toml")),
    (".gitignore", include_str!("../../template/.gitignore")),
    ("README.md", include_str!("../../template/README.md")),
    ("phone/Cargo.toml", include_str!("../../template/phone/Cargo.toml")),
    ("phone/src/lib.rs", include_str!("../../template/phone/src/lib.rs")),
    ("device/Cargo.toml", include_str!("../../template/device/Cargo.toml")),
    ("device/src/lib.rs", include_str!("../../template/device/src/lib.rs")),
    ("sdk/Cargo.toml", include_str!("../../../guest-apps/sdk/Cargo.toml")),
    ("sdk/src/lib.rs", include_str!("../../../guest-apps/sdk/src/lib.rs")),
    ("sdk/src/record.rs", include_str!("../../../guest-apps/sdk/src/record.rs")),
    ("sdk/src/rt.rs", include_str!("../../../guest-apps/sdk/src/rt.rs")),
    ("sdk/src/text.rs", include_str!("../../../guest-apps/sdk/src/text.rs")),
    ("sdk/wit/enrollment.wit", include_str!("../../../wit/enrollment.wit")),
];

/// The operational app's crate, written with `--operational`.
const OPERATIONAL_FILES: &[(&str, &str)] = &[
    ("operational/Cargo.toml", include_str!("../../template/operational/Cargo.toml")),
    ("operational/src/lib.rs", include_str!("../../template/operational/src/lib.rs")),
];

/// The template's workspace members, and with an operational app.
const MEMBERS: &str = r#"members = ["phone", "device"]"#;
const MEMBERS_WITH_OPERATIONAL: &str = r#"members = ["phone", "device", "operational"]"#;

/// The toolchain the product is built and tested with.
const TOOLCHAIN: &str = "1.95.0";

/// Writes a new app into `dir` (which must not exist or be empty); with
/// `operational`, an operational app too (`operational/`, a third member of
/// the app's workspace, which `qr-packer build` then builds).
pub fn new_app(
    dir: &Path,
    access: AccessTechnology,
    name: Option<&str>,
    device_id: Option<&str>,
    operational: bool,
) -> Result<PathBuf> {
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} exists and is not empty: give `qr-packer new` a new folder", dir.display());
    }
    let name = match name {
        Some(name) => name.to_string(),
        None => dir.file_name().and_then(|n| n.to_str()).context("give --name: the folder has no usable name")?.into(),
    };
    let name = crate_name(&name)?;
    let device_id = device_id.unwrap_or(match access {
        AccessTechnology::Zigbee | AccessTechnology::Thread | AccessTechnology::Lorawan => "00-0D-6F-FF-FE-00-00-01",
        _ => "AC-DE-48-00-00-01",
    });
    let files = FILES.iter().chain(if operational { OPERATIONAL_FILES } else { &[] });
    for (path, text) in files {
        let mut text = text
            .replace("{{name}}", &name)
            .replace("{{access}}", access.as_str())
            .replace("{{toolchain}}", TOOLCHAIN)
            .replace("{{device_id}}", device_id)
            .replace("{{network}}", network_example(access));
        if operational && *path == "Cargo.toml" {
            text = text.replace(MEMBERS, MEMBERS_WITH_OPERATIONAL);
        }
        if access == AccessTechnology::BluetoothLe {
            // A BLE device joins no network: its gateway reaches it.
            text = text
                .lines()
                .filter(|line| !line.contains("offer::network()") && !line.contains("Item::Network"))
                .map(|line| format!("{line}\n"))
                .collect();
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// A cargo package name stem: lower-case letters, digits and dashes.
fn crate_name(name: &str) -> Result<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    if cleaned.is_empty() || !cleaned.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("{name:?} does not make a package name: give --name, starting with a letter");
    }
    Ok(cleaned)
}

/// What the fake assistant of `simulate.toml` hands over, per technology, in
/// the form of the gateway's `[[networks]]` entries.
fn network_example(access: AccessTechnology) -> &'static str {
    match access {
        AccessTechnology::Wifi => "Wifi = { ssid = \"example\", passphrase = \"correct horse battery\" }",
        AccessTechnology::Zigbee => {
            "Zigbee = { pan_id = 6754, extended_pan_id = [221, 221, 221, 221, 221, 221, 221, 221], channel = 15, network_key = [90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90] }"
        }
        AccessTechnology::Thread => {
            "Thread = { network_key = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], pan_id = 4660, extended_pan_id = [222, 173, 0, 190, 239, 0, 202, 254], channel = 15, mesh_local_prefix = [253, 0, 13, 184, 0, 0, 0, 0], network_name = \"example\" }"
        }
        AccessTechnology::Lorawan => {
            "Lorawan = { join_eui = [112, 179, 213, 126, 208, 0, 0, 1], app_key = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], region = \"EU868\" }"
        }
        AccessTechnology::Cellular => "Cellular = { apn = \"iot.example\" }",
        AccessTechnology::Ethernet => "Ethernet = { vlan = 20 }",
        AccessTechnology::BluetoothLe => "# a BLE device joins no network",
    }
}
