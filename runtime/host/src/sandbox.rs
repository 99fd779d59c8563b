//! The one place that configures wasmtime.
//!
//! An enrollment half is untrusted code that arrived on a sticker. This module
//! narrows wasmtime to exactly what such code may have, and nothing else in the
//! crate touches a `wasmtime::Config`:
//!
//! - **No ambient authority.** There is no WASI. A half is linked against the
//!   imports of its own world and nothing else; a component that imports
//!   anything more is refused by name before it is instantiated.
//! - **Bounded time.** Epoch interruption with a deadline per half: a half that
//!   loops forever is trapped when its deadline passes. Waiting on the transport
//!   has its own timeout, so a silent peer cannot hold a half either.
//! - **Bounded memory.** Each half gets at most `max_memory_bytes` of linear
//!   memory (128 KiB by default), enforced both by the pooling allocator's slot
//!   size and by a per-store limiter that names the violation.
//! - **Bounded compiling.** Compiling comes before any deadline, and wasmtime
//!   bounds neither its time nor its memory, so a half is checked on its raw
//!   bytes first (size cap, component, imports, world: [`check`]) and compiled
//!   off the executor, a bounded number at a time, within a timeout
//!   ([`compile`]). A half refused for what its bytes are is remembered by
//!   content hash ([`cache::Refusals`]) and not compiled again.
//! - **Fast and predictable instantiation.** The pooling allocator pre-reserves
//!   slots for `max_concurrent_halves` halves, and compiled components are kept
//!   in a content-addressed cache ([`cache`]) so an app seen before is never
//!   compiled again.
//! - **Nothing unused.** Component-model concurrency, GC, threads and the other
//!   proposals no enrollment app needs are off.

pub mod cache;
pub mod check;
pub mod compile;
mod limits;
#[cfg(test)]
mod tests;
mod world_imports {
    include!(concat!(env!("OUT_DIR"), "/world_imports.rs"));
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use cache::{ComponentCache, Digest, Refusals};
pub use check::{MAX_HALF_BYTES, MAX_HALF_LOCALS};
use compile::CompileGate;
pub use compile::{DEFAULT_COMPILE_TIMEOUT, DEFAULT_MAX_CONCURRENT_COMPILES};
use crate::failure::{FailureCode, WireFailure};
pub use limits::{HalfLimiter, LimitViolation};

/// Which compiler turns a half into machine code.
///
/// An enrollment half runs for microseconds and is compiled once per product,
/// so compile time matters more than code quality: the default is the
/// baseline compiler, Winch, where wasmtime has it (x86_64, aarch64), and
/// Cranelift elsewhere. BENCHMARKS.md has both measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiler {
    /// Optimising compiler: slower to compile, faster code.
    Cranelift,
    /// Baseline compiler: compiles in one pass.
    Winch,
}

impl Compiler {
    /// Whether this build has the compiler (cargo features `winch`, `cranelift`).
    pub fn available(self) -> bool {
        match self {
            Compiler::Cranelift => cfg!(feature = "cranelift"),
            Compiler::Winch => cfg!(feature = "winch") && cfg!(any(target_arch = "x86_64", target_arch = "aarch64")),
        }
    }
}

impl Default for Compiler {
    fn default() -> Self {
        if Compiler::Winch.available() { Compiler::Winch } else { Compiler::Cranelift }
    }
}

impl std::str::FromStr for Compiler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cranelift" => Ok(Self::Cranelift),
            "winch" => Ok(Self::Winch),
            other => Err(format!("unknown compiler `{other}` (expected `cranelift` or `winch`)")),
        }
    }
}

/// Limits and choices for running enrollment halves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Compiler used for halves not yet in the cache.
    pub compiler: Compiler,
    /// Most linear memory one half may use.
    pub max_memory_bytes: usize,
    /// How long one half may run, waiting included.
    pub half_deadline: Duration,
    /// Granularity of the deadline: how often the epoch advances.
    pub epoch_tick: Duration,
    /// How many halves may be instantiated at once (pool size).
    pub max_concurrent_halves: u32,
    /// How many compiled components the cache keeps.
    pub cache_capacity: usize,
    /// Use the pooling allocator (on by default; off measures the difference).
    pub pooling: bool,
    /// Largest half compiled, in bytes ([`MAX_HALF_BYTES`]).
    pub max_half_bytes: usize,
    /// How many halves compile at once ([`DEFAULT_MAX_CONCURRENT_COMPILES`]).
    pub max_concurrent_compiles: usize,
    /// How long one compile, and the wait for a compile slot, may take
    /// ([`DEFAULT_COMPILE_TIMEOUT`]).
    pub compile_timeout: Duration,
    /// How many refused halves are remembered by content hash, so that one
    /// sent again is refused without compiling it again.
    pub refusal_capacity: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            compiler: Compiler::default(),
            max_memory_bytes: 128 * 1024,
            half_deadline: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(5),
            max_concurrent_halves: 2048,
            cache_capacity: 128,
            pooling: true,
            max_half_bytes: MAX_HALF_BYTES,
            max_concurrent_compiles: DEFAULT_MAX_CONCURRENT_COMPILES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            refusal_capacity: 1024,
        }
    }
}

/// Which of the two worlds a component must target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HalfKind {
    /// The half run by the assisting phone or gateway.
    Phone,
    /// The half run by the device being enrolled.
    Device,
    /// The operational app a device runs after enrollment (world
    /// `operational`): not a half of the enrollment, but loaded, checked and
    /// bounded by the same sandbox.
    Operational,
}

impl HalfKind {
    /// The interfaces a half of this kind may import (version-qualified
    /// names, as they appear in a component).
    /// Derived from `wit/enrollment.wit` at build time.
    pub fn allowed_imports(self) -> &'static [&'static str] {
        match self {
            HalfKind::Phone => world_imports::PHONE_HALF_IMPORTS,
            HalfKind::Device => world_imports::DEVICE_HALF_IMPORTS,
            HalfKind::Operational => world_imports::OPERATIONAL_IMPORTS,
        }
    }

    /// The one function a component of this kind exports.
    pub fn export(self) -> &'static str {
        match self {
            HalfKind::Phone | HalfKind::Device => "enroll",
            HalfKind::Operational => "activate",
        }
    }

    /// Lower-case name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            HalfKind::Phone => "phone half",
            HalfKind::Device => "device half",
            HalfKind::Operational => "operational app",
        }
    }
}

impl std::fmt::Display for HalfKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a half could not be loaded or did not finish.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HalfError {
    #[error("the {0} is a core WebAssembly module, not a component")]
    CoreModule(String),
    #[error("the {half} is {size} bytes; this runtime compiles halves of at most {max} bytes")]
    TooLarge { half: String, size: u64, max: u64 },
    #[error("the {half} declares {declared} locals in all; this runtime compiles halves with at most {max} (a real half declares under a hundred)")]
    TooManyLocals { half: String, declared: u64, max: u64 },
    #[error("compiling the {half} took longer than {timeout_ms} ms; it was refused (a real half compiles in milliseconds)")]
    CompileTimeout { half: String, timeout_ms: u64 },
    #[error("the {half} is not a valid component: {reason}")]
    InvalidComponent { half: String, reason: String },
    #[error("the {half} imports `{name}`, which its world does not offer")]
    ForeignImport { half: String, name: String },
    #[error("the {half} was built for WIT version {found} of iot-enroll:enrollment; this runtime supports {supported} (rebuild it with `qr-packer build`)")]
    UnsupportedWitVersion { half: String, found: String, supported: String },
    #[error("the {half} does not target its world: {reason}")]
    WrongWorld { half: String, reason: String },
    #[error("the {half} ran past its deadline of {deadline_ms} ms")]
    DeadlineExceeded { half: String, deadline_ms: u64 },
    #[error("the {half} asked for {requested} bytes of linear memory; the cap is {cap}")]
    MemoryCap { half: String, requested: u64, cap: u64 },
    #[error("the {half} sent a {size}-byte message; the limit is {max}")]
    MessageTooLarge { half: String, size: u64, max: u64 },
    #[error("the {half} gave up after its peer sent nothing for {waited_ms} ms")]
    PeerSilent { half: String, waited_ms: u64 },
    #[error("the {half} trapped: {reason}")]
    Trap { half: String, reason: String },
    #[error("the {half} reported failure")]
    Failed { half: String },
    #[error("no sandbox slot is free for the {half}: {reason}")]
    Exhausted { half: String, reason: String },
    #[error("the host failed while serving the {half}: {reason}")]
    Host { half: String, reason: String },
}

impl HalfError {
    /// The stable code this error travels under on the link.
    pub fn code(&self) -> FailureCode {
        match self {
            HalfError::CoreModule(_) => FailureCode::HalfCoreModule,
            HalfError::TooLarge { .. } | HalfError::TooManyLocals { .. } => FailureCode::HalfTooLarge,
            HalfError::CompileTimeout { .. } => FailureCode::HalfCompileTimeout,
            HalfError::InvalidComponent { .. } => FailureCode::HalfInvalidComponent,
            HalfError::ForeignImport { .. } => FailureCode::HalfForeignImport,
            HalfError::UnsupportedWitVersion { .. } => FailureCode::HalfUnsupportedWit,
            HalfError::WrongWorld { .. } => FailureCode::HalfWrongWorld,
            HalfError::DeadlineExceeded { .. } => FailureCode::HalfDeadline,
            HalfError::MemoryCap { .. } => FailureCode::HalfMemoryCap,
            HalfError::MessageTooLarge { .. } => FailureCode::HalfMessageTooLarge,
            HalfError::PeerSilent { .. } => FailureCode::HalfPeerSilent,
            HalfError::Trap { .. } => FailureCode::HalfTrap,
            HalfError::Failed { .. } => FailureCode::HalfFailed,
            HalfError::Exhausted { .. } => FailureCode::HalfExhausted,
            HalfError::Host { .. } => FailureCode::HalfHost,
        }
    }

    /// This error as it crosses the link.
    pub fn to_wire(&self) -> WireFailure {
        WireFailure::new(self.code(), self.to_string())
    }

    /// Whether the same bytes would be refused the same way again, so the
    /// refusal may be remembered by content hash. A host failure or a full
    /// pool says nothing about the half and is not remembered.
    pub fn follows_from_the_bytes(&self) -> bool {
        matches!(
            self,
            HalfError::CoreModule(_)
                | HalfError::TooLarge { .. }
                | HalfError::TooManyLocals { .. }
                | HalfError::CompileTimeout { .. }
                | HalfError::InvalidComponent { .. }
                | HalfError::ForeignImport { .. }
                | HalfError::UnsupportedWitVersion { .. }
                | HalfError::WrongWorld { .. }
        )
    }
}

/// Why a sandbox or a runtime built on it could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("creating the wasmtime engine: {0}")]
    Engine(String),
    #[error("this build has no {0:?} compiler (cargo features `winch` / `cranelift` of enrollment-host)")]
    CompilerUnavailable(Compiler),
    #[error("starting the epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
    #[error("linking the {world} world: {reason}")]
    Linker { world: &'static str, reason: String },
}

/// A half compiled and linked against its world, ready to instantiate.
pub struct PreparedHalf<P> {
    /// Content hash of the component bytes it was built from.
    pub digest: Digest,
    /// The pre-instantiated component (`DeviceHalfPre` / `PhoneHalfPre`).
    pub pre: P,
}

/// The engine and epoch ticker shared by every enrollment on this host.
pub struct Sandbox {
    engine: Engine,
    config: SandboxConfig,
    compiles: CompileGate,
    refusals: Refusals<(HalfKind, Digest), HalfError>,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Builds the engine. Fails only if the host cannot reserve the pool.
    pub fn new(config: SandboxConfig) -> Result<Self, SetupError> {
        if !config.compiler.available() {
            return Err(SetupError::CompilerUnavailable(config.compiler));
        }
        let engine = Engine::new(&wasmtime_config(&config)).map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let compiles = CompileGate::new(config.max_concurrent_compiles, config.compile_timeout);
        let refusals = Refusals::new(config.refusal_capacity);
        Ok(Self { engine, config, compiles, refusals, _ticker: ticker })
    }

    /// The engine, for the linkers of the half modules.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Checks, compiles and links a half (or takes it from `cache`).
    ///
    /// Refuses anything that is not a component of the right world before any
    /// code is generated for it; a half refused for what its bytes are is
    /// refused again from memory, without compiling it again.
    pub async fn prepare<T: 'static, P: Clone + Send + Sync + 'static>(
        &self,
        cache: &ComponentCache<PreparedHalf<P>>,
        kind: HalfKind,
        bytes: &[u8],
        linker: &Linker<T>,
        wrap: fn(wasmtime::component::InstancePre<T>) -> wasmtime::Result<P>,
    ) -> Result<Arc<PreparedHalf<P>>, HalfError> {
        // Before hashing: the size is the one bound on everything after.
        if bytes.len() > self.config.max_half_bytes {
            return Err(HalfError::TooLarge {
                half: kind.to_string(),
                size: bytes.len() as u64,
                max: self.config.max_half_bytes as u64,
            });
        }
        let digest = Digest::of(bytes);
        let key = (kind, digest);
        if let Some(refusal) = self.refusals.get(&key) {
            return Err(refusal);
        }
        let result = cache
            .get_or_try_insert(digest, || async {
                // A caller that waited on another's failed build lands here
                // too: the refusal that build remembered answers it.
                if let Some(refusal) = self.refusals.get(&key) {
                    return Err(refusal);
                }
                check::check_half(kind, bytes, self.config.max_half_bytes)?;
                let component = self.compiles.compile(&self.engine, kind, bytes).await?;
                let pre = linker.instantiate_pre(&component).map_err(|e| HalfError::WrongWorld {
                    half: kind.to_string(),
                    reason: format!("{e:#}"),
                })?;
                let pre = wrap(pre).map_err(|e| HalfError::WrongWorld {
                    half: kind.to_string(),
                    reason: format!("{e:#}"),
                })?;
                Ok(PreparedHalf { digest, pre })
            })
            .await;
        if let Err(refusal) = &result
            && refusal.follows_from_the_bytes()
        {
            self.refusals.insert(key, refusal.clone());
        }
        result
    }

    /// How many compiles this sandbox has started (a compile refused from
    /// memory, or from its bytes alone, starts none).
    pub fn compilations(&self) -> u64 {
        self.compiles.started()
    }

    /// How many compiles are running now, including ones whose caller
    /// stopped waiting at the compile timeout.
    pub fn compiles_running(&self) -> usize {
        self.compiles.running()
    }

    /// How many refused halves are remembered.
    pub fn remembered_refusals(&self) -> usize {
        self.refusals.len()
    }

    /// A fresh store for one run of one half: memory limiter and deadline set.
    pub fn store<T: HasLimiter>(&self, data: T) -> Store<T> {
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| data.limiter());
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        store
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        (self.config.half_deadline.as_nanos().div_ceil(tick) as u64).max(1)
    }

    /// Maps what a half's call returned into this crate's terms.
    pub fn outcome<T: HasLimiter>(
        &self,
        kind: HalfKind,
        store: &mut Store<T>,
        result: wasmtime::Result<Result<(), ()>>,
    ) -> Result<(), HalfError> {
        let half = kind.to_string();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(HalfError::Failed { half }),
            Err(error) => Err(self.classify(kind, store.data_mut().limiter_state(), error)),
        }
    }

    /// Turns a wasmtime error (trap, host violation, limiter refusal) into a
    /// specific [`HalfError`].
    pub fn classify(&self, kind: HalfKind, limiter: &HalfLimiter, error: wasmtime::Error) -> HalfError {
        let half = kind.to_string();
        if let Some(violation) = error.downcast_ref::<LimitViolation>() {
            return violation.clone().into_half_error(kind);
        }
        if let Some(violation) = limiter.violation() {
            return violation.into_half_error(kind);
        }
        if let Some(HalfErrorBox(inner)) = error.downcast_ref::<HalfErrorBox>() {
            return inner.clone();
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => HalfError::DeadlineExceeded {
                half,
                deadline_ms: self.config.half_deadline.as_millis() as u64,
            },
            Some(trap) => HalfError::Trap { half, reason: trap.to_string() },
            // By type, never by message: a guest's function names appear in
            // backtraces and so in the text.
            None if error.chain().any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>()) => {
                HalfError::Exhausted { half, reason: format!("{error:#}") }
            }
            None => HalfError::Trap { half, reason: format!("{error:#}") },
        }
    }
}

/// A [`HalfError`] raised from inside a host function, so that the trap it
/// causes can be reported as exactly that error.
#[derive(Debug, Clone)]
pub struct HalfErrorBox(pub HalfError);

impl std::fmt::Display for HalfErrorBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HalfErrorBox {}

/// Store data that carries a [`HalfLimiter`].
pub trait HasLimiter: Send + 'static {
    fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter;
    fn limiter_state(&mut self) -> &HalfLimiter;
}

fn wasmtime_config(config: &SandboxConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    // Component-model async and the proposals enrollment apps do not use
    // (threads, GC, exceptions, ...) are not compiled into this build of
    // wasmtime at all (see the workspace's feature list); turn off the
    // concurrency machinery that is.
    c.concurrency_support(false);
    c.epoch_interruption(true);
    c.strategy(match config.compiler {
        Compiler::Cranelift => wasmtime::Strategy::Cranelift,
        Compiler::Winch => wasmtime::Strategy::Winch,
    });
    // A half's native stack: enrollment code is shallow, and a small stack
    // keeps 1,000 concurrent halves cheap.
    c.max_wasm_stack(256 * 1024);
    c.async_stack_size(512 * 1024);
    // Each memory is reserved at exactly its cap: no 4 GiB virtual slots, and
    // the bound is static so checks are a compare against a constant.
    let cap = config.max_memory_bytes.next_multiple_of(65536);
    c.memory_reservation(cap as u64);
    c.memory_guard_size(64 * 1024);
    c.memory_reservation_for_growth(0);
    c.memory_may_move(false);
    // A half's initial memory is a few hundred bytes of data: copying it in
    // is cheaper than mapping a copy-on-write image and unmapping it again
    // for every instance (page faults and TLB shootdowns dominated otherwise).
    c.memory_init_cow(false);
    if config.pooling {
        let n = config.max_concurrent_halves;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            // A componentized half is its core module plus a few small shim
            // instances that wit-component adds for lowering imports.
            .max_core_instances_per_component(8)
            .total_core_instances(n.saturating_mul(8))
            .max_memories_per_component(1)
            .max_memories_per_module(1)
            .total_memories(n)
            .max_tables_per_component(4)
            .max_tables_per_module(2)
            .total_tables(n.saturating_mul(4))
            .table_elements(1024)
            .total_stacks(n)
            .max_memory_size(cap)
            .max_core_instance_size(64 * 1024)
            .max_component_instance_size(64 * 1024)
            // Reset slots by zeroing rather than returning pages to the
            // kernel: cheaper for slots this small, and no TLB shootdowns.
            .linear_memory_keep_resident(cap)
            .table_keep_resident(64 * 1024)
            .async_stack_keep_resident(128 * 1024);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// The version of `iot-enroll:enrollment` this runtime implements.
pub const WIT_VERSION: &str = world_imports::WIT_VERSION;

/// Advances the engine's epoch every tick, from its own thread, until the
/// sandbox is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
