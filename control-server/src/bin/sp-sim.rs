//! `sp-sim`: a simulated service provider (see `control_server::sp_sim`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use control_server::sp_sim::{self, Behaviour};

#[derive(Parser)]
#[command(version, about = "Simulated SP: validates (confirm/redirect/reject/slow/down), records device reports, sends signed moves")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the SP API. Prints `listening on ADDR` as the first line of stdout.
    Serve {
        #[arg(long)]
        identity: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The SP's signing key file (not needed to serve; checked if given).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Default behaviour: confirm, redirect:SP, reject or reject:REASON, slow:MS, down.
        #[arg(long, default_value = "confirm")]
        default_verdict: String,
        /// Per-device behaviour, DEVICE=BEHAVIOUR (repeatable).
        #[arg(long = "verdict")]
        verdicts: Vec<String>,
    },
    /// Generate a key file (32-byte Ed25519 seed, hex) and print the public key hex.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key hex of a key file.
    Pubkey {
        #[arg(long)]
        key: PathBuf,
    },
    /// Send a signed unsolicited update moving devices to a new SP; prints the acknowledgement.
    Move {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        identity: String,
        #[arg(long)]
        control_server: String,
        #[arg(long)]
        new_sp: String,
        /// Comma-separated device ids.
        #[arg(long, value_delimiter = ',', required = true)]
        devices: Vec<String>,
        #[arg(long)]
        service_type: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    control_server::install_crypto_provider();
    match Cli::parse().command {
        Command::Serve { identity, listen, key, default_verdict, verdicts } => {
            sp_bound_id::SpIdentity::new(&identity).with_context(|| format!("--identity {identity:?}"))?;
            if let Some(key) = key {
                sp_sim::load_key(&key)?;
            }
            let default: Behaviour = default_verdict.parse().map_err(anyhow::Error::msg)?;
            let mut per_device = HashMap::new();
            for v in verdicts {
                let (device, behaviour) = v.split_once('=').with_context(|| format!("--verdict {v:?} is DEVICE=BEHAVIOUR"))?;
                per_device.insert(device.to_owned(), behaviour.parse().map_err(anyhow::Error::msg)?);
            }
            let sim = sp_sim::start(&identity, listen, default, per_device).await?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on {}", sim.addr)?;
            stdout.flush()?;
            tokio::signal::ctrl_c().await?;
            sim.stop().await;
        }
        Command::Keygen { out } => {
            let key = sp_sim::write_new_key(&out)?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
        }
        Command::Pubkey { key } => {
            println!("{}", hex::encode(sp_sim::load_key(&key)?.verifying_key().to_bytes()));
        }
        Command::Move { key, identity, control_server, new_sp, devices, service_type } => {
            let key = sp_sim::load_key(&key)?;
            let payload = MovePayload::new(&identity, &new_sp, devices, service_type);
            let http = control_server::http_client()?;
            let ack = sp_sim::send_move(&http, &control_server, &key, &payload).await?;
            println!("{}", serde_json::to_string(&ack)?);
        }
    }
    Ok(())
}
