//! `qr-packer simulate DIR|LABEL`: both halves in one process, against a
//! fake assistant and a fake device described by `simulate.toml`, with the
//! real runtimes and sandboxes. It prints the hand-over and message trace,
//! the diagnostics lines, what the device committed, and, when the
//! enrollment fails, which check or limit stopped it and the last few things
//! each half did.

use crate::stdout::say;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use enrollment_assistant::{
    AssistantRuntime, ConfiguredAssistant, EnrollOptions, Link, NetworkCredentials, Sandbox, SandboxConfig,
    ScannedApp, SpIdentity, Timeouts, Trace, TraceKind,
};
use enrollment_device::{AccessTechnology, DeviceRuntime, DeviceState, DeviceStore, Eui, HalfError};
use qr_packer::{Dictionary, Halves, Manifest, ManufacturerKey, PreparedApp, TrustedKeys};

/// `simulate.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `enrolled` or `refused`: what the run must end with.
    #[serde(default = "enrolled")]
    pub expect: String,
    pub device_id: String,
    pub access: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// The SP the fake control server resolves; none: the resolve fails.
    #[serde(default)]
    pub sp: Option<String>,
    #[serde(default)]
    pub sp_endpoint: Option<String>,
    /// What the fake assistant hands over for the device's network.
    #[serde(default)]
    pub network: toml::Table,
    /// Label parameters (`--param`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The label's one-time secret, hex.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long a half may wait for its peer, in milliseconds.
    #[serde(default = "receive_ms")]
    pub receive_timeout_ms: u64,
}

fn enrolled() -> String {
    "enrolled".into()
}

fn receive_ms() -> u64 {
    3_000
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn network(&self) -> Result<Option<NetworkCredentials>> {
        if self.network.is_empty() {
            return Ok(None);
        }
        let credentials: NetworkCredentials =
            toml::Value::Table(self.network.clone()).try_into().context("simulate.toml [network]")?;
        credentials.validate().context("simulate.toml [network]")?;
        Ok(Some(credentials))
    }

    /// The label the scenario packs for its halves, signed with `key`.
    pub fn manifest(&self) -> Result<Manifest> {
        Ok(Manifest {
            format_version: qr_packer::FORMAT_VERSION,
            app_id: "simulated".into(),
            app_version: "0.0.0".into(),
            manufacturer: "simulation".into(),
            product: "simulation".into(),
            access: self.access.clone(),
            capabilities: Vec::new(),
            device_id: Some(self.device_id.clone()),
            one_time_secret: self.secret.as_deref().map(hex::decode).transpose().context("simulate.toml secret")?,
            params: self.params.clone(),
        })
    }
}

/// The outcome of one simulated enrollment.
pub struct Outcome {
    pub enrolled: bool,
    pub trace: Trace,
    pub committed: Option<DeviceState>,
    pub failure: Option<String>,
}

/// Packs `phone` and `device` for the scenario's device with a throwaway key
/// (which the simulated device trusts) and runs the enrollment.
pub async fn simulate_halves(phone: &[u8], device: &[u8], scenario: &Scenario) -> Result<Outcome> {
    let key = ManufacturerKey::generate("simulation")?;
    let halves = Halves { phone: phone.to_vec(), device: device.to_vec(), operational: None };
    let signed = PreparedApp::prepare(halves, &Dictionary::current())?.seal(&scenario.manifest()?, &key)?;
    let app = ScannedApp::from_signed(signed, &key.trusted())?;
    run(&app, key.trusted(), scenario).await
}

/// The fake assistant of a scenario, with its runtime.
fn assistant(scenario: &Scenario, sandbox: Arc<Sandbox>) -> Result<AssistantRuntime> {
    let mut assistant = ConfiguredAssistant {
        owner: scenario.owner.clone(),
        location: scenario.location.clone(),
        networks: scenario.network()?.into_iter().collect(),
        ..Default::default()
    };
    if let Some(sp) = &scenario.sp {
        let sp = SpIdentity::new(sp).context("simulate.toml sp")?;
        if let Some(endpoint) = &scenario.sp_endpoint {
            assistant.endpoints.insert(sp.clone(), endpoint.clone());
        }
        assistant.default_sp = Some(sp);
    }
    let identity = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    Ok(AssistantRuntime::new(sandbox, Arc::new(assistant), identity, timeouts(scenario))?)
}

fn timeouts(scenario: &Scenario) -> Timeouts {
    Timeouts { receive: Duration::from_millis(scenario.receive_timeout_ms), ..Timeouts::default() }
}

fn sandbox(scenario: &Scenario) -> Result<Arc<Sandbox>> {
    Ok(Arc::new(Sandbox::new(SandboxConfig {
        half_deadline: Duration::from_millis(scenario.receive_timeout_ms.saturating_mul(3)),
        max_concurrent_halves: 4,
        ..SandboxConfig::default()
    })?))
}

/// Enrolls a real device (a `device-agent` at `addr`) with a label, the
/// fake assistant of the scenario playing the phone.
pub async fn run_against(app: &ScannedApp, scenario: &Scenario, addr: &str) -> Result<Outcome> {
    let assistant = assistant(scenario, sandbox(scenario)?)?;
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to the device at {addr}"))?;
    let trace = Trace::new();
    let options = EnrollOptions { trace: Some(trace.clone()), ..Default::default() };
    let result = assistant.enroll(Link::tcp(stream), app, options).await;
    let failure = result.as_ref().err().map(|e| format!("{e}"));
    if let Ok(report) = &result {
        say!("the device at {addr} committed {} (generation {})", report.relayed.sp_bound_id, report.generation);
    }
    Ok(Outcome { enrolled: failure.is_none(), trace, committed: None, failure })
}

/// Runs a label the way an assistant and its device would.
pub async fn run(app: &ScannedApp, trusted: TrustedKeys, scenario: &Scenario) -> Result<Outcome> {
    let device: Eui = scenario.device_id.parse().context("simulate.toml device_id")?;
    let access: AccessTechnology = scenario.access.parse().context("simulate.toml access")?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite"))?);
    store.provision(device, access)?;
    let sandbox = sandbox(scenario)?;
    let assistant = assistant(scenario, sandbox.clone())?;
    let trace = Trace::new();
    let device_runtime =
        DeviceRuntime::new(sandbox, store.clone(), trusted, timeouts(scenario), false)?.with_trace(trace.clone());
    let (a, b) = Link::memory_pair();
    let options = EnrollOptions { trace: Some(trace.clone()), ..Default::default() };
    let (phone_side, device_side) = tokio::join!(assistant.enroll(a, app, options), device_runtime.serve(device, b));
    let failure = match (&phone_side, &device_side) {
        (Ok(_), Ok(_)) => None,
        // The device's own words say more about a device-side limit.
        (_, Err(enrollment_device::DeviceFailure::Half(e))) => Some(format!("device: {e}{}", hint(e))),
        (Err(enrollment_assistant::EnrollError::PhoneHalf { error, refusal }), _) => Some(format!(
            "phone: {error}{}{}",
            refusal.as_ref().map(|r| format!(" (last refusal: {r})")).unwrap_or_default(),
            hint(error)
        )),
        (Err(e), _) => Some(format!("assistant: {e}")),
        (_, Err(e)) => Some(format!("device: {e}")),
    };
    let committed = store.state(&device)?.filter(|s| s.sealed);
    Ok(Outcome { enrolled: failure.is_none(), trace, committed, failure })
}

/// What to do about a half's error.
fn hint(error: &HalfError) -> &'static str {
    match error {
        HalfError::PeerSilent { .. } => {
            "; the halves disagree on the sequence: see the last things each half did below"
        }
        HalfError::MemoryCap { .. } => "; link with the template's .cargo/config.toml (16 KiB stack, 2 pages)",
        HalfError::DeadlineExceeded { .. } => "; a loop that never ends, or a peer that never answers",
        _ => "",
    }
}

/// Prints a run, and whether it met the scenario's expectation.
pub fn report(outcome: &Outcome, scenario: &Scenario) -> Result<()> {
    say!("trace:");
    for event in outcome.trace.events() {
        say!("  {event}");
    }
    match &outcome.committed {
        None if outcome.enrolled => {}
        Some(state) => {
            say!("\ncommitted and sealed (generation {}):", state.generation);
            if let Some(id) = &state.sp_bound_id {
                say!("  SP-bound identifier  {id}");
            }
            for (what, value) in [("owner", &state.owner), ("location", &state.location), ("name", &state.name)] {
                if let Some(value) = value {
                    say!("  {what:<20} {value}");
                }
            }
            if let Some(endpoint) = &state.sp_endpoint {
                say!("  SP endpoint          {endpoint}");
            }
            say!("  network              {}", if state.network.is_some() { "configured" } else { "none" });
            for (name, value) in &state.config {
                say!("  config {name:<13} {} bytes", value.len());
            }
        }
        None => say!("\nnothing committed: the device is as it was"),
    }
    if let Some(failure) = &outcome.failure {
        say!("\nthe enrollment failed: {failure}");
        for half in [enrollment_assistant::HalfKind::Phone, enrollment_assistant::HalfKind::Device] {
            let last: Vec<_> = outcome
                .trace
                .last_of(half, 5)
                .into_iter()
                .filter(|e| e.kind != TraceKind::Diagnostic || half == enrollment_assistant::HalfKind::Device)
                .collect();
            say!("last of the {half}:");
            for event in last {
                say!("    {event}");
            }
        }
    }
    let wanted = scenario.expect.as_str();
    let got = if outcome.enrolled { "enrolled" } else { "refused" };
    if !matches!(wanted, "enrolled" | "refused") {
        bail!("simulate.toml: expect = {wanted:?}; use \"enrolled\" or \"refused\"");
    }
    if wanted != got {
        bail!("expected the enrollment to be {wanted}, it was {got}");
    }
    say!("\n{got}, as simulate.toml expects");
    Ok(())
}
