//! `sp-sim`: a configurable service provider for tests and the demo.
//!
//! It answers the control server's validation calls with a behaviour chosen
//! per device (or a default): `confirm`, `redirect:<sp>`, `reject[:<reason>]`,
//! `slow:<ms>` (confirm after a delay), `down` (HTTP 503, as an SP that is
//! failing), and two hostile ones: `http-redirect:<url>` (an HTTP 307 to
//! `url` instead of a verdict) and `oversized:<bytes>` (a confirmation padded
//! with whitespace to `bytes`). Behaviours can be changed at run time with
//! `POST /admin/verdict`.
//! It records the device reports a gateway or phone relays to it
//! (`POST /v1/devices`, listed by `GET /v1/devices`), and it builds and sends
//! signed unsolicited updates ([`send_move`]).
//!
//! After enrollment it verifies its devices' signed messages and signs
//! commands for them ([`messages`]).
//!
//! Key file format: the 32-byte Ed25519 seed as 64 lowercase hex digits and
//! a newline ([`write_new_key`], [`load_key`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use control_api::ErrorBody;
use control_api::http_client::BodyError;
use control_api::routes;
use control_api::sp::{DeviceReport, DeviceWithdrawal, MoveAck, MovePayload, ValidateRequest, Verdict, Withdrawn};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sp_bound_id::{SpBoundId, SpIdentity};

use crate::unsolicited::{BuildError, MovePayloadExt};

pub mod messages;

/// How the simulated SP answers a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Confirm,
    Redirect(String),
    Reject(String),
    Slow(u64),
    Down,
    /// HTTP 307 to this URL.
    HttpRedirect(String),
    /// A confirmation padded with whitespace to this many bytes.
    Oversized(usize),
}

impl FromStr for Behaviour {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (word, arg) = text.split_once(':').map_or((text, None), |(w, a)| (w, Some(a)));
        match (word, arg) {
            ("confirm", None) => Ok(Self::Confirm),
            ("down", None) => Ok(Self::Down),
            ("reject", None) => Ok(Self::Reject("rejected by the SP".into())),
            ("reject", Some(reason)) => Ok(Self::Reject(reason.into())),
            ("redirect", Some(sp)) => {
                SpIdentity::new(sp).map_err(|e| format!("redirect target {sp:?}: {e}"))?;
                Ok(Self::Redirect(sp.into()))
            }
            ("slow", Some(ms)) => ms.parse().map(Self::Slow).map_err(|_| format!("slow:{ms}: not milliseconds")),
            ("http-redirect", Some(url)) if !url.is_empty() => Ok(Self::HttpRedirect(url.into())),
            ("oversized", Some(n)) => n.parse().map(Self::Oversized).map_err(|_| format!("oversized:{n}: not a byte count")),
            _ => Err(format!(
                "{text:?} is not a behaviour (confirm, redirect:<sp>, reject[:<reason>], slow:<ms>, down, \
                 http-redirect:<url>, oversized:<bytes>)"
            )),
        }
    }
}

/// `POST /admin/verdict` body: set the behaviour for one device, or the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictUpdate {
    #[serde(default)]
    pub device_id: Option<String>,
    pub verdict: String,
}

/// `GET /admin/stats` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    pub validate_calls: u64,
    /// Withdrawals received (`POST /v1/devices/withdraw`).
    #[serde(default)]
    pub withdrawals: u64,
    /// Device messages that verified, and those refused (forged, replayed, unknown device).
    #[serde(default)]
    pub messages_verified: u64,
    #[serde(default)]
    pub messages_rejected: u64,
}

#[derive(Debug)]
struct Sim {
    identity: String,
    default: Behaviour,
    per_device: HashMap<String, Behaviour>,
    reports: Vec<DeviceReport>,
    validate_calls: u64,
    withdrawals: u64,
    messages: messages::Messages,
}

type Shared = Arc<Mutex<Sim>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Sim> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(ErrorBody { error: code.into(), message })).into_response()
}

/// Canonical device id text, or the text as given if it is not an EUI.
fn device_key(text: &str) -> String {
    sp_bound_id::Eui::from_str(text).map(|e| e.to_string()).unwrap_or_else(|_| text.to_owned())
}

async fn validate(State(sim): State<Shared>, body: Bytes) -> Response {
    let request: ValidateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let behaviour = {
        let mut sim = lock(&sim);
        sim.validate_calls += 1;
        sim.per_device.get(&device_key(&request.device_id)).unwrap_or(&sim.default).clone()
    };
    let verdict = match behaviour {
        Behaviour::Confirm => Verdict::Confirm,
        Behaviour::Redirect(sp) => Verdict::Redirect { sp },
        Behaviour::Reject(reason) => Verdict::Reject { reason },
        Behaviour::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Verdict::Confirm
        }
        Behaviour::Down => return error(StatusCode::SERVICE_UNAVAILABLE, "down", "the SP is down".into()),
        Behaviour::HttpRedirect(url) => {
            return (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, url)]).into_response();
        }
        Behaviour::Oversized(bytes) => {
            let mut body = br#"{"verdict":"confirm"}"#.to_vec();
            body.resize(bytes.max(body.len()), b' ');
            return ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        }
    };
    Json(verdict).into_response()
}

async fn report_device(State(sim): State<Shared>, body: Bytes) -> Response {
    let report: DeviceReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let id = match SpBoundId::from_str(&report.identifier) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_identifier", e.to_string()),
    };
    if hex::decode(&report.public_key).map(|k| k.is_empty()).unwrap_or(true) {
        return error(StatusCode::BAD_REQUEST, "invalid_public_key", "public_key is not hex".into());
    }
    let mut sim = lock(&sim);
    if id.sp().as_str() != sim.identity {
        let message = format!("identifier {id} names {}, not this SP ({})", id.sp(), sim.identity);
        return error(StatusCode::CONFLICT, "wrong_sp", message);
    }
    // The same identity and key again (a re-bind to the same SP, a retried
    // relay) is one report, not two.
    let known = sim.reports.iter().any(|r| r.identifier == report.identifier && r.public_key.eq_ignore_ascii_case(&report.public_key));
    if !known {
        sim.reports.push(report.clone());
    }
    (StatusCode::CREATED, Json(report)).into_response()
}

/// Drops relayed reports of this identifier with this key (a gateway found
/// that the device never committed them).
async fn withdraw_device(State(sim): State<Shared>, body: Bytes) -> Response {
    let withdrawal: DeviceWithdrawal = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let mut sim = lock(&sim);
    let before = sim.reports.len();
    let key = withdrawal.public_key.to_ascii_lowercase();
    sim.reports.retain(|r| !(r.identifier == withdrawal.identifier && r.public_key.to_ascii_lowercase() == key));
    let dropped = before - sim.reports.len();
    sim.withdrawals += 1;
    Json(Withdrawn { dropped }).into_response()
}

async fn list_devices(State(sim): State<Shared>) -> Json<Vec<DeviceReport>> {
    Json(lock(&sim).reports.clone())
}

async fn set_verdict(State(sim): State<Shared>, body: Bytes) -> Response {
    let update: VerdictUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()),
    };
    let behaviour = match Behaviour::from_str(&update.verdict) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed_request", e),
    };
    let mut sim = lock(&sim);
    match &update.device_id {
        Some(device) => {
            sim.per_device.insert(device_key(device), behaviour);
        }
        None => sim.default = behaviour,
    }
    Json(update).into_response()
}

async fn stats(State(sim): State<Shared>) -> Json<SimStats> {
    let sim = lock(&sim);
    Json(SimStats {
        validate_calls: sim.validate_calls,
        withdrawals: sim.withdrawals,
        messages_verified: sim.messages.verified,
        messages_rejected: sim.messages.rejected,
    })
}

/// A running simulated SP.
pub struct RunningSpSim {
    pub addr: SocketAddr,
    pub identity: String,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSpSim {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (the port refuses connections afterwards).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts a simulated SP with a default behaviour and per-device overrides.
pub async fn start(
    identity: &str,
    listen: SocketAddr,
    default: Behaviour,
    per_device: HashMap<String, Behaviour>,
) -> std::io::Result<RunningSpSim> {
    start_with_key(identity, listen, default, per_device, None).await
}

/// [`start`], with the SP's signing key for commands to its devices.
pub async fn start_with_key(
    identity: &str,
    listen: SocketAddr,
    default: Behaviour,
    per_device: HashMap<String, Behaviour>,
    key: Option<SigningKey>,
) -> std::io::Result<RunningSpSim> {
    let sim: Shared = Arc::new(Mutex::new(Sim {
        identity: identity.to_owned(),
        default,
        per_device: per_device.into_iter().map(|(d, b)| (device_key(&d), b)).collect(),
        reports: Vec::new(),
        validate_calls: 0,
        withdrawals: 0,
        messages: messages::Messages { key, ..Default::default() },
    }));
    let router = Router::new()
        .route(routes::SP_VALIDATE, post(validate))
        .route(routes::SP_DEVICES, post(report_device).get(list_devices))
        .route(routes::SP_DEVICES_WITHDRAW, post(withdraw_device))
        .route(control_api::device::DEVICE_MESSAGES, post(messages::receive))
        .route(control_api::device::DEVICE_COMMANDS, get(messages::commands))
        .route("/admin/messages", get(messages::list))
        .route("/admin/command", post(messages::issue))
        .route("/admin/verdict", post(set_verdict))
        .route("/admin/stats", get(stats))
        .with_state(sim);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(%e, "sp-sim stopped");
        }
    });
    Ok(RunningSpSim { addr, identity: identity.to_owned(), task })
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is not 64 hex digits (a 32-byte Ed25519 seed)")]
    Format { path: String },
}

/// Generates a key and writes its seed to `path` (hex, newline).
pub fn write_new_key(path: &Path) -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    std::fs::write(path, format!("{}\n", hex::encode(seed)))
        .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a key written by [`write_new_key`].
pub fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Format { path: path.display().to_string() })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Why sending an unsolicited update failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot build the message: {0}")]
    Build(#[from] BuildError),
    #[error("cannot reach the control server: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the control server refused the message (HTTP {status}): {} — {}", body.error, body.message)]
    Refused { status: u16, body: ErrorBody },
    #[error("the control server answered HTTP {status} with an unexpected body: {text}")]
    Unexpected { status: u16, text: String },
}

impl SendError {
    /// The control server's error code, if it refused the message.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { body, .. } => Some(&body.error),
            _ => None,
        }
    }
}

/// Largest answer read from the control server (an acknowledgement or an
/// error body is a short JSON object).
pub const ANSWER_MAX: usize = 64 * 1024;

/// POSTs raw message bytes to `{control_server}/v1/sp/associations`.
pub async fn send_message(http: &reqwest::Client, control_server: &str, message: Vec<u8>) -> Result<MoveAck, SendError> {
    let url = format!("{}{}", control_server.trim_end_matches('/'), routes::SP_ASSOCIATIONS);
    let answer = http.post(url).header("content-type", "application/cose").body(message).send().await?;
    let status = answer.status().as_u16();
    let text = match control_api::http_client::read_body(answer, ANSWER_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(BodyError::Read(e)) => return Err(SendError::Http(e)),
        Err(e) => return Err(SendError::Unexpected { status, text: e.to_string() }),
    };
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|_| SendError::Unexpected { status, text });
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(SendError::Refused { status, body }),
        Err(_) => Err(SendError::Unexpected { status, text }),
    }
}

/// Signs `payload` with `key` and sends it.
pub async fn send_move(
    http: &reqwest::Client,
    control_server: &str,
    key: &SigningKey,
    payload: &MovePayload,
) -> Result<MoveAck, SendError> {
    send_message(http, control_server, payload.sign(key)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse() {
        assert_eq!("confirm".parse::<Behaviour>().unwrap(), Behaviour::Confirm);
        assert_eq!("redirect:sp-two.example".parse::<Behaviour>().unwrap(), Behaviour::Redirect("sp-two.example".into()));
        assert_eq!("slow:250".parse::<Behaviour>().unwrap(), Behaviour::Slow(250));
        assert_eq!("reject:no".parse::<Behaviour>().unwrap(), Behaviour::Reject("no".into()));
        assert_eq!("oversized:9".parse::<Behaviour>().unwrap(), Behaviour::Oversized(9));
        assert_eq!(
            "http-redirect:http://127.0.0.1:1/x".parse::<Behaviour>().unwrap(),
            Behaviour::HttpRedirect("http://127.0.0.1:1/x".into())
        );
        assert!("redirect:".parse::<Behaviour>().is_err());
        assert!("maybe".parse::<Behaviour>().is_err());
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.key");
        let key = write_new_key(&path).unwrap();
        assert_eq!(load_key(&path).unwrap().to_bytes(), key.to_bytes());
        std::fs::write(&path, "nothex").unwrap();
        assert!(matches!(load_key(&path), Err(KeyError::Format { .. })));
    }
}
