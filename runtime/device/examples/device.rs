//! Embedding the device runtime: a device with its own store and trusted
//! manufacturer keys, waiting on its local link for one enrollment.
//!
//! ```sh
//! cargo run -p enrollment-device --example device -- \
//!     STORE.sqlite DEVICE_ID ACCESS MANUFACTURER.pub.json [LISTEN_ADDR]
//! ```
//!
//! It prints `listening on ADDR`, serves assistants until one enrolls it,
//! and prints the SP-bound identifier it committed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use enrollment_device::{
    AccessTechnology, DeviceRuntime, DeviceStore, Eui, Link, Sandbox, SandboxConfig, Timeouts, TrustedKeys,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (store_path, device_id, access, manufacturer_key, listen) = match args.as_slice() {
        [s, d, a, k] => (s, d, a, k, "127.0.0.1:0"),
        [s, d, a, k, l] => (s, d, a, k, l.as_str()),
        _ => bail!("usage: device STORE DEVICE_ID ACCESS MANUFACTURER_KEY [LISTEN_ADDR]"),
    };
    let device: Eui = device_id.parse()?;
    let access: AccessTechnology = access.parse()?;

    // The device's durable state, and the one device it speaks for.
    let store = Arc::new(DeviceStore::open(store_path.as_ref()).with_context(|| format!("opening {store_path}"))?);
    store.provision_many([(device, access)])?;
    // The device runs only apps its manufacturer signed.
    let trusted = TrustedKeys::from_files(&[PathBuf::from(manufacturer_key)])?;
    // One radio, one half at a time: a small pool.
    let sandbox = Arc::new(Sandbox::new(SandboxConfig { max_concurrent_halves: 4, cache_capacity: 4, ..Default::default() })?);
    let runtime = DeviceRuntime::new(sandbox, store, trusted, Timeouts::default(), false)?;

    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        match runtime.serve(device, Link::tcp(stream)).await {
            Ok(report) => {
                println!("enrolled {} (generation {})", report.enrolled.sp_bound_id, report.generation);
                return Ok(());
            }
            Err(failure) => eprintln!("enrollment failed, device unchanged: {failure}"),
        }
    }
}
