//! Latency of the runtime's hot paths, with criterion:
//!
//! - `compile/{cranelift,winch}/{app}/{half}`: a cold compile of one half —
//!   validation, import check, compilation and linking (`instantiate_pre`),
//!   with the cache bypassed (a fresh cache per iteration); `…/as-linked`
//!   is the same half componentized without the builder's whole-world
//!   imports, for what those cost;
//! - `enroll/warm/{app}`: one whole in-process enrollment with both halves
//!   already compiled: both instantiated and run, the two-phase commit, and
//!   the device's SQLite commit with `synchronous=FULL` (an fsync of the WAL
//!   per commit batch; a lone enrollment is its own batch). Every iteration
//!   enrolls a fresh, provisioned device; provisioning is outside the timing.

mod common;

use std::sync::Arc;

use common::{device_id, label, manufacturer, services};
use enrollment_assistant::ScannedApp;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use enrollment_apps::{WIFI_METER, ZIGBEE_SENSOR};
use enrollment_device::capability::DeviceHost;
use enrollment_device::DeviceStore;
use enrollment_host::Link;
use enrollment_assistant::capability::PhoneHost;
use enrollment_host::sandbox::cache::ComponentCache;
use enrollment_host::sandbox::HalfKind;
use enrollment_assistant::{AccessTechnology, AssistantRuntime, Compiler, EnrollOptions, Eui, Sandbox, SandboxConfig, Timeouts};
use enrollment_device::DeviceRuntime;



fn compile(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let mut group = c.benchmark_group("compile");
    for compiler in [Compiler::Cranelift, Compiler::Winch] {
        let name = format!("{compiler:?}").to_lowercase();
        let sandbox = Sandbox::new(SandboxConfig { compiler, ..SandboxConfig::default() }).expect("sandbox");
        let phone_linker = PhoneHost::linker(sandbox.engine()).expect("linker");
        let device_linker = DeviceHost::linker(sandbox.engine()).expect("linker");
        for app in [&WIFI_METER, &ZIGBEE_SENSOR] {
            // As shipped (every import of its world, see `enrollment-builder`),
            // and as wit-component makes it of the linker's output alone (only
            // the imports the half calls): what the whole world costs here.
            let variants = [
                (String::new(), app.phone.to_vec(), app.device.to_vec()),
                ("/as-linked".to_string(), as_linked(app.phone_core), as_linked(app.device_core)),
            ];
            for (suffix, phone, device) in &variants {
                group.bench_function(BenchmarkId::new(&name, format!("{}/phone{suffix}", app.name)), |b| {
                    b.iter(|| {
                        let cache = ComponentCache::new(1);
                        rt.block_on(sandbox.prepare(&cache, HalfKind::Phone, phone, &phone_linker, |p| {
                            enrollment_host::bindings::phone::PhoneHalfPre::new(p)
                        }))
                        .expect("compiles");
                    })
                });
                group.bench_function(BenchmarkId::new(&name, format!("{}/device{suffix}", app.name)), |b| {
                    b.iter(|| {
                        let cache = ComponentCache::new(1);
                        rt.block_on(sandbox.prepare(&cache, HalfKind::Device, device, &device_linker, |p| {
                            enrollment_host::bindings::device::DeviceHalfPre::new(p)
                        }))
                        .expect("compiles");
                    })
                });
            }
        }
    }
    group.finish();
}

/// The component wit-component makes of a core module as the linker wrote it.
fn as_linked(core: &[u8]) -> Vec<u8> {
    wit_component::ComponentEncoder::default().module(core).expect("a core module with bindings").encode().expect("encodes")
}

fn warm_enrollment(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).expect("sandbox"));
    let assistant =
        AssistantRuntime::new(sandbox.clone(), services(), SigningKey::generate(&mut rand::rngs::OsRng), Timeouts::default())
            .expect("assistant");
    let store = Arc::new(DeviceStore::open(&dir.path().join("fleet.sqlite")).expect("store"));
    let device = DeviceRuntime::new(sandbox, store.clone(), manufacturer().trusted(), Timeouts::default(), true)
        .expect("device")
        // One product-wide label (no device id) serves every simulated device.
        .accept_unbound_labels();
    let mut next = 0u64;
    let mut group = c.benchmark_group("enroll");
    for (pair, access) in [(&WIFI_METER, AccessTechnology::Wifi), (&ZIGBEE_SENSOR, AccessTechnology::Zigbee)] {
        let app = &label(pair, access);
        group.bench_function(BenchmarkId::new("warm", pair.name), |b| {
            b.iter_custom(|iters| {
                let ids: Vec<Eui> = (0..iters)
                    .map(|_| {
                        next += 1;
                        device_id(access, next)
                    })
                    .collect();
                store.provision_many(ids.iter().map(|id| (*id, access))).expect("provision");
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for id in ids {
                        let start = Instant::now();
                        enroll_once(&assistant, &device, app, id).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

async fn enroll_once(assistant: &AssistantRuntime, device: &DeviceRuntime, app: &ScannedApp, id: Eui) {
    let (a, b) = Link::memory_pair();
    let (r, d) = tokio::join!(assistant.enroll(a, app, EnrollOptions::default()), device.serve(id, b));
    r.expect("enrolls");
    d.expect("device enrolls");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = compile, warm_enrollment
}
criterion_main!(benches);
