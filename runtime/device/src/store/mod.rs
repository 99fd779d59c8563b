//! The device's durable state: what an enrollment leaves behind.
//!
//! A device agent keeps everything an enrollment writes — the SP-bound
//! identifier, the key pair, network credentials, owner, location, name, who
//! enrolled it and whether it is sealed — in one SQLite file. One file can
//! hold one device (a real device) or many (a simulated fleet in benchmarks),
//! so every row is keyed by the manufacturer device id.
//!
//! # Atomic and durable
//!
//! An enrollment is applied by [`DeviceStore::commit`] all at once or not at
//! all: its preconditions (the device exists, nobody changed it since the
//! session read it, it is not sealed unless the caller authorized a re-bind,
//! the identifier names this device and its access technology) are checked
//! inside the same transaction that writes, so nothing can slip in between.
//! A failed precondition leaves the device and the log exactly as they were.
//! The file is in WAL mode with `synchronous=FULL`: when `commit` returns
//! `Ok`, the transaction's WAL frames have been fsynced and survive a crash or
//! power loss.
//!
//! # Group commit
//!
//! An fsync per enrollment would cap a fleet at a few thousand enrollments a
//! second no matter how many cores it has, so the store commits in groups.
//! One writer thread owns the only write connection. `commit` queues the
//! enrollment on a channel and awaits a reply; the writer takes everything
//! queued (up to [`MAX_BATCH`]), runs it in ONE transaction with a SAVEPOINT
//! per enrollment, and COMMITs once: one fsync for the whole batch. A failed
//! precondition rolls back only that enrollment's savepoint and answers it
//! with its error; the others still commit. If the COMMIT itself fails (or
//! SQLite abandons the transaction: disk full, I/O error), every enrollment
//! in the batch gets the error and none of them is written. Nobody is told
//! `Ok` before the fsync. Under light load a batch is one enrollment and
//! costs one fsync, exactly like committing directly; under heavy load the
//! batches grow by themselves, because whatever arrives during one fsync goes
//! into the next batch.
//!
//! Reads ([`DeviceStore::state`] and friends) use their own connections from
//! a small pool: in WAL mode they see the last committed state and never wait
//! for the writer.
//!
//! # Fields a commit leaves out
//!
//! In an [`Enrollment`], `None` for the network credentials, owner, location
//! or name keeps the stored value: a re-bind that only moves the device to
//! another service provider should not wipe its configuration. The
//! identifier, the key pair and who enrolled it are always replaced. Sealing
//! is one-way: `sealed: false` means "do not seal now", it never unseals a
//! sealed device (this store offers no unsealing at all; that would be a
//! factory reset, which deletes the file).
//!
//! # The private key
//!
//! The device's Ed25519 private key is in the file, because the device must
//! sign with it after a restart. It is never part of [`DeviceState`]; only
//! [`DeviceStore::private_key`] returns it, for host code that signs on the
//! device's behalf. Nothing here ever sends it anywhere. (The file itself is
//! the device's trust boundary; a real device would keep the key in a secure
//! element instead.)
//!
//! # Modules
//!
//! The store is split by job, so that each part can be read (and its tests
//! found) on its own; everything public is defined or re-exported here, and
//! callers see only `store`.
//!
//! | module | what |
//! | --- | --- |
//! | (this one) | [`DeviceStore`], the public face; the public types and [`StoreError`] |
//! | `schema` | the tables, [`SCHEMA_VERSION`], migrations, opening connections (pragmas) |
//! | `writer` | the group-commit writer thread: job queue, batches, savepoints, [`WriterStats`] |
//! | `ops` | what runs inside a transaction: provision, commit, re-bind, log append, identifier checks |
//! | `rows` | decoding rows into [`DeviceState`], [`LogEntry`] and the private key, or [`StoreError::Corrupt`] |
//! | `testing` | `cfg(test)` only: the unit tests' hooks into the writer's queue, and fixtures |

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use tokio::sync::oneshot;

use sp_bound_id::{AccessTechnology, Eui, IdentifierError, SpBoundId};

mod operational;
mod ops;
mod rows;
mod schema;
#[cfg(test)]
mod testing;
mod writer;

pub use operational::{ActivationRecord, OperationalState};
pub use schema::SCHEMA_VERSION;
pub use writer::{MAX_BATCH, MAX_QUEUED, WriterStats};

use writer::{Counters, Job, Jobs, Queued};

/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 4;

/// Why the store refused or failed an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed; `during` says what the store was doing.
    // The cause is in the message, and deliberately not a `source`: a
    // report that prints the chain would say it twice.
    #[error("device store: SQLite failed while {during}: {cause}")]
    Sqlite { during: &'static str, cause: Arc<rusqlite::Error> },
    /// The writer's queue is full ([`writer::MAX_QUEUED`] operations): the
    /// operation was not queued; nothing changed. Try again shortly.
    #[error("the device store is busy ({queued} writes are waiting for the disk); nothing was written, try again shortly")]
    Busy { queued: usize },
    /// The device is not provisioned in this store.
    #[error("device {0} is not provisioned in this store")]
    UnknownDevice(Eui),
    /// The device is already provisioned, with another access technology.
    #[error("device {device} is already provisioned for {provisioned}, not {requested}")]
    AlreadyProvisioned { device: Eui, provisioned: AccessTechnology, requested: AccessTechnology },
    /// The device id cannot be used with the access technology.
    #[error("cannot provision the device: {0}")]
    Identifier(#[from] IdentifierError),
    /// The device changed since the caller read it.
    #[error("the device changed meanwhile: expected generation {expected}, found {found}")]
    Conflict { expected: u64, found: u64 },
    /// The device is sealed and the caller did not authorize a re-bind.
    #[error("device {0} is sealed; only an authorized re-bind may enroll it again")]
    Sealed(Eui),
    /// An SP re-bind asked for a device that is not sealed.
    #[error("device {0} is not sealed: only an enrolled, sealed device can be re-bound to another SP")]
    NotSealed(Eui),
    /// An SP re-bind asked for a device that has no identifier yet.
    #[error("device {0} is not enrolled: it has no SP-bound identifier to re-bind")]
    NotEnrolled(Eui),
    /// The identifier names another device.
    #[error("the SP-bound identifier names device {identifier}, not {device}")]
    IdentifierMismatch { device: Eui, identifier: Eui },
    /// The identifier names another access technology than the device's.
    #[error("device {device} was provisioned for {provisioned}, but the SP-bound identifier says {identifier}")]
    AccessMismatch { device: Eui, provisioned: AccessTechnology, identifier: AccessTechnology },
    /// The operating system refused something (starting the writer thread).
    #[error("device store: {during} failed: {cause}")]
    Io { during: &'static str, cause: Arc<std::io::Error> },
    /// The file cannot be put in WAL mode (e.g. it is on a file system
    /// without shared memory), so commits could not be both durable and
    /// concurrent with reads.
    #[error("device store: the file cannot use WAL mode (its journal mode stays {journal_mode})")]
    NoWal { journal_mode: String },
    /// SQLite rolled the transaction back on its own (I/O error, disk full,
    /// out of memory); nothing in the batch was written.
    #[error("device store: SQLite abandoned the transaction; nothing in it was written")]
    TransactionLost,
    /// The file holds something this runtime would never have written.
    #[error("device store is corrupt: {0}")]
    Corrupt(String),
    /// The file was written by a newer runtime.
    #[error("device store schema version {found} is newer than this runtime's ({supported})")]
    UnsupportedSchema { found: i64, supported: i64 },
    /// The writer thread has stopped (the store is being dropped, or it
    /// panicked).
    #[error("device store: the writer thread is gone")]
    WriterGone,
}

/// Adds what the store was doing to a SQLite error.
trait During<T> {
    fn during(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> During<T> for rusqlite::Result<T> {
    fn during(self, during: &'static str) -> Result<T, StoreError> {
        self.map_err(|cause| StoreError::Sqlite { during, cause: Arc::new(cause) })
    }
}

/// What the store holds about one device (without its private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub device: Eui,
    pub access: AccessTechnology,
    /// Bumped by every successful commit or re-bind; 0 when provisioned.
    pub generation: u64,
    pub sealed: bool,
    pub sp_bound_id: Option<SpBoundId>,
    pub public_key: Option<[u8; 32]>,
    /// Network credentials in the runtime's encoding.
    pub network: Option<Vec<u8>>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub name: Option<String>,
    /// The Ed25519 public key of the assistant that enrolled the device.
    pub enrolled_by: Option<[u8; 32]>,
    /// When the last enrollment committed, in Unix milliseconds.
    pub enrolled_at: Option<u64>,
    /// How many enrollments committed (SP re-binds are not counted).
    pub enrollments: u64,
    /// Where the device reaches its SP, and the SP's public key, as the
    /// enrollment's service-provider item gave them (cleared by a re-bind
    /// that does not carry new ones: never the old SP's key for a new SP).
    pub sp_endpoint: Option<String>,
    pub sp_public_key: Option<[u8; 32]>,
    /// Configuration values the enrollment staged.
    pub config: std::collections::BTreeMap<String, Vec<u8>>,
}

/// Everything one enrollment writes, and the preconditions it is written on.
#[derive(Debug)]
pub struct Enrollment {
    pub device: Eui,
    /// The generation the session read; the commit fails with
    /// [`StoreError::Conflict`] if the device has changed since.
    pub expected_generation: u64,
    /// The caller authorized a re-bind of a sealed device.
    pub allow_sealed: bool,
    pub sp_bound_id: SpBoundId,
    pub signing_key: SigningKey,
    /// `None` keeps the stored value (as for owner, location and name).
    pub network: Option<Vec<u8>>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub name: Option<String>,
    /// The Ed25519 public key of the assistant enrolling the device.
    pub enrolled_by: [u8; 32],
    /// Seal the device (one-way: `false` never unseals).
    pub sealed: bool,
    /// The SP binding's endpoint and key (replaced, not merged).
    pub sp_endpoint: Option<String>,
    pub sp_public_key: Option<[u8; 32]>,
    /// Configuration values; they replace the stored set.
    pub config: std::collections::BTreeMap<String, Vec<u8>>,
    /// The operational app the label carried (a component of world
    /// `operational`, checked at admission); it replaces the stored one, and
    /// what the old one kept is dropped.
    pub operational: Option<Vec<u8>>,
}

/// What a successful commit or re-bind wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The device's generation after the commit.
    pub generation: u64,
    pub sp_bound_id: SpBoundId,
    pub public_key: [u8; 32],
}

/// What a row of the enrollment log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// A full enrollment ([`DeviceStore::commit`]).
    Enroll,
    /// An SP re-bind ([`DeviceStore::rebind_sp`]).
    RebindSp,
}

impl LogKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::RebindSp => "rebind-sp",
        }
    }
}

/// One row of the enrollment log: one per generation after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub device: Eui,
    pub generation: u64,
    pub kind: LogKind,
    pub sp_bound_id: SpBoundId,
    pub public_key: [u8; 32],
    /// The assistant that enrolled the device (for a re-bind: the one on
    /// record).
    pub enrolled_by: [u8; 32],
    pub at_ms: u64,
}

/// The device store: one SQLite file, one writer thread, pooled readers.
pub struct DeviceStore {
    path: PathBuf,
    jobs: Option<Jobs>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    counters: Arc<Counters>,
}

impl DeviceStore {
    /// Opens (creating if needed) the store at `path`, migrates its schema
    /// and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let write_conn = schema::open_writer(path)?;
        let reader = schema::open_reader(path)?;
        let counters = Arc::new(Counters::default());
        let (jobs, handle) = writer::spawn(write_conn, counters.clone())?;
        Ok(Self {
            path: path.to_owned(),
            jobs: Some(jobs),
            writer: Some(handle),
            readers: Mutex::new(vec![reader]),
            counters,
        })
    }

    /// Registers devices as shipped from the factory: not enrolled, not
    /// sealed, generation 0. Idempotent for a device already provisioned
    /// with the same access technology.
    ///
    /// This waits for the writer (one commit) by blocking the calling
    /// thread; it is meant for start-up, not for a hot async path.
    pub fn provision(&self, device: Eui, access: AccessTechnology) -> Result<(), StoreError> {
        self.provision_many([(device, access)])
    }

    /// [`DeviceStore::provision`] for many devices in one transaction: all
    /// are provisioned, or (on any error) none.
    pub fn provision_many(&self, devices: impl IntoIterator<Item = (Eui, AccessTechnology)>) -> Result<(), StoreError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Job::Provision { devices: devices.into_iter().collect(), reply })?;
        done.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Commits an enrollment atomically and durably (see the module docs).
    ///
    /// The enrollment is queued when `commit` is called, not when the future
    /// is first polled; dropping the future does not withdraw it (it may
    /// still commit), it only drops the answer.
    pub fn commit(
        &self,
        enrollment: Enrollment,
    ) -> impl Future<Output = Result<CommitReceipt, StoreError>> + Send + 'static {
        let (reply, receipt) = oneshot::channel();
        let sent = self.send(Job::Commit { enrollment: Box::new(enrollment), reply });
        async move {
            sent?;
            receipt.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    /// Binds an enrolled, sealed device to another service provider: the SP
    /// part of its identifier changes, and the SP binding's endpoint and key
    /// are replaced by `sp_endpoint` and `sp_public_key` in the same write
    /// (`None` is stored as none: the old SP's are never kept); the device's
    /// keys and configuration stay. `new` must name the same device and
    /// access technology. Queued like [`DeviceStore::commit`].
    pub fn rebind_sp(
        &self,
        device: Eui,
        new: SpBoundId,
        sp_endpoint: Option<String>,
        sp_public_key: Option<[u8; 32]>,
        expected_generation: u64,
    ) -> impl Future<Output = Result<CommitReceipt, StoreError>> + Send + 'static {
        let (reply, receipt) = oneshot::channel();
        let sent = self.send(Job::RebindSp { device, new, sp_endpoint, sp_public_key, expected_generation, reply });
        async move {
            sent?;
            receipt.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    /// The stored state of a device, `None` if it is not provisioned here.
    pub fn state(&self, device: &Eui) -> Result<Option<DeviceState>, StoreError> {
        self.read(|conn| rows::read_state(conn, device))
    }

    /// The device's private key, `None` before its first enrollment.
    ///
    /// For host code that signs on the device's behalf; the key never leaves
    /// the host, and never goes to a guest.
    pub fn private_key(&self, device: &Eui) -> Result<Option<SigningKey>, StoreError> {
        self.read(|conn| rows::read_private_key(conn, device))
    }

    /// The device's enrollment log, oldest first.
    pub fn log(&self, device: &Eui) -> Result<Vec<LogEntry>, StoreError> {
        self.read(|conn| rows::read_log(conn, device))
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> WriterStats {
        self.counters.stats()
    }

    /// The writer's transactions, `BEGIN` to the answer of `COMMIT`.
    pub fn commit_histogram(&self) -> &enrollment_metrics::Histogram {
        &self.counters.commit
    }

    /// The file this store is in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues an operation for the writer. Generic only so that the unit
    /// tests' hooks (`testing`) use the same queue: outside tests `Queued`
    /// is [`Job`] itself.
    fn send(&self, job: impl Into<Queued>) -> Result<(), StoreError> {
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        jobs.try_send(job.into()).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => StoreError::Busy { queued: writer::MAX_QUEUED },
            mpsc::TrySendError::Disconnected(_) => StoreError::WriterGone,
        })
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        result
    }
}

/// Dropping the store lets the writer finish what is queued, then joins it:
/// the drop blocks the dropping thread for up to one batch.
impl Drop for DeviceStore {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "the device store's writer thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_finishes_queued_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let release = store.hold_writer();
        let pending = store.commit(enrollment(meter, AccessTechnology::Wifi, 0));
        drop(release);
        drop(store); // joins the writer
        assert_eq!(pending.await.expect("committed before the writer stopped").generation, 1);
        let store = open(&dir);
        assert_eq!(store.state(&meter).expect("state").expect("provisioned").generation, 1);
    }
}
