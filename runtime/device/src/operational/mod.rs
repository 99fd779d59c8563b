//! The operational app: what an enrolled device runs, in its own sandbox,
//! after its enrollment (US 2025/0254525 claims 7–9; issue 12).
//!
//! A label may carry a third component besides the two halves, of world
//! `operational`, signed by the manufacturer with them. The device checks it
//! at admission (before anything is committed: an app of the wrong world is
//! an enrollment failure, not a surprise later), stores it in the same
//! transaction as the enrollment, and from then on activates it on the
//! schedule the app asks for, within host limits. Each activation is a fresh
//! instance with the halves' limits (deadline, memory cap) and its own
//! budgets (8 messages, 16 kept values): what survives between activations
//! is only what the app kept (`settings.keep`) and the sequence numbers, in
//! the device store.
//!
//! The app never holds a key. Its messages are signed here with the device's
//! private key ([`control_api::device::message_signed_bytes`]) and sent after
//! the activation returned `ok`; the SP's commands are fetched before it
//! runs, verified with the SP public key the device's binding holds, and
//! only those that verify and are newer than the last one accepted reach the
//! app (the others are dropped and counted, [`OperationalStats`]). A failed
//! activation (a trap, the deadline, the memory cap, a flood of sends)
//! changes nothing durable and sends nothing; the device stays enrolled and
//! the agent keeps running.

mod host;
pub mod uplink;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use control_api::device::{DeviceMessage, command_signed_bytes, message_signed_bytes};
use ed25519_dalek::Signer;
use enrollment_host::bindings::operational::OperationalPre;
use enrollment_host::frame::verify_signature;
use enrollment_host::sandbox::cache::ComponentCache;
use enrollment_host::sandbox::{HalfError, HalfKind, PreparedHalf, Sandbox, SetupError};
use enrollment_host::session::within_deadline;
use enrollment_host::trace::{HalfTrace, Trace};
use sp_bound_id::Eui;
use wasmtime::component::Linker;

pub use host::{MAX_KEPT, MAX_MESSAGE, MAX_SENDS, MAX_WAKE_SECS, MIN_WAKE_SECS, OperationalHost};
use uplink::{Uplink, UplinkError};

use crate::store::{ActivationRecord, DeviceStore, StoreError};

/// How long the app waits for its next activation if it never asks.
pub const DEFAULT_WAKE: Duration = Duration::from_secs(60);

/// Why an activation did not run or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationalError {
    #[error("device {0} is not provisioned in this store")]
    UnknownDevice(Eui),
    #[error("device {0} is not enrolled and sealed: no operational app runs before an enrollment")]
    NotEnrolled(Eui),
    #[error("device {0} has no operational app (its label carried none)")]
    NoApp(Eui),
    #[error("device {0} has no SP endpoint in its binding: its messages have nowhere to go")]
    NoEndpoint(Eui),
    /// The app failed, trapped, ran past its deadline or memory cap, or
    /// flooded sends; nothing was sent or kept.
    #[error("the operational app of {device}: {error}")]
    App { device: Eui, error: HalfError },
    #[error("the operational app of {device} ran, but its messages did not all reach the SP: {error}")]
    Uplink { device: Eui, error: UplinkError },
    #[error("the device store: {0}")]
    Store(#[from] StoreError),
}

/// What one activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Messages signed and delivered to the SP (or its gateway).
    pub sent: usize,
    /// Verified, new commands handed to the app.
    pub commands: usize,
    /// Commands dropped: not signed by the device's SP, or replayed.
    pub dropped: usize,
    /// When the app wants to run again.
    pub wake_after: Duration,
}

/// Counters over every activation, for logs, tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationalStats {
    pub activations: u64,
    pub failed: u64,
    pub messages_sent: u64,
    pub commands_accepted: u64,
    /// Commands whose signature did not verify with the device's SP key.
    pub commands_forged: u64,
    /// Commands at or below the last accepted sequence number.
    pub commands_replayed: u64,
}

#[derive(Default)]
struct Counters {
    activations: AtomicU64,
    failed: AtomicU64,
    messages_sent: AtomicU64,
    commands_accepted: AtomicU64,
    commands_forged: AtomicU64,
    commands_replayed: AtomicU64,
}

/// Runs operational apps of the devices in one store.
pub struct OperationalRuntime {
    sandbox: Arc<Sandbox>,
    linker: Linker<OperationalHost>,
    cache: ComponentCache<PreparedHalf<OperationalPre<OperationalHost>>>,
    store: Arc<DeviceStore>,
    uplink: Arc<dyn Uplink>,
    trace: Option<Trace>,
    counters: Counters,
}

impl OperationalRuntime {
    pub fn new(sandbox: Arc<Sandbox>, store: Arc<DeviceStore>, uplink: Arc<dyn Uplink>) -> Result<Self, SetupError> {
        let linker = OperationalHost::linker(sandbox.engine())
            .map_err(|e| SetupError::Linker { world: "operational", reason: format!("{e:#}") })?;
        let cache = ComponentCache::new(sandbox.config().cache_capacity);
        Ok(Self { sandbox, linker, cache, store, uplink, trace: None, counters: Counters::default() })
    }

    /// Records what apps do (diagnostics) into `trace`.
    pub fn with_trace(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> OperationalStats {
        let c = &self.counters;
        OperationalStats {
            activations: c.activations.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            commands_accepted: c.commands_accepted.load(Ordering::Relaxed),
            commands_forged: c.commands_forged.load(Ordering::Relaxed),
            commands_replayed: c.commands_replayed.load(Ordering::Relaxed),
        }
    }

    /// Checks (and compiles) an app: a component of world `operational`
    /// within the sandbox's limits. Admission calls this before a commit.
    pub async fn check(&self, app: &[u8]) -> Result<(), HalfError> {
        self.prepare(app).await.map(drop)
    }

    async fn prepare(&self, app: &[u8]) -> Result<Arc<PreparedHalf<OperationalPre<OperationalHost>>>, HalfError> {
        self.sandbox.prepare(&self.cache, HalfKind::Operational, app, &self.linker, OperationalPre::new).await
    }

    /// Runs one activation of `device`'s app: fetch and verify commands, run
    /// the app, sign and send its messages, record what it kept.
    pub async fn activate(&self, device: Eui) -> Result<Activation, OperationalError> {
        self.counters.activations.fetch_add(1, Ordering::Relaxed);
        let result = self.activate_once(device).await;
        if result.is_err() {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn activate_once(&self, device: Eui) -> Result<Activation, OperationalError> {
        let state = self.store.state(&device)?.ok_or(OperationalError::UnknownDevice(device))?;
        let (true, Some(id)) = (state.sealed, state.sp_bound_id.clone()) else {
            return Err(OperationalError::NotEnrolled(device));
        };
        let op = self.store.operational(&device)?.ok_or(OperationalError::NoApp(device))?;
        let endpoint = state.sp_endpoint.clone().ok_or(OperationalError::NoEndpoint(device))?;
        let identifier = id.to_string();

        // Commands first: only verified, new ones reach the app.
        let (commands, newest, dropped) = match self.uplink.commands(&endpoint, &identifier, op.last_command_seq).await {
            Ok(list) => self.verify_commands(list, &identifier, state.sp_public_key, op.last_command_seq),
            Err(error) => {
                tracing::debug!(%device, %error, "commands not fetched; the app runs without");
                (VecDeque::new(), op.last_command_seq, 0)
            }
        };
        let delivered = commands.len();

        let prepared = self.prepare(&op.app).await.map_err(|error| OperationalError::App { device, error })?;
        let trace = HalfTrace::new(self.trace.clone(), HalfKind::Operational);
        let max_memory = self.sandbox.config().max_memory_bytes;
        let host = OperationalHost::new(identifier.clone(), state.config.clone(), op.kept.clone(), commands, trace, max_memory);
        let mut store = self.sandbox.store(host);
        let allowed = self.sandbox.config().half_deadline;
        let until = (tokio::time::Instant::now() + allowed, allowed);
        let result = within_deadline(HalfKind::Operational, until, async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance.call_activate(&mut store).await
        })
        .await;
        let outcome = self.sandbox.outcome(HalfKind::Operational, &mut store, result);
        let host = store.into_data();
        outcome.map_err(|error| OperationalError::App { device, error })?;

        // Sign and send, each with a sequence number never used before.
        let key = self.store.private_key(&device)?.ok_or(OperationalError::NotEnrolled(device))?;
        let mut seq = op.last_message_seq;
        let mut sent = 0;
        let mut failure = None;
        for body in &host.outbox {
            seq = (seq + 1).max(now_ms());
            let signature = key.sign(&message_signed_bytes(&identifier, seq, body));
            let message = DeviceMessage {
                identifier: identifier.clone(),
                seq,
                body: hex::encode(body),
                signature: hex::encode(signature.to_bytes()),
            };
            match self.uplink.send(&endpoint, &message).await {
                Ok(()) => sent += 1,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        drop(key);
        self.counters.messages_sent.fetch_add(sent as u64, Ordering::Relaxed);
        let record = ActivationRecord { device, kept: host.kept.clone(), last_command_seq: newest, last_message_seq: seq };
        self.store.finish_activation(record).await?;
        if let Some(error) = failure {
            return Err(OperationalError::Uplink { device, error });
        }
        let wake_after = host.wake_after.map(|s| Duration::from_secs(s.into())).unwrap_or(DEFAULT_WAKE);
        Ok(Activation { sent, commands: delivered, dropped, wake_after })
    }

    /// Keeps the commands signed by the device's SP and newer than `last`,
    /// in order; returns them, the newest sequence number, and how many
    /// were dropped.
    fn verify_commands(
        &self,
        mut list: Vec<control_api::device::SpCommand>,
        identifier: &str,
        sp_key: Option<[u8; 32]>,
        last: u64,
    ) -> (VecDeque<Vec<u8>>, u64, usize) {
        list.sort_by_key(|c| c.seq);
        let mut accepted = VecDeque::new();
        let (mut newest, mut dropped) = (last, 0);
        for command in list {
            let body = hex::decode(&command.body).ok();
            let signature = hex::decode(&command.signature).ok();
            let verified = match (sp_key, &body, &signature) {
                (Some(key), Some(body), Some(sig)) => {
                    command.identifier == identifier
                        && verify_signature(&key, &command_signed_bytes(identifier, command.seq, body), sig)
                }
                _ => false,
            };
            if !verified {
                self.counters.commands_forged.fetch_add(1, Ordering::Relaxed);
                dropped += 1;
                continue;
            }
            if command.seq <= newest {
                self.counters.commands_replayed.fetch_add(1, Ordering::Relaxed);
                dropped += 1;
                continue;
            }
            newest = command.seq;
            self.counters.commands_accepted.fetch_add(1, Ordering::Relaxed);
            accepted.extend(body);
        }
        (accepted, newest, dropped)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
