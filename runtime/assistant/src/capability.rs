//! The `assistant` and `offer` capabilities: what the phone or gateway offers
//! its phone half.
//!
//! The phone half names hand-over items; the values come from an
//! [`AssistantServices`] implementation (a fixed configuration,
//! [`ConfiguredAssistant`], or a gateway's control-server client), are
//! checked here and sent to the device as items. The phone half never sees
//! them. `offer.finish` waits for the device's identity; the relay to the SP
//! is staged here and only performed by the enrollment logic once the device
//! has shown, in its `ReadyToCommit`, that it holds exactly that identity and
//! key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use wasmtime::component::{HasSelf, Linker};

use enrollment_host::bindings::device::iot_enroll::enrollment::{diagnostics, manifest, transport, types};
use enrollment_host::bindings::phone::iot_enroll::enrollment::{assistant, offer};
use enrollment_host::bindings::{Refusal, WitAccessTechnology, to_wit};
use enrollment_host::credentials::NetworkCredentials;
use enrollment_host::handover::{HandoverItem, SpBinding};
use enrollment_host::manifest::{Diagnostics, ManifestView};
use enrollment_host::sandbox::{HalfLimiter, HasLimiter};
use enrollment_host::trace::TraceKind;
use enrollment_host::transport::TransportEnd;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

/// Why the SP identity of a device could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// `reason`: what the control server said, if it said anything.
    #[error("no service provider is known for device {device}{}", because(reason))]
    Unknown { device: Eui, reason: Option<String> },
    #[error("the service provider refused device {device}{}", because(reason))]
    Rejected { device: Eui, reason: Option<String> },
    #[error("the control server could not be reached: {0}")]
    Unreachable(String),
    /// The SP is registered without an endpoint: its device could not reach
    /// it, so it is not enrolled to it (a definite answer, not retried).
    #[error(
        "service provider {sp} has no endpoint registered with the control server, so its devices could not reach it: \
         register one (control-server sp add --identity {sp} --endpoint URL …)"
    )]
    NoEndpoint { sp: String },
}

/// ` (the control server: …)`, when the control server gave a reason.
fn because(reason: &Option<String>) -> String {
    reason.as_ref().map(|r| format!(" (the control server: {r})")).unwrap_or_default()
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
    /// Where the SP is reached: the endpoint of the binding resolved for
    /// this enrollment (the relay goes there, and nowhere configured).
    #[serde(default)]
    pub sp_endpoint: Option<String>,
}

/// What the assisting phone or gateway knows and can reach.
pub trait AssistantServices: Send + Sync + 'static {
    /// Where the assistant is.
    fn location(&self) -> Option<String>;
    /// The owner or organisation enrolling devices.
    fn owner(&self) -> Option<String>;
    /// Credentials of the network a device of this technology should join.
    fn network_credentials(&self, technology: AccessTechnology) -> Option<NetworkCredentials>;
    /// The service provider a device belongs to, with what the device needs
    /// to reach it.
    fn resolve_sp(&self, device: Eui, access: AccessTechnology) -> BoxFuture<'_, Result<SpBinding, ResolveError>>;
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
    /// Where each SP's devices reach it (the binding's endpoint).
    pub endpoints: HashMap<SpIdentity, String>,
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

    fn resolve_sp(&self, device: Eui, _access: AccessTechnology) -> BoxFuture<'_, Result<SpBinding, ResolveError>> {
        let found = self.sp_by_device.get(&device).or(self.default_sp.as_ref()).cloned();
        let binding =
            found.map(|sp| SpBinding { sp: sp.to_string(), endpoint: self.endpoints.get(&sp).cloned(), public_key: None });
        Box::pin(async move { binding.ok_or(ResolveError::Unknown { device, reason: None }) })
    }

    fn relay(&self, device: RelayedDevice) -> BoxFuture<'_, Result<(), RelayError>> {
        Box::pin(async move {
            self.relay_log.lock().map_err(|_| RelayError::Unreachable("relay log poisoned".into()))?.push(device);
            Ok(())
        })
    }
}

/// Most times one enrollment asks [`AssistantServices::resolve_sp`]: a
/// success is kept for the rest of the enrollment, a definite "unknown" or
/// "rejected" too; only an unreachable control server is asked again, this
/// many times in all. (In a gateway every ask is a control-server request.)
pub const MAX_RESOLVES: u32 = 3;

/// Store data of a phone half.
pub struct PhoneHost {
    pub transport: TransportEnd,
    pub manifest: ManifestView,
    pub diagnostics: Diagnostics,
    services: Arc<dyn AssistantServices>,
    /// The device being enrolled, from its `Hello`.
    device: Eui,
    access: AccessTechnology,
    /// The binding resolved for this enrollment (asked once, then kept).
    binding: Option<SpBinding>,
    /// A definite "no" to the resolve, kept like a binding.
    resolve_refused: Option<ResolveError>,
    /// Times `resolve_sp` was asked in this enrollment.
    resolves: u32,
    /// What the device answered `finish` with, to relay.
    pub relay: Option<RelayedDevice>,
    /// Time spent waiting for `service-provider` answers (the control server).
    pub resolve_time: std::time::Duration,
    /// Why the last capability call was refused, for the error report.
    pub last_refusal: Option<String>,
    limiter: HalfLimiter,
}

impl PhoneHost {
    pub fn new(
        transport: TransportEnd,
        manifest: ManifestView,
        services: Arc<dyn AssistantServices>,
        device: Eui,
        access: AccessTechnology,
        max_memory: usize,
    ) -> Self {
        let diagnostics = Diagnostics::new(transport.trace().clone());
        Self {
            transport,
            manifest,
            diagnostics,
            services,
            device,
            access,
            binding: None,
            resolve_refused: None,
            resolves: 0,
            relay: None,
            resolve_time: std::time::Duration::ZERO,
            last_refusal: None,
            limiter: HalfLimiter::new(max_memory),
        }
    }

    /// A linker that offers exactly the `phone-half` world.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<PhoneHost>> {
        let mut linker = Linker::new(engine);
        types::add_to_linker::<PhoneHost, HasSelf<PhoneHost>>(&mut linker, |h| h)?;
        transport::add_to_linker::<PhoneHost, HasSelf<TransportEnd>>(&mut linker, |h| &mut h.transport)?;
        manifest::add_to_linker::<PhoneHost, HasSelf<ManifestView>>(&mut linker, |h| &mut h.manifest)?;
        diagnostics::add_to_linker::<PhoneHost, HasSelf<Diagnostics>>(&mut linker, |h| &mut h.diagnostics)?;
        assistant::add_to_linker::<PhoneHost, HasSelf<PhoneHost>>(&mut linker, |h| h)?;
        offer::add_to_linker::<PhoneHost, HasSelf<PhoneHost>>(&mut linker, |h| h)?;
        Ok(linker)
    }

    fn refuse<T>(&mut self, refusal: Refusal, why: String) -> Result<T, Refusal> {
        tracing::debug!(%why, "assistant refused a phone-half call");
        self.transport.trace().record(TraceKind::Refused, || why.clone());
        self.last_refusal = Some(why);
        Err(refusal)
    }

    /// Checks an item and sends it to the device.
    async fn offer(&mut self, item: HandoverItem) -> Result<(), Refusal> {
        if let Err(e) = item.check() {
            return self.refuse(e.refusal(), format!("{}: {e}", item.describe()));
        }
        self.transport.send_item(item).await
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
    async fn device_id(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.device.as_bytes().to_vec())
    }

    async fn technology(&mut self) -> wasmtime::Result<WitAccessTechnology> {
        Ok(to_wit(self.access))
    }
}

/// The values the assistant hands over (`offer.assistant`).
impl PhoneHost {
    async fn offer_owner(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(match self.services.owner() {
            Some(owner) => self.offer(HandoverItem::Owner(owner)).await,
            None => self.refuse(Refusal::Unavailable, "no owner configured (a gateway: set `owner` in gateway.toml)".into()),
        })
    }

    async fn offer_location(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(match self.services.location() {
            Some(location) => self.offer(HandoverItem::Location(location)).await,
            None => self.refuse(Refusal::Unavailable, "no location configured (a gateway: set `location` in gateway.toml)".into()),
        })
    }

    async fn offer_network(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        let technology = self.access;
        if technology == AccessTechnology::BluetoothLe {
            return Ok(self.refuse(Refusal::NotApplicable, "a BLE device joins no network: its gateway reaches it".into()));
        }
        Ok(match self.services.network_credentials(technology).map(|c| c.encode()) {
            Some(Ok(bytes)) => self.offer(HandoverItem::Network(bytes)).await,
            Some(Err(e)) => self.refuse(Refusal::Unavailable, format!("configured credentials are invalid: {e}")),
            None => self.refuse(Refusal::Unavailable, format!("no {technology} network configured (a gateway: add a [[networks]] entry for it to gateway.toml)")),
        })
    }

    async fn offer_service_provider(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        let binding = match self.resolve().await {
            Ok(binding) => binding,
            Err((refusal, why)) => return Ok(self.refuse(refusal, why)),
        };
        Ok(self.offer(HandoverItem::ServiceProvider(binding)).await)
    }

    /// The binding the assistant's services resolved for this device, asked
    /// at most [`MAX_RESOLVES`] times per enrollment.
    async fn resolve(&mut self) -> Result<SpBinding, (Refusal, String)> {
        if let Some(binding) = &self.binding {
            return Ok(binding.clone());
        }
        if let Some(refused) = &self.resolve_refused {
            return Err((Refusal::Unavailable, refused.to_string()));
        }
        if self.resolves >= MAX_RESOLVES {
            let why = format!("the service provider was asked {MAX_RESOLVES} times in this enrollment; no more");
            return Err((Refusal::BudgetExhausted, why));
        }
        self.resolves += 1;
        let asked = std::time::Instant::now();
        let answer = self.services.resolve_sp(self.device, self.access).await;
        self.resolve_time += asked.elapsed();
        match answer {
            Ok(binding) => {
                self.binding = Some(binding.clone());
                Ok(binding)
            }
            Err(e @ ResolveError::Unreachable(_)) => Err((Refusal::Unreachable, e.to_string())),
            Err(e) => {
                let why = e.to_string();
                self.resolve_refused = Some(e);
                Err((Refusal::Unavailable, why))
            }
        }
    }
}

impl offer::Host for PhoneHost {
    async fn assistant(&mut self, value: offer::AssistantValue) -> wasmtime::Result<Result<(), Refusal>> {
        match value {
            offer::AssistantValue::Owner => self.offer_owner().await,
            offer::AssistantValue::Location => self.offer_location().await,
            offer::AssistantValue::Network => self.offer_network().await,
            offer::AssistantValue::ServiceProvider => self.offer_service_provider().await,
        }
    }
    async fn name(&mut self, name: String) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(self.offer(HandoverItem::Name(name)).await)
    }

    async fn parameter(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(self.offer(HandoverItem::Parameter { name, value }).await)
    }

    async fn record(&mut self, tag: u32, value: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(self.offer(HandoverItem::Record { tag, value }).await)
    }

    async fn finish(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        if let Err(refusal) = self.transport.send_item(HandoverItem::End).await {
            return Ok(Err(refusal));
        }
        let (sp_bound_id, public_key) = match self.transport.next_item().await {
            Ok(HandoverItem::Identity { sp_bound_id, public_key }) => (sp_bound_id, public_key),
            Ok(other) => {
                let why = format!("finish: the device answered with {}, not its identity", other.describe());
                return Ok(self.refuse(Refusal::OutOfOrder, why));
            }
            Err(Refusal::OutOfOrder) => {
                let why = "finish: the device half sent a transport message, not its identity".to_string();
                return Ok(self.refuse(Refusal::OutOfOrder, why));
            }
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Ok(sp_bound_id) = sp_bound_id.parse::<SpBoundId>() else {
            return Ok(self.refuse(Refusal::InvalidValue, "finish: the device's identity is not an SP-bound identifier".into()));
        };
        if sp_bound_id.device() != &self.device || sp_bound_id.access() != self.access {
            let why = format!("finish: the identity {sp_bound_id} names another device or access technology");
            return Ok(self.refuse(Refusal::InvalidValue, why));
        }
        // The SP comes from the assistant's services (the control server),
        // whatever the device or either half says: an identity for any other
        // SP is never relayed.
        match &self.binding {
            Some(binding) if binding.sp == sp_bound_id.sp().as_str() => {}
            Some(binding) => {
                let why = format!(
                    "finish: the device's identity names SP {}, but this device is bound to {}",
                    sp_bound_id.sp(),
                    binding.sp
                );
                return Ok(self.refuse(Refusal::InvalidValue, why));
            }
            None => {
                let why = "finish: the device's identity names an SP, but no service provider was offered \
                           (offer.assistant(service-provider) first)";
                return Ok(self.refuse(Refusal::OutOfOrder, why.into()));
            }
        }
        let sp_endpoint = self.binding.as_ref().and_then(|b| b.endpoint.clone());
        self.relay = Some(RelayedDevice { sp_bound_id, public_key, sp_endpoint });
        Ok(Ok(()))
    }
}
