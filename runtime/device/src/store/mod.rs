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

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use sp_bound_id::{AccessTechnology, Eui, IdentifierError, SpBoundId};

/// The schema version this runtime writes (SQLite `user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Most operations the writer puts in one transaction.
pub const MAX_BATCH: usize = 256;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 4;

/// Migrations, in order: `MIGRATIONS[n]` takes the schema from version `n`
/// to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE device (
        device_id         BLOB PRIMARY KEY CHECK (length(device_id) IN (6, 8)),
        access            TEXT NOT NULL,
        generation        INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
        sealed            INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1)),
        sp_bound_id       TEXT,
        public_key        BLOB CHECK (length(public_key) = 32),
        private_key       BLOB CHECK (length(private_key) = 32),
        network           BLOB,
        owner             TEXT,
        location          TEXT,
        name              TEXT,
        enrolled_by       BLOB CHECK (length(enrolled_by) = 32),
        enrolled_at_ms    INTEGER,
        enrollments       INTEGER NOT NULL DEFAULT 0 CHECK (enrollments >= 0),
        provisioned_at_ms INTEGER NOT NULL,
        CHECK ((public_key IS NULL) = (private_key IS NULL))
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE enrollment_log (
        device_id   BLOB NOT NULL REFERENCES device (device_id),
        generation  INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'rebind-sp')),
        sp_bound_id TEXT NOT NULL,
        public_key  TEXT NOT NULL,
        enrolled_by TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        PRIMARY KEY (device_id, generation)
    ) STRICT, WITHOUT ROWID;
    ",
];

/// Why the store refused or failed an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed; `during` says what the store was doing.
    #[error("device store: SQLite failed while {during}: {source}")]
    Sqlite {
        during: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },
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
    #[error("device store: {during} failed: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: Arc<std::io::Error>,
    },
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
        self.map_err(|source| StoreError::Sqlite { during, source: Arc::new(source) })
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

/// Counters of the writer thread, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed or rolled back.
    pub batches: u64,
    /// Transactions whose COMMIT failed or that SQLite abandoned.
    pub failed_batches: u64,
    /// Operations (commits, re-binds, provisionings) run.
    pub operations: u64,
    /// The most operations in one transaction.
    pub largest_batch: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    failed_batches: AtomicU64,
    operations: AtomicU64,
    largest_batch: AtomicU64,
}

/// The device store: one SQLite file, one writer thread, pooled readers.
pub struct DeviceStore {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    counters: Arc<Counters>,
}

impl DeviceStore {
    /// Opens (creating if needed) the store at `path`, migrates its schema
    /// and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut writer = Connection::open(path).during("opening the store")?;
        let journal: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .during("switching to WAL mode")?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal { journal_mode: journal });
        }
        writer.pragma_update(None, "synchronous", "FULL").during("setting synchronous=FULL")?;
        writer.pragma_update(None, "foreign_keys", true).during("enabling foreign keys")?;
        writer.busy_timeout(BUSY_TIMEOUT).during("setting the busy timeout")?;
        writer.set_prepared_statement_cache_capacity(32);
        migrate(&mut writer)?;

        let reader = open_reader(path)?;
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::channel();
        let thread_counters = counters.clone();
        let handle = std::thread::Builder::new()
            .name("device-store-writer".into())
            .spawn(move || write_loop(writer, queue, &thread_counters))
            .map_err(|e| StoreError::Io { during: "starting the writer thread", source: Arc::new(e) })?;
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

    /// Binds an enrolled, sealed device to another service provider: only
    /// the SP part of its identifier changes (and the generation); keys and
    /// configuration stay. `new` must name the same device and access
    /// technology. Queued like [`DeviceStore::commit`].
    pub fn rebind_sp(
        &self,
        device: Eui,
        new: SpBoundId,
        expected_generation: u64,
    ) -> impl Future<Output = Result<CommitReceipt, StoreError>> + Send + 'static {
        let (reply, receipt) = oneshot::channel();
        let sent = self.send(Job::RebindSp { device, new, expected_generation, reply });
        async move {
            sent?;
            receipt.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    /// The stored state of a device, `None` if it is not provisioned here.
    pub fn state(&self, device: &Eui) -> Result<Option<DeviceState>, StoreError> {
        self.read(|conn| read_state(conn, device))
    }

    /// The device's private key, `None` before its first enrollment.
    ///
    /// For host code that signs on the device's behalf; the key never leaves
    /// the host, and never goes to a guest.
    pub fn private_key(&self, device: &Eui) -> Result<Option<SigningKey>, StoreError> {
        self.read(|conn| read_private_key(conn, device))
    }

    /// The device's enrollment log, oldest first.
    pub fn log(&self, device: &Eui) -> Result<Vec<LogEntry>, StoreError> {
        self.read(|conn| read_log(conn, device))
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
        }
    }

    /// The file this store is in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterGone)?;
        jobs.send(job).map_err(|_| StoreError::WriterGone)
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        result
    }

    /// Makes the writer wait until the returned sender is dropped or sent to,
    /// so that a test can queue several operations into one batch.
    #[cfg(test)]
    fn hold_writer(&self) -> mpsc::Sender<()> {
        let (release, hold) = mpsc::channel();
        let _ = self.send(Job::Hold(hold));
        release
    }

    /// Queues raw SQL as one operation of a batch (tests only).
    #[cfg(test)]
    fn exec(&self, sql: &'static str) -> mpsc::Receiver<Result<(), StoreError>> {
        let (reply, done) = mpsc::sync_channel(1);
        let _ = self.send(Job::Exec { sql, reply });
        done
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

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).during("opening a read connection")?;
    conn.busy_timeout(BUSY_TIMEOUT).during("setting the busy timeout")?;
    conn.pragma_update(None, "query_only", true).during("making a read connection read-only")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a new file at once migrate it once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).during("starting the migration")?;
    let version: i64 =
        tx.pragma_query_value(None, "user_version", |row| row.get(0)).during("reading the schema version")?;
    let supported = MIGRATIONS.len() as i64;
    debug_assert_eq!(supported, SCHEMA_VERSION);
    let from = usize::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema version {version}")))?;
    if version > supported {
        return Err(StoreError::UnsupportedSchema { found: version, supported });
    }
    for (to, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql).during("migrating the schema")?;
        tx.pragma_update(None, "user_version", to as i64 + 1).during("recording the schema version")?;
    }
    tx.commit().during("committing the migration")
}

// ---------------------------------------------------------------------------
// The writer

/// An operation for the writer, with where to send its outcome.
enum Job {
    Provision {
        devices: Vec<(Eui, AccessTechnology)>,
        reply: mpsc::SyncSender<Result<(), StoreError>>,
    },
    Commit {
        enrollment: Box<Enrollment>,
        reply: oneshot::Sender<Result<CommitReceipt, StoreError>>,
    },
    RebindSp {
        device: Eui,
        new: SpBoundId,
        expected_generation: u64,
        reply: oneshot::Sender<Result<CommitReceipt, StoreError>>,
    },
    #[cfg(test)]
    Hold(mpsc::Receiver<()>),
    #[cfg(test)]
    Exec {
        sql: &'static str,
        reply: mpsc::SyncSender<Result<(), StoreError>>,
    },
}

/// An operation that has run, and its answer, held until the batch commits.
enum Outcome {
    Unit(mpsc::SyncSender<Result<(), StoreError>>, Result<(), StoreError>),
    Receipt(oneshot::Sender<Result<CommitReceipt, StoreError>>, Result<CommitReceipt, StoreError>),
}

impl Outcome {
    /// The batch failed: whatever this operation did is gone.
    fn fail(&mut self, error: &StoreError) {
        match self {
            Self::Unit(_, result) => *result = Err(error.clone()),
            Self::Receipt(_, result) => *result = Err(error.clone()),
        }
    }

    fn send(self) {
        // A caller that stopped waiting is no error of ours.
        match self {
            Self::Unit(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Receipt(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Job {
    /// Runs the operation in its own savepoint. The second value is set if
    /// the whole batch can no longer commit.
    fn run(self, conn: &Connection, now: u64) -> (Outcome, Option<StoreError>) {
        match self {
            Self::Provision { devices, reply } => {
                let (result, broken) = in_savepoint(conn, |c| provision_in(c, &devices, now));
                (Outcome::Unit(reply, result), broken)
            }
            Self::Commit { enrollment, reply } => {
                let (result, broken) = in_savepoint(conn, |c| commit_in(c, &enrollment, now));
                (Outcome::Receipt(reply, result), broken)
            }
            Self::RebindSp { device, new, expected_generation, reply } => {
                let (result, broken) = in_savepoint(conn, |c| rebind_in(c, device, &new, expected_generation, now));
                (Outcome::Receipt(reply, result), broken)
            }
            #[cfg(test)]
            Self::Hold(_) => unreachable!("the writer handles holds when it dequeues them"),
            #[cfg(test)]
            Self::Exec { sql, reply } => {
                let (result, broken) = in_savepoint(conn, |c| c.execute_batch(sql).during("running test SQL"));
                (Outcome::Unit(reply, result), broken)
            }
        }
    }
}

fn write_loop(conn: Connection, queue: mpsc::Receiver<Job>, counters: &Counters) {
    // `recv` fails once the store has dropped its sender and the queue is
    // empty: queued operations are still run before the thread ends.
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                #[cfg(test)]
                Job::Hold(release) => {
                    let _ = release.recv();
                }
                job => batch.push(job),
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = queue.try_recv().ok();
        }
        if !batch.is_empty() {
            run_batch(&conn, batch, counters);
        }
    }
}

/// Runs a batch in one transaction and answers every operation in it.
fn run_batch(conn: &Connection, batch: Vec<Job>, counters: &Counters) {
    let now = unix_ms();
    let size = batch.len() as u64;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut broken = execute(conn, "BEGIN IMMEDIATE", "beginning a transaction").err();
    for job in batch {
        if let Some(error) = &broken {
            outcomes.push(job.abandon(error));
            continue;
        }
        let (outcome, batch_error) = job.run(conn, now);
        outcomes.push(outcome);
        broken = batch_error;
    }
    let result = match broken {
        None => execute(conn, "COMMIT", "committing a batch"),
        Some(error) => Err(error),
    };
    if result.is_err() && !conn.is_autocommit() {
        // The transaction is still open (e.g. COMMIT failed on a deferred
        // constraint): undo it. If this fails too, the connection is unusable
        // and the next BEGIN reports it.
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "device store: rolling back a failed batch failed");
        }
    }
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.operations.fetch_add(size, Ordering::Relaxed);
    counters.largest_batch.fetch_max(size, Ordering::Relaxed);
    if let Err(error) = &result {
        counters.failed_batches.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, operations = size, "device store: a batch failed; none of it was written");
        for outcome in &mut outcomes {
            outcome.fail(error);
        }
    }
    for outcome in outcomes {
        outcome.send();
    }
}

impl Job {
    /// An operation that did not run because its batch had already failed.
    fn abandon(self, error: &StoreError) -> Outcome {
        match self {
            Self::Provision { reply, .. } => Outcome::Unit(reply, Err(error.clone())),
            Self::Commit { reply, .. } | Self::RebindSp { reply, .. } => Outcome::Receipt(reply, Err(error.clone())),
            #[cfg(test)]
            Self::Exec { reply, .. } => Outcome::Unit(reply, Err(error.clone())),
            #[cfg(test)]
            Self::Hold(_) => unreachable!("the writer handles holds when it dequeues them"),
        }
    }
}

fn execute(conn: &Connection, sql: &str, during: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut statement| statement.execute([])).map(drop).during(during)
}

/// Runs `f` inside a savepoint: released if `f` succeeds, rolled back if it
/// fails. Returns `f`'s result and, if the enclosing transaction can no
/// longer commit, why.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> (Result<T, StoreError>, Option<StoreError>) {
    if let Err(e) = execute(conn, "SAVEPOINT operation", "opening a savepoint") {
        return (Err(e.clone()), Some(e));
    }
    let result = f(conn);
    let cleanup = match &result {
        Ok(_) => execute(conn, "RELEASE operation", "releasing a savepoint"),
        Err(_) => execute(conn, "ROLLBACK TO operation", "rolling back a savepoint")
            .and_then(|()| execute(conn, "RELEASE operation", "releasing a savepoint")),
    };
    let broken = match cleanup {
        // The operation's own error says best what went wrong.
        Err(cleanup_error) => Some(result.as_ref().err().cloned().unwrap_or(cleanup_error)),
        // SQLite rolled the whole transaction back on its own.
        Ok(()) if conn.is_autocommit() => Some(result.as_ref().err().cloned().unwrap_or(StoreError::TransactionLost)),
        Ok(()) => None,
    };
    (result, broken)
}

/// The row a commit or re-bind checks its preconditions against.
struct Current {
    access: AccessTechnology,
    generation: u64,
    sealed: bool,
    sp_bound_id: Option<String>,
    public_key: Option<Vec<u8>>,
    enrolled_by: Option<Vec<u8>>,
}

fn current(conn: &Connection, device: &Eui) -> Result<Current, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT access, generation, sealed, sp_bound_id, public_key, enrolled_by FROM device WHERE device_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([device.as_bytes()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<Vec<u8>>>(4)?,
                        row.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                })
                .optional()
        })
        .during("reading the device")?;
    let (access, generation, sealed, sp_bound_id, public_key, enrolled_by) =
        row.ok_or(StoreError::UnknownDevice(*device))?;
    Ok(Current {
        access: parse_access(&access, device)?,
        generation: to_u64(generation, "generation", device)?,
        sealed: sealed != 0,
        sp_bound_id,
        public_key,
        enrolled_by,
    })
}

fn provision_in(conn: &Connection, devices: &[(Eui, AccessTechnology)], now: u64) -> Result<(), StoreError> {
    for &(device, access) in devices {
        if !access.accepts(device.kind()) {
            return Err(IdentifierError::EuiKindMismatch { access, kind: device.kind() }.into());
        }
        match current(conn, &device) {
            Ok(existing) if existing.access == access => continue,
            Ok(existing) => {
                return Err(StoreError::AlreadyProvisioned { device, provisioned: existing.access, requested: access });
            }
            Err(StoreError::UnknownDevice(_)) => {}
            Err(other) => return Err(other),
        }
        conn.prepare_cached("INSERT INTO device (device_id, access, provisioned_at_ms) VALUES (?1, ?2, ?3)")
            .and_then(|mut statement| statement.execute(params![device.as_bytes(), access.as_str(), to_i64(now)]))
            .during("provisioning a device")?;
    }
    Ok(())
}

fn commit_in(conn: &Connection, e: &Enrollment, now: u64) -> Result<CommitReceipt, StoreError> {
    let device = e.device;
    let current = current(conn, &device)?;
    if current.generation != e.expected_generation {
        return Err(StoreError::Conflict { expected: e.expected_generation, found: current.generation });
    }
    if current.sealed && !e.allow_sealed {
        return Err(StoreError::Sealed(device));
    }
    check_identifier(&device, current.access, &e.sp_bound_id)?;

    let generation = current.generation + 1;
    let public_key = e.signing_key.verifying_key().to_bytes();
    let identifier = e.sp_bound_id.to_string();
    conn.prepare_cached(
        "UPDATE device SET
             generation = ?2,
             sealed = (sealed OR ?3),
             sp_bound_id = ?4,
             public_key = ?5,
             private_key = ?6,
             network = coalesce(?7, network),
             owner = coalesce(?8, owner),
             location = coalesce(?9, location),
             name = coalesce(?10, name),
             enrolled_by = ?11,
             enrolled_at_ms = ?12,
             enrollments = enrollments + 1
         WHERE device_id = ?1",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            device.as_bytes(),
            to_i64(generation),
            e.sealed,
            identifier,
            public_key,
            e.signing_key.to_bytes(),
            e.network,
            e.owner,
            e.location,
            e.name,
            e.enrolled_by,
            to_i64(now),
        ])
    })
    .during("writing the enrollment")?;
    append_log(conn, &device, generation, LogKind::Enroll, &identifier, &public_key, &e.enrolled_by, now)?;
    Ok(CommitReceipt { generation, sp_bound_id: e.sp_bound_id.clone(), public_key })
}

fn rebind_in(
    conn: &Connection,
    device: Eui,
    new: &SpBoundId,
    expected_generation: u64,
    now: u64,
) -> Result<CommitReceipt, StoreError> {
    let current = current(conn, &device)?;
    if current.generation != expected_generation {
        return Err(StoreError::Conflict { expected: expected_generation, found: current.generation });
    }
    let Some(old) = &current.sp_bound_id else {
        return Err(StoreError::NotEnrolled(device));
    };
    if !current.sealed {
        return Err(StoreError::NotSealed(device));
    }
    check_identifier(&device, current.access, new)?;
    let old: SpBoundId = parse_identifier(old, &device)?;
    if old.with_sp(new.sp().clone()) != *new {
        return Err(StoreError::Corrupt(format!("device {device}: stored identifier {old} names another device")));
    }
    let public_key = key32(current.public_key.as_deref(), "public key", &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device}: enrolled without a public key")))?;
    let enrolled_by = key32(current.enrolled_by.as_deref(), "enrolled_by", &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device}: enrolled without an assistant key")))?;

    let generation = current.generation + 1;
    let identifier = new.to_string();
    conn.prepare_cached("UPDATE device SET generation = ?2, sp_bound_id = ?3 WHERE device_id = ?1")
        .and_then(|mut statement| statement.execute(params![device.as_bytes(), to_i64(generation), identifier]))
        .during("re-binding the device")?;
    append_log(conn, &device, generation, LogKind::RebindSp, &identifier, &public_key, &enrolled_by, now)?;
    Ok(CommitReceipt { generation, sp_bound_id: new.clone(), public_key })
}

/// The identifier must name this device and the access technology it was
/// provisioned with.
fn check_identifier(device: &Eui, provisioned: AccessTechnology, id: &SpBoundId) -> Result<(), StoreError> {
    if id.device() != device {
        return Err(StoreError::IdentifierMismatch { device: *device, identifier: *id.device() });
    }
    if id.access() != provisioned {
        return Err(StoreError::AccessMismatch { device: *device, provisioned, identifier: id.access() });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn append_log(
    conn: &Connection,
    device: &Eui,
    generation: u64,
    kind: LogKind,
    identifier: &str,
    public_key: &[u8; 32],
    enrolled_by: &[u8; 32],
    now: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO enrollment_log (device_id, generation, kind, sp_bound_id, public_key, enrolled_by, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            device.as_bytes(),
            to_i64(generation),
            kind.as_str(),
            identifier,
            hex::encode(public_key),
            hex::encode(enrolled_by),
            to_i64(now),
        ])
    })
    .map(drop)
    .during("appending to the enrollment log")
}

// ---------------------------------------------------------------------------
// Reads

fn read_state(conn: &Connection, device: &Eui) -> Result<Option<DeviceState>, StoreError> {
    type Raw = (
        String,
        i64,
        i64,
        Option<String>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        Option<i64>,
        i64,
    );
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT access, generation, sealed, sp_bound_id, public_key, network, owner, location, name,
                    enrolled_by, enrolled_at_ms, enrollments
             FROM device WHERE device_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([device.as_bytes()], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                        row.get(10)?,
                        row.get(11)?,
                    ))
                })
                .optional()
        })
        .during("reading the device state")?;
    let Some((access, generation, sealed, id, public_key, network, owner, location, name, by, at, enrollments)) = raw
    else {
        return Ok(None);
    };
    let access = parse_access(&access, device)?;
    let sp_bound_id = id.map(|id| parse_identifier(&id, device)).transpose()?;
    if let Some(id) = &sp_bound_id {
        check_identifier(device, access, id)
            .map_err(|e| StoreError::Corrupt(format!("device {device}: stored identifier: {e}")))?;
    }
    Ok(Some(DeviceState {
        device: *device,
        access,
        generation: to_u64(generation, "generation", device)?,
        sealed: sealed != 0,
        sp_bound_id,
        public_key: key32(public_key.as_deref(), "public key", device)?,
        network,
        owner,
        location,
        name,
        enrolled_by: key32(by.as_deref(), "enrolled_by", device)?,
        enrolled_at: at.map(|at| to_u64(at, "enrolled_at_ms", device)).transpose()?,
        enrollments: to_u64(enrollments, "enrollments", device)?,
    }))
}

fn read_private_key(conn: &Connection, device: &Eui) -> Result<Option<SigningKey>, StoreError> {
    type Keys = (Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<Keys> = conn
        .prepare_cached("SELECT private_key, public_key FROM device WHERE device_id = ?1")
        .and_then(|mut statement| {
            statement.query_row([device.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        })
        .during("reading the private key")?;
    let (secret, public) = row.ok_or(StoreError::UnknownDevice(*device))?;
    let Some(secret) = key32(secret.as_deref(), "private key", device)? else {
        return Ok(None);
    };
    let key = SigningKey::from_bytes(&secret);
    if key32(public.as_deref(), "public key", device)? != Some(key.verifying_key().to_bytes()) {
        return Err(StoreError::Corrupt(format!("device {device}: the stored public key is not the private key's")));
    }
    Ok(Some(key))
}

fn read_log(conn: &Connection, device: &Eui) -> Result<Vec<LogEntry>, StoreError> {
    type Raw = (i64, String, String, String, String, i64);
    let rows: Vec<Raw> = conn
        .prepare_cached(
            "SELECT generation, kind, sp_bound_id, public_key, enrolled_by, at_ms
             FROM enrollment_log WHERE device_id = ?1 ORDER BY generation",
        )
        .and_then(|mut statement| {
            statement
                .query_map([device.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
                })?
                .collect()
        })
        .during("reading the enrollment log")?;
    rows.into_iter()
        .map(|(generation, kind, id, public_key, enrolled_by, at)| {
            let kind = match kind.as_str() {
                "enroll" => LogKind::Enroll,
                "rebind-sp" => LogKind::RebindSp,
                other => return Err(StoreError::Corrupt(format!("device {device}: log entry of kind {other:?}"))),
            };
            Ok(LogEntry {
                device: *device,
                generation: to_u64(generation, "log generation", device)?,
                kind,
                sp_bound_id: parse_identifier(&id, device)?,
                public_key: hex32(&public_key, "logged public key", device)?,
                enrolled_by: hex32(&enrolled_by, "logged enrolled_by", device)?,
                at_ms: to_u64(at, "log time", device)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Conversions; anything unexpected in the file is `Corrupt`.

fn parse_access(text: &str, device: &Eui) -> Result<AccessTechnology, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("device {device}: stored access technology: {e}")))
}

fn parse_identifier(text: &str, device: &Eui) -> Result<SpBoundId, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("device {device}: stored identifier {text:?}: {e}")))
}

fn key32(bytes: Option<&[u8]>, what: &str, device: &Eui) -> Result<Option<[u8; 32]>, StoreError> {
    bytes
        .map(|b| {
            <[u8; 32]>::try_from(b).map_err(|_| {
                StoreError::Corrupt(format!("device {device}: stored {what} is {} bytes, not 32", b.len()))
            })
        })
        .transpose()
}

fn hex32(text: &str, what: &str, device: &Eui) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|e| StoreError::Corrupt(format!("device {device}: {what} {text:?}: {e}")))?;
    Ok(out)
}

fn to_u64(value: i64, what: &str, device: &Eui) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("device {device}: negative {what} {value}")))
}

/// SQLite integers are signed; the counters and times here never reach 2^63.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ed25519_dalek::{Signer, Verifier};
    use rand::rngs::OsRng;

    use super::*;
    use sp_bound_id::SpIdentity;

    const METER: &str = "AC-DE-48-00-00-80";
    const SENSOR: &str = "00-0D-6F-FF-FE-12-34-56";
    const ASSISTANT: [u8; 32] = [7; 32];

    fn eui(text: &str) -> Eui {
        text.parse().expect("test EUI")
    }

    /// The `n`th device of a simulated Wi-Fi fleet.
    fn fleet_eui(n: u32) -> Eui {
        let [_, b, c, d] = n.to_be_bytes();
        Eui::from_bytes(&[0xAC, 0xDE, 0x48, b, c, d]).expect("valid fleet EUI")
    }

    fn id(sp: &str, device: Eui, access: AccessTechnology) -> SpBoundId {
        SpBoundId::new(SpIdentity::new(sp).expect("test SP"), device, access).expect("test identifier")
    }

    fn open(dir: &tempfile::TempDir) -> DeviceStore {
        DeviceStore::open(&dir.path().join("device.sqlite")).expect("open store")
    }

    fn enrollment(device: Eui, access: AccessTechnology, generation: u64) -> Enrollment {
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
        }
    }

    /// Everything observable about a device: state, log and private key.
    fn snapshot(store: &DeviceStore, device: &Eui) -> (Option<DeviceState>, Vec<LogEntry>, Option<[u8; 32]>) {
        let key = match store.private_key(device) {
            Ok(key) => key.map(|k| k.to_bytes()),
            Err(StoreError::UnknownDevice(_)) => None,
            Err(e) => panic!("private key: {e}"),
        };
        (store.state(device).expect("state"), store.log(device).expect("log"), key)
    }

    #[test]
    fn provision_registers_a_fresh_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        assert_eq!(store.state(&meter).expect("state"), None);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let fresh = DeviceState {
            device: meter,
            access: AccessTechnology::Wifi,
            generation: 0,
            sealed: false,
            sp_bound_id: None,
            public_key: None,
            network: None,
            owner: None,
            location: None,
            name: None,
            enrolled_by: None,
            enrolled_at: None,
            enrollments: 0,
        };
        assert_eq!(store.state(&meter).expect("state"), Some(fresh.clone()));
        assert!(store.private_key(&meter).expect("private key").is_none());
        assert!(store.log(&meter).expect("log").is_empty());

        // Idempotent if identical...
        store.provision(meter, AccessTechnology::Wifi).expect("provision again");
        assert_eq!(store.state(&meter).expect("state"), Some(fresh));
        // ...refused with another access technology or an unusable EUI kind.
        assert!(matches!(
            store.provision(meter, AccessTechnology::Ethernet),
            Err(StoreError::AlreadyProvisioned {
                provisioned: AccessTechnology::Wifi,
                requested: AccessTechnology::Ethernet,
                ..
            })
        ));
        assert!(matches!(
            store.provision(eui(SENSOR), AccessTechnology::Wifi),
            Err(StoreError::Identifier(IdentifierError::EuiKindMismatch { .. }))
        ));
        assert_eq!(store.state(&eui(SENSOR)).expect("state"), None);
        assert!(matches!(store.private_key(&eui(SENSOR)), Err(StoreError::UnknownDevice(_))));
    }

    #[test]
    fn provision_many_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store.provision(eui(METER), AccessTechnology::Wifi).expect("provision");
        let result = store.provision_many([
            (fleet_eui(1), AccessTechnology::Wifi),
            (eui(METER), AccessTechnology::Ethernet),
            (fleet_eui(2), AccessTechnology::Wifi),
        ]);
        assert!(matches!(result, Err(StoreError::AlreadyProvisioned { .. })), "{result:?}");
        assert_eq!(store.state(&fleet_eui(1)).expect("state"), None);
        assert_eq!(store.state(&fleet_eui(2)).expect("state"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_is_durable_and_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sensor = eui(SENSOR);
        let e = enrollment(sensor, AccessTechnology::Zigbee, 0);
        let signing_key = e.signing_key.clone();
        let identifier = e.sp_bound_id.clone();
        let before = unix_ms();
        {
            let store = open(&dir);
            store.provision(sensor, AccessTechnology::Zigbee).expect("provision");
            let receipt = store.commit(e).await.expect("commit");
            assert_eq!(
                receipt,
                CommitReceipt {
                    generation: 1,
                    sp_bound_id: identifier.clone(),
                    public_key: signing_key.verifying_key().to_bytes()
                }
            );
        }
        // A new store on the same file (the old one and its writer are gone).
        let store = open(&dir);
        let state = store.state(&sensor).expect("state").expect("provisioned");
        let enrolled_at = state.enrolled_at.expect("enrolled_at");
        assert!(enrolled_at >= before && enrolled_at <= unix_ms(), "{enrolled_at}");
        assert_eq!(
            state,
            DeviceState {
                device: sensor,
                access: AccessTechnology::Zigbee,
                generation: 1,
                sealed: true,
                sp_bound_id: Some(identifier.clone()),
                public_key: Some(signing_key.verifying_key().to_bytes()),
                network: Some(b"\x01plant-3".to_vec()),
                owner: Some("ACME Utilities".into()),
                location: Some("geo:52.3676,4.9041".into()),
                name: Some("meter 1".into()),
                enrolled_by: Some(ASSISTANT),
                enrolled_at: Some(enrolled_at),
                enrollments: 1,
            }
        );
        let log = store.log(&sensor).expect("log");
        assert_eq!(
            log,
            vec![LogEntry {
                device: sensor,
                generation: 1,
                kind: LogKind::Enroll,
                sp_bound_id: identifier,
                public_key: signing_key.verifying_key().to_bytes(),
                enrolled_by: ASSISTANT,
                at_ms: enrolled_at,
            }]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_private_key_round_trips_and_matches_the_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let e = enrollment(meter, AccessTechnology::Wifi, 0);
        let original = e.signing_key.to_bytes();
        let receipt = store.commit(e).await.expect("commit");
        let key = store.private_key(&meter).expect("read").expect("enrolled");
        assert_eq!(key.to_bytes(), original);
        assert_eq!(key.verifying_key().to_bytes(), receipt.public_key);
        let public = ed25519_dalek::VerifyingKey::from_bytes(
            &store.state(&meter).expect("state").expect("provisioned").public_key.expect("public key"),
        )
        .expect("valid public key");
        let signature = key.sign(b"hello from the device");
        assert!(public.verify(b"hello from the device", &signature).is_ok());
        assert!(public.verify(b"something else", &signature).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_precondition_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        let modem = eui("00-1B-63-84-45-E6");
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        store.provision(modem, AccessTechnology::Cellular).expect("provision");
        store.commit(enrollment(meter, AccessTechnology::Wifi, 0)).await.expect("first enrollment");

        // (enrollment, what must be refused) against the sealed meter at generation 1
        let stale = enrollment(meter, AccessTechnology::Wifi, 0);
        let sealed = enrollment(meter, AccessTechnology::Wifi, 1);
        let mut other_device = enrollment(meter, AccessTechnology::Wifi, 1);
        other_device.allow_sealed = true;
        other_device.sp_bound_id = id("sp.example", fleet_eui(9), AccessTechnology::Wifi);
        let mut unknown = enrollment(fleet_eui(9), AccessTechnology::Wifi, 0);
        unknown.allow_sealed = true;

        let before = snapshot(&store, &meter);
        let unknown_before = snapshot(&store, &fleet_eui(9));
        assert!(matches!(store.commit(stale).await, Err(StoreError::Conflict { expected: 0, found: 1 })));
        assert!(matches!(store.commit(sealed).await, Err(StoreError::Sealed(d)) if d == meter));
        assert!(matches!(
            store.commit(other_device).await,
            Err(StoreError::IdentifierMismatch { device, identifier }) if device == meter && identifier == fleet_eui(9)
        ));
        assert!(matches!(store.commit(unknown).await, Err(StoreError::UnknownDevice(d)) if d == fleet_eui(9)));
        assert!(matches!(
            store.rebind_sp(meter, id("sp.example", meter, AccessTechnology::Wifi), 0).await,
            Err(StoreError::Conflict { expected: 0, found: 1 })
        ));
        assert_eq!(snapshot(&store, &meter), before);
        assert_eq!(snapshot(&store, &fleet_eui(9)), unknown_before);

        // The cellular modem: an identifier for the same EUI over Wi-Fi.
        let modem_before = snapshot(&store, &modem);
        let wrong_access = enrollment(modem, AccessTechnology::Wifi, 0);
        assert!(matches!(
            store.commit(wrong_access).await,
            Err(StoreError::AccessMismatch {
                provisioned: AccessTechnology::Cellular,
                identifier: AccessTechnology::Wifi,
                ..
            })
        ));
        assert_eq!(snapshot(&store, &modem), modem_before);
        assert_eq!(store.stats().failed_batches, 0, "precondition failures are not batch failures");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealed_device_is_enrolled_again_only_when_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let first = store.commit(enrollment(meter, AccessTechnology::Wifi, 0)).await.expect("enroll");
        assert!(store.state(&meter).expect("state").expect("provisioned").sealed);

        let refused = enrollment(meter, AccessTechnology::Wifi, 1);
        assert!(matches!(store.commit(refused).await, Err(StoreError::Sealed(_))));

        // An authorized re-bind with only some fields: the rest are kept, and
        // `sealed: false` does not unseal.
        let mut rebind = enrollment(meter, AccessTechnology::Wifi, 1);
        rebind.allow_sealed = true;
        rebind.sealed = false;
        rebind.sp_bound_id = id("310-410", meter, AccessTechnology::Wifi);
        rebind.network = None;
        rebind.owner = None;
        rebind.location = Some("warehouse 2".into());
        rebind.name = None;
        rebind.enrolled_by = [9; 32];
        let new_key = rebind.signing_key.verifying_key().to_bytes();
        let second = store.commit(rebind).await.expect("authorized re-bind");
        assert_eq!(second.generation, 2);
        assert_ne!(second.public_key, first.public_key);

        let state = store.state(&meter).expect("state").expect("provisioned");
        assert_eq!(state.generation, 2);
        assert_eq!(state.enrollments, 2);
        assert!(state.sealed);
        assert_eq!(state.sp_bound_id, Some(id("310-410", meter, AccessTechnology::Wifi)));
        assert_eq!(state.public_key, Some(new_key));
        assert_eq!(state.network, Some(b"\x01plant-3".to_vec()));
        assert_eq!(state.owner.as_deref(), Some("ACME Utilities"));
        assert_eq!(state.location.as_deref(), Some("warehouse 2"));
        assert_eq!(state.name.as_deref(), Some("meter 1"));
        assert_eq!(state.enrolled_by, Some([9; 32]));
        let log = store.log(&meter).expect("log");
        assert_eq!(log.iter().map(|entry| entry.generation).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(log[1].public_key, new_key);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebind_sp_changes_only_the_sp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let sensor = eui(SENSOR);
        let meter = eui(METER);
        store.provision(sensor, AccessTechnology::Zigbee).expect("provision");
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let new_id = id("new-sp.example", sensor, AccessTechnology::Zigbee);

        assert!(matches!(
            store.rebind_sp(sensor, new_id.clone(), 0).await,
            Err(StoreError::NotEnrolled(d)) if d == sensor
        ));
        let mut unsealed = enrollment(sensor, AccessTechnology::Zigbee, 0);
        unsealed.sealed = false;
        store.commit(unsealed).await.expect("enroll without sealing");
        assert!(matches!(store.rebind_sp(sensor, new_id.clone(), 1).await, Err(StoreError::NotSealed(_))));
        store.commit(enrollment(sensor, AccessTechnology::Zigbee, 1)).await.expect("enroll and seal");
        assert!(matches!(
            store.rebind_sp(fleet_eui(3), id("new-sp.example", fleet_eui(3), AccessTechnology::Wifi), 0).await,
            Err(StoreError::UnknownDevice(_))
        ));
        assert!(matches!(
            store.rebind_sp(sensor, id("new-sp.example", meter, AccessTechnology::Wifi), 2).await,
            Err(StoreError::IdentifierMismatch { .. })
        ));
        let cellular = id("new-sp.example", sensor, AccessTechnology::Cellular);
        assert!(matches!(store.rebind_sp(sensor, cellular, 2).await, Err(StoreError::AccessMismatch { .. })));

        let before = store.state(&sensor).expect("state").expect("provisioned");
        let receipt = store.rebind_sp(sensor, new_id.clone(), 2).await.expect("re-bind");
        assert_eq!(receipt.generation, 3);
        assert_eq!(receipt.sp_bound_id, new_id);
        assert_eq!(Some(receipt.public_key), before.public_key);
        let after = store.state(&sensor).expect("state").expect("provisioned");
        assert_eq!(after, DeviceState { generation: 3, sp_bound_id: Some(new_id.clone()), ..before.clone() });
        let log = store.log(&sensor).expect("log");
        let last = log.last().expect("logged");
        assert_eq!((last.generation, last.kind, &last.sp_bound_id), (3, LogKind::RebindSp, &new_id));
        assert_eq!(Some(last.public_key), before.public_key);
        assert_eq!(Some(last.enrolled_by), before.enrolled_by);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_concurrent_commits_at_one_generation_exactly_one_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(&dir));
        let devices: Vec<Eui> = (0..50).map(fleet_eui).collect();
        store.provision_many(devices.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        for (round, &device) in devices.iter().enumerate() {
            let a = enrollment(device, AccessTechnology::Wifi, 0);
            let b = enrollment(device, AccessTechnology::Wifi, 0);
            let (key_a, key_b) = (a.signing_key.verifying_key().to_bytes(), b.signing_key.verifying_key().to_bytes());
            // Half the rounds from two tasks racing, half queued into one batch.
            let (ra, rb) = if round % 2 == 0 {
                let (sa, sb) = (store.clone(), store.clone());
                let ta = tokio::spawn(async move { sa.commit(a).await });
                let tb = tokio::spawn(async move { sb.commit(b).await });
                (ta.await.expect("task"), tb.await.expect("task"))
            } else {
                let release = store.hold_writer();
                let (fa, fb) = (store.commit(a), store.commit(b));
                drop(release);
                tokio::join!(fa, fb)
            };
            let winner = match (&ra, &rb) {
                (Ok(r), Err(StoreError::Conflict { expected: 0, found: 1 })) => {
                    assert_eq!(r.public_key, key_a);
                    key_a
                }
                (Err(StoreError::Conflict { expected: 0, found: 1 }), Ok(r)) => {
                    assert_eq!(r.public_key, key_b);
                    key_b
                }
                other => panic!("round {round}: expected exactly one winner, got {other:?}"),
            };
            let state = store.state(&device).expect("state").expect("provisioned");
            assert_eq!((state.generation, state.public_key, state.enrollments), (1, Some(winner), 1));
            assert_eq!(store.log(&device).expect("log").len(), 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_failure_in_a_batch_does_not_stop_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let devices: Vec<Eui> = (1..=5).map(fleet_eui).collect();
        store.provision_many(devices.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        let untouched = snapshot(&store, &devices[2]);
        let stats = store.stats();

        let release = store.hold_writer();
        let pending: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, &device)| store.commit(enrollment(device, AccessTechnology::Wifi, if i == 2 { 7 } else { 0 })))
            .collect();
        drop(release);
        let mut results = Vec::new();
        for p in pending {
            results.push(p.await);
        }

        let after = store.stats();
        assert_eq!(after.batches, stats.batches + 1, "all five in one transaction");
        assert_eq!(after.operations, stats.operations + 5);
        assert_eq!(after.failed_batches, 0);
        for (i, (result, device)) in results.iter().zip(&devices).enumerate() {
            if i == 2 {
                assert!(matches!(result, Err(StoreError::Conflict { expected: 7, found: 0 })), "{result:?}");
                assert_eq!(snapshot(&store, device), untouched);
            } else {
                let receipt = result.as_ref().expect("committed");
                assert_eq!(receipt.generation, 1);
                let state = store.state(device).expect("state").expect("provisioned");
                assert_eq!(state.public_key, Some(receipt.public_key));
                assert_eq!(store.log(device).expect("log").len(), 1);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_operation_loses_its_partial_writes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let devices: Vec<Eui> = (1..=2).map(fleet_eui).collect();
        store.provision_many(devices.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        let stats = store.stats();

        // Between two good commits, an operation that writes and then fails.
        let release = store.hold_writer();
        let first = store.commit(enrollment(devices[0], AccessTechnology::Wifi, 0));
        let failing = store.exec("UPDATE device SET owner = 'half-done'; SELECT * FROM no_such_table;");
        let second = store.commit(enrollment(devices[1], AccessTechnology::Wifi, 0));
        drop(release);
        assert_eq!(first.await.expect("first commits").generation, 1);
        assert_eq!(second.await.expect("second commits").generation, 1);
        assert!(matches!(failing.recv().expect("answered"), Err(StoreError::Sqlite { .. })));
        assert_eq!(store.stats().batches, stats.batches + 1, "one transaction");
        for device in &devices {
            let state = store.state(device).expect("state").expect("provisioned");
            assert_eq!(state.owner.as_deref(), Some("ACME Utilities"), "{device}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_the_whole_batch_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let devices: Vec<Eui> = (1..=3).map(fleet_eui).collect();
        store.provision_many(devices.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        let before: Vec<_> = devices.iter().map(|d| snapshot(&store, d)).collect();

        // A deferred foreign-key violation makes the COMMIT itself fail.
        let release = store.hold_writer();
        let pending: Vec<_> =
            devices.iter().map(|&device| store.commit(enrollment(device, AccessTechnology::Wifi, 0))).collect();
        let poison = store.exec(
            "PRAGMA defer_foreign_keys = ON;
             INSERT INTO enrollment_log VALUES (x'ACDE48FFFFFF', 1, 'enroll', 'x', '', '', 0);",
        );
        drop(release);
        for p in pending {
            let result = p.await;
            assert!(matches!(&result, Err(StoreError::Sqlite { during: "committing a batch", .. })), "{result:?}");
        }
        assert!(poison.recv().expect("answered").is_err());
        assert_eq!(store.stats().failed_batches, 1);
        let after: Vec<_> = devices.iter().map(|d| snapshot(&store, d)).collect();
        assert_eq!(after, before);

        // The writer carries on.
        let receipt = store.commit(enrollment(devices[0], AccessTechnology::Wifi, 0)).await.expect("commit");
        assert_eq!(receipt.generation, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_commits_all_land() {
        const DEVICES: u32 = 2_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(&dir));
        let devices: Vec<Eui> = (0..DEVICES).map(fleet_eui).collect();
        store.provision_many(devices.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        let enrollments: Vec<Enrollment> = devices.iter().map(|&d| enrollment(d, AccessTechnology::Wifi, 0)).collect();
        let keys: Vec<[u8; 32]> = enrollments.iter().map(|e| e.signing_key.verifying_key().to_bytes()).collect();
        let tasks: Vec<_> = enrollments
            .into_iter()
            .map(|e| {
                let store = store.clone();
                tokio::spawn(async move { store.commit(e).await })
            })
            .collect();
        for (task, key) in tasks.into_iter().zip(&keys) {
            let receipt = task.await.expect("task").expect("commit");
            assert_eq!((receipt.generation, &receipt.public_key), (1, key));
        }
        drop(store);
        // Everything is in the file, for a fresh store.
        let store = open(&dir);
        for (device, key) in devices.iter().zip(&keys) {
            let state = store.state(device).expect("state").expect("provisioned");
            assert_eq!((state.generation, state.public_key, state.sealed), (1, Some(*key), true));
        }
    }

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

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        drop(DeviceStore::open(&path).expect("create"));
        let raw = Connection::open(&path).expect("raw");
        raw.pragma_update(None, "user_version", 2).expect("bump");
        drop(raw);
        assert!(matches!(DeviceStore::open(&path), Err(StoreError::UnsupportedSchema { found: 2, supported: 1 })));
    }

    #[test]
    fn opening_sets_durable_wal_mode_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        let store = DeviceStore::open(&path).expect("create");
        let raw = Connection::open(&path).expect("raw");
        let journal: String = raw.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("journal");
        assert_eq!(journal, "wal");
        let version: i64 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        drop(store);
        // Reopening an up-to-date file migrates nothing.
        DeviceStore::open(&path).expect("reopen");
    }

    #[test]
    fn corrupt_rows_are_reported_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        let store = DeviceStore::open(&path).expect("open");
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let raw = Connection::open(&path).expect("raw");
        raw.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
        raw.execute("UPDATE device SET sp_bound_id = 'sp.example/wifi/ac-de-48-00-00-80'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE device SET sp_bound_id = 'sp.example/wifi/AC-DE-48-00-00-81'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE device SET sp_bound_id = NULL, access = 'carrier-pigeon'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
    }

    /// Throughput of durable commits with many concurrent enrollments. Run:
    /// `cargo test --release -p enrollment-runtime --lib device_store::tests::throughput -- --ignored --nocapture`
    ///
    /// `STORE_BENCH_DEVICES` devices (10,000) in one file are each enrolled
    /// `STORE_BENCH_ROUNDS` times (2) by `STORE_BENCH_TASKS` concurrent tokio
    /// tasks (one per device) on 2 worker threads, each task committing its
    /// share one after another; `STORE_BENCH_DIR` picks the file system. Key
    /// generation is done beforehand: this measures the store.
    #[test]
    #[ignore = "benchmark; run in release mode"]
    fn throughput() {
        let var = |name: &str, default: u32| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let devices = var("STORE_BENCH_DEVICES", 10_000);
        let rounds = var("STORE_BENCH_ROUNDS", 2);
        let tasks = var("STORE_BENCH_TASKS", devices).clamp(1, devices) as usize;
        let dir = match std::env::var("STORE_BENCH_DIR") {
            Ok(dir) => tempfile::tempdir_in(dir),
            Err(_) => tempfile::tempdir(),
        }
        .expect("tempdir");
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let store = Arc::new(open(&dir));
        let fleet: Vec<Eui> = (0..devices).map(fleet_eui).collect();
        store.provision_many(fleet.iter().map(|&d| (d, AccessTechnology::Wifi))).expect("provision");
        let mut total = 0u64;
        let mut elapsed = Duration::ZERO;
        let stats_before = store.stats();
        for round in 0..u64::from(rounds) {
            let mut shares: Vec<Vec<Enrollment>> = (0..tasks).map(|_| Vec::new()).collect();
            for (i, &device) in fleet.iter().enumerate() {
                let mut e = enrollment(device, AccessTechnology::Wifi, round);
                e.allow_sealed = true;
                shares[i % tasks].push(e);
            }
            let start = Instant::now();
            runtime.block_on(async {
                let handles: Vec<_> = shares
                    .into_iter()
                    .map(|share| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            for e in share {
                                store.commit(e).await.expect("commit");
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.expect("task");
                }
            });
            elapsed += start.elapsed();
            total += u64::from(devices);
        }
        let stats = store.stats();
        let batches = stats.batches - stats_before.batches;
        println!(
            "{total} durable commits ({devices} devices x {rounds} rounds) from {tasks} concurrent tasks in {:.3} s: \
             {:.0} commits/s; {batches} transactions (fsyncs), {:.1} commits per transaction, largest {}",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            total as f64 / batches as f64,
            stats.largest_batch,
        );
    }
}
