//! `gateway`: the device gateway.
//!
//! `gateway serve --config gateway.toml` keeps the gateway's device table,
//! follows the control server's update stream (re-binding enrolled devices
//! whose SP changed) and serves a small local HTTP API through which labels
//! are enrolled (on loopback, for callers with the configuration's
//! `api_token`). `gateway enroll`, `gateway devices` and `gateway device
//! rebind|reset ID` are clients of that API (`--token`, or
//! `GATEWAY_API_TOKEN`); `gateway show` reads the table directly; `gateway
//! init` writes a commented configuration to start from.
//!
//! The configuration file is described in `runtime/gateway/CONFIG.md` (also
//! the docs of `enrollment_gateway::config`), the API in
//! `enrollment_gateway::api` and at `GET /openapi.json`.

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
    /// List the devices a running gateway serves (a table; --json for the API's JSON).
    Devices {
        /// The gateway's API, e.g. http://127.0.0.1:7000 (`http://` is assumed when no scheme is given).
        #[arg(long, value_parser = gateway_url)]
        gateway: String,
        /// The gateway's API token (`api_token` of its configuration).
        #[arg(long, env = "GATEWAY_API_TOKEN", hide_env_values = true)]
        token: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Act on one device through a running gateway: re-bind it now, or reset (forget) it.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Write a commented configuration file to start from (with a fresh api_token).
    Init {
        /// Where to write it.
        #[arg(long, default_value = "gateway.toml")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the device table of a gateway store file as JSON.
    Show {
        /// The gateway store file (`db` of its configuration); never created here.
        #[arg(long)]
        db: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Tell an enrolled device its current SP now (instead of at the next retry).
    Rebind {
        /// The device, EUI-48 or EUI-64 (e.g. AC-DE-48-00-00-80).
        id: String,
        #[command(flatten)]
        api: Api,
    },
    /// Forget a device (it left, or was factory-reset): its key is withdrawn at its SP first.
    Reset {
        /// The device, EUI-48 or EUI-64 (e.g. AC-DE-48-00-00-80).
        id: String,
        #[command(flatten)]
        api: Api,
    },
}

/// Where a running gateway's API is and its token.
#[derive(clap::Args)]
struct Api {
    /// The gateway's API, e.g. http://127.0.0.1:7000 (`http://` is assumed when no scheme is given).
    #[arg(long, value_parser = gateway_url)]
    gateway: String,
    /// The gateway's API token (`api_token` of its configuration).
    #[arg(long, env = "GATEWAY_API_TOKEN", hide_env_values = true)]
    token: String,
}

/// The configuration `gateway init` writes (documented in CONFIG.md).
const EXAMPLE_CONFIG: &str = include_str!("../../gateway.example.toml");

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
        Command::Devices { gateway, token, json } => {
            let body = call(reqwest::Method::GET, &gateway, "/v1/devices", &token, "listing devices").await?;
            if json {
                println!("{body}");
            } else {
                let devices: Vec<serde_json::Value> =
                    serde_json::from_str(&body).context("the gateway's device list is not JSON")?;
                print!("{}", device_table(&devices));
            }
            Ok(())
        }
        Command::Device { action } => {
            let (method, path, api, what) = match &action {
                DeviceAction::Rebind { id, api } => (reqwest::Method::POST, format!("/v1/devices/{id}/rebind"), api, "re-binding"),
                DeviceAction::Reset { id, api } => (reqwest::Method::DELETE, format!("/v1/devices/{id}"), api, "resetting"),
            };
            println!("{}", call(method, &api.gateway, &path, &api.token, what).await?);
            Ok(())
        }
        Command::Init { out, force } => init(&out, force),
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

/// Calls the gateway's API; the answer's text, or an error with its message.
async fn call(method: reqwest::Method, gateway: &str, path: &str, token: &str, what: &str) -> anyhow::Result<String> {
    let response = enrollment_gateway::http_client()?
        .request(method, format!("{}{path}", gateway.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {gateway}"))?;
    let status = response.status();
    let body = read_body(response, LOCAL_ANSWER_MAX).await.context("reading the gateway's answer")?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        bail!("{what} failed ({status}): {message}");
    }
    Ok(text)
}

/// The device list as a table: one line per device.
fn device_table(devices: &[serde_json::Value]) -> String {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 5]> = devices
        .iter()
        .map(|d| {
            [
                text(&d["device_id"]),
                text(&d["state"]),
                text(&d["identifier"]),
                text(&d["link_addr"]),
                if d["rebind_pending"] == true { "re-bind pending".into() } else { String::new() },
            ]
        })
        .collect();
    let header = ["DEVICE", "STATE", "IDENTIFIER", "LINK", ""];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out.push_str(&format!("{} devices\n", rows.len()));
    out
}

/// `gateway init`: the example configuration with a fresh API token.
fn init(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && !force {
        bail!("{} exists; give another --out, or --force to replace it", out.display());
    }
    let mut token = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token);
    let text = EXAMPLE_CONFIG.replace("API_TOKEN", &hex::encode(token));
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    println!("next: list your manufacturers' public key files in trusted_manufacturer_keys,");
    println!("      register the gateway (control-server gateway add --id gw-1 --credential SECRET) and set");
    println!("      [control_server] url, gateway_id and credential to match (SP endpoints come from the control");
    println!("      server: control-server sp add --identity SP --endpoint URL …),");
    println!("      then: gateway serve --config {}", out.display());
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
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                if !matches!(arg.get_id().as_str(), "help" | "version") {
                    assert!(arg.get_help().is_some(), "{path} --{} has no help text", arg.get_id());
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "gateway");
    }

    #[test]
    fn init_writes_a_configuration_that_loads_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        init(&path, false).unwrap();
        let (config, _) = GatewayConfig::load(&path).expect("the example loads as written");
        assert_ne!(config.api_token, "API_TOKEN", "a fresh token");
        assert!(init(&path, false).unwrap_err().to_string().contains("--force"));
        init(&path, true).unwrap();
        let (again, _) = GatewayConfig::load(&path).unwrap();
        assert_ne!(again.api_token, config.api_token, "each init makes its own token");
    }

    #[test]
    fn every_key_of_the_example_is_documented() {
        let doc = include_str!("../../CONFIG.md");
        for line in EXAMPLE_CONFIG.lines() {
            let line = line.trim_start_matches('#').trim();
            let Some((key, _)) = line.split_once(" = ") else { continue };
            let key = key.trim().trim_matches('"');
            if key.contains('.') || key.chars().any(|c| c.is_ascii_uppercase()) {
                continue; // an SP identity or a network kind's example value
            }
            assert!(doc.contains(&format!("`{key}`")), "{key} is in gateway.example.toml but not in CONFIG.md");
        }
    }

    #[test]
    fn the_device_table_has_a_line_per_device() {
        let devices = serde_json::json!([
            {"device_id": "AC-DE-48-00-00-80", "state": "enrolled", "identifier": "sp-one.example/wifi/AC-DE-48-00-00-80",
             "link_addr": "127.0.0.1:7700", "rebind_pending": true},
            {"device_id": "00-0D-6F-FF-FE-12-34-56", "state": "known", "identifier": null, "link_addr": null, "rebind_pending": false}
        ]);
        let table = device_table(devices.as_array().unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("DEVICE"), "{table}");
        assert!(lines[1].contains("sp-one.example/wifi/AC-DE-48-00-00-80") && lines[1].ends_with("re-bind pending"), "{table}");
        assert!(lines[2].starts_with("00-0D-6F-FF-FE-12-34-56  known"), "{table}");
        assert_eq!(lines[3], "2 devices");
    }
}
