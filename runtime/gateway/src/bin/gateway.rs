//! `gateway`: the device gateway.
//!
//! `gateway serve --config gateway.toml` keeps the gateway's device table,
//! follows the control server's update stream (re-binding enrolled devices
//! whose SP changed) and serves a small local HTTP API through which labels
//! are enrolled (on loopback, for callers with the configuration's
//! `api_token`). `gateway enroll` and `gateway devices` are clients of that
//! API (`--token`, or `GATEWAY_API_TOKEN`); `gateway show` reads the table
//! directly.
//!
//! The configuration file is described in `enrollment_gateway::config`, the
//! API in `enrollment_gateway::api`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Parser, Subcommand};
use enrollment_assistant::Compiler;
use enrollment_gateway::config::GatewayConfig;
use enrollment_gateway::store::GatewayStore;
use control_api::http_client::read_body;

/// Largest answer of the gateway's API read by `enroll` and `devices` (a
/// device list of some 100,000 devices).
const LOCAL_ANSWER_MAX: usize = 64 * 1024 * 1024;

#[derive(Parser)]
#[command(version, about = "The device gateway: enrolls devices from their labels and keeps their identifiers current")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: device table, update stream, local enrollment API.
    Serve {
        /// The gateway's configuration (TOML; see the `config` module of enrollment-gateway).
        #[arg(long)]
        config: PathBuf,
        /// Overrides `listen` of the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Compiler for phone halves (`winch` or `cranelift`).
        #[arg(long)]
        compiler: Option<Compiler>,
    },
    /// Enroll a device with a label, through a running gateway.
    Enroll {
        /// The gateway's API, e.g. http://127.0.0.1:7000 (`http://` is assumed when no scheme is given).
        #[arg(long, value_parser = gateway_url)]
        gateway: String,
        /// The label: a PNG/JPEG photo, or a text file holding the payload.
        #[arg(long)]
        label: PathBuf,
        /// The device's local link (the device agent's address).
        #[arg(long)]
        device: SocketAddr,
        /// The gateway's API token (`api_token` of its configuration).
        #[arg(long, env = "GATEWAY_API_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// List the devices a running gateway serves.
    Devices {
        /// The gateway's API, e.g. http://127.0.0.1:7000 (`http://` is assumed when no scheme is given).
        #[arg(long, value_parser = gateway_url)]
        gateway: String,
        /// The gateway's API token (`api_token` of its configuration).
        #[arg(long, env = "GATEWAY_API_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Print the device table of a gateway store file as JSON.
    Show {
        /// The gateway store file (`db` of its configuration); never created here.
        #[arg(long)]
        db: PathBuf,
    },
}

/// `--gateway`: a base URL; `HOST:PORT` alone means `http://HOST:PORT`.
fn gateway_url(text: &str) -> Result<String, String> {
    let text = text.trim_end_matches('/');
    if text.is_empty() {
        return Err("give the gateway's API address, e.g. http://127.0.0.1:7000".into());
    }
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_owned())
    } else if text.contains("://") {
        Err(format!("{text}: the gateway's API is http:// or https://"))
    } else {
        Ok(format!("http://{text}"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(enrollment_host::logging::directives(
            std::env::var("RUST_LOG").ok().as_deref(),
            "warn,enrollment_gateway=info,enrollment_assistant=info,gateway=info",
        )))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { config, listen, compiler } => serve(&config, listen, compiler).await,
        Command::Enroll { gateway, label, device, token } => enroll(&gateway, &label, device, &token).await,
        Command::Devices { gateway, token } => {
            let response = enrollment_gateway::http_client()?
                .get(format!("{}/v1/devices", gateway.trim_end_matches('/')))
                .bearer_auth(&token)
                .send()
                .await
                .with_context(|| format!("reaching the gateway at {gateway}"))?;
            let status = response.status();
            let body = read_body(response, LOCAL_ANSWER_MAX).await.context("reading the gateway's answer")?;
            println!("{}", String::from_utf8_lossy(&body));
            if !status.is_success() {
                bail!("listing devices failed ({status})");
            }
            Ok(())
        }
        Command::Show { db } => {
            // Opening would create an empty store: a mistyped path must not
            // look like a gateway without devices.
            if !db.is_file() {
                bail!("{}: no gateway store there; give the `db` of the gateway's configuration", db.display());
            }
            let store = GatewayStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            println!("{}", serde_json::to_string_pretty(&store.devices().await?)?);
            Ok(())
        }
    }
}

async fn serve(config_path: &Path, listen: Option<SocketAddr>, compiler: Option<Compiler>) -> anyhow::Result<()> {
    let (config, base) = GatewayConfig::load(config_path)?;
    let token = config.api_token()?;
    let listen = config.listen_addr(listen)?;
    let gateway = Arc::new(config.build(&base, compiler)?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(gateway.clone().follow_updates(stopped.clone()));
    // Enrollments whose answer was lost before this start are settled at
    // once (and then every retry interval by `retry_rebinds`).
    let settler = gateway.clone();
    tokio::spawn(async move {
        match settler.settle_in_doubt().await {
            Ok(settled) if !settled.is_empty() => tracing::info!(count = settled.len(), "enrollments in doubt asked at start"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "settling enrollments in doubt at start failed"),
        }
    });
    // Devices that were out of reach when their SP changed are retried.
    let retry =
        tokio::spawn(gateway.clone().retry_rebinds(stopped, Duration::from_millis(config.rebind_retry_ms)));
    let listener = tokio::net::TcpListener::bind(listen).await.context("binding the gateway API")?;
    println!("listening on {}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    enrollment_gateway::api::serve(listener, gateway, token, config.api_limits, shutdown).await;
    let _ = stop.send(true);
    let _ = follower.await;
    let _ = retry.await;
    Ok(())
}

async fn enroll(gateway: &str, label: &Path, device: SocketAddr, token: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(label).with_context(|| format!("reading {}", label.display()))?;
    let is_image = matches!(
        label.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    );
    let body = if is_image {
        serde_json::json!({ "label_image_base64": base64::engine::general_purpose::STANDARD.encode(&bytes), "device": device })
    } else {
        let text = String::from_utf8(bytes).context("the label text file is not UTF-8")?;
        serde_json::json!({ "label_text": text.trim(), "device": device })
    };
    let response = enrollment_gateway::http_client()?
        .post(format!("{}/v1/enroll", gateway.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {gateway}"))?;
    let status = response.status();
    let text = read_body(response, LOCAL_ANSWER_MAX).await.context("reading the gateway's answer")?;
    println!("{}", String::from_utf8_lossy(&text));
    if !status.is_success() {
        bail!("enrollment failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_address_without_a_scheme_is_http() {
        assert_eq!(gateway_url("127.0.0.1:7000").unwrap(), "http://127.0.0.1:7000");
        assert_eq!(gateway_url("https://gw.example/").unwrap(), "https://gw.example");
        assert!(gateway_url("ftp://gw.example").unwrap_err().contains("http:// or https://"));
    }

    #[test]
    fn every_flag_says_what_it_is_for() {
        use clap::CommandFactory;
        for command in Cli::command().get_subcommands() {
            for arg in command.get_arguments() {
                assert!(arg.get_help().is_some(), "gateway {} --{} has no help text", command.get_name(), arg.get_id());
            }
        }
    }
}
