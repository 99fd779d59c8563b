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
use enrollment_device::{AccessTechnology, Compiler, DeviceRuntime, DeviceState, DeviceStore, Eui, Link, Sandbox, SandboxConfig, Timeouts};
use enrollment_device::operational::uplink::{HttpUplink, Uplink};
use enrollment_device::operational::{DEFAULT_WAKE, OperationalError, OperationalRuntime};

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
        /// Public key file (`KEY.pub.json`, which `qr-packer keygen` writes
        /// next to the signing key) of a manufacturer whose apps this device
        /// runs; repeat for several. The device refuses every app not signed
        /// by one of them. A private signing key file is refused: a device
        /// needs only the public key.
        #[arg(long = "trust", required = true)]
        trust: Vec<PathBuf>,
        /// Also run labels that name no device (packed `qr-packer pack
        /// --unbound`, one label for every unit of a product). Off by
        /// default: such a label, copied from any box, enrolls any device of
        /// its product; a label packed `--device-id` runs on its device only.
        #[arg(long)]
        accept_unbound: bool,
        /// Address to listen on; port 0 picks a free one (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Simulate this many devices with consecutive ids from `--device-id`,
        /// each on its own port (printed as `device ID at ADDR`; consecutive
        /// from --listen's port unless that is 0), in one store.
        #[arg(long, default_value_t = 1)]
        fleet: usize,
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
        /// For a device without IP (Zigbee, Thread, BLE): the gateway's forwarding URL
        /// (`http://GATEWAY/v1/uplink`) its operational app's messages and commands go through;
        /// without it they go straight to the SP endpoint the enrollment stored.
        #[arg(long)]
        uplink_via: Option<String>,
        /// The longest the operational app may sleep between activations, whatever it asks, in milliseconds.
        #[arg(long, default_value_t = 86_400_000)]
        max_wake_ms: u64,
        /// Serve `GET /metrics` (Prometheus text: sessions, failures by code, half run
        /// and store commit times) on this address; port 0 picks one (printed as
        /// `metrics on ADDR`). Off by default; no token: keep it on loopback or a
        /// management network.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Print the device's stored state as JSON (no private key).
    Show {
        /// The device's state file, as given to `serve --db` (never created here).
        #[arg(long)]
        db: PathBuf,
        /// The device to show (one of a fleet's ids, or the device's own).
        #[arg(long)]
        device_id: Eui,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(enrollment_host::logging::directives(
            std::env::var("RUST_LOG").ok().as_deref(),
            "warn,enrollment_device=info,device_agent=info",
        )))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Show { db, device_id } => {
            // Opening would create an empty store: a mistyped path must not
            // look like a device that was never enrolled.
            if !db.is_file() {
                anyhow::bail!(
                    "{}: no device state file there; give the --db that `device-agent serve` was started with",
                    db.display()
                );
            }
            let store = DeviceStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let state = store.state(&device_id).context("reading the device state")?.with_context(|| {
                format!("device {device_id} is not in {}: check --device-id (serve provisions it on start)", db.display())
            })?;
            let mut shown = state_json(&state);
            if let Some(op) = store.operational(&device_id).context("reading the operational app")? {
                let kept: serde_json::Map<String, serde_json::Value> =
                    op.kept.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into())).collect();
                shown["operational"] = serde_json::json!({
                    "app_bytes": op.app.len(),
                    "kept": kept,
                    "last_command_seq": op.last_command_seq,
                    "last_message_seq": op.last_message_seq,
                });
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        Command::Serve {
            db,
            device_id,
            access,
            trust,
            accept_unbound,
            listen,
            once,
            compiler,
            receive_timeout_ms,
            half_deadline_ms,
            fleet,
            uplink_via,
            max_wake_ms,
            metrics_listen,
        } => {
            let trusted = qr_packer::TrustedKeys::from_files(&trust).context("loading the trusted manufacturer keys")?;
            let store = DeviceStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            let ids = fleet_ids(device_id, fleet.max(1))?;
            store.provision_many(ids.iter().map(|id| (*id, access))).context("provisioning the device")?;
            let config = SandboxConfig {
                compiler: compiler.unwrap_or_default(),
                half_deadline: Duration::from_millis(half_deadline_ms),
                // One device runs one half at a time; a simulated fleet one per device.
                max_concurrent_halves: fleet.clamp(4, 1024) as u32,
                cache_capacity: 4,
                ..SandboxConfig::default()
            };
            let sandbox = Arc::new(Sandbox::new(config)?);
            let timeouts = Timeouts { receive: Duration::from_millis(receive_timeout_ms), ..Timeouts::default() };
            let store = Arc::new(store);
            let uplink_timeout = Duration::from_secs(5);
            let uplink: Arc<dyn Uplink> = match uplink_via {
                Some(url) => Arc::new(HttpUplink::via(url, uplink_timeout)),
                None => Arc::new(HttpUplink::direct(uplink_timeout)),
            };
            let operational = Arc::new(OperationalRuntime::new(sandbox.clone(), store.clone(), uplink)?);
            // A simulated fleet keeps compiled halves (one app, many devices);
            // a single device drops them with the rest of the enrollment.
            let mut device = DeviceRuntime::new(sandbox, store, trusted, timeouts, fleet > 1)?;
            if accept_unbound {
                device = device.accept_unbound_labels();
            }
            let device = Arc::new(device);
            let mut listeners = Vec::new();
            for id in &ids {
                // Consecutive ports from a given one (stable across restarts,
                // as a real device's address is); any free ones from port 0.
                let port = match listen.port() {
                    0 => 0,
                    first => first.checked_add(listeners.len() as u16).context("the fleet's ports run past 65535")?,
                };
                let addr = SocketAddr::new(listen.ip(), port);
                let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
                listeners.push((*id, listener));
            }
            println!("listening on {}", listeners[0].1.local_addr()?);
            if fleet > 1 {
                for (id, listener) in &listeners {
                    println!("device {id} at {}", listener.local_addr()?);
                }
            }
            if let Some(addr) = metrics_listen {
                let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-listen {addr}"))?;
                println!("metrics on {}", listener.local_addr()?);
                let device = device.clone();
                tokio::spawn(enrollment_device::metrics::serve_metrics(listener, move || device.render_metrics()));
            }
            let mut tasks = tokio::task::JoinSet::new();
            let max_wake = Duration::from_millis(max_wake_ms.max(1));
            for (id, listener) in listeners {
                let enrolled = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(run_operational(operational.clone(), id, enrolled.clone(), max_wake));
                tasks.spawn(serve_device(device.clone(), id, listener, once, enrolled));
            }
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok(result)) => result,
                    Some(Err(e)) => Err(anyhow::anyhow!("a device task failed: {e}")),
                    None => Ok(()),
                },
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    }
}

/// Serves enrollment sessions of one device on its own listener, one at a
/// time (a device has one radio).
async fn serve_device(
    device: Arc<DeviceRuntime>,
    device_id: Eui,
    listener: tokio::net::TcpListener,
    once: bool,
    enrolled: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await.context("accepting a connection")?;
        tracing::info!(%peer, %device_id, "assistant connected");
        let result = device.serve(device_id, Link::tcp(stream)).await;
        match &result {
            Ok(report) if report.status_only => {
                println!("status asked: {} (generation {})", report.enrolled.sp_bound_id, report.generation);
                continue;
            }
            Ok(report) if report.sp_only => {
                enrolled.notify_one();
                println!("re-bound {} (generation {})", report.enrolled.sp_bound_id, report.generation)
            }
            Ok(report) => {
                enrolled.notify_one();
                println!("enrolled {} (generation {})", report.enrolled.sp_bound_id, report.generation)
            }
            Err(failure) => println!("enrollment failed: {failure}"),
        }
        if once {
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
    }
}

/// Runs the device's operational app for as long as the agent runs: after
/// each activation it sleeps for what the app asked (at most `max_wake`),
/// and a new enrollment or re-bind wakes it at once. A failed activation is
/// logged and retried after the default interval; the device stays enrolled.
async fn run_operational(op: Arc<OperationalRuntime>, device: Eui, enrolled: Arc<tokio::sync::Notify>, max_wake: Duration) {
    loop {
        let wait = match op.activate(device).await {
            Ok(a) => {
                tracing::info!(%device, sent = a.sent, commands = a.commands, dropped = a.dropped,
                    wake_after_s = a.wake_after.as_secs(), "operational app activated");
                a.wake_after
            }
            Err(OperationalError::NoApp(_) | OperationalError::NotEnrolled(_) | OperationalError::UnknownDevice(_)) => {
                enrolled.notified().await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%device, %error, "operational app activation failed; the device stays enrolled");
                DEFAULT_WAKE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(max_wake)) => {}
            _ = enrolled.notified() => {}
        }
    }
}

/// `count` consecutive device ids starting at `first`.
fn fleet_ids(first: Eui, count: usize) -> anyhow::Result<Vec<Eui>> {
    let bytes = first.as_bytes().to_vec();
    let start = bytes.iter().fold(0u128, |v, b| (v << 8) | *b as u128);
    if start + count as u128 > 1u128 << (8 * bytes.len()) {
        anyhow::bail!("a fleet of {count} from {first} runs past the last {}-bit id", 8 * bytes.len());
    }
    (start..start + count as u128)
        .map(|value| {
            let raw: Vec<u8> = (0..bytes.len()).rev().map(|i| (value >> (8 * i)) as u8).collect();
            Eui::from_bytes(&raw).with_context(|| format!("fleet device id {}", hex::encode(&raw)))
        })
        .collect()
}

fn state_json(s: &DeviceState) -> serde_json::Value {
    serde_json::json!({
        "device_id": s.device.to_string(),
        "access": s.access.to_string(),
        "generation": s.generation,
        "sealed": s.sealed,
        "sp_bound_id": s.sp_bound_id.as_ref().map(|i| i.to_string()),
        "public_key": s.public_key.map(hex::encode),
        "sp_endpoint": s.sp_endpoint,
        "sp_public_key": s.sp_public_key.map(hex::encode),
        "owner": s.owner,
        "location": s.location,
        "name": s.name,
        "network_configured": s.network.is_some(),
        "enrolled_by": s.enrolled_by.map(hex::encode),
        "enrolled_at_ms": s.enrolled_at,
        "enrollments": s.enrollments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(extra: &[&str]) -> bool {
        let mut args = vec!["device-agent", "serve", "--db", "d.sqlite", "--device-id", "AC-DE-48-00-00-80"];
        args.extend(["--access", "wifi", "--trust", "acme.pub.json"]);
        args.extend(extra);
        match Cli::try_parse_from(args).expect("valid arguments").command {
            Command::Serve { accept_unbound, .. } => accept_unbound,
            Command::Show { .. } => unreachable!("parsed serve"),
        }
    }

    #[test]
    fn every_flag_says_what_it_is_for() {
        use clap::CommandFactory;
        for command in Cli::command().get_subcommands() {
            for arg in command.get_arguments() {
                assert!(arg.get_help().is_some(), "device-agent {} --{} has no help text", command.get_name(), arg.get_id());
            }
        }
    }

    #[test]
    fn unbound_labels_are_refused_unless_the_operator_accepts_them() {
        assert!(!serve(&[]), "off by default");
        assert!(serve(&["--accept-unbound"]));
    }
}
