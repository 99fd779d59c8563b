//! An SP in memory and an assistant whose SP binding carries the SP's key,
//! for running operational apps in process (tests/operational.rs, the
//! operational bench).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_api::device::{DeviceMessage, SpCommand, command_signed_bytes};
use ed25519_dalek::{Signer, SigningKey};
use enrollment_assistant::{
    AccessTechnology, AssistantServices, ConfiguredAssistant, Eui, NetworkCredentials, RelayError, RelayedDevice,
    ResolveError, SpBinding,
};
use enrollment_apps::WIFI_METER;
use enrollment_assistant::{AssistantRuntime, EnrollOptions, Link, Sandbox, SandboxConfig, ScannedApp, Timeouts};
use enrollment_device::operational::OperationalRuntime;
use enrollment_device::operational::uplink::{Uplink, UplinkError};
use enrollment_device::{DeviceFailure, DeviceRuntime, DeviceStore};
use futures::future::BoxFuture;
use qr_packer::{Dictionary, Halves, PreparedApp};

use crate::{METER_ID, assistant_services, eui, manifest, manufacturer};

pub const SP_ENDPOINT: &str = "http://sp-one.invalid";

/// The assistant of the tests, with an SP binding that carries the SP's key.
pub struct WithSpKey {
    pub inner: ConfiguredAssistant,
    pub sp_key: [u8; 32],
}

impl AssistantServices for WithSpKey {
    fn location(&self) -> Option<String> {
        self.inner.location()
    }
    fn owner(&self) -> Option<String> {
        self.inner.owner()
    }
    fn network_credentials(&self, technology: AccessTechnology) -> Option<NetworkCredentials> {
        self.inner.network_credentials(technology)
    }
    fn resolve_sp(&self, device: Eui, access: AccessTechnology) -> BoxFuture<'_, Result<SpBinding, ResolveError>> {
        Box::pin(async move {
            let mut binding = self.inner.resolve_sp(device, access).await?;
            binding.endpoint = Some(SP_ENDPOINT.into());
            binding.public_key = Some(self.sp_key);
            Ok(binding)
        })
    }
    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>> {
        self.inner.relay(device)
    }
}

/// An SP in memory: keeps what devices send, serves the commands it holds.
#[derive(Default)]
pub struct FakeSp {
    pub received: Mutex<Vec<DeviceMessage>>,
    pub commands: Mutex<Vec<SpCommand>>,
}

impl Uplink for FakeSp {
    fn send<'a>(&'a self, endpoint: &'a str, message: &'a DeviceMessage) -> BoxFuture<'a, Result<(), UplinkError>> {
        assert_eq!(endpoint, SP_ENDPOINT, "messages go to the endpoint of the binding");
        self.received.lock().unwrap().push(message.clone());
        Box::pin(async { Ok(()) })
    }
    fn commands<'a>(&'a self, _: &'a str, identifier: &'a str, after: u64) -> BoxFuture<'a, Result<Vec<SpCommand>, UplinkError>> {
        let list = self.commands.lock().unwrap().iter().filter(|c| c.identifier == identifier && c.seq > after).cloned().collect();
        Box::pin(async move { Ok(list) })
    }
}

/// A command signed by `key`.
pub fn command(key: &SigningKey, identifier: &str, seq: u64, body: &str) -> SpCommand {
    let signature = key.sign(&command_signed_bytes(identifier, seq, body.as_bytes()));
    SpCommand { identifier: identifier.into(), seq, body: hex::encode(body), signature: hex::encode(signature.to_bytes()) }
}

/// A meter provisioned in a device store, an assistant and a device runtime
/// in process, and the SP's signing key.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub sandbox: Arc<Sandbox>,
    pub assistant: AssistantRuntime,
    pub device: DeviceRuntime,
    pub sp_key: SigningKey,
}

impl Fixture {
    pub fn new(half_deadline: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Arc::new(Sandbox::new(SandboxConfig { half_deadline, ..SandboxConfig::default() }).unwrap());
        let sp_key = SigningKey::from_bytes(&[0x51; 32]);
        let services = Arc::new(WithSpKey { inner: assistant_services(), sp_key: sp_key.verifying_key().to_bytes() });
        let identity = SigningKey::from_bytes(&[0x33; 32]);
        let assistant = AssistantRuntime::new(sandbox.clone(), services, identity, Timeouts::default()).unwrap();
        let store = Arc::new(DeviceStore::open(&dir.path().join("device.sqlite")).unwrap());
        store.provision(eui(METER_ID), AccessTechnology::Wifi).unwrap();
        let device = DeviceRuntime::new(sandbox.clone(), store, manufacturer().trusted(), Timeouts::default(), true).unwrap();
        Self { _dir: dir, sandbox, assistant, device, sp_key }
    }

    /// The meter's label with `operational` as its third component (signed
    /// without `pack`'s checks, as a hostile manufacturer could).
    pub fn label(operational: &[u8]) -> ScannedApp {
        let halves = Halves { phone: WIFI_METER.phone.to_vec(), device: WIFI_METER.device.to_vec(), operational: Some(operational.to_vec()) };
        let signed = PreparedApp::unchecked(halves, &Dictionary::current()).unwrap().seal(&manifest(&WIFI_METER, METER_ID), &manufacturer()).unwrap();
        ScannedApp::from_signed(signed, &manufacturer().trusted()).unwrap()
    }

    pub async fn enroll(&self, operational: &[u8]) -> Result<enrollment_device::DeviceReport, DeviceFailure> {
        let (a, b) = Link::memory_pair();
        let app = Self::label(operational);
        let (_, device) = tokio::join!(self.assistant.enroll(a, &app, EnrollOptions::default()), self.device.serve(eui(METER_ID), b));
        device
    }

    pub fn runtime(&self, sp: Arc<FakeSp>) -> OperationalRuntime {
        OperationalRuntime::new(self.sandbox.clone(), self.device.store().clone(), sp).unwrap()
    }
}
