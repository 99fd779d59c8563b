//! Settling enrollments whose outcome the gateway lost.
//!
//! The two-phase commit of an enrollment leaves one window the gateway cannot
//! see through: it has relayed the device's key to the SP and sent `Commit`,
//! and the answer never arrives (the device agent died, the link broke, the
//! gateway itself was killed). Left alone that strands devices: a device that
//! committed and sealed itself while the gateway still has it as `known`
//! without key or link address, and SPs holding keys of devices that never
//! committed.
//!
//! The design, and why:
//! * **The relay stays before the commit.** The SP must be able to refuse a
//!   device before the device seals itself to it; relaying only after the
//!   commit would seal devices to SPs that then say no. So a relay is
//!   provisional until the device commits, and its compensation is a
//!   withdrawal (`POST {sp}/v1/devices/withdraw`), which drops the key only if
//!   the SP still holds that very key for that identifier.
//! * **The gateway writes down the doubt before it creates it.** The
//!   `EnrollJournal` writes an `in_doubt` note (identity, key, link
//!   address) before the relay, so every crash after that point finds it.
//! * **The device's store is the truth, and the gateway asks it.** A status
//!   request on the link ([`enrollment_assistant::status`]), signed by the
//!   gateway's identity key and answered with the device's own signature,
//!   says what the device committed. If it holds the noted key, enrolled by
//!   this gateway, the enrollment is recorded (in the transaction that drops
//!   the note); if it holds anything else, the SP is told to drop the key and
//!   then the note goes. A device that does not answer stays in doubt.
//! * **When:** at once when an enrollment ends without a definite answer, on
//!   a retry of that enrollment (which then reports the committed result, not
//!   `device_sealed`), after a gateway restart, and every retry interval.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Serialize;

use enrollment_assistant::journal::CommitJournal;
use enrollment_assistant::status::{StatusError, ask_status};
use enrollment_assistant::{FailureCode, RelayedDevice};
use sp_bound_id::Eui;

use crate::store::{GatewayStore, InDoubt};
use crate::{Gateway, GatewayError};

/// How many devices in doubt are asked at once.
const ASKED_AT_ONCE: usize = 16;

/// How one enrollment in doubt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Settled {
    /// The device committed it; recorded (under `identifier`, which names
    /// the SP a pushed update moved the device to meanwhile, if one did).
    Committed { identifier: String, generation: u64 },
    /// The device did not commit it; its SP was told to drop the key
    /// (`dropped` reports: 0 if the relay had never reached it).
    RolledBack { dropped: usize },
    /// No answer yet (device or SP out of reach); asked again later.
    StillInDoubt { reason: String },
}

/// The gateway's [`CommitJournal`] for one enrollment: notes the staged
/// identity in the store and remembers the note for the outcome.
pub(crate) struct EnrollJournal {
    store: GatewayStore,
    link_addr: String,
    noted: Mutex<Option<InDoubt>>,
}

impl EnrollJournal {
    pub(crate) fn new(store: GatewayStore, link_addr: String) -> Self {
        Self { store, link_addr, noted: Mutex::new(None) }
    }

    /// The note written for this enrollment, if it got that far.
    pub(crate) fn noted(&self) -> Option<InDoubt> {
        self.noted.lock().map(|n| n.clone()).unwrap_or(None)
    }
}

impl CommitJournal for EnrollJournal {
    fn prepare<'a>(&'a self, staged: &'a RelayedDevice, rebind: bool) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let id = staged.sp_bound_id.clone();
            self.store
                .record_in_doubt(id.clone(), staged.public_key, self.link_addr.clone(), rebind, staged.sp_endpoint.clone())
                .await
                .map_err(|e| e.to_string())?;
            let note = InDoubt {
                device_id: *id.device(),
                identifier: id,
                public_key: staged.public_key,
                link_addr: self.link_addr.clone(),
                rebind,
                sp_endpoint: staged.sp_endpoint.clone(),
                since_ms: 0,
                attempts: 0,
                last_error: None,
            };
            if let Ok(mut noted) = self.noted.lock() {
                *noted = Some(note);
            }
            Ok(())
        })
    }
}

/// The link addresses this gateway is enrolling right now, each with how
/// many enrollments to it are under way. A note of an enrollment in flight
/// is that enrollment's to settle: the settling pass leaves it alone (asked
/// mid-enrollment, the device has not committed *yet*, and the pass would
/// take back a key about to be committed; asked after the enrollment's own
/// roll-back, the SP would be told twice).
#[derive(Default)]
pub(crate) struct InFlight(Mutex<std::collections::HashMap<String, usize>>);

impl InFlight {
    /// Marks an enrollment to `addr` as under way until the guard drops.
    pub(crate) fn start(&self, addr: String) -> InFlightGuard<'_> {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(addr.clone()).or_default() += 1;
        }
        InFlightGuard { in_flight: self, addr }
    }

    fn contains(&self, addr: &str) -> bool {
        self.0.lock().map(|map| map.contains_key(addr)).unwrap_or(false)
    }
}

/// An enrollment under way ([`InFlight::start`]).
pub(crate) struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    addr: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.in_flight.0.lock()
            && let Some(n) = map.get_mut(&self.addr)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

impl Gateway {
    /// Asks every device whose enrollment is in doubt what it committed, and
    /// settles each note (see the module docs). One caller at a time; notes
    /// of enrollments still under way are left to them.
    pub async fn settle_in_doubt(&self) -> Result<Vec<(Eui, Settled)>, GatewayError> {
        let _one_at_a_time = self.settling.lock().await;
        let mut notes = self.store.in_doubt().await?;
        notes.retain(|note| !self.in_flight.contains(&note.link_addr));
        let settled: Vec<(Eui, Result<Settled, GatewayError>)> = futures::stream::iter(notes)
            .map(|note| async move { (note.device_id, self.settle(&note).await) })
            .buffer_unordered(ASKED_AT_ONCE)
            .collect()
            .await;
        let mut results = Vec::with_capacity(settled.len());
        for (device, outcome) in settled {
            let outcome = outcome?;
            log_settled(&device, &outcome);
            results.push((device, outcome));
        }
        Ok(results)
    }

    /// Settles one note: ask the device; record, roll back, or keep it.
    pub(crate) async fn settle(&self, note: &InDoubt) -> Result<Settled, GatewayError> {
        let settled = self.settle_asking(note).await;
        if let Ok(outcome) = &settled {
            self.metrics.settled(outcome);
        }
        settled
    }

    async fn settle_asking(&self, note: &InDoubt) -> Result<Settled, GatewayError> {
        let link = match self.connect(&note.link_addr).await {
            Ok(link) => link,
            Err(e) => return self.still_in_doubt(note, e.to_string()).await,
        };
        let ours = self.identity.verifying_key().to_bytes();
        match ask_status(link, &self.identity, self.timeouts.protocol).await {
            Ok(status) if status.holds(&note.public_key, &ours) => {
                let Some((committed, _)) = status.enrolled else {
                    return self.still_in_doubt(note, "the device's status lost its identity".into()).await;
                };
                let id = self.store.settle_committed(note, committed, status.generation).await?;
                Ok(Settled::Committed { identifier: id.to_string(), generation: status.generation })
            }
            // The device answered and holds something else: it did not commit this.
            Ok(_) => self.roll_back(note).await,
            // Sealed by another assistant: this gateway's commit did not happen.
            Err(StatusError::Device(f)) if f.code == FailureCode::BadStatusAuthorization => self.roll_back(note).await,
            Err(e) => self.still_in_doubt(note, e.to_string()).await,
        }
    }

    /// The device did not commit `note`: tell the SP to drop the key, then
    /// forget the note. If the SP cannot be told, the note stays (the next
    /// round asks the device again, which answers the same, and retries).
    pub(crate) async fn roll_back(&self, note: &InDoubt) -> Result<Settled, GatewayError> {
        let Some(services) = &self.services else {
            return self.still_in_doubt(note, "no SP client: the gateway was built without its services".into()).await;
        };
        match services.withdraw(&note.identifier, &note.public_key, note.sp_endpoint.as_deref()).await {
            Ok(dropped) => {
                self.store.settle_rolled_back(note).await?;
                Ok(Settled::RolledBack { dropped })
            }
            Err(e) => self.still_in_doubt(note, format!("telling the SP to drop the key: {e}")).await,
        }
    }

    async fn still_in_doubt(&self, note: &InDoubt, reason: String) -> Result<Settled, GatewayError> {
        self.store.in_doubt_unanswered(note.device_id, reason.clone()).await?;
        Ok(Settled::StillInDoubt { reason })
    }
}

fn log_settled(device: &Eui, outcome: &Settled) {
    match outcome {
        Settled::Committed { identifier, generation } => {
            tracing::info!(%device, %identifier, generation, "enrollment in doubt: the device had committed it")
        }
        Settled::RolledBack { dropped } => {
            tracing::info!(%device, dropped, "enrollment in doubt: the device had not committed it; the SP dropped the key")
        }
        Settled::StillInDoubt { reason } => tracing::debug!(%device, %reason, "enrollment still in doubt"),
    }
}

/// An `Arc` of the journal, as the runtime takes it.
pub(crate) fn journal(j: &Arc<EnrollJournal>) -> enrollment_assistant::journal::Journal {
    enrollment_assistant::journal::Journal(j.clone())
}
