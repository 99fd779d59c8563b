//! The size benchmark's apps (`enrollment_apps::BENCH`) enroll and stage
//! what their docs say: the label sizes in BENCHMARKS.md are of apps that
//! work. Each is enrolled in-process with the label parameters its docs
//! name; one refusal per app shows its own checks run.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use end_to_end_tests::{eui, manufacturer};
use enrollment_apps::{AppPair, CELLULAR_TRACKER, LORAWAN_SENSOR, THREAD_PLUG};
use enrollment_assistant::{
    AccessTechnology, AssistantRuntime, ConfiguredAssistant, EnrollOptions, NetworkCredentials, Sandbox, SandboxConfig,
    SpIdentity, Timeouts,
};
use enrollment_device::{DeviceRuntime, DeviceState, DeviceStore};
use enrollment_host::Link;

const PLUG_ID: &str = "00-0D-6F-FF-FE-00-00-01";
const LORA_ID: &str = "70-B3-D5-7E-D0-00-12-34";
const TRACKER_ID: &str = "AC-DE-48-00-00-C0";
const SP: &str = "things.sp-one.example";

struct Bench {
    _dir: tempfile::TempDir,
    assistant: AssistantRuntime,
    device: DeviceRuntime,
}

impl Bench {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default())?);
        let services = Arc::new(ConfiguredAssistant {
            owner: Some("ACME Facilities".into()),
            networks: vec![
                NetworkCredentials::Thread {
                    network_key: [0x11; 16],
                    pan_id: 0x1234,
                    extended_pan_id: [0xDE; 8],
                    channel: 15,
                    mesh_local_prefix: [0xFD, 0, 0x0D, 0xB8, 0, 0, 0, 0],
                    network_name: "plant-3".into(),
                    pskc: None,
                },
                NetworkCredentials::Lorawan {
                    join_eui: [0x70; 8],
                    app_key: [0x2B; 16],
                    region: "EU868".into(),
                    nwk_key: None,
                },
                NetworkCredentials::Cellular {
                    apn: "iot.example".into(),
                    username: None,
                    password: None,
                    pin: None,
                },
            ],
            default_sp: Some(SpIdentity::new(SP)?),
            ..Default::default()
        });
        let identity = SigningKey::generate(&mut rand::rngs::OsRng);
        let assistant = AssistantRuntime::new(sandbox.clone(), services, identity, Timeouts::default())?;
        let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite"))?);
        store.provision(eui(PLUG_ID), AccessTechnology::Thread)?;
        store.provision(eui(LORA_ID), AccessTechnology::Lorawan)?;
        store.provision(eui(TRACKER_ID), AccessTechnology::Cellular)?;
        let device = DeviceRuntime::new(sandbox, store, manufacturer().trusted(), Timeouts::default(), true)?;
        Ok(Self { _dir: dir, assistant, device })
    }

    /// Enrolls `app` on `device` with a label carrying `params` and a
    /// one-time secret; the device's state afterwards, and whether both
    /// halves succeeded.
    async fn enroll(&self, app: &AppPair, access: &str, device: &str, params: &[(&str, &str)]) -> anyhow::Result<(bool, DeviceState)> {
        let manifest = qr_packer::Manifest {
            format_version: qr_packer::FORMAT_VERSION,
            app_id: app.name.into(),
            app_version: "1.0.0".into(),
            manufacturer: "Acme IoT".into(),
            product: "Benchmark app".into(),
            access: access.into(),
            capabilities: Vec::new(),
            device_id: Some(device.into()),
            one_time_secret: Some(vec![0xA5; 16]),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        };
        let label = enrollment_assistant::label::seal(app.phone, app.device, &manifest, &manufacturer())?;
        let (a, b) = Link::memory_pair();
        let (assistant, served) =
            tokio::join!(self.assistant.enroll(a, &label, EnrollOptions::default()), self.device.serve(eui(device), b));
        let state = self.device.store().state(&eui(device))?.expect("provisioned");
        Ok((assistant.is_ok() && served.is_ok(), state))
    }
}

fn config<'a>(state: &'a DeviceState, name: &str) -> &'a [u8] {
    state.config.get(name).map(Vec::as_slice).unwrap_or_else(|| panic!("no config {name}: {:?}", state.config.keys()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thread_plug_stages_its_three_records() -> anyhow::Result<()> {
    let bench = Bench::new()?;
    let params = [
        ("vendor-id", "4660"),
        ("product-id", "22136"),
        ("max-power", "2300"),
        ("max-current", "10.5"),
        ("schedule", "17:00-23:30, 06:30-09:00"),
        ("overload", "throttle"),
    ];
    // A current limit out of range (16 A max): the phone half refuses,
    // nothing is committed.
    let mut too_much = params;
    too_much[3] = ("max-current", "16.5");
    let (ok, state) = bench.enroll(&THREAD_PLUG, "thread", PLUG_ID, &too_much).await?;
    assert!(!ok && !state.sealed && state.config.is_empty(), "{state:?}");

    let (ok, state) = bench.enroll(&THREAD_PLUG, "thread", PLUG_ID, &params).await?;
    assert!(ok && state.sealed, "{state:?}");
    assert_eq!(state.sp_bound_id.as_ref().map(ToString::to_string), Some(format!("{SP}/thread/{PLUG_ID}")));
    // Vendor 0x1234, product 0x5678, hardware revision 1, window 180 s.
    assert_eq!(config(&state, "thread.commissioning"), [0x12, 0x34, 0x56, 0x78, 1, 0, 180]);
    // Two windows sorted by start: 06:30-09:00 (390-540), 17:00-23:30 (1020-1410).
    assert_eq!(config(&state, "plug.schedule"), [2, 0x01, 0x86, 0x02, 0x1C, 0x03, 0xFC, 0x05, 0x82]);
    // 2300 W, 10.5 A, throttle.
    assert_eq!(config(&state, "plug.limit"), [0x08, 0xFC, 0, 105, 1]);
    // 10.5 A plus 5 %: 11,025 mA.
    assert_eq!(config(&state, "plug.trip-ma"), 11_025u32.to_be_bytes());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lorawan_sensor_stages_its_radio_settings() -> anyhow::Result<()> {
    let bench = Bench::new()?;
    // SF12 every 60 s breaks the 1 % duty cycle of EU868: refused.
    let (ok, state) = bench.enroll(&LORAWAN_SENSOR, "lorawan", LORA_ID, &[("sf", "12"), ("interval", "60")]).await?;
    assert!(!ok && !state.sealed, "{state:?}");

    let (ok, state) = bench.enroll(&LORAWAN_SENSOR, "lorawan", LORA_ID, &[("sf", "9"), ("interval", "15m")]).await?;
    assert!(ok && state.sealed, "{state:?}");
    assert_eq!(config(&state, "lora.sf"), b"9");
    assert_eq!(config(&state, "lora.interval"), b"900");
    let radio = config(&state, "lora.radio");
    assert_eq!(radio.len(), 13);
    // Version 1, SF9, 14 dBm, ADR on, 12-byte payload, every 900 s.
    assert_eq!(radio[..2], [1, 9]);
    assert_eq!(radio[2], 14);
    assert_eq!(radio[3] & 1, 1);
    assert_eq!(radio[4], 12);
    assert_eq!(radio[5..9], 900u32.to_be_bytes());
    assert_eq!(state.name.as_deref(), Some("env 00:12:34"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cellular_tracker_stages_the_profile_it_agreed_over_transport() -> anyhow::Result<()> {
    let bench = Bench::new()?;
    // A reporting interval below the 60 s minimum.
    let (ok, state) = bench.enroll(&CELLULAR_TRACKER, "cellular", TRACKER_ID, &[("interval", "30")]).await?;
    assert!(!ok && !state.sealed, "{state:?}");

    let (ok, state) = bench.enroll(&CELLULAR_TRACKER, "cellular", TRACKER_ID, &[]).await?;
    assert!(ok && state.sealed, "{state:?}");
    assert_eq!(config(&state, "cell.rat"), b"lte-m");
    let profile = config(&state, "cell.profile");
    // LTE-M every 300 s (the LTE-M default), so no PSM (only from 600 s).
    assert_eq!(profile[..2], [1, 0]);
    assert_eq!(profile[2..6], 300u32.to_be_bytes());
    assert_eq!(state.owner.as_deref(), Some("ACME Facilities"));
    Ok(())
}
