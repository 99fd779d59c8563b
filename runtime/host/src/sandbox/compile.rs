//! Compiling a half, with the bounds wasmtime leaves to its caller.
//!
//! A half's deadline starts when it is instantiated; compiling comes before
//! that and wasmtime has no fuel, deadline or memory cap for it (Cranelift
//! and Winch run to completion once started, and a running compile cannot be
//! cancelled). So the sandbox bounds it from outside:
//!
//! - **Size**: nothing over `max_half_bytes` reaches the compiler
//!   ([`super::check::MAX_HALF_BYTES`]); compile time and memory grow with it.
//! - **Concurrency**: at most `max_concurrent_compiles` compiles run at once,
//!   each on a blocking thread (never on the async executor). A compile keeps
//!   its slot until it really ends, also after its caller stopped waiting, so
//!   runaway compiles cannot pile up.
//! - **Time**: the caller waits at most `compile_timeout` for a slot and as
//!   long again for the compile, then gets [`HalfError::CompileTimeout`] (or
//!   [`HalfError::Exhausted`] for no slot). The compile itself runs on in the
//!   background until it ends; its result is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{HalfError, HalfKind};

/// How many halves compile at once unless configured otherwise: one per core
/// of a small gateway. Each compile of a half within the size cap needs tens
/// of MiB at most, so two bound the compiler's memory as well.
pub const DEFAULT_MAX_CONCURRENT_COMPILES: usize = 2;

/// How long a compile may take unless configured otherwise. A reference
/// half compiles in 4 to 9 ms (BENCHMARKS.md, release build); 5 s leaves room
/// for debug builds on a loaded machine and still stops a half crafted to
/// keep the compiler busy.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(5);

/// Compile slots and the compile counters of one sandbox.
pub(super) struct CompileGate {
    slots: Arc<Semaphore>,
    max: usize,
    timeout: Duration,
    started: AtomicU64,
    running: Arc<AtomicUsize>,
}

impl CompileGate {
    pub(super) fn new(max_concurrent: usize, timeout: Duration) -> Self {
        let max = max_concurrent.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            timeout,
            started: AtomicU64::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Compiles `bytes` (already checked) on a blocking thread, within the
    /// gate's slots and time.
    pub(super) async fn compile(&self, engine: &Engine, kind: HalfKind, bytes: &[u8]) -> Result<Component, HalfError> {
        let timeout_ms = self.timeout.as_millis() as u64;
        let permit = match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(HalfError::Host { half: kind.to_string(), reason: "the compile slots are closed".into() });
            }
            Err(_elapsed) => {
                return Err(HalfError::Exhausted {
                    half: kind.to_string(),
                    reason: format!("no compile slot came free within {timeout_ms} ms ({} compile at once)", self.max),
                });
            }
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let running = Running::start(permit, self.running.clone());
        let engine = engine.clone();
        let owned = bytes.to_vec();
        let task = tokio::task::spawn_blocking(move || {
            let _running = running;
            Component::new(&engine, &owned)
        });
        match tokio::time::timeout(self.timeout, task).await {
            Err(_elapsed) => Err(HalfError::CompileTimeout { half: kind.to_string(), timeout_ms }),
            Ok(Err(join)) => {
                Err(HalfError::Host { half: kind.to_string(), reason: format!("the compiler thread failed: {join}") })
            }
            Ok(Ok(Err(e))) => Err(HalfError::InvalidComponent { half: kind.to_string(), reason: format!("{e:#}") }),
            Ok(Ok(Ok(component))) => Ok(component),
        }
    }

    /// How many compiles have been started.
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// How many compiles are running now (including ones whose caller gave up).
    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// A compile in progress: holds its slot and counts itself until dropped,
/// which is when the compile really ended (or its thread panicked).
struct Running {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Running {
    fn start(permit: OwnedSemaphorePermit, running: Arc<AtomicUsize>) -> Self {
        running.fetch_add(1, Ordering::Relaxed);
        Self { _permit: permit, running }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}
