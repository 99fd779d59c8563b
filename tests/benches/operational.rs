//! What one activation of an operational app costs, warm (issue 12).
//!
//! The reference meter's app enrolled in process; each activation: read the
//! device's state and the app's kept values, ask the SP for commands (an SP
//! in memory, no network), instantiate the compiled app (compiled once,
//! before the timing) and run it, sign its one message with the device key,
//! hand it to the in-memory SP, and record the activation in the device
//! store: one SQLite transaction with `synchronous=FULL` (an fsync of the
//! WAL) per activation. So the figure is the runtime's cost plus one fsync.
//!
//! `cargo bench -p end-to-end-tests --bench operational -- [--activations N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use end_to_end_tests::operational_support::{FakeSp, Fixture};
use end_to_end_tests::{METER_ID, eui};
use enrollment_apps::WIFI_METER_OPERATIONAL;

fn main() {
    let mut n = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--activations" {
            n = args.next().and_then(|v| v.parse().ok()).expect("--activations N");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    rt.block_on(async move {
        let fx = Fixture::new(Duration::from_secs(10));
        fx.enroll(WIFI_METER_OPERATIONAL).await.expect("enrolled");
        let sp = Arc::new(FakeSp::default());
        let runtime = fx.runtime(sp.clone());
        let first = Instant::now();
        runtime.activate(eui(METER_ID)).await.expect("first activation");
        let cold = first.elapsed();
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            runtime.activate(eui(METER_ID)).await.expect("activation");
            times.push(t.elapsed());
        }
        times.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = times.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
        println!("first activation (compiles the app): {:.1} ms", cold.as_secs_f64() * 1e3);
        println!(
            "warm activation, n = {n}: min {:.0} µs, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, mean {mean:.0} µs",
            us(times[0]),
            us(times[n / 2]),
            us(times[n * 9 / 10]),
            us(times[(n * 99 / 100).min(n - 1)]),
        );
        println!("messages the SP got: {}", sp.received.lock().expect("lock").len());
    });
}
