//! A label that names no device (packed `--unbound`) against a device: the
//! device refuses it, unchanged, unless its operator accepts unbound labels;
//! and `device-agent` refuses a private key given as a trusted key.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use enrollment_apps::WIFI_METER;
use enrollment_assistant::{
    AccessTechnology, AssistantRuntime, ConfiguredAssistant, EnrollError, EnrollOptions, NetworkCredentials, SpIdentity,
};
use enrollment_device::{
    DeviceFailure, DeviceRuntime, DeviceStore, Eui, FailureCode, Link, Sandbox, SandboxConfig, Timeouts,
};
use qr_packer::{Manifest, ManufacturerKey};

const METER: &str = "AC-DE-48-00-00-80";

fn manufacturer() -> ManufacturerKey {
    ManufacturerKey::from_secret("acme-unbound-tests", [0x31; 32]).unwrap()
}

fn meter() -> Eui {
    METER.parse().unwrap()
}

/// The wifi meter, signed for `device_id` (`None`: packed `--unbound`).
fn label(device_id: Option<&str>) -> enrollment_assistant::ScannedApp {
    let manifest = Manifest {
        format_version: qr_packer::FORMAT_VERSION,
        app_id: "wifi-meter".into(),
        app_version: "1.0.0".into(),
        manufacturer: "Acme IoT".into(),
        product: "Smart meter M1".into(),
        access: "wifi".into(),
        capabilities: Vec::new(),
        device_id: device_id.map(str::to_owned),
        one_time_secret: None,
        params: Default::default(),
    };
    enrollment_assistant::label::seal(WIFI_METER.phone, WIFI_METER.device, &manifest, &manufacturer()).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    assistant: AssistantRuntime,
    store: Arc<DeviceStore>,
    /// The device's own sandbox (the assistant has another).
    device_sandbox: Arc<Sandbox>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = SandboxConfig { max_concurrent_halves: 8, ..SandboxConfig::default() };
        let sandbox = Arc::new(Sandbox::new(config.clone()).unwrap());
        let device_sandbox = Arc::new(Sandbox::new(config).unwrap());
        let services = Arc::new(ConfiguredAssistant {
            location: Some("geo:52.3676,4.9041".into()),
            owner: Some("ACME Utilities".into()),
            networks: vec![NetworkCredentials::Wifi { ssid: "plant-3".into(), passphrase: "correct horse".into() }],
            default_sp: Some(SpIdentity::new("sp-one.example").unwrap()),
            ..Default::default()
        });
        let timeouts = Timeouts { receive: Duration::from_secs(5), protocol: Duration::from_secs(5), ..Timeouts::default() };
        let identity = SigningKey::generate(&mut rand::rngs::OsRng);
        let assistant = AssistantRuntime::new(sandbox.clone(), services, identity, timeouts).unwrap();
        let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite")).unwrap());
        store.provision(meter(), AccessTechnology::Wifi).unwrap();
        Self { _dir: dir, assistant, store, device_sandbox }
    }

    fn device(&self) -> DeviceRuntime {
        let timeouts = Timeouts { receive: Duration::from_secs(5), protocol: Duration::from_secs(5), ..Timeouts::default() };
        DeviceRuntime::new(self.device_sandbox.clone(), self.store.clone(), manufacturer().trusted(), timeouts, false).unwrap()
    }

    async fn enroll(
        &self,
        device: &DeviceRuntime,
        app: &enrollment_assistant::ScannedApp,
    ) -> (Result<enrollment_assistant::EnrollmentReport, EnrollError>, Result<enrollment_device::DeviceReport, DeviceFailure>)
    {
        let (a, b) = Link::memory_pair();
        tokio::join!(self.assistant.enroll(a, app, EnrollOptions::default()), device.serve(meter(), b))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_label_is_refused_and_the_device_is_unchanged() {
    let fx = Fixture::new();
    let before = fx.store.state(&meter()).unwrap();
    let device = fx.device();
    let (assistant, outcome) = fx.enroll(&device, &label(None)).await;
    assert_eq!(outcome.as_ref().err(), Some(&DeviceFailure::UnboundLabel), "{outcome:?}");
    assert!(assistant.is_err(), "{assistant:?}");
    assert_eq!(DeviceFailure::UnboundLabel.code(), FailureCode::NotForThisDevice);
    assert_eq!(fx.store.state(&meter()).unwrap(), before, "a refused label changes nothing");
    assert_eq!(fx.device_sandbox.compilations(), 0, "the device half was never compiled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_label_enrolls_a_device_whose_operator_accepts_them() {
    let fx = Fixture::new();
    let device = fx.device().accept_unbound_labels();
    let (assistant, outcome) = fx.enroll(&device, &label(None)).await;
    assistant.unwrap();
    outcome.unwrap();
    assert!(fx.store.state(&meter()).unwrap().unwrap().sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_for_this_device_enrolls_without_the_option() {
    let fx = Fixture::new();
    let device = fx.device();
    let (assistant, outcome) = fx.enroll(&device, &label(Some(METER))).await;
    assistant.unwrap();
    outcome.unwrap();
    assert!(fx.store.state(&meter()).unwrap().unwrap().sealed);
}

/// Runs `device-agent serve` with `trust` and waits (at most 30 s) for it to
/// exit: status and stderr, or `None` if it was still running (then killed).
fn agent_trusting(dir: &std::path::Path, trust: &std::path::Path) -> Option<(bool, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_device-agent"))
        .args(["serve", "--db"])
        .arg(dir.join("agent.sqlite"))
        .args(["--device-id", METER, "--access", "wifi", "--listen", "127.0.0.1:0", "--trust"])
        .arg(trust)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return Some((status.success(), stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn device_agent_refuses_a_private_key_given_as_a_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = (dir.path().join("acme.json"), dir.path().join("acme.pub.json"));
    manufacturer().to_file(&private).unwrap();
    manufacturer().public_to_file(&public).unwrap();
    let (ok, stderr) = agent_trusting(dir.path(), &private).expect("device-agent refused the key and exited");
    assert!(!ok);
    assert!(stderr.contains("private signing key") && stderr.contains(&public.display().to_string()), "{stderr}");
}
