//! One enrollment, both sides: the assistant ([`AssistantRuntime`]) and the
//! device ([`DeviceRuntime`]), joined by a [`Link`].
//!
//! ```text
//!  assistant                                   device
//!      <------------------ Hello (id, access, sealed, nonce)
//!      Start (device half, assistant key, re-bind signature?) ---->
//!  run phone half   <== Message frames (transport) ==>   run device half
//!      Close (phone half done) ---------------------------->
//!      <------------------ ReadyToCommit (SP-bound id, public key)
//!  check relay == ready; relay to the SP
//!      Commit ---------------------------------------------->  one durable
//!      <------------------ Committed (generation)               transaction
//! ```
//!
//! The assistant coordinates a two-phase commit. The device writes nothing
//! until `Commit`; the assistant relays nothing to the service provider until
//! the device has shown it holds exactly what the phone half relayed. Any
//! failure before `Commit` (a half that traps, a dead control server, a lost
//! link) leaves the device as it was, and it can simply be enrolled again.
//! A link lost after `Commit` was sent leaves the outcome unknown to the
//! assistant ([`EnrollError::CommitUnknown`]); the device's store is the truth
//! and the assistant that enrolled it can re-bind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, Verifier, VerifyingKey};
use wasmtime::component::Linker;

use crate::bindings::device::DeviceHalfPre;
use crate::bindings::phone::PhoneHalfPre;
use crate::device::DeviceHost;
use crate::device_store::{DeviceState, DeviceStore, Enrollment, StoreError};
use crate::identifier::{AccessTechnology, Eui, SpBoundId};
use crate::label::{LabelError, ScannedApp, admit_device_half};
use qr_packer::TrustedKeys;
use crate::link::{
    DeviceFailure, Enrolled, Frame, Hello, Link, LinkFailure, PROTOCOL_VERSION, RebindSp, Signature, Start, frame_name,
    rebind_message,
};
use crate::phone::{AssistantServices, PhoneHost, RelayError, RelayedDevice};
use crate::sandbox::cache::ComponentCache;
use crate::sandbox::{HalfError, HalfKind, PreparedHalf, Sandbox, SetupError};
use crate::transport::TransportEnd;

/// How long each side waits for the other.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A half waiting in `transport.receive`.
    pub receive: Duration,
    /// A side waiting for a protocol frame (Hello, Start, ReadyToCommit,
    /// Commit, Committed).
    pub protocol: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { receive: Duration::from_secs(10), protocol: Duration::from_secs(30) }
    }
}

/// Where the time of one enrollment went, as the assistant saw it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageTimings {
    /// Hello received, Start sent.
    pub handshake: Duration,
    /// Phone half checked and compiled, or taken from the cache.
    pub prepare: Duration,
    /// Phone half instantiated and run to completion.
    pub run: Duration,
    /// Of `run`: waiting for the SP identity (`resolve-sp`, the control server).
    pub resolve: Duration,
    /// Waiting for the device half to finish (ReadyToCommit).
    pub device: Duration,
    /// Relaying the identity and key to the service provider.
    pub relay: Duration,
    /// The device's durable commit, round trip.
    pub commit: Duration,
}

/// A successful enrollment.
#[derive(Debug, Clone)]
pub struct EnrollmentReport {
    /// What was relayed to the service provider (and committed on the device).
    pub relayed: RelayedDevice,
    /// The device's state generation after the commit.
    pub generation: u64,
    /// Whether this was a re-bind of a sealed device.
    pub rebind: bool,
    pub timings: StageTimings,
}

/// Why an enrollment failed, as the assistant sees it.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("link failure while {during}: {failure}")]
    Link { during: &'static str, failure: LinkFailure },
    #[error("the device broke the link protocol: {0}")]
    Protocol(String),
    #[error("the device is already enrolled and sealed (a re-bind was not requested)")]
    DeviceSealed,
    #[error("the device refused or failed: {0}")]
    Device(DeviceFailure),
    #[error("{error}{}", refusal.as_ref().map(|r| format!(" (last refusal: {r})")).unwrap_or_default())]
    PhoneHalf { error: HalfError, refusal: Option<String> },
    #[error("the label does not fit the device on the link: {0}")]
    Label(LabelError),
    #[error("the phone half finished without relaying the device's identity")]
    NotRelayed,
    #[error("the phone half relayed {relayed}, but the device staged {staged}")]
    RelayMismatch { relayed: String, staged: String },
    #[error("relaying to the service provider failed: {0}")]
    Relay(RelayError),
    #[error("the link failed after Commit was sent ({0}); the device may or may not be enrolled")]
    CommitUnknown(LinkFailure),
}

/// The assisting phone or gateway: runs phone halves and coordinates.
pub struct AssistantRuntime {
    sandbox: Arc<Sandbox>,
    linker: Linker<PhoneHost>,
    cache: ComponentCache<PreparedHalf<PhoneHalfPre<PhoneHost>>>,
    services: Arc<dyn AssistantServices>,
    identity: SigningKey,
    timeouts: Timeouts,
}

/// Options for one enrollment.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrollOptions {
    /// Re-bind the device if it is already sealed (it must have been enrolled
    /// by this assistant's identity key).
    pub rebind: bool,
}

impl AssistantRuntime {
    /// An assistant with its identity key (recorded by the devices it enrolls).
    pub fn new(
        sandbox: Arc<Sandbox>,
        services: Arc<dyn AssistantServices>,
        identity: SigningKey,
        timeouts: Timeouts,
    ) -> Result<Self, SetupError> {
        let linker = PhoneHost::linker(sandbox.engine())
            .map_err(|e| SetupError::Linker { world: "phone-half", reason: format!("{e:#}") })?;
        let cache = ComponentCache::new(sandbox.config().cache_capacity);
        Ok(Self { sandbox, linker, cache, services, identity, timeouts })
    }

    /// The assistant's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }

    /// The compiled phone halves.
    pub fn cache(&self) -> &ComponentCache<PreparedHalf<PhoneHalfPre<PhoneHost>>> {
        &self.cache
    }

    /// Checks and compiles a phone half ahead of time (e.g. when a label is
    /// scanned, before the device is in reach).
    pub async fn prepare(&self, phone_half: &[u8]) -> Result<(), HalfError> {
        self.prepare_half(phone_half).await.map(|_| ())
    }

    async fn prepare_half(&self, bytes: &[u8]) -> Result<Arc<PreparedHalf<PhoneHalfPre<PhoneHost>>>, HalfError> {
        self.sandbox.prepare(&self.cache, HalfKind::Phone, bytes, &self.linker, PhoneHalfPre::new).await
    }

    /// Enrolls the device at the other end of `link` with this app.
    pub async fn enroll(
        &self,
        mut link: Link,
        app: &ScannedApp,
        options: EnrollOptions,
    ) -> Result<EnrollmentReport, EnrollError> {
        let mut timings = StageTimings::default();
        let t = Instant::now();
        let hello = match recv(&mut link, self.timeouts.protocol, "waiting for the device's Hello").await? {
            Frame::Hello(hello) => hello,
            other => return Err(unexpected("Hello", &other)),
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(EnrollError::Protocol(format!(
                "device speaks link protocol {}, this assistant {}",
                hello.protocol, PROTOCOL_VERSION
            )));
        }
        let device = Eui::from_bytes(&hello.device_id)
            .map_err(|e| EnrollError::Protocol(format!("device id in Hello: {e}")))?;
        let access: AccessTechnology =
            hello.access.parse().map_err(|e| EnrollError::Protocol(format!("access technology in Hello: {e}")))?;
        if let Err(e) = app.check_target(device, access) {
            let _ = link.tx.send(Frame::Abort { reason: e.to_string() }).await;
            return Err(EnrollError::Label(e));
        }
        let rebind = match (hello.sealed, options.rebind) {
            (false, _) => None,
            (true, true) => {
                Some(Signature(self.identity.sign(&rebind_message(&hello.device_id, &hello.nonce)).to_vec()))
            }
            (true, false) => {
                let _ = link.tx.send(Frame::Abort { reason: "device is sealed".into() }).await;
                return Err(EnrollError::DeviceSealed);
            }
        };
        let is_rebind = rebind.is_some();
        let start = Start { payload: app.signed_bytes().to_vec(), assistant_key: self.public_key(), rebind };
        send(&mut link, Frame::Start(start), "sending Start").await?;
        timings.handshake = t.elapsed();

        let t = Instant::now();
        let prepared = match self.prepare_half(app.phone_half()).await {
            Ok(p) => p,
            Err(error) => {
                let _ = link.tx.send(Frame::Abort { reason: error.to_string() }).await;
                return Err(EnrollError::PhoneHalf { error, refusal: None });
            }
        };
        timings.prepare = t.elapsed();

        let t = Instant::now();
        let transport = TransportEnd::new(link, HalfKind::Phone, self.timeouts.receive);
        let max_memory = self.sandbox.config().max_memory_bytes;
        let host = PhoneHost::new(transport, self.services.clone(), device, access, max_memory);
        let mut store = self.sandbox.store(host);
        let result = async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance.call_enroll(&mut store).await
        }
        .await;
        let outcome = self.sandbox.outcome(HalfKind::Phone, &mut store, result);
        let host = store.into_data();
        let outcome = outcome.map_err(|e| host.transport.explain(e));
        let (relay, refusal) = (host.relay, host.last_refusal);
        timings.resolve = host.resolve_time;
        let (mut link, control, failure) = host.transport.into_parts();
        let control = last_word(&mut link, control, failure.is_some()).await;
        timings.run = t.elapsed();

        if let Err(error) = outcome {
            // If the device failed first, that is the cause worth reporting.
            if let Some(Frame::Failed(f)) = control {
                return Err(EnrollError::Device(f));
            }
            // Tell the device why, including what the assistant refused
            // (e.g. "no service provider is known for device ...").
            let reason = match &refusal {
                Some(r) => format!("{error} ({r})"),
                None => error.to_string(),
            };
            let _ = link.tx.send(Frame::Abort { reason }).await;
            return Err(EnrollError::PhoneHalf { error, refusal });
        }
        let Some(relayed) = relay else {
            let _ = link.tx.send(Frame::Abort { reason: "phone half did not relay".into() }).await;
            return Err(EnrollError::NotRelayed);
        };
        let _ = link.tx.send(Frame::Close).await;

        let t = Instant::now();
        let ready = match control {
            Some(frame) => frame,
            None => self.next_protocol_frame(&mut link, "waiting for the device half to finish").await?,
        };
        let ready = match ready {
            Frame::ReadyToCommit(ready) => ready,
            Frame::Failed(f) => return Err(EnrollError::Device(f)),
            other => return Err(unexpected("ReadyToCommit", &other)),
        };
        timings.device = t.elapsed();
        if ready.sp_bound_id != relayed.sp_bound_id.to_string() || ready.public_key != relayed.public_key {
            let _ = link.tx.send(Frame::Abort { reason: "relay does not match what the device staged".into() }).await;
            return Err(EnrollError::RelayMismatch {
                relayed: format!("{} / {}", relayed.sp_bound_id, hex::encode(relayed.public_key)),
                staged: format!("{} / {}", ready.sp_bound_id, hex::encode(ready.public_key)),
            });
        }

        let t = Instant::now();
        if let Err(e) = self.services.relay(relayed.clone()).await {
            let _ = link.tx.send(Frame::Abort { reason: format!("relay failed: {e}") }).await;
            return Err(EnrollError::Relay(e));
        }
        timings.relay = t.elapsed();

        let t = Instant::now();
        link.tx.send(Frame::Commit).await.map_err(EnrollError::CommitUnknown)?;
        let answer = match self.next_protocol_frame(&mut link, "waiting for Committed").await {
            Ok(frame) => frame,
            Err(EnrollError::Link { failure, .. }) => return Err(EnrollError::CommitUnknown(failure)),
            Err(e) => return Err(e),
        };
        timings.commit = t.elapsed();
        match answer {
            Frame::Committed { enrolled, generation } if enrolled == ready => {
                Ok(EnrollmentReport { relayed, generation, rebind: is_rebind, timings })
            }
            Frame::Committed { .. } => Err(EnrollError::Protocol("Committed names another identity".into())),
            Frame::Failed(f) => Err(EnrollError::Device(f)),
            other => Err(unexpected("Committed", &other)),
        }
    }

    /// The next frame that is not a leftover transport message.
    async fn next_protocol_frame(&self, link: &mut Link, during: &'static str) -> Result<Frame, EnrollError> {
        loop {
            match recv(link, self.timeouts.protocol, during).await? {
                Frame::Message(_) => continue,
                frame => return Ok(frame),
            }
        }
    }
}

/// What a device did in one session.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    pub enrolled: Enrolled,
    pub generation: u64,
    /// A sealed device was enrolled again or moved to another SP.
    pub rebind: bool,
    /// Only the SP part of the identifier changed ([`crate::rebind`]).
    pub sp_only: bool,
}

/// The device side: runs device halves and owns the device's store.
///
/// One runtime can serve one real device or a simulated fleet; each session
/// names the device it speaks for.
pub struct DeviceRuntime {
    sandbox: Arc<Sandbox>,
    linker: Linker<DeviceHost>,
    cache: ComponentCache<PreparedHalf<DeviceHalfPre<DeviceHost>>>,
    store: Arc<DeviceStore>,
    /// The manufacturer keys whose apps this device runs.
    trusted: TrustedKeys,
    timeouts: Timeouts,
    /// Keep compiled device halves after a session (a simulated fleet); a
    /// single device drops them with the rest of the enrollment information.
    keep_compiled: bool,
}

impl DeviceRuntime {
    pub fn new(
        sandbox: Arc<Sandbox>,
        store: Arc<DeviceStore>,
        trusted: TrustedKeys,
        timeouts: Timeouts,
        keep_compiled: bool,
    ) -> Result<Self, SetupError> {
        let linker = DeviceHost::linker(sandbox.engine())
            .map_err(|e| SetupError::Linker { world: "device-half", reason: format!("{e:#}") })?;
        let cache = ComponentCache::new(sandbox.config().cache_capacity);
        Ok(Self { sandbox, linker, cache, store, trusted, timeouts, keep_compiled })
    }

    /// The device store.
    pub fn store(&self) -> &Arc<DeviceStore> {
        &self.store
    }

    /// The compiled device halves.
    pub fn cache(&self) -> &ComponentCache<PreparedHalf<DeviceHalfPre<DeviceHost>>> {
        &self.cache
    }

    /// Serves one enrollment session for `device` over `link`. On any failure
    /// the assistant is told why and the device's store is unchanged.
    pub async fn serve(&self, device: Eui, mut link: Link) -> Result<DeviceReport, DeviceFailure> {
        let result = self.session(device, &mut link).await;
        if let Err(failure) = &result {
            tracing::info!(%device, %failure, "enrollment failed; device unchanged");
            let _ = link.tx.send(Frame::Failed(failure.clone())).await;
        }
        result
    }

    async fn session(&self, device: Eui, link: &mut Link) -> Result<DeviceReport, DeviceFailure> {
        let state = self
            .store
            .state(&device)
            .map_err(store_failure)?
            .ok_or_else(|| DeviceFailure::Store(format!("device {device} is not provisioned in this store")))?;
        let mut nonce = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            device_id: device.as_bytes().to_vec(),
            access: state.access.to_string(),
            sealed: state.sealed,
            nonce,
        };
        link.tx.send(Frame::Hello(hello)).await.map_err(protocol)?;
        let start = match link.rx.recv_within(self.timeouts.protocol).await.map_err(protocol)? {
            Frame::Start(start) => start,
            Frame::RebindSp(request) => return self.rebind_sp(device, &state, &nonce, &request, link).await,
            Frame::Abort { reason } => return Err(DeviceFailure::Aborted(reason)),
            other => return Err(DeviceFailure::Protocol(format!("expected Start, got {}", frame_name(&other)))),
        };
        let rebind = state.sealed;
        if rebind {
            let Some(Signature(sig)) = &start.rebind else {
                return Err(DeviceFailure::Sealed);
            };
            let authorized = state.enrolled_by == Some(start.assistant_key)
                && verify(&start.assistant_key, &rebind_message(device.as_bytes(), &nonce), sig);
            if !authorized {
                return Err(DeviceFailure::BadRebindAuthorization);
            }
        }

        // The device trusts its manufacturer, not the assistant: the payload
        // must verify with the device's own keys and name this device.
        let device_half = admit_device_half(start.payload, &self.trusted, device, state.access)?;
        let prepared = self
            .sandbox
            .prepare(&self.cache, HalfKind::Device, &device_half, &self.linker, DeviceHalfPre::new)
            .await
            .map_err(DeviceFailure::Half)?;
        // Enrollment information is not kept: the payload went into the
        // check above, and the device half goes now.
        drop(device_half);

        let transport = TransportEnd::new(std::mem::replace(link, dead_link()), HalfKind::Device, self.timeouts.receive);
        let host = DeviceHost::new(transport, device, state.access, self.sandbox.config().max_memory_bytes);
        let mut store = self.sandbox.store(host);
        let result = async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance.call_enroll(&mut store).await
        }
        .await;
        let outcome = self.sandbox.outcome(HalfKind::Device, &mut store, result);
        let host = store.into_data();
        let outcome = outcome.map_err(|e| host.transport.explain(e));
        let staged = host.staged;
        let (returned, control, failure) = host.transport.into_parts();
        *link = returned;
        let control = last_word(link, control, failure.is_some()).await;
        if !self.keep_compiled {
            self.cache.remove(&prepared.digest);
        }
        drop(prepared);

        if let Some(Frame::Abort { reason }) = control {
            return Err(DeviceFailure::Aborted(reason));
        }
        outcome.map_err(DeviceFailure::Half)?;
        let (Some(sp_bound_id), Some(signing_key)) = (staged.sp_bound_id, staged.signing_key) else {
            return Err(DeviceFailure::Incomplete("an SP-bound identifier and a key pair".into()));
        };
        if !staged.seal_requested {
            return Err(DeviceFailure::Incomplete("asking to be sealed".into()));
        }
        let enrolled =
            Enrolled { sp_bound_id: sp_bound_id.to_string(), public_key: signing_key.verifying_key().to_bytes() };
        link.tx.send(Frame::ReadyToCommit(enrolled.clone())).await.map_err(protocol)?;

        loop {
            match link.rx.recv_within(self.timeouts.protocol).await.map_err(protocol)? {
                Frame::Commit => break,
                Frame::Close | Frame::Message(_) => continue,
                Frame::Abort { reason } => return Err(DeviceFailure::Aborted(reason)),
                other => {
                    return Err(DeviceFailure::Protocol(format!("expected Commit, got {}", frame_name(&other))));
                }
            }
        }
        let network = match staged.network.map(|n| n.encode()) {
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => return Err(DeviceFailure::Store(format!("staged credentials: {e}"))),
            None => None,
        };
        let receipt = self
            .store
            .commit(Enrollment {
                device,
                expected_generation: state.generation,
                allow_sealed: rebind,
                sp_bound_id,
                signing_key,
                network,
                owner: staged.owner,
                location: staged.location,
                name: staged.name,
                enrolled_by: start.assistant_key,
                sealed: true,
            })
            .await
            .map_err(store_failure)?;
        tracing::info!(%device, id = %enrolled.sp_bound_id, generation = receipt.generation, "enrolled and sealed");
        let _ = link.tx.send(Frame::Committed { enrolled: enrolled.clone(), generation: receipt.generation }).await;
        Ok(DeviceReport { enrolled, generation: receipt.generation, rebind, sp_only: false })
    }
}

impl DeviceRuntime {
    /// Moves this enrolled device to another SP, if the assistant on record
    /// asked for it on this connection (see [`crate::rebind`]).
    async fn rebind_sp(
        &self,
        device: Eui,
        state: &DeviceState,
        nonce: &[u8; 32],
        request: &RebindSp,
        link: &mut Link,
    ) -> Result<DeviceReport, DeviceFailure> {
        let new = crate::rebind::authorize(&device, state, nonce, request)?;
        let receipt = self.store.rebind_sp(device, new.clone(), state.generation).await.map_err(store_failure)?;
        tracing::info!(%device, id = %new, generation = receipt.generation, "re-bound to another service provider");
        let _ = link.tx.send(Frame::Rebound { sp_bound_id: new.to_string(), generation: receipt.generation }).await;
        Ok(DeviceReport {
            enrolled: crate::rebind::enrolled(&new, state),
            generation: receipt.generation,
            rebind: true,
            sp_only: true,
        })
    }
}

/// The frame that ended a half's conversation. A half whose link closed
/// under it (its peer gave up and hung up) may not have read the peer's last
/// frame, an `Abort` or `Failed` that says why; it is still in the link.
async fn last_word(link: &mut Link, control: Option<Frame>, link_failed: bool) -> Option<Frame> {
    if control.is_some() || !link_failed {
        return control;
    }
    loop {
        match link.rx.recv_within(Duration::from_millis(100)).await {
            Ok(Frame::Message(_)) => continue,
            Ok(frame) => return Some(frame),
            Err(_) => return None,
        }
    }
}

/// Parses the SP-bound identifier a device committed.
pub fn committed_identifier(enrolled: &Enrolled) -> Result<SpBoundId, crate::identifier::IdentifierError> {
    enrolled.sp_bound_id.parse()
}

pub(crate) fn verify(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (VerifyingKey::from_bytes(key), EdSignature::from_slice(signature)) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

fn store_failure(e: StoreError) -> DeviceFailure {
    match e {
        StoreError::Sealed(_) => DeviceFailure::Sealed,
        StoreError::Conflict { .. } => DeviceFailure::Conflict,
        other => DeviceFailure::Store(other.to_string()),
    }
}

fn protocol(e: LinkFailure) -> DeviceFailure {
    DeviceFailure::Protocol(e.to_string())
}

/// A placeholder while the real link is lent to the device half's transport.
fn dead_link() -> Link {
    let (a, _b) = Link::memory_pair();
    a
}

async fn recv(link: &mut Link, timeout: Duration, during: &'static str) -> Result<Frame, EnrollError> {
    link.rx.recv_within(timeout).await.map_err(|failure| EnrollError::Link { during, failure })
}

async fn send(link: &mut Link, frame: Frame, during: &'static str) -> Result<(), EnrollError> {
    link.tx.send(frame).await.map_err(|failure| EnrollError::Link { during, failure })
}

fn unexpected(expected: &'static str, got: &Frame) -> EnrollError {
    match got {
        Frame::Failed(f) => EnrollError::Device(f.clone()),
        other => EnrollError::Protocol(format!("expected {expected}, got {}", frame_name(other))),
    }
}
