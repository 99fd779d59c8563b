//! `gateway`: the device gateway.
//!
//! `gateway serve --config gateway.toml` keeps the gateway's device table,
//! follows the control server's update stream (re-binding enrolled devices
//! whose SP changed) and serves a small local HTTP API through which labels
//! are enrolled. `gateway enroll` and `gateway devices` are clients of that
//! API; `gateway show` reads the table directly.
//!
//! ```toml
//! db = "gateway.sqlite"                 # the device table (created if missing)
//! identity_key = "gateway.key"          # Ed25519 seed, hex (created if missing)
//! listen = "127.0.0.1:7000"             # the local HTTP API (port 0: any; printed)
//! trusted_manufacturer_keys = ["acme.pub"]
//! owner = "ACME Utilities"
//! location = "geo:52.3676,4.9041"
//! max_update_batch = 1024               # pushed updates per transaction
//! rebind_retry_ms = 5000                # retry of devices that were out of reach
//!
//! [control_server]
//! url = "http://127.0.0.1:8080"
//! gateway_id = "gw-plant-3"             # subscription identity
//! credential = "…"
//! service_type = "metering"
//! geo = { lat = 52.37, lon = 4.89 }
//!
//! [sp_endpoints]                        # where enrolled devices are reported
//! "sp-one.example" = "http://127.0.0.1:9001"
//!
//! [[networks]]
//! Wifi = { ssid = "plant-3", passphrase = "…" }
//! ```
//!
//! API: `POST /v1/enroll` (`{"label_text"|"label_image_base64", "device": "HOST:PORT"}`),
//! `GET /v1/devices`, `GET /v1/devices/{id}`, `GET /v1/stream`, `POST /v1/rebind-pending`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use runtime::credentials::NetworkCredentials;
use runtime::gateway::control::{ControlServer, ControlServerConfig, Geo};
use runtime::gateway::services::GatewayServices;
use runtime::gateway::store::GatewayStore;
use runtime::gateway::{Gateway, GatewayError, Label};
use runtime::{AssistantRuntime, Compiler, Eui, Sandbox, SandboxConfig, SpIdentity, Timeouts};
use serde::Deserialize;

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
        /// The gateway's configuration (TOML; see `runtime/src/bin/gateway.rs`).
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

/// `gateway.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The gateway store (created if missing).
    db: PathBuf,
    /// The gateway's Ed25519 identity key, 32 bytes hex (created if missing).
    identity_key: PathBuf,
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    /// Public key files of the manufacturers whose labels this gateway runs.
    trusted_manufacturer_keys: Vec<PathBuf>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    location: Option<String>,
    control_server: ControlServerSection,
    /// SP identity → base URL of its device-report endpoint.
    #[serde(default)]
    sp_endpoints: HashMap<String, String>,
    #[serde(default)]
    networks: Vec<NetworkCredentials>,
    /// Most pushed updates applied in one transaction.
    #[serde(default = "default_update_batch")]
    max_update_batch: usize,
    /// How often devices with a pending re-bind are tried again.
    #[serde(default = "default_rebind_retry_ms")]
    rebind_retry_ms: u64,
}

fn default_rebind_retry_ms() -> u64 {
    5_000
}

fn default_update_batch() -> usize {
    runtime::gateway::MAX_UPDATE_BATCH
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlServerSection {
    url: String,
    gateway_id: String,
    credential: String,
    #[serde(default)]
    service_type: Option<String>,
    #[serde(default)]
    geo: Option<Geo>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn default_timeout_ms() -> u64 {
    5_000
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
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let config: Config = toml::from_str(&text).with_context(|| format!("parsing {}", config_path.display()))?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };

    let identity = load_or_create_identity(&resolve(&config.identity_key))?;
    let key_files: Vec<PathBuf> = config.trusted_manufacturer_keys.iter().map(|p| resolve(p)).collect();
    let trusted = qr_packer::TrustedKeys::from_files(&key_files).context("loading trusted manufacturer keys")?;
    let db = resolve(&config.db);
    let store = GatewayStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let cs = &config.control_server;
    let control = ControlServer::new(ControlServerConfig {
        base_url: cs.url.clone(),
        gateway_id: cs.gateway_id.clone(),
        credential: cs.credential.clone(),
        geo: cs.geo,
        service_type: cs.service_type.clone(),
        timeout: Duration::from_millis(cs.timeout_ms),
    });
    let mut endpoints = HashMap::new();
    for (sp, url) in &config.sp_endpoints {
        endpoints.insert(SpIdentity::new(sp).with_context(|| format!("sp_endpoints: {sp:?}"))?, url.clone());
    }
    let mut services = GatewayServices::new(control.clone(), store.clone(), endpoints);
    services.owner = config.owner.clone();
    services.location = config.location.clone();
    services.networks = config.networks.clone();

    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        compiler: compiler.unwrap_or_default(),
        ..SandboxConfig::default()
    })?);
    let timeouts = Timeouts::default();
    let assistant = AssistantRuntime::new(sandbox, Arc::new(services), identity.clone(), timeouts)?;
    let gateway = Arc::new(
        Gateway::new(assistant, store, control, identity, trusted, timeouts).with_update_batch(config.max_update_batch),
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(gateway.clone().follow_updates(stopped.clone()));
    // Devices that were out of reach when their SP changed are retried.
    let retry = tokio::spawn(retry_rebinds(gateway.clone(), stopped, Duration::from_millis(config.rebind_retry_ms)));

    let app = Router::new()
        .route("/v1/enroll", post(api_enroll))
        .route("/v1/devices", get(api_devices))
        .route("/v1/devices/{id}", get(api_device))
        .route("/v1/stream", get(api_stream))
        .route("/v1/rebind-pending", post(api_rebind_pending))
        .with_state(gateway);
    let listener = tokio::net::TcpListener::bind(listen.unwrap_or(config.listen))
        .await
        .context("binding the gateway API")?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
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

/// Every `every`, tells enrolled devices whose SP changed while they were
/// out of reach.
async fn retry_rebinds(gateway: Arc<Gateway>, mut stop: tokio::sync::watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match gateway.rebind_pending().await {
            Ok(results) => {
                for result in results {
                    if let Err((device, e)) = result {
                        tracing::debug!(%device, error = %e, "re-bind still pending");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing pending re-binds failed"),
        }
    }
}

fn load_or_create_identity(path: &Path) -> anyhow::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| format!("{}: not hex", path.display()))?;
            let seed: [u8; 32] =
                bytes.try_into().map_err(|_| anyhow::anyhow!("{}: expected 32 bytes of hex", path.display()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            std::fs::write(path, hex::encode(key.to_bytes()))
                .with_context(|| format!("writing the new identity key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `POST /v1/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    /// The payload text the QR code holds.
    #[serde(default)]
    label_text: Option<String>,
    /// A photo of the label, base64.
    #[serde(default)]
    label_image_base64: Option<String>,
    /// The device's local link.
    device: SocketAddr,
}

async fn api_enroll(State(gateway): State<Arc<Gateway>>, Json(request): Json<EnrollRequest>) -> Response {
    let label = match (request.label_text, request.label_image_base64) {
        (Some(text), None) => Label::Text(text),
        (None, Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(bytes) => Label::Image(bytes),
            Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", format!("label_image_base64: {e}")),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "give exactly one of label_text and label_image_base64".into(),
            );
        }
    };
    match gateway.enroll(label, request.device).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let (status, code) = match &e {
                GatewayError::Label(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_label"),
                GatewayError::DeviceUnreachable { .. } => (StatusCode::BAD_GATEWAY, "device_unreachable"),
                GatewayError::Enroll(_) => (StatusCode::CONFLICT, "enrollment_failed"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "gateway_error"),
            };
            error(status, code, e.to_string())
        }
    }
}

async fn api_devices(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.store().devices().await {
        Ok(devices) => Json(devices).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

async fn api_device(State(gateway): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let device: Eui = match id.parse() {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_device_id", e.to_string()),
    };
    match gateway.store().device(device).await {
        Ok(Some(d)) => Json(d).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_device", format!("{device} is not known here")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

async fn api_stream(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(gateway.stream_state().borrow().clone()).into_response()
}

async fn api_rebind_pending(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.rebind_pending().await {
        Ok(results) => {
            let done: Vec<_> = results
                .into_iter()
                .map(|r| match r {
                    Ok(report) => serde_json::json!({"device": report.device.to_string(), "identifier": report.sp_bound_id.to_string(), "generation": report.generation}),
                    Err((device, e)) => serde_json::json!({"device": device.to_string(), "error": e.to_string()}),
                })
                .collect();
            Json(done).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "gateway_error", e.to_string()),
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": code, "message": message }))).into_response()
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
    let response = reqwest::Client::new()
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
