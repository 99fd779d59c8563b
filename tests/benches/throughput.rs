//! Throughput and memory of concurrent in-process enrollments.
//!
//! `cargo bench -p end-to-end-tests --bench throughput` prints:
//! - enrollments per second with `CONCURRENCY` enrollments in flight on a
//!   2-worker tokio runtime, every one a whole enrollment (both halves
//!   instantiated from the compiled cache and run, two-phase commit) ending in
//!   a durable SQLite commit (`synchronous=FULL`; concurrent commits share one
//!   fsync through the store's group commit);
//! - the peak resident set size (VmHWM) of the process with 1,000 enrollments
//!   started at once (2,000 halves alive together).
//!
//! Environment: `ENROLL_TOTAL` (default 20000), `ENROLL_CONCURRENCY` (64),
//! `ENROLL_DB_DIR` (where the device store's file goes; default: the temp dir).

mod common;

use std::sync::Arc;

use common::{device_id, label, manufacturer, services};
use enrollment_assistant::ScannedApp;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use enrollment_apps::{WIFI_METER, ZIGBEE_SENSOR};
use futures::StreamExt;
use enrollment_device::DeviceStore;
use enrollment_host::Link;
use enrollment_assistant::{AccessTechnology, AssistantRuntime, EnrollOptions, Eui, Sandbox, SandboxConfig, Timeouts};
use enrollment_device::DeviceRuntime;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}


fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Bench {
    _dir: tempfile::TempDir,
    assistant: Arc<AssistantRuntime>,
    device: Arc<DeviceRuntime>,
    store: Arc<DeviceStore>,
    next: u64,
    /// Product-wide labels of the two reference apps.
    meter: Arc<ScannedApp>,
    sensor: Arc<ScannedApp>,
}

impl Bench {
    fn new() -> Self {
        let dir = match std::env::var("ENROLL_DB_DIR") {
            Ok(parent) => tempfile::tempdir_in(parent),
            Err(_) => tempfile::tempdir(),
        }
        .expect("tempdir");
        let config = SandboxConfig { max_concurrent_halves: 2200, ..SandboxConfig::default() };
        let sandbox = Arc::new(Sandbox::new(config).expect("sandbox"));
        let services = services();
        let timeouts = Timeouts { receive: Duration::from_secs(60), protocol: Duration::from_secs(60), ..Timeouts::default() };
        let identity = SigningKey::generate(&mut rand::rngs::OsRng);
        let assistant = Arc::new(AssistantRuntime::new(sandbox.clone(), services, identity, timeouts).expect("assistant"));
        let store = Arc::new(DeviceStore::open(&dir.path().join("fleet.sqlite")).expect("store"));
        // One product-wide label (no device id) serves every simulated device.
        let device = DeviceRuntime::new(sandbox, store.clone(), manufacturer().trusted(), timeouts, true).expect("device");
        let device = Arc::new(device.accept_unbound_labels());
        let meter = Arc::new(label(&WIFI_METER, AccessTechnology::Wifi));
        let sensor = Arc::new(label(&ZIGBEE_SENSOR, AccessTechnology::Zigbee));
        Self { _dir: dir, assistant, device, store, next: 0, meter, sensor }
    }

    /// Provisions `n` new devices, alternating the two apps (untimed).
    fn provision(&mut self, n: usize) -> Vec<(Eui, Arc<ScannedApp>)> {
        let devices: Vec<(Eui, AccessTechnology, Arc<ScannedApp>)> = (0..n)
            .map(|_| {
                self.next += 1;
                let (app, access) = if self.next.is_multiple_of(2) {
                    (&self.meter, AccessTechnology::Wifi)
                } else {
                    (&self.sensor, AccessTechnology::Zigbee)
                };
                (device_id(access, self.next), access, app.clone())
            })
            .collect();
        self.store.provision_many(devices.iter().map(|(id, access, _)| (*id, *access))).expect("provision");
        devices.into_iter().map(|(id, _, app)| (id, app)).collect()
    }

    /// Runs all `devices` with at most `concurrency` in flight; returns
    /// elapsed time and per-enrollment latencies.
    async fn run(&self, devices: Vec<(Eui, Arc<ScannedApp>)>, concurrency: usize) -> (Duration, Vec<Duration>) {
        let start = Instant::now();
        let latencies: Vec<Duration> = futures::stream::iter(devices)
            .map(|(id, app)| {
                let (assistant, device) = (self.assistant.clone(), self.device.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (a, b) = Link::memory_pair();
                    let dev = tokio::spawn(async move { device.serve(id, b).await });
                    assistant.enroll(a, &app, EnrollOptions::default()).await.expect("enrolls");
                    dev.await.expect("joins").expect("device enrolls");
                    t.elapsed()
                })
            })
            .buffer_unordered(concurrency)
            .map(|r| r.expect("task"))
            .collect()
            .await;
        (start.elapsed(), latencies)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let total = env("ENROLL_TOTAL", 20_000);
    let concurrency = env("ENROLL_CONCURRENCY", 64);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let mut bench = Bench::new();
    println!("machine: {} cores; tokio worker threads: 2", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    // Warm the caches: each app compiled once.
    let warm = bench.provision(4);
    rt.block_on(bench.run(warm, 2));

    // One at a time: where the time of a warm enrollment goes.
    let devices = bench.provision(500);
    let stages = rt.block_on(async {
        let mut sum = enrollment_assistant::StageTimings::default();
        let mut lat = Vec::new();
        for (id, app) in devices {
            let t = Instant::now();
            let (a, b) = Link::memory_pair();
            let (r, d) = tokio::join!(
                bench.assistant.enroll(a, &app, EnrollOptions::default()),
                bench.device.serve(id, b)
            );
            d.expect("device enrolls");
            let tm = r.expect("enrolls").timings;
            lat.push(t.elapsed());
            sum.handshake += tm.handshake;
            sum.prepare += tm.prepare;
            sum.run += tm.run;
            sum.device += tm.device;
            sum.relay += tm.relay;
            sum.commit += tm.commit;
        }
        lat.sort();
        (sum, lat)
    });
    let n = stages.1.len() as u32;
    let s = stages.0;
    println!(
        "sequential: {n} enrollments, p50 {:?}; mean per stage: handshake {:?}, prepare {:?}, halves {:?}, device {:?}, relay {:?}, commit {:?}",
        percentile(&stages.1, 0.5), s.handshake / n, s.prepare / n, s.run / n, s.device / n, s.relay / n, s.commit / n
    );

    let devices = bench.provision(total);
    let (elapsed, mut lat) = rt.block_on(bench.run(devices, concurrency));
    lat.sort();
    println!(
        "throughput: {total} enrollments, {concurrency} in flight: {:.0} enrollments/s ({:.2} s); latency p50 {:?} p99 {:?}",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    );
    let stats = bench.store.stats();
    println!(
        "device store (whole run, provisioning included): {} operations in {} fsynced transactions, largest {}",
        stats.operations, stats.batches, stats.largest_batch
    );

    let before = rss_kib("VmHWM:");
    let devices = bench.provision(1000);
    let (elapsed, _) = rt.block_on(bench.run(devices, 1000));
    let after = rss_kib("VmHWM:");
    println!(
        "1000 concurrent enrollments: {:.0} ms; peak RSS before {} KiB, after {} KiB (+{} KiB, {:.1} KiB per enrollment)",
        elapsed.as_secs_f64() * 1e3,
        before,
        after,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / 1000.0
    );
}
