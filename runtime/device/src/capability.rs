//! The `take` and `device` capabilities: what a device offers its device half.
//!
//! Nothing the device half does is written as it happens. Every item it takes
//! is checked for this device and staged in [`Staged`]; the enrollment logic
//! commits the whole set in one durable transaction only when the half has
//! returned successfully, asked to be sealed, and the assistant has
//! confirmed. A half that traps, loops, lies or is cut off leaves the device
//! exactly as it was.
//!
//! The SP-bound identifier is built by the host from the service-provider
//! item the assistant sent, the device's own id and its access technology:
//! the device half cannot name an SP of its own (there is no call for it).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use enrollment_host::bindings::device::iot_enroll::enrollment::take::Item;
use enrollment_host::bindings::device::iot_enroll::enrollment::{
    device, diagnostics, manifest, take, transport, types,
};
use enrollment_host::bindings::{Refusal, WitAccessTechnology, to_wit};
use enrollment_host::credentials::{CredentialsError, NetworkCredentials};
use enrollment_host::handover::{
    HandoverItem, MAX_CONFIG_ENTRIES, MAX_TEXT, SpBinding, check_name,
};
use enrollment_host::manifest::{Diagnostics, ManifestView};
use enrollment_host::sandbox::{HalfLimiter, HasLimiter};
use enrollment_host::trace::TraceKind;
use enrollment_host::transport::TransportEnd;
use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};
use wasmtime::component::{HasSelf, Linker};

/// Everything a device half has taken or asked for, not yet written.
#[derive(Default)]
pub struct Staged {
    pub network: Option<NetworkCredentials>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub name: Option<String>,
    /// The service provider, from the assistant's item.
    pub binding: Option<SpBinding>,
    /// Configuration values: offered parameters and `device.set-config`.
    pub config: BTreeMap<String, Vec<u8>>,
    pub signing_key: Option<SigningKey>,
    pub sp_bound_id: Option<SpBoundId>,
    pub seal_requested: bool,
}

impl Staged {
    /// The public key of the staged key pair.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.signing_key.as_ref().map(|k| k.verifying_key().to_bytes())
    }
}

/// Store data of a device half.
pub struct DeviceHost {
    pub transport: TransportEnd,
    pub manifest: ManifestView,
    pub diagnostics: Diagnostics,
    pub device: Eui,
    pub access: AccessTechnology,
    pub staged: Staged,
    limiter: HalfLimiter,
}

impl DeviceHost {
    pub fn new(
        transport: TransportEnd,
        manifest: ManifestView,
        device: Eui,
        access: AccessTechnology,
        max_memory: usize,
    ) -> Self {
        let diagnostics = Diagnostics::new(transport.trace().clone());
        Self {
            transport,
            manifest,
            diagnostics,
            device,
            access,
            staged: Staged::default(),
            limiter: HalfLimiter::new(max_memory),
        }
    }

    /// A linker that offers exactly the `device-half` world.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<DeviceHost>> {
        let mut linker = Linker::new(engine);
        types::add_to_linker::<DeviceHost, HasSelf<DeviceHost>>(&mut linker, |h| h)?;
        transport::add_to_linker::<DeviceHost, HasSelf<TransportEnd>>(&mut linker, |h| &mut h.transport)?;
        manifest::add_to_linker::<DeviceHost, HasSelf<ManifestView>>(&mut linker, |h| &mut h.manifest)?;
        diagnostics::add_to_linker::<DeviceHost, HasSelf<Diagnostics>>(&mut linker, |h| &mut h.diagnostics)?;
        take::add_to_linker::<DeviceHost, HasSelf<DeviceHost>>(&mut linker, |h| h)?;
        device::add_to_linker::<DeviceHost, HasSelf<DeviceHost>>(&mut linker, |h| h)?;
        Ok(linker)
    }

    fn refuse<T>(&self, refusal: Refusal, why: impl FnOnce() -> String) -> Result<T, Refusal> {
        self.transport.trace().record(TraceKind::Refused, why);
        Err(refusal)
    }

    fn staged(&self, what: impl FnOnce() -> String) {
        self.transport.trace().record(TraceKind::Staged, what);
    }

    fn stage_config(&mut self, name: String, value: Vec<u8>) -> Result<(), Refusal> {
        if let Err(e) = check_name(&name) {
            return self.refuse(e.refusal(), || format!("configuration name {name:?}: {e}"));
        }
        if value.len() > MAX_TEXT {
            return self.refuse(Refusal::TooLarge, || format!("configuration {name}: {} bytes", value.len()));
        }
        if !self.staged.config.contains_key(&name) && self.staged.config.len() >= MAX_CONFIG_ENTRIES {
            return self.refuse(Refusal::BudgetExhausted, || format!("more than {MAX_CONFIG_ENTRIES} configuration values"));
        }
        self.staged(|| format!("config {name} ({} bytes)", value.len()));
        self.staged.config.insert(name, value);
        Ok(())
    }

    /// Checks one item for this device and stages it.
    fn apply(&mut self, item: HandoverItem) -> Result<Item, Refusal> {
        if let Err(e) = item.check() {
            return self.refuse(e.refusal(), || format!("{}: {e}", item.describe()));
        }
        Ok(match item {
            HandoverItem::Owner(owner) => {
                self.staged(|| "owner".into());
                self.staged.owner = Some(owner);
                Item::Owner
            }
            HandoverItem::Location(location) => {
                self.staged(|| "location".into());
                self.staged.location = Some(location);
                Item::Location
            }
            HandoverItem::Name(name) => {
                self.staged(|| "name".into());
                self.staged.name = Some(name);
                Item::Name
            }
            HandoverItem::Network(bytes) => match NetworkCredentials::decode_for(&bytes, self.access) {
                Ok(credentials) => {
                    self.staged(|| format!("{} network credentials", credentials.technology()));
                    self.staged.network = Some(credentials);
                    Item::Network
                }
                Err(e @ CredentialsError::WrongTechnology { .. }) => {
                    return self.refuse(Refusal::NotApplicable, || e.to_string());
                }
                Err(e) => return self.refuse(Refusal::InvalidValue, || format!("network credentials: {e}")),
            },
            HandoverItem::ServiceProvider(binding) => {
                self.staged(|| format!("service provider {}", binding.sp));
                self.staged.binding = Some(binding);
                Item::ServiceProvider
            }
            HandoverItem::Parameter { name, value } => {
                self.stage_config(name.clone(), value.clone().into_bytes())?;
                Item::Parameter((name, value))
            }
            HandoverItem::Record { tag, value } => Item::Record((tag, value)),
            HandoverItem::End => Item::End,
            HandoverItem::Identity { .. } => {
                return self.refuse(Refusal::OutOfOrder, || "an identity item from the assistant".into());
            }
        })
    }
}

impl HasLimiter for DeviceHost {
    fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter {
        &mut self.limiter
    }
    fn limiter_state(&mut self) -> &HalfLimiter {
        &self.limiter
    }
}

impl types::Host for DeviceHost {}

impl take::Host for DeviceHost {
    async fn next(&mut self) -> wasmtime::Result<Result<Item, Refusal>> {
        Ok(match self.transport.next_item().await {
            Ok(item) => self.apply(item),
            Err(refusal) => Err(refusal),
        })
    }

    async fn finish(&mut self) -> wasmtime::Result<Result<(), Refusal>> {
        let Some(binding) = &self.staged.binding else {
            return Ok(self.refuse(Refusal::OutOfOrder, || "finish before a service-provider item was taken".into()));
        };
        let id = match SpIdentity::new(&binding.sp).and_then(|sp| SpBoundId::new(sp, self.device, self.access)) {
            Ok(id) => id,
            Err(e) => return Ok(self.refuse(Refusal::InvalidValue, || format!("SP-bound identifier: {e}"))),
        };
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let public_key = key.verifying_key().to_bytes();
        self.staged(|| format!("key pair and identifier {id}; sealed on commit"));
        let answer = HandoverItem::Identity { sp_bound_id: id.to_string(), public_key };
        self.staged.sp_bound_id = Some(id);
        self.staged.signing_key = Some(key);
        self.staged.seal_requested = true;
        Ok(self.transport.send_item(answer).await)
    }
}

impl device::Host for DeviceHost {
    async fn device_id(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.device.as_bytes().to_vec())
    }

    async fn technology(&mut self) -> wasmtime::Result<WitAccessTechnology> {
        Ok(to_wit(self.access))
    }

    async fn set_config(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Refusal>> {
        Ok(self.stage_config(name, value))
    }
}
