//! The `assistant` capability: what the phone or gateway offers its phone half.
//!
//! The values come from an [`AssistantServices`] implementation: a fixed
//! configuration ([`ConfiguredAssistant`]) until the control server is wired
//! in, then a client of it. `relay` is staged here and only performed by the
//! enrollment logic once the device has shown, in its `ReadyToCommit`, that it
//! holds exactly the identity and key the phone half relayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use wasmtime::component::{HasSelf, Linker};

use enrollment_host::bindings::device::iot_enroll::enrollment::{transport, types};
use enrollment_host::bindings::phone::iot_enroll::enrollment::assistant;
use enrollment_host::bindings::{Refusal, WitAccessTechnology, from_wit};
use enrollment_host::credentials::NetworkCredentials;
use enrollment_host::sandbox::{HalfLimiter, HasLimiter};
use enrollment_host::transport::TransportEnd;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

/// Why the SP identity of a device could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no service provider is known for device {0}")]
    Unknown(Eui),
    #[error("the service provider refused device {0}")]
    Rejected(Eui),
    #[error("the control server could not be reached: {0}")]
    Unreachable(String),
}

/// Why an enrolled device could not be relayed to its service provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("the service provider refused the device: {0}")]
    Refused(String),
    #[error("the service provider could not be reached: {0}")]
    Unreachable(String),
}

/// A device's identity and public key, as relayed to its service provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayedDevice {
    pub sp_bound_id: SpBoundId,
    pub public_key: [u8; 32],
}

/// What the assisting phone or gateway knows and can reach.
pub trait AssistantServices: Send + Sync + 'static {
    /// Where the assistant is.
    fn location(&self) -> Option<String>;
    /// The owner or organisation enrolling devices.
    fn owner(&self) -> Option<String>;
    /// Credentials of the network a device of this technology should join.
    fn network_credentials(&self, technology: AccessTechnology) -> Option<NetworkCredentials>;
    /// The service provider a device belongs to.
    fn resolve_sp(&self, device: Eui, access: AccessTechnology) -> BoxFuture<'_, Result<SpIdentity, ResolveError>>;
    /// Hands an enrolled device's identity and key to its service provider.
    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>>;
}

/// Assistant services from fixed configuration; records what it relays.
#[derive(Default)]
pub struct ConfiguredAssistant {
    pub location: Option<String>,
    pub owner: Option<String>,
    pub networks: Vec<NetworkCredentials>,
    /// SP per device; `default_sp` for devices not listed.
    pub sp_by_device: HashMap<Eui, SpIdentity>,
    pub default_sp: Option<SpIdentity>,
    /// Everything relayed so far (see [`ConfiguredAssistant::relayed`]).
    pub relay_log: Mutex<Vec<RelayedDevice>>,
}

impl ConfiguredAssistant {
    /// Everything relayed so far, oldest first.
    pub fn relayed(&self) -> Vec<RelayedDevice> {
        self.relay_log.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl AssistantServices for ConfiguredAssistant {
    fn location(&self) -> Option<String> {
        self.location.clone()
    }

    fn owner(&self) -> Option<String> {
        self.owner.clone()
    }

    fn network_credentials(&self, technology: AccessTechnology) -> Option<NetworkCredentials> {
        self.networks.iter().find(|n| n.technology() == technology).cloned()
    }

    fn resolve_sp(&self, device: Eui, _access: AccessTechnology) -> BoxFuture<'_, Result<SpIdentity, ResolveError>> {
        let found = self.sp_by_device.get(&device).or(self.default_sp.as_ref()).cloned();
        Box::pin(async move { found.ok_or(ResolveError::Unknown(device)) })
    }

    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>> {
        Box::pin(async move {
            self.relay_log.lock().map_err(|_| RelayError::Unreachable("relay log poisoned".into()))?.push(device);
            Ok(())
        })
    }
}

/// Store data of a phone half.
pub struct PhoneHost {
    pub transport: TransportEnd,
    services: Arc<dyn AssistantServices>,
    /// The device being enrolled, from its `Hello`.
    device: Eui,
    access: AccessTechnology,
    /// What the phone half asked to relay.
    pub relay: Option<RelayedDevice>,
    /// Time spent waiting for `resolve-sp` answers (the control server).
    pub resolve_time: std::time::Duration,
    /// Why the last capability call was refused, for the error report.
    pub last_refusal: Option<String>,
    limiter: HalfLimiter,
}

impl PhoneHost {
    pub fn new(
        transport: TransportEnd,
        services: Arc<dyn AssistantServices>,
        device: Eui,
        access: AccessTechnology,
        max_memory: usize,
    ) -> Self {
        Self {
            transport,
            services,
            device,
            access,
            relay: None,
            resolve_time: std::time::Duration::ZERO,
            last_refusal: None,
            limiter: HalfLimiter::new(max_memory),
        }
    }

    /// A linker that offers exactly the `phone-half` world.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<PhoneHost>> {
        let mut linker = Linker::new(engine);
        transport::add_to_linker::<PhoneHost, HasSelf<TransportEnd>>(&mut linker, |h| &mut h.transport)?;
        types::add_to_linker::<PhoneHost, HasSelf<PhoneHost>>(&mut linker, |h| h)?;
        assistant::add_to_linker::<PhoneHost, HasSelf<PhoneHost>>(&mut linker, |h| h)?;
        Ok(linker)
    }

    fn refuse<T>(&mut self, refusal: Refusal, why: String) -> Result<T, Refusal> {
        tracing::debug!(%why, "assistant refused a phone-half call");
        self.last_refusal = Some(why);
        Err(refusal)
    }
}

impl HasLimiter for PhoneHost {
    fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter {
        &mut self.limiter
    }
    fn limiter_state(&mut self) -> &HalfLimiter {
        &self.limiter
    }
}

impl types::Host for PhoneHost {}

impl assistant::Host for PhoneHost {
    async fn location(&mut self) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        Ok(match self.services.location() {
            Some(l) => Ok(l.into_bytes()),
            None => self.refuse(Refusal::Unavailable, "no location configured".into()),
        })
    }

    async fn owner(&mut self) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        Ok(match self.services.owner() {
            Some(o) => Ok(o.into_bytes()),
            None => self.refuse(Refusal::Unavailable, "no owner configured".into()),
        })
    }

    async fn network_credentials(
        &mut self,
        technology: WitAccessTechnology,
    ) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        let technology = from_wit(technology);
        if technology != self.access {
            let why = format!("{technology} credentials asked for a {} device", self.access);
            return Ok(self.refuse(Refusal::NotApplicable, why));
        }
        Ok(match self.services.network_credentials(technology).map(|c| c.encode()) {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(e)) => self.refuse(Refusal::Unavailable, format!("configured credentials are invalid: {e}")),
            None => self.refuse(Refusal::Unavailable, format!("no {technology} network configured")),
        })
    }

    async fn resolve_sp(&mut self, device_id: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, Refusal>> {
        let Ok(device) = Eui::from_bytes(&device_id) else {
            return Ok(self.refuse(Refusal::InvalidValue, "resolve-sp: not an EUI-48/EUI-64".into()));
        };
        if device != self.device {
            let why = format!("resolve-sp for {device}, but the device on the link is {}", self.device);
            return Ok(self.refuse(Refusal::InvalidValue, why));
        }
        let asked = std::time::Instant::now();
        let answer = self.services.resolve_sp(device, self.access).await;
        self.resolve_time += asked.elapsed();
        Ok(match answer {
            Ok(sp) => Ok(sp.as_str().as_bytes().to_vec()),
            Err(e @ ResolveError::Unreachable(_)) => self.refuse(Refusal::Unreachable, e.to_string()),
            Err(e) => self.refuse(Refusal::Unavailable, e.to_string()),
        })
    }

    async fn relay(&mut self, identity: Vec<u8>, public_key: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        let parsed = std::str::from_utf8(&identity).ok().and_then(|s| s.parse::<SpBoundId>().ok());
        let Some(sp_bound_id) = parsed else {
            return Ok(self.refuse(Refusal::InvalidValue, "relay: identity is not an SP-bound identifier".into()));
        };
        let Ok(public_key) = <[u8; 32]>::try_from(public_key.as_slice()) else {
            return Ok(self.refuse(Refusal::InvalidValue, "relay: public key is not 32 bytes".into()));
        };
        if sp_bound_id.device() != &self.device {
            return Ok(self.refuse(Refusal::InvalidValue, "relay: identity names another device".into()));
        }
        self.relay = Some(RelayedDevice { sp_bound_id, public_key });
        Ok(Ok(()))
    }
}
