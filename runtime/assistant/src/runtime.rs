//! The assistant side of an enrollment: [`AssistantRuntime`] runs the phone
//! half and coordinates the device at the other end of a [`Link`] (frames in
//! [`enrollment_host::frame`]).
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

use ed25519_dalek::{Signer, SigningKey};
use enrollment_host::bindings::phone::PhoneHalfPre;
use enrollment_host::failure::{FailureCode, WireFailure};
use enrollment_host::frame::{Enrolled, Frame, PROTOCOL_VERSION, Signature, Start, frame_name, rebind_message};
use enrollment_host::link::{Link, LinkFailure};
use enrollment_host::sandbox::cache::ComponentCache;
use enrollment_host::sandbox::{HalfError, HalfKind, PreparedHalf, Sandbox, SetupError};
use enrollment_host::manifest::ManifestView;
use enrollment_host::session::{self, Phase, Timeouts, last_word, within_deadline};
use enrollment_host::trace::{HalfTrace, Trace};
use enrollment_host::transport::TransportEnd;
use sp_bound_id::{AccessTechnology, Eui, IdentifierError, SpBoundId};
use wasmtime::component::Linker;

use crate::capability::{AssistantServices, PhoneHost, RelayError, RelayedDevice};
use crate::journal::Journal;
use crate::label::{LabelError, ScannedApp};

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
    Device(WireFailure),
    #[error("{error}{}", refusal.as_ref().map(|r| format!(" (last refusal: {r})")).unwrap_or_default())]
    PhoneHalf { error: HalfError, refusal: Option<String> },
    #[error("the label does not fit the device on the link: {0}")]
    Label(LabelError),
    #[error("the phone half finished without `offer.finish`: the device's identity was never relayed")]
    NotRelayed,
    #[error("the phone half relayed {relayed}, but the device staged {staged}")]
    RelayMismatch { relayed: String, staged: String },
    #[error("relaying to the service provider failed: {0}")]
    Relay(RelayError),
    #[error("the link failed after Commit was sent ({0}); the device may or may not be enrolled")]
    CommitUnknown(LinkFailure),
    #[error("the device's answer to Commit was not Committed for what it staged ({0}); the device may or may not be enrolled")]
    CommitUnclear(String),
    #[error("the assistant could not record the enrollment before relaying it ({0}); nothing was relayed and the device is unchanged")]
    Journal(String),
}

impl EnrollError {
    /// Whether Commit was sent and no definite answer came back: only the
    /// device knows whether it enrolled ([`crate::status::ask_status`]).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, EnrollError::CommitUnknown(_) | EnrollError::CommitUnclear(_))
    }
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
#[derive(Debug, Clone, Default)]
pub struct EnrollOptions {
    /// Re-bind the device if it is already sealed (it must have been enrolled
    /// by this assistant's identity key).
    pub rebind: bool,
    /// Record what the phone half does (items, messages, refusals,
    /// diagnostics) into this trace (`qr-packer simulate`, tests).
    pub trace: Option<Trace>,
    /// Told durably before anything is relayed (see [`crate::journal`]).
    pub journal: Option<Journal>,
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
        let clock = session::start(&mut link, self.timeouts);
        let hello = match recv(&mut link, clock.phase(), "waiting for the device's Hello").await? {
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
            abort(&mut link, FailureCode::LabelRefused, e.to_string()).await;
            return Err(EnrollError::Label(e));
        }
        let rebind = match (hello.sealed, options.rebind) {
            (false, _) => None,
            (true, true) => {
                Some(Signature(self.identity.sign(&rebind_message(&hello.device_id, &hello.nonce)).to_vec()))
            }
            (true, false) => {
                abort(&mut link, FailureCode::DeviceSealed, "re-bind not requested").await;
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
                abort(&mut link, FailureCode::PhoneHalfFailed, error.to_string()).await;
                return Err(EnrollError::PhoneHalf { error, refusal: None });
            }
        };
        timings.prepare = t.elapsed();

        let t = Instant::now();
        let trace = HalfTrace::new(options.trace.clone(), HalfKind::Phone);
        let transport = TransportEnd::new(link, HalfKind::Phone, self.timeouts.receive, trace);
        let max_memory = self.sandbox.config().max_memory_bytes;
        let manifest = ManifestView::of(app.manifest());
        let host = PhoneHost::new(transport, manifest, self.services.clone(), device, access, max_memory);
        let mut store = self.sandbox.store(host);
        let until = clock.half_until(self.sandbox.config().half_deadline);
        let result = within_deadline(HalfKind::Phone, until, async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance.call_enroll(&mut store).await
        })
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
            abort(&mut link, FailureCode::PhoneHalfFailed, reason).await;
            return Err(EnrollError::PhoneHalf { error, refusal });
        }
        let Some(relayed) = relay else {
            abort(&mut link, FailureCode::NotRelayed, "phone half did not relay").await;
            return Err(EnrollError::NotRelayed);
        };
        let _ = link.tx.send(Frame::Close).await;

        let t = Instant::now();
        let ready = match control {
            Some(frame) => frame,
            None => next_protocol_frame(&mut link, clock.phase(), "waiting for the device half to finish").await?,
        };
        let ready = match ready {
            Frame::ReadyToCommit(ready) => ready,
            Frame::Failed(f) => return Err(EnrollError::Device(f)),
            other => return Err(unexpected("ReadyToCommit", &other)),
        };
        timings.device = t.elapsed();
        if ready.sp_bound_id != relayed.sp_bound_id.to_string() || ready.public_key != relayed.public_key {
            abort(&mut link, FailureCode::RelayMismatch, "relay does not match what the device staged").await;
            return Err(EnrollError::RelayMismatch {
                relayed: format!("{} / {}", relayed.sp_bound_id, hex::encode(relayed.public_key)),
                staged: format!("{} / {}", ready.sp_bound_id, hex::encode(ready.public_key)),
            });
        }

        if let Some(Journal(journal)) = &options.journal
            && let Err(e) = journal.prepare(&relayed, is_rebind).await
        {
            abort(&mut link, FailureCode::RelayFailed, "the assistant could not record the enrollment").await;
            return Err(EnrollError::Journal(e));
        }

        let t = Instant::now();
        if let Err(e) = self.services.relay(relayed.clone()).await {
            abort(&mut link, FailureCode::RelayFailed, e.to_string()).await;
            return Err(EnrollError::Relay(e));
        }
        timings.relay = t.elapsed();

        let t = Instant::now();
        link.tx.send(Frame::Commit).await.map_err(EnrollError::CommitUnknown)?;
        let answer = match next_protocol_frame(&mut link, clock.phase(), "waiting for Committed").await {
            Ok(frame) => frame,
            Err(EnrollError::Link { failure, .. }) => return Err(EnrollError::CommitUnknown(failure)),
            Err(e) => return Err(EnrollError::CommitUnclear(e.to_string())),
        };
        timings.commit = t.elapsed();
        match answer {
            Frame::Committed { enrolled, generation } if enrolled == ready => {
                Ok(EnrollmentReport { relayed, generation, rebind: is_rebind, timings })
            }
            Frame::Committed { .. } => Err(EnrollError::CommitUnclear("Committed names another identity".into())),
            // The device's store refused the write: the device is unchanged.
            Frame::Failed(f) => Err(EnrollError::Device(f)),
            other => Err(EnrollError::CommitUnclear(format!("expected Committed, got {}", frame_name(&other)))),
        }
    }

}

/// The next frame of `phase` that is not a leftover transport message.
async fn next_protocol_frame(link: &mut Link, phase: Phase, during: &'static str) -> Result<Frame, EnrollError> {
    phase.next_protocol_frame(link).await.map_err(|failure| EnrollError::Link { during, failure })
}

/// Parses the SP-bound identifier a device committed.
pub fn committed_identifier(enrolled: &Enrolled) -> Result<SpBoundId, IdentifierError> {
    enrolled.sp_bound_id.parse()
}

async fn recv(link: &mut Link, phase: Phase, during: &'static str) -> Result<Frame, EnrollError> {
    phase.next_frame(link).await.map_err(|failure| EnrollError::Link { during, failure })
}

async fn send(link: &mut Link, frame: Frame, during: &'static str) -> Result<(), EnrollError> {
    link.tx.send(frame).await.map_err(|failure| EnrollError::Link { during, failure })
}

/// Tells the device why the assistant gives up; the device may be gone already.
async fn abort(link: &mut Link, code: FailureCode, detail: impl Into<String>) {
    let _ = link.tx.send_last_word(Frame::Abort(WireFailure::new(code, detail))).await;
}

fn unexpected(expected: &'static str, got: &Frame) -> EnrollError {
    match got {
        Frame::Failed(f) => EnrollError::Device(f.clone()),
        other => EnrollError::Protocol(format!("expected {expected}, got {}", frame_name(other))),
    }
}
