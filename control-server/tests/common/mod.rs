//! Shared test harness: a control server (in-process, real HTTP on a free
//! loopback port) with simulated SPs, against SQLite or PostgreSQL.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use control_api::sp::{MoveAck, MovePayload};
use control_server::config::{Config, GatewayConfig, MappingConfig, SpConfig};
use control_server::sp_sim::{self, Behaviour, RunningSpSim, SendError};
use control_server::store::Store;
use control_server::{MovePayloadExt, RunningServer, ServerState};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL for one test: a fresh SQLite file, or a fresh PostgreSQL
/// database on the server of `TEST_POSTGRES_URL`. `None` skips the test (no
/// PostgreSQL outside CI); on CI a missing PostgreSQL fails the test.
pub async fn database_url(backend: Backend, dir: &tempfile::TempDir) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.path().join("control.db").display())),
        Backend::Postgres => {
            let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true but TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres env)\"` first");
                }
                eprintln!("skipping the PostgreSQL variant: TEST_POSTGRES_URL is not set (scripts/postgres env)");
                return None;
            };
            let name = format!("cs_{}", control_server::random_hex(8));
            let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to TEST_POSTGRES_URL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            let _ = conn.close().await;
            let (prefix, _) = base.rsplit_once('/').expect("TEST_POSTGRES_URL ends in /<database>");
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// The deterministic key of a test SP.
pub fn sp_key(identity: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in identity.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    seed[31] ^= 0x5a;
    SigningKey::from_bytes(&seed)
}

/// An SP to simulate and register.
pub struct SpSpec {
    pub identity: &'static str,
    pub behaviour: Behaviour,
    pub may_release: bool,
    pub may_move_to: Vec<&'static str>,
    pub may_claim: bool,
    /// Register it with the control server (false: only simulate it).
    pub registered: bool,
}

pub fn sp(identity: &'static str) -> SpSpec {
    SpSpec { identity, behaviour: Behaviour::Confirm, may_release: false, may_move_to: vec![], may_claim: false, registered: true }
}

pub const GW1: (&str, &str) = ("gw-1", "secret-1");
pub const GW2: (&str, &str) = ("gw-2", "secret-2");
pub const DEV_A: &str = "AC-DE-48-00-00-80";
pub const DEV_B: &str = "AC-DE-48-00-00-81";
pub const DEV_C: &str = "AC-DE-48-00-00-82";

pub struct Harness {
    pub server: RunningServer,
    pub sps: HashMap<String, RunningSpSim>,
    pub http: reqwest::Client,
    pub base: String,
    /// The database, for a second replica on it.
    pub db_url: String,
    _dir: tempfile::TempDir,
}

/// Builds a harness: simulated SPs started first (their URLs go into the config).
pub async fn harness(
    backend: Backend,
    sps: Vec<SpSpec>,
    configure: impl FnOnce(&mut Config),
) -> Option<Harness> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(backend, &dir).await?;
    let mut config = Config {
        gateways: [GW1, GW2]
            .iter()
            .map(|(id, cred)| GatewayConfig { id: (*id).into(), credential: (*cred).into(), geo: None, revoked: false })
            .collect(),
        ..Config::default()
    };
    let mut running = HashMap::new();
    for spec in sps {
        let sim = sp_sim::start(spec.identity, "127.0.0.1:0".parse().unwrap(), spec.behaviour.clone(), HashMap::new())
            .await
            .expect("start sp-sim");
        if spec.registered {
            config.sps.push(SpConfig {
                identity: spec.identity.parse().unwrap(),
                base_url: sim.url(),
                public_key: hex::encode(sp_key(spec.identity).verifying_key().to_bytes()),
                endpoint: Some(sim.url()),
                device_public_key: None,
                may_release: spec.may_release,
                may_move_to: spec.may_move_to.iter().map(|s| s.to_string()).collect(),
                may_claim: spec.may_claim,
            });
        }
        running.insert(spec.identity.to_owned(), sim);
    }
    configure(&mut config);
    let db_url = url.clone();
    let store = Store::connect(&url).await.expect("connect store");
    let state = ServerState::new(store, config).await.expect("server state");
    let server = control_server::start(state, "127.0.0.1:0".parse().unwrap()).await.expect("start server");
    let base = format!("http://{}", server.addr);
    Some(Harness { server, sps: running, http: control_server::http_client().expect("HTTP client"), base, db_url, _dir: dir })
}

/// A mapping entry for the config.
pub fn mapping(device: &str, sp: &str, gateways: &[&str], validated_at: Option<i64>) -> MappingConfig {
    MappingConfig {
        device_id: device.parse().unwrap(),
        sp: sp.parse().unwrap(),
        service_type: Some("metering".into()),
        access: None,
        gateways: gateways.iter().map(|s| s.to_string()).collect(),
        validated_at,
    }
}

pub fn basic(gw: (&str, &str)) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", gw.0, gw.1)))
}

impl Harness {
    pub fn store(&self) -> &Store {
        &self.server.state.store
    }

    /// POST /v1/resolve with a raw body; (status, JSON).
    pub async fn resolve_raw(&self, gw: (&str, &str), body: &str) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/v1/resolve", self.base))
            .header("authorization", basic(gw))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("resolve request");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("JSON answer"))
    }

    pub async fn resolve(&self, gw: (&str, &str), body: Value) -> (u16, Value) {
        self.resolve_raw(gw, &body.to_string()).await
    }

    pub async fn move_devices(
        &self,
        sender: &str,
        new_sp: &str,
        devices: &[&str],
    ) -> Result<MoveAck, SendError> {
        let payload = MovePayload::new(sender, new_sp, devices.iter().map(|s| s.to_string()).collect(), None);
        sp_sim::send_move(&self.http, &self.base, &sp_key(sender), &payload).await
    }

    pub async fn poll(&self, gw: (&str, &str), after: u64) -> Value {
        let answer = self
            .http
            .get(format!("{}/v1/updates/poll?after={after}&wait_ms=0", self.base))
            .header("authorization", basic(gw))
            .send()
            .await
            .expect("poll");
        assert_eq!(answer.status().as_u16(), 200);
        answer.json().await.expect("poll JSON")
    }

    pub async fn ack(&self, gw: (&str, &str), seq: u64) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/v1/updates/ack", self.base))
            .header("authorization", basic(gw))
            .json(&json!({ "seq": seq }))
            .send()
            .await
            .expect("ack");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("ack JSON"))
    }

    pub async fn sp_calls(&self, identity: &str) -> u64 {
        let url = format!("{}/admin/stats", self.sps[identity].url());
        let stats: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        stats["validate_calls"].as_u64().unwrap()
    }

    pub async fn set_verdict(&self, identity: &str, device: Option<&str>, verdict: &str) {
        let url = format!("{}/admin/verdict", self.sps[identity].url());
        let answer = self.http.post(url).json(&json!({ "device_id": device, "verdict": verdict })).send().await.unwrap();
        assert!(answer.status().is_success());
    }

    /// Opens the SSE stream of a gateway.
    pub async fn stream(&self, gw: (&str, &str), after: u64) -> SseClient {
        let response = self
            .http
            .get(format!("{}/v1/updates?after={after}", self.base))
            .header("authorization", basic(gw))
            .send()
            .await
            .expect("open stream");
        assert_eq!(response.status().as_u16(), 200);
        SseClient { response, buffer: String::new() }
    }
}

/// A minimal SSE reader: `id`/`event`/`data` per blank-line-separated block.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

impl SseClient {
    /// The next event (comments skipped), or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent { id, event, data: serde_json::from_str(&data).expect("event data is JSON") });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Runs a flow against SQLite and PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::common::Backend::Postgres).await
            }
        }
    )*};
}
