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
        /// The SP identity this simulator is (device reports must name it).
        #[arg(long)]
        identity: String,
        /// Address to listen on; port 0 picks a free one (printed first on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The SP's signing key file: signs commands to its devices (`POST /admin/command`); without it none can be sent.
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
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key hex of a key file.
    Pubkey {
        /// The key file (`sp-sim keygen --out`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Send a signed unsolicited update moving devices to a new SP; prints the acknowledgement.
    Move {
        /// The sending SP's key file (its public key registered with the control server).
        #[arg(long)]
        key: PathBuf,
        /// The sending SP's identity (the message's `kid`).
        #[arg(long)]
        identity: String,
        /// The control server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        control_server: String,
        /// The SP the devices move to.
        #[arg(long)]
        new_sp: String,
        /// Comma-separated device ids.
        #[arg(long, value_delimiter = ',', required = true)]
        devices: Vec<String>,
        /// The devices' service type at the new SP (e.g. metering).
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
            let key = key.map(|k| sp_sim::load_key(&k)).transpose()?;
            let default: Behaviour = default_verdict.parse().map_err(anyhow::Error::msg)?;
            let mut per_device = HashMap::new();
            for v in verdicts {
                let (device, behaviour) = v.split_once('=').with_context(|| format!("--verdict {v:?} is DEVICE=BEHAVIOUR"))?;
                per_device.insert(device.to_owned(), behaviour.parse().map_err(anyhow::Error::msg)?);
            }
            let sim = sp_sim::start_with_key(&identity, listen, default, per_device, key).await?;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag and argument of every subcommand (nested too) has help text.
    #[test]
    fn every_flag_says_what_it_is_for() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let command = Cli::command();
        check(&command, command.get_name(), &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
