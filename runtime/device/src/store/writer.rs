//! The group-commit writer: one thread, the only write connection.
//!
//! Committing each enrollment on its own would cost one fsync each, so the
//! writer takes whatever is queued (up to [`MAX_BATCH`]) and runs it in one
//! transaction, each operation in its own SAVEPOINT so that a failed
//! precondition rolls back only that operation, then COMMITs once. Every
//! answer is held back until the COMMIT has returned: nobody is told `Ok`
//! before the fsync, and if the COMMIT fails every operation in the batch is
//! told so. What the operations themselves do is in `ops`; this module only
//! knows how to queue, batch and answer them.
//!
//! The queue carries [`Queued`]: the production [`Job`] in a normal build,
//! and in unit tests the wrapper from `testing` that adds the tests' hooks.
//! The writer runs anything that implements [`Operation`], so the hooks
//! never appear in `Job` and a release build carries none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::oneshot;

use sp_bound_id::{AccessTechnology, Eui, SpBoundId};

use super::ops::{commit_in, provision_in, rebind_in};
use super::{CommitReceipt, During, Enrollment, StoreError};

/// Where operations are queued for the writer.
pub(super) type Jobs = mpsc::SyncSender<Queued>;

/// Most operations the writer puts in one transaction.
pub const MAX_BATCH: usize = 256;

/// Most operations waiting for the writer. A caller beyond it is told at
/// once that the store is busy ([`StoreError::Busy`]) instead of the queue
/// growing without bound while the disk is slow.
pub const MAX_QUEUED: usize = 4 * MAX_BATCH;

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

/// What the writer counts as it goes; [`Counters::stats`] reads it.
pub(super) struct Counters {
    batches: AtomicU64,
    failed_batches: AtomicU64,
    operations: AtomicU64,
    largest_batch: AtomicU64,
    /// Each transaction, `BEGIN` to the answer of `COMMIT` (`device_store_commit_duration_seconds`).
    pub(super) commit: enrollment_metrics::Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            batches: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            commit: enrollment_metrics::Histogram::new(enrollment_metrics::COMMIT_BUCKETS),
        }
    }
}

impl Counters {
    /// The counters so far.
    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}

/// What the writer's queue carries: the store's operations.
#[cfg(not(test))]
pub(super) type Queued = Job;

/// What the writer's queue carries in unit tests: the store's operations
/// and the tests' hooks.
#[cfg(test)]
pub(super) type Queued = super::testing::TestJob;

/// Something the writer takes off its queue and runs in a batch.
pub(super) trait Operation: Sized {
    /// Called as the writer takes the operation off its queue; `None` if
    /// there is nothing left to put in the batch.
    fn dequeued(self) -> Option<Self> {
        Some(self)
    }

    /// Runs the operation in its own savepoint. The second value is set if
    /// the whole batch can no longer commit.
    fn run(self, conn: &Connection, now: u64) -> (Outcome, Option<StoreError>);

    /// An operation that did not run because its batch had already failed.
    fn abandon(self, error: &StoreError) -> Outcome;
}

/// An operation for the writer, with where to send its outcome.
pub(super) enum Job {
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
        sp_endpoint: Option<String>,
        sp_public_key: Option<[u8; 32]>,
        expected_generation: u64,
        reply: oneshot::Sender<Result<CommitReceipt, StoreError>>,
    },
    FinishActivation {
        record: Box<super::ActivationRecord>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// An operation that has run, and its answer, held until the batch commits.
pub(super) enum Outcome {
    Unit(mpsc::SyncSender<Result<(), StoreError>>, Result<(), StoreError>),
    Receipt(oneshot::Sender<Result<CommitReceipt, StoreError>>, Result<CommitReceipt, StoreError>),
    Done(oneshot::Sender<Result<(), StoreError>>, Result<(), StoreError>),
}

impl Outcome {
    /// The batch failed: whatever this operation did is gone.
    fn fail(&mut self, error: &StoreError) {
        match self {
            Self::Unit(_, result) => *result = Err(error.clone()),
            Self::Receipt(_, result) => *result = Err(error.clone()),
            Self::Done(_, result) => *result = Err(error.clone()),
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
            Self::Done(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Operation for Job {
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
            Self::RebindSp { device, new, sp_endpoint, sp_public_key, expected_generation, reply } => {
                let binding = (sp_endpoint.as_deref(), sp_public_key.as_ref());
                let (result, broken) =
                    in_savepoint(conn, |c| rebind_in(c, device, &new, binding, expected_generation, now));
                (Outcome::Receipt(reply, result), broken)
            }
            Self::FinishActivation { record, reply } => {
                let (result, broken) = in_savepoint(conn, |c| super::operational::finish_activation_in(c, &record));
                (Outcome::Done(reply, result), broken)
            }
        }
    }

    fn abandon(self, error: &StoreError) -> Outcome {
        match self {
            Self::Provision { reply, .. } => Outcome::Unit(reply, Err(error.clone())),
            Self::Commit { reply, .. } | Self::RebindSp { reply, .. } => Outcome::Receipt(reply, Err(error.clone())),
            Self::FinishActivation { reply, .. } => Outcome::Done(reply, Err(error.clone())),
        }
    }
}

/// Starts the writer thread on the write connection; it runs until the
/// returned sender is dropped and the queue is empty.
pub(super) fn spawn(
    conn: Connection,
    counters: Arc<Counters>,
) -> Result<(Jobs, JoinHandle<()>), StoreError> {
    let (jobs, queue) = mpsc::sync_channel(MAX_QUEUED);
    let handle = std::thread::Builder::new()
        .name("device-store-writer".into())
        .spawn(move || write_loop(conn, queue, &counters))
        .map_err(|e| StoreError::Io { during: "starting the writer thread", cause: Arc::new(e) })?;
    Ok((jobs, handle))
}

fn write_loop(conn: Connection, queue: mpsc::Receiver<Queued>, counters: &Counters) {
    // `recv` fails once the store has dropped its sender and the queue is
    // empty: queued operations are still run before the thread ends.
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            if let Some(job) = job.dequeued() {
                batch.push(job);
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
fn run_batch(conn: &Connection, batch: Vec<Queued>, counters: &Counters) {
    let now = unix_ms();
    let started = std::time::Instant::now();
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
    counters.commit.observe_duration(started.elapsed());
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

fn execute(conn: &Connection, sql: &str, during: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut statement| statement.execute([])).map(drop).during(during)
}

/// Runs `f` inside a savepoint: released if `f` succeeds, rolled back if it
/// fails. Returns `f`'s result and, if the enclosing transaction can no
/// longer commit, why.
pub(super) fn in_savepoint<T>(
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

/// The batch's clock: every operation in a batch is stamped with the same
/// time.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};
    use std::future::Future;

    use super::super::testing::*;
    use super::*;

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
    async fn a_full_queue_refuses_at_once_and_loses_nothing_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let device = fleet_eui(1);
        store.provision(device, AccessTechnology::Wifi).expect("provision");
        let before = snapshot(&store, &device);

        // A stuck disk: the writer holds; callers keep committing.
        let release = store.hold_writer();
        let mut pending = Vec::new();
        let refused = loop {
            let commit = store.commit(enrollment(device, AccessTechnology::Wifi, 0));
            let mut commit = Box::pin(commit);
            let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(commit.as_mut().poll(cx))).await;
            match polled {
                std::task::Poll::Ready(Err(e)) => break e,
                std::task::Poll::Ready(Ok(_)) => panic!("committed while the writer holds"),
                std::task::Poll::Pending => pending.push(commit),
            }
            assert!(pending.len() <= MAX_QUEUED, "the queue grew past {MAX_QUEUED}");
        };
        assert!(matches!(refused, StoreError::Busy { queued: MAX_QUEUED }), "{refused:?}");
        // The hold itself may have taken one place until the writer took it.
        assert!(pending.len() >= MAX_QUEUED - 1, "{} queued", pending.len());
        assert_eq!(snapshot(&store, &device), before, "nothing written while held");

        drop(release);
        let mut committed = 0;
        for p in pending {
            match p.await {
                Ok(_) => committed += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("a queued commit was lost: {other}"),
            }
        }
        assert_eq!(committed, 1, "every queued commit ran: one won, the rest conflicted");
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
        // As many as the queue holds: all are queued at once.
        const DEVICES: u32 = MAX_QUEUED as u32;
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

    /// Throughput of durable commits with many concurrent enrollments. Run:
    /// `cargo test --release -p enrollment-device --lib store::writer::tests::throughput -- --ignored --nocapture`
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
