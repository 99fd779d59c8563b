//! Shared set-up for the end-to-end tests: a sandbox, an assistant with a
//! known configuration, a device store in a temporary SQLite file, and real
//! `device-agent` processes on loopback.

pub mod link_proxy;
pub mod operational_support;
pub mod system;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use enrollment_assistant::NetworkCredentials;
use enrollment_device::DeviceStore;
use enrollment_apps::AppPair;
use enrollment_assistant::ScannedApp;
use enrollment_assistant::ConfiguredAssistant;
use enrollment_assistant::{AccessTechnology, AssistantRuntime, Eui, Sandbox, SandboxConfig, SpIdentity, Timeouts};
use enrollment_device::DeviceRuntime;

/// The Wi-Fi meter of the reference apps: an EUI-48 device.
pub const METER_ID: &str = "AC-DE-48-00-00-80";
/// The Zigbee sensor of the reference apps: an EUI-64 device.
pub const SENSOR_ID: &str = "00-0D-6F-FF-FE-12-34-56";
/// The Ethernet building controller of the reference apps: an EUI-48 device.
pub const CONTROLLER_ID: &str = "AC-DE-48-00-00-90";
/// The BLE lock of the reference apps: an EUI-48 device.
pub const LOCK_ID: &str = "AC-DE-48-00-00-A0";
/// The service provider the test assistant resolves every device to.
pub const SP: &str = "meters.sp-one.example";

pub fn eui(s: &str) -> Eui {
    s.parse().expect("test EUI is valid")
}

/// The manufacturer key the test labels are signed with (a fixed test key).
pub fn manufacturer() -> qr_packer::ManufacturerKey {
    qr_packer::ManufacturerKey::from_secret("acme-test-2026", [0x42; 32]).expect("valid key id")
}

/// The manifest of a reference app for one device (as `qr-packer pack --app` writes it).
pub fn manifest(app: &AppPair, device: &str) -> qr_packer::Manifest {
    let mut manifest = qr_packer::manifest::reference(app).expect("a reference app");
    manifest.device_id = Some(device.into());
    manifest
}

/// A reference app, signed for one device, as an assistant scans it.
pub fn label(app: &AppPair, device: &str) -> ScannedApp {
    enrollment_assistant::label::seal(app.phone, app.device, &manifest(app, device), &manufacturer()).expect("reference app packs")
}

/// A hand-written core module (WAT) made a component of `world` of the
/// product's WIT, as wit-bindgen's output would be: the tests' hostile and
/// malformed guests.
pub fn componentize_wat(world: &str, wat: &str) -> Vec<u8> {
    componentize_wat_with(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"), world, wat)
}

/// [`componentize_wat`] against the WIT package in `wit_dir` (e.g. an older
/// version of the contract).
pub fn componentize_wat_with(wit_dir: &str, world: &str, wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"));
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(wit_dir).expect("the WIT package parses");
    let world = resolve.select_world(&[pkg], Some(world)).expect("the world exists");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8, false)
        .expect("metadata embeds");
    wit_component::ComponentEncoder::default().validate(true).module(&module).expect("module").encode().expect("encodes")
}

/// Assistant configuration used by the tests.
pub fn assistant_services() -> ConfiguredAssistant {
    ConfiguredAssistant {
        location: Some("geo:52.3676,4.9041".into()),
        owner: Some("ACME Utilities".into()),
        networks: vec![
            NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse battery".into() },
            NetworkCredentials::Zigbee {
                pan_id: 0x1A62,
                extended_pan_id: [0xDD; 8],
                channel: 15,
                network_key: [0x5A; 16],
            },
        ],
        default_sp: Some(SpIdentity::new(SP).expect("valid SP")),
        ..Default::default()
    }
}

/// Everything an in-process enrollment needs.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sandbox: Arc<Sandbox>,
    pub services: Arc<ConfiguredAssistant>,
    pub assistant: AssistantRuntime,
    pub identity: SigningKey,
    pub device: DeviceRuntime,
}

impl Fixture {
    pub fn new() -> anyhow::Result<Self> {
        Self::with(SandboxConfig { max_concurrent_halves: 64, ..SandboxConfig::default() }, Timeouts::default())
    }

    pub fn with(config: SandboxConfig, timeouts: Timeouts) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let sandbox = Arc::new(Sandbox::new(config)?);
        let services = Arc::new(assistant_services());
        let identity = SigningKey::generate(&mut rand::rngs::OsRng);
        let assistant = AssistantRuntime::new(sandbox.clone(), services.clone(), identity.clone(), timeouts)?;
        let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite"))?);
        store.provision(eui(METER_ID), AccessTechnology::Wifi)?;
        store.provision(eui(SENSOR_ID), AccessTechnology::Zigbee)?;
        store.provision(eui(CONTROLLER_ID), AccessTechnology::Ethernet)?;
        store.provision(eui(LOCK_ID), AccessTechnology::BluetoothLe)?;
        let device = DeviceRuntime::new(sandbox.clone(), store, manufacturer().trusted(), timeouts, true)?;
        Ok(Self { dir, sandbox, services, assistant, identity, device })
    }
}

/// Where cargo put this workspace's binaries: beside this executable (a
/// binary), or one folder up (a test, which lives in `deps/`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let here = exe.parent().context("executable has no folder")?;
    let candidates = [Some(here), here.parent()];
    for dir in candidates.into_iter().flatten() {
        if dir.join(&file).exists() {
            return Ok(dir.join(&file));
        }
    }
    bail!("{file} is not built next to {}: run `cargo build --workspace --bins` (scripts/test does)", exe.display())
}

/// A `device-agent` process, killed when dropped.
pub struct DeviceAgent {
    pub child: Child,
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub output: std::sync::mpsc::Receiver<String>,
}

impl DeviceAgent {
    /// Starts `device-agent serve` on a free loopback port.
    pub fn spawn(db: &Path, device: &str, access: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let trust = db.with_extension("manufacturer.pub");
        manufacturer().public_to_file(&trust)?;
        Self::start(db, device, access, &trust, extra)
    }

    /// Starts `device-agent serve` trusting the manufacturer key file `trust`.
    pub fn spawn_trusting(db: &Path, device: &str, access: &str, trust: &Path) -> anyhow::Result<Self> {
        Self::start(db, device, access, trust, &[])
    }

    fn start(db: &Path, device: &str, access: &str, trust: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("device-agent")?)
            .args(["serve", "--db"])
            .arg(db)
            .arg("--trust")
            .arg(trust)
            .args(["--device-id", device, "--access", access, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting device-agent")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).context("device-agent printed nothing")?;
        let addr = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from device-agent: {first}"))?
            .parse()?;
        Ok(Self { child, addr, db: db.to_path_buf(), output: rx })
    }

    /// Next line the agent printed.
    pub fn next_line(&self) -> anyhow::Result<String> {
        Ok(self.output.recv_timeout(Duration::from_secs(30))?)
    }

    /// The device's state as `device-agent show` prints it.
    pub fn show(db: &Path, device: &str) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(binary("device-agent")?)
            .args(["show", "--db"])
            .arg(db)
            .args(["--device-id", device])
            .output()?;
        if !out.status.success() {
            bail!("device-agent show failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Drop for DeviceAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
