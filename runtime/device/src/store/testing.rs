//! Unit tests only (`#[cfg(test)]`): hooks into the writer, and fixtures.
//!
//! The writer's tests must put several operations into one batch and run an
//! operation that writes and then fails; neither belongs in a device build.
//! So the production job type (`writer::Job`) has no variants for them:
//! under `cfg(test)` the writer's queue carries [`TestJob`] instead, which is
//! either a real `Job` or one of the hooks, and the writer runs both through
//! the `writer::Operation` trait. Outside tests this module does not exist.

use std::sync::mpsc;

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rusqlite::Connection;

use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

use super::writer::{Job, Operation, Outcome, in_savepoint};
use super::{DeviceState, DeviceStore, During, Enrollment, LogEntry, StoreError};

/// What the writer's queue carries in unit tests.
pub(super) enum TestJob {
    /// One of the store's own operations.
    Job(Job),
    /// Makes the writer wait until the sender is dropped or sent to.
    Hold(mpsc::Receiver<()>),
    /// Raw SQL, run as one operation of a batch.
    Exec {
        sql: &'static str,
        reply: mpsc::SyncSender<Result<(), StoreError>>,
    },
}

impl From<Job> for TestJob {
    fn from(job: Job) -> Self {
        Self::Job(job)
    }
}

impl Operation for TestJob {
    fn dequeued(self) -> Option<Self> {
        match self {
            Self::Hold(release) => {
                let _ = release.recv();
                None
            }
            job => Some(job),
        }
    }

    fn run(self, conn: &Connection, now: u64) -> (Outcome, Option<StoreError>) {
        match self {
            Self::Job(job) => job.run(conn, now),
            Self::Hold(_) => unreachable!("the writer handles holds when it dequeues them"),
            Self::Exec { sql, reply } => {
                let (result, broken) = in_savepoint(conn, |c| c.execute_batch(sql).during("running test SQL"));
                (Outcome::Unit(reply, result), broken)
            }
        }
    }

    fn abandon(self, error: &StoreError) -> Outcome {
        match self {
            Self::Job(job) => job.abandon(error),
            Self::Exec { reply, .. } => Outcome::Unit(reply, Err(error.clone())),
            Self::Hold(_) => unreachable!("the writer handles holds when it dequeues them"),
        }
    }
}

impl DeviceStore {
    /// Makes the writer wait until the returned sender is dropped or sent to,
    /// so that a test can queue several operations into one batch.
    pub(super) fn hold_writer(&self) -> mpsc::Sender<()> {
        let (release, hold) = mpsc::channel();
        let _ = self.send(TestJob::Hold(hold));
        release
    }

    /// Queues raw SQL as one operation of a batch.
    pub(super) fn exec(&self, sql: &'static str) -> mpsc::Receiver<Result<(), StoreError>> {
        let (reply, done) = mpsc::sync_channel(1);
        let _ = self.send(TestJob::Exec { sql, reply });
        done
    }
}

// ---------------------------------------------------------------------------
// Fixtures

pub(super) const METER: &str = "AC-DE-48-00-00-80";
pub(super) const SENSOR: &str = "00-0D-6F-FF-FE-12-34-56";
pub(super) const ASSISTANT: [u8; 32] = [7; 32];

pub(super) fn eui(text: &str) -> Eui {
    text.parse().expect("test EUI")
}

/// The `n`th device of a simulated Wi-Fi fleet.
pub(super) fn fleet_eui(n: u32) -> Eui {
    let [_, b, c, d] = n.to_be_bytes();
    Eui::from_bytes(&[0xAC, 0xDE, 0x48, b, c, d]).expect("valid fleet EUI")
}

pub(super) fn id(sp: &str, device: Eui, access: AccessTechnology) -> SpBoundId {
    SpBoundId::new(SpIdentity::new(sp).expect("test SP"), device, access).expect("test identifier")
}

pub(super) fn open(dir: &tempfile::TempDir) -> DeviceStore {
    DeviceStore::open(&dir.path().join("device.sqlite")).expect("open store")
}

pub(super) fn enrollment(device: Eui, access: AccessTechnology, generation: u64) -> Enrollment {
    Enrollment {
        device,
        expected_generation: generation,
        allow_sealed: false,
        sp_bound_id: id("meters.sp-one.example", device, access),
        signing_key: SigningKey::generate(&mut OsRng),
        network: Some(b"\x01plant-3".to_vec()),
        owner: Some("ACME Utilities".into()),
        location: Some("geo:52.3676,4.9041".into()),
        name: Some("meter 1".into()),
        enrolled_by: ASSISTANT,
        sealed: true,
        sp_endpoint: Some("https://meters.sp-one.example/v1".into()),
        sp_public_key: Some([0x5B; 32]),
        config: [("report-interval".to_string(), b"900".to_vec())].into_iter().collect(),
        operational: None,
    }
}

/// Everything observable about a device: state, log and private key.
pub(super) fn snapshot(store: &DeviceStore, device: &Eui) -> (Option<DeviceState>, Vec<LogEntry>, Option<[u8; 32]>) {
    let key = match store.private_key(device) {
        Ok(key) => key.map(|k| k.to_bytes()),
        Err(StoreError::UnknownDevice(_)) => None,
        Err(e) => panic!("private key: {e}"),
    };
    (store.state(device).expect("state"), store.log(device).expect("log"), key)
}
