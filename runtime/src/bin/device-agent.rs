//! `device-agent`: a device waiting to be enrolled, on a TCP port standing in
//! for its local radio link.
//!
//! It keeps the device's state in an SQLite file, serves one assistant at a
//! time (a device has one radio), runs the device half it is sent in its own
//! sandbox, and commits the enrollment atomically or not at all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runtime::device_store::DeviceStore;
use runtime::link::Link;
use runtime::{AccessTechnology, Compiler, DeviceRuntime, Eui, Sandbox, SandboxConfig, Timeouts};

#[derive(Parser)]
#[command(version, about = "A device waiting to be enrolled, listening on a TCP port as on its local radio link")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen for assistants and serve enrollment sessions.
    Serve {
        /// The device's state file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Manufacturer device id (EUI-48 or EUI-64, e.g. AC-DE-48-00-00-80).
        #[arg(long)]
        device_id: Eui,
        /// Access technology (wifi, zigbee, thread, ble, lorawan, ethernet, cellular).
        #[arg(long)]
        access: AccessTechnology,
        /// Public key file of a manufacturer whose apps this device runs
        /// (`qr-packer keygen` writes it); repeat for several. The device
        /// refuses every app not signed by one of them.
        #[arg(long = "trust", required = true)]
        trust: Vec<PathBuf>,
        /// Address to listen on; port 0 picks a free one (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Exit after the first session, with status 0 only if it enrolled the device.
        #[arg(long)]
        once: bool,
        /// Compiler for device halves (`winch` or `cranelift`; default: winch where available).
        #[arg(long)]
        compiler: Option<Compiler>,
        /// How long a half may wait for a message, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        receive_timeout_ms: u64,
        /// How long a half may run, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        half_deadline_ms: u64,
    },
    /// Print the device's stored state as JSON (no private key).
    Show {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        device_id: Eui,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Show { db, device_id } => {
            let store = DeviceStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let state = store.state(&device_id).context("reading the device state")?;
            println!("{}", serde_json::to_string_pretty(&state.map(|s| state_json(&s)))?);
            Ok(())
        }
        Command::Serve { db, device_id, access, trust, listen, once, compiler, receive_timeout_ms, half_deadline_ms } => {
            let trusted = qr_packer::TrustedKeys::from_files(&trust).context("loading the trusted manufacturer keys")?;
            let store = DeviceStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            store.provision(device_id, access).context("provisioning the device")?;
            let config = SandboxConfig {
                compiler: compiler.unwrap_or_default(),
                half_deadline: Duration::from_millis(half_deadline_ms),
                max_concurrent_halves: 4,
                cache_capacity: 4,
                ..SandboxConfig::default()
            };
            let sandbox = Arc::new(Sandbox::new(config)?);
            let timeouts = Timeouts { receive: Duration::from_millis(receive_timeout_ms), ..Timeouts::default() };
            let device = DeviceRuntime::new(sandbox, Arc::new(store), trusted, timeouts, false)?;
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            println!("listening on {}", listener.local_addr()?);
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => accepted.context("accepting a connection")?,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                tracing::info!(%peer, "assistant connected");
                let result = device.serve(device_id, Link::tcp(stream)).await;
                match &result {
                    Ok(report) if report.sp_only => println!("re-bound {} (generation {})", report.enrolled.sp_bound_id, report.generation),
                    Ok(report) => println!("enrolled {} (generation {})", report.enrolled.sp_bound_id, report.generation),
                    Err(failure) => println!("enrollment failed: {failure}"),
                }
                if once {
                    std::process::exit(if result.is_ok() { 0 } else { 1 });
                }
            }
        }
    }
}

fn state_json(s: &runtime::device_store::DeviceState) -> serde_json::Value {
    serde_json::json!({
        "device_id": s.device.to_string(),
        "access": s.access.to_string(),
        "generation": s.generation,
        "sealed": s.sealed,
        "sp_bound_id": s.sp_bound_id.as_ref().map(|i| i.to_string()),
        "public_key": s.public_key.map(hex::encode),
        "owner": s.owner,
        "location": s.location,
        "name": s.name,
        "network_configured": s.network.is_some(),
        "enrolled_by": s.enrolled_by.map(hex::encode),
        "enrolled_at_ms": s.enrolled_at,
        "enrollments": s.enrollments,
    })
}
