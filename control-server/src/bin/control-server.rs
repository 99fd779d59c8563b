//! `control-server`: serve the API, or manage gateways, SPs, the mapping
//! table and the admin token in the database (a running server's too).

#[path = "control-server/admin_cli.rs"]
mod admin_cli;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use control_api::gateway::Geo;
use control_server::config::{Config, parse_endpoint, parse_public_key};
use control_server::store::{SpRecord, Store};
use control_server::{ServerState, hash_credential, start, validate_gateway_id};
use sp_bound_id::SpIdentity;

#[derive(Parser)]
#[command(version, about = "IoT enrollment control server: mapping table, SP validation, signed SP updates, push to gateways")]
struct Cli {
    /// sqlite://path (created if missing) or postgres://…
    #[arg(long, global = true, env = "CONTROL_SERVER_DATABASE", default_value = "sqlite://control-server.db")]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API. Prints `listening on ADDR` as the first line of stdout.
    Serve {
        /// Address to listen on; port 0 picks a free one (printed first on stdout).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// TOML file: policy, and gateways/SPs/mapping to register at start-up.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Register or revoke gateways.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Register service providers.
    Sp {
        #[command(subcommand)]
        command: SpCommand,
    },
    /// The mapping table: add, import (CSV), list, show, history, remove. Works on a running
    /// server's database; the server notices within about a second.
    Mapping {
        #[command(subcommand)]
        command: admin_cli::MappingCommand,
    },
    /// Set the admin token of the admin API (/v1/admin) and the console (/console): a new
    /// one is made and printed once; only its salted hash is stored. Without one both are off.
    AdminToken {
        /// Read the token from stdin instead of making one (at least 32 characters).
        #[arg(long, conflicts_with = "remove")]
        stdin: bool,
        /// Remove the admin token: the admin API and console turn off.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Register a gateway (or replace its credential).
    Add {
        /// The gateway's subscription identity (its config's `control_server.gateway_id`).
        #[arg(long)]
        id: String,
        /// The secret the gateway authenticates with (its config's `control_server.credential`); stored as a salted hash.
        #[arg(long)]
        credential: String,
        /// Where the gateway is, LAT,LON (sent to SPs when they validate its devices).
        #[arg(long)]
        geo: Option<String>,
    },
    /// Revoke a gateway: it is refused from then on (a running server notices within its auth cache TTL).
    Revoke {
        /// The gateway's subscription identity.
        #[arg(long)]
        id: String,
    },
    /// List gateways: state, devices, outbox position and lag.
    List {
        #[command(flatten)]
        out: admin_cli::Output,
    },
    /// Show one gateway.
    Show {
        /// The gateway's subscription identity.
        id: String,
        #[command(flatten)]
        out: admin_cli::Output,
    },
}

#[derive(Subcommand)]
enum SpCommand {
    /// Register an SP (or update it).
    Add {
        /// The SP's identity, as it appears in SP-bound identifiers (e.g. sp-one.example).
        #[arg(long)]
        identity: String,
        /// Where the SP answers validations (`POST {base_url}/v1/validate`).
        #[arg(long)]
        base_url: String,
        /// Ed25519 public key, 64 hex digits: verifies the SP's signed hand-overs.
        #[arg(long)]
        public_key: String,
        /// Where the SP's devices and gateways reach it (device reports: `POST {endpoint}/v1/devices`); handed to gateways and devices in resolve answers and pushed events. Without it devices cannot be enrolled to this SP.
        #[arg(long)]
        endpoint: Option<String>,
        /// The Ed25519 key (64 hex digits) devices verify the SP with, if not --public-key (keeps the hand-over key off the SP's device servers).
        #[arg(long)]
        device_public_key: Option<String>,
        /// May move its devices away…
        #[arg(long)]
        may_release: bool,
        /// …to these SPs (comma-separated; * = any registered).
        #[arg(long, value_delimiter = ',')]
        may_move_to: Vec<String>,
        /// As the new SP, may claim devices it does not hold.
        #[arg(long)]
        may_claim: bool,
    },
    /// List the registered SPs with the devices each holds.
    List {
        #[command(flatten)]
        out: admin_cli::Output,
    },
    /// Show one SP.
    Show {
        /// The SP's identity.
        identity: String,
        #[command(flatten)]
        out: admin_cli::Output,
    },
}

fn parse_geo(text: &str) -> anyhow::Result<Geo> {
    let (lat, lon) = text.split_once(',').context("--geo is LAT,LON")?;
    let geo = Geo { lat: lat.trim().parse().context("latitude")?, lon: lon.trim().parse().context("longitude")? };
    if !(-90.0..=90.0).contains(&geo.lat) || !(-180.0..=180.0).contains(&geo.lon) {
        bail!("--geo {text}: latitude is -90..90 and longitude -180..180");
    }
    Ok(geo)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "control_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    control_server::install_crypto_provider();
    let cli = Cli::parse();
    if reads_existing_database(&cli.command) {
        require_existing_sqlite(&cli.database)?;
    }
    let store = Store::connect(&cli.database).await.with_context(|| format!("opening database {}", cli.database))?;
    match cli.command {
        Command::Serve { listen, config } => {
            let config = match config {
                Some(path) => Config::load(&path).with_context(|| format!("loading {}", path.display()))?,
                None => Config::default(),
            };
            control_server::limits::raise_open_file_limit();
            let state = ServerState::new(store.clone(), config).await.context("registering the configuration")?;
            let server = start(state, listen).await?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on {}", server.addr)?;
            stdout.flush()?;
            shutdown_signal().await;
            server.stop().await;
        }
        Command::Gateway { command: GatewayCommand::Add { id, credential, geo } } => {
            validate_gateway_id(&id).map_err(anyhow::Error::msg)?;
            if credential.is_empty() {
                bail!("--credential must not be empty");
            }
            let geo = geo.as_deref().map(parse_geo).transpose()?;
            let (salt, hash) = hash_credential(&credential);
            store.upsert_gateway(&id, &salt, &hash, geo, None).await?;
            println!("gateway {id} registered");
        }
        Command::Gateway { command: GatewayCommand::Revoke { id } } => {
            if !store.revoke_gateway(&id).await? {
                bail!("no gateway {id:?} is registered");
            }
            println!("gateway {id} revoked");
        }
        Command::Sp {
            command: SpCommand::Add { identity, base_url, public_key, endpoint, device_public_key, may_release, may_move_to, may_claim },
        } => {
            let identity = SpIdentity::new(&identity).with_context(|| format!("--identity {identity:?}"))?;
            let key = parse_public_key(&public_key).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?;
            let device_key = device_public_key
                .as_deref()
                .map(parse_public_key)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--device-public-key: {e}"))?;
            let endpoint = endpoint.as_deref().map(parse_endpoint).transpose().map_err(|e| anyhow::anyhow!("--endpoint: {e}"))?;
            for target in &may_move_to {
                if target != "*" {
                    SpIdentity::new(target).with_context(|| format!("--may-move-to {target:?}"))?;
                }
            }
            store
                .upsert_sp(&SpRecord {
                    identity: identity.as_str().to_owned(),
                    base_url,
                    public_key: key.to_vec(),
                    endpoint: endpoint.clone(),
                    device_public_key: device_key.map(|k| k.to_vec()),
                    may_release,
                    may_claim,
                    may_move_to,
                })
                .await?;
            match &endpoint {
                Some(endpoint) => println!("sp {identity} registered (endpoint {endpoint})"),
                None => println!(
                    "sp {identity} registered without an endpoint: gateways refuse to enroll devices to it until it has one (sp add … --endpoint URL)"
                ),
            }
        }
        Command::Sp { command: SpCommand::List { out } } => admin_cli::sp_list(store.clone(), &out).await?,
        Command::Sp { command: SpCommand::Show { identity, out } } => admin_cli::sp_show(store.clone(), &identity, &out).await?,
        Command::Gateway { command: GatewayCommand::List { out } } => admin_cli::gateway_list(store.clone(), &out).await?,
        Command::Gateway { command: GatewayCommand::Show { id, out } } => admin_cli::gateway_show(store.clone(), &id, &out).await?,
        Command::Mapping { command } => admin_cli::mapping(store.clone(), command).await?,
        Command::AdminToken { stdin, remove } => admin_cli::admin_token(store.clone(), stdin, remove).await?,
    }
    store.close().await;
    Ok(())
}

/// Commands that only make sense on an existing database: on a mistyped
/// SQLite path they must not create an empty one and report nothing.
fn reads_existing_database(command: &Command) -> bool {
    use admin_cli::MappingCommand as M;
    matches!(
        command,
        Command::Gateway { command: GatewayCommand::List { .. } | GatewayCommand::Show { .. } | GatewayCommand::Revoke { .. } }
            | Command::Sp { command: SpCommand::List { .. } | SpCommand::Show { .. } }
            | Command::Mapping { command: M::List { .. } | M::Show { .. } | M::History { .. } | M::Remove { .. } }
    )
}

fn require_existing_sqlite(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else { return Ok(()) };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || std::path::Path::new(path).exists() {
        return Ok(());
    }
    bail!(
        "no database at {path}: pass the server's with --database sqlite://PATH (or set CONTROL_SERVER_DATABASE); `control-server serve` creates it"
    )
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
