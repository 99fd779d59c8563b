//! `gateway`: the device gateway.
//!
//! `gateway serve --config gateway.toml` keeps the gateway's device table,
//! follows the control server's update stream (re-binding enrolled devices
//! whose SP changed) and serves a small local HTTP API through which labels
//! are enrolled. `gateway enroll` and `gateway devices` are clients of that
//! API; `gateway show` reads the table directly.
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
        /// The gateway's API, e.g. http://127.0.0.1:7000
        #[arg(long)]
        gateway: String,
        /// The label: a PNG/JPEG photo, or a text file holding the payload.
        #[arg(long)]
        label: PathBuf,
        /// The device's local link (the device agent's address).
        #[arg(long)]
        device: SocketAddr,
    },
    /// List the devices a running gateway serves.
    Devices {
        #[arg(long)]
        gateway: String,
    },
    /// Print the device table of a gateway store file as JSON.
    Show {
        #[arg(long)]
        db: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // HTTPS to the control server and SPs uses rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Serve { config, listen, compiler } => serve(&config, listen, compiler).await,
        Command::Enroll { gateway, label, device } => enroll(&gateway, &label, device).await,
        Command::Devices { gateway } => {
            let body = reqwest::get(format!("{}/v1/devices", gateway.trim_end_matches('/')))
                .await
                .with_context(|| format!("reaching the gateway at {gateway}"))?
                .text()
                .await?;
            println!("{body}");
            Ok(())
        }
        Command::Show { db } => {
            let store = GatewayStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
            println!("{}", serde_json::to_string_pretty(&store.devices().await?)?);
            Ok(())
        }
    }
}

async fn serve(config_path: &Path, listen: Option<SocketAddr>, compiler: Option<Compiler>) -> anyhow::Result<()> {
    let (config, base) = GatewayConfig::load(config_path)?;
    let gateway = Arc::new(config.build(&base, compiler)?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(gateway.clone().follow_updates(stopped.clone()));
    // Devices that were out of reach when their SP changed are retried.
    let retry =
        tokio::spawn(gateway.clone().retry_rebinds(stopped, Duration::from_millis(config.rebind_retry_ms)));
    let listener = tokio::net::TcpListener::bind(listen.unwrap_or(config.listen))
        .await
        .context("binding the gateway API")?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, enrollment_gateway::api::router(gateway))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the gateway API")?;
    let _ = stop.send(true);
    let _ = follower.await;
    let _ = retry.await;
    Ok(())
}

async fn enroll(gateway: &str, label: &Path, device: SocketAddr) -> anyhow::Result<()> {
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
    let response = enrollment_gateway::http_client()
        .post(format!("{}/v1/enroll", gateway.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {gateway}"))?;
    let status = response.status();
    let text = response.text().await?;
    println!("{text}");
    if !status.is_success() {
        bail!("enrollment failed ({status})");
    }
    Ok(())
}
