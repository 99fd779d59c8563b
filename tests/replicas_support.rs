//! Two `control-server` processes (replicas) on one PostgreSQL database and
//! an in-process gateway that knows both, for the fail-over test and bench
//! (issue 13). Shared by `failover.rs` and `benches/failover.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use control_api::sp::MovePayload;
use control_server::MovePayloadExt;
use ed25519_dalek::SigningKey;
use end_to_end_tests::system::Service;
use enrollment_gateway::config::GatewayConfig;
use enrollment_gateway::{Gateway, StreamState};
use sqlx::Connection;

pub const SP_ONE: &str = "sp-one.example";
pub const SP_TWO: &str = "sp-two.example";

/// The n-th test device.
pub fn device(n: u32) -> String {
    let b = n.to_be_bytes();
    format!("AC-DE-48-{:02X}-{:02X}-{:02X}", b[1], b[2], b[3])
}

pub fn sp_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A fresh database on the server of `TEST_POSTGRES_URL`; `None` when it is
/// not set (the test skips), except on CI (`CI=true`), where that fails.
pub async fn postgres_database() -> Option<String> {
    let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres env)\"` first"
        );
        eprintln!("skipping: TEST_POSTGRES_URL is not set (scripts/postgres env)");
        return None;
    };
    let name = format!("cs_{}", control_server::random_hex(8));
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create a database");
    let _ = conn.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("TEST_POSTGRES_URL ends in /<database>");
    Some(format!("{prefix}/{name}"))
}

/// Replica `a` (the gateway's preferred one) and `b`, one database.
pub struct Replicas {
    pub dir: tempfile::TempDir,
    pub database: String,
    pub config: PathBuf,
    pub a: Service,
    pub b: Service,
    pub a_port: u16,
    pub http: reqwest::Client,
}

impl Replicas {
    /// Both replicas, `devices` devices of SP one recorded against `gw-1`.
    pub async fn start(database: String, devices: u32) -> anyhow::Result<Self> {
        control_server::install_crypto_provider();
        let dir = tempfile::tempdir()?;
        let mut config = String::from("[policy]\nmax_batch = 100000\n");
        for (name, n) in [(SP_ONE, 1), (SP_TWO, 2)] {
            config.push_str(&format!(
                "\n[[sp]]\nidentity = \"{name}\"\nbase_url = \"http://127.0.0.1:9\"\npublic_key = \"{}\"\nmay_release = true\nmay_move_to = [\"*\"]\n",
                hex::encode(sp_key(n).verifying_key().to_bytes())
            ));
        }
        config.push_str("\n[[gateway]]\nid = \"gw-1\"\ncredential = \"cred-1\"\n");
        for n in 0..devices {
            config.push_str(&format!("\n[[mapping]]\ndevice_id = \"{}\"\nsp = \"{SP_ONE}\"\naccess = \"wifi\"\ngateways = [\"gw-1\"]\n", device(n)));
        }
        let config_path = dir.path().join("control.toml");
        std::fs::write(&config_path, config)?;
        let a = Self::replica(&database, &config_path, "a", 0, dir.path())?;
        let a_port = a.addr.port();
        let b = Self::replica(&database, &config_path, "b", 0, dir.path())?;
        Ok(Self { dir, database, config: config_path, a, b, a_port, http: control_server::http_client()? })
    }

    fn replica(database: &str, config: &Path, name: &str, port: u16, dir: &Path) -> anyhow::Result<Service> {
        let args: Vec<String> = vec![
            "--database".into(),
            database.into(),
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--config".into(),
            config.display().to_string(),
        ];
        Service::spawn(&format!("control-server {name}"), "control-server", &args, Some(&dir.join(format!("replica-{name}.log"))))
    }

    /// Starts replica `a` again on its old port (after [`Service::kill`]).
    pub fn restart_a(&mut self) -> anyhow::Result<()> {
        let mut last = None;
        for _ in 0..50 {
            match Self::replica(&self.database, &self.config, "a", self.a_port, self.dir.path()) {
                Ok(a) => {
                    self.a = a;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("replica a did not start")))
    }

    /// One signed hand-over of `devices` from `from` to `to`, posted to `replica`.
    pub async fn hand_over(&self, replica: &str, from: &str, to: &str, devices: &[String]) -> anyhow::Result<usize> {
        let key = if from == SP_ONE { sp_key(1) } else { sp_key(2) };
        let message = MovePayload::new(from, to, devices.to_vec(), None).sign(&key)?;
        let ack = control_server::sp_sim::send_message(&self.http, replica, message).await?;
        Ok(ack.events)
    }

    /// An in-process gateway with `a` preferred and `b` as fallback; its
    /// follower runs until the returned sender is dropped or sent `true`.
    pub fn gateway(&self, prefer_primary_after_ms: u64) -> anyhow::Result<(Arc<Gateway>, tokio::sync::watch::Sender<bool>)> {
        let gw = self.dir.path().join(format!("gateway-{}", control_server::random_hex(4)));
        std::fs::create_dir_all(&gw)?;
        let path = gw.join("gateway.toml");
        std::fs::write(
            &path,
            format!(
                "db = \"gateway.sqlite\"\nidentity_key = \"gateway.key\"\napi_token = \"failover-token-0123456789\"\n\
                 trusted_manufacturer_keys = []\n\n[control_server]\nurl = \"{}\"\nurls = [\"{}\"]\n\
                 gateway_id = \"gw-1\"\ncredential = \"cred-1\"\nprefer_primary_after_ms = {prefer_primary_after_ms}\n",
                self.a.url(),
                self.b.url()
            ),
        )?;
        let (config, base) = GatewayConfig::load(&path)?;
        let gateway = Arc::new(config.build(&base, None)?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(gateway.clone().follow_updates(stopped));
        Ok((gateway, stop))
    }
}

/// Waits (at most `within`) until the gateway's stream state satisfies
/// `done`; returns when it did.
pub async fn wait_for(gateway: &Gateway, within: Duration, what: &str, done: impl Fn(&StreamState) -> bool) -> anyhow::Result<Instant> {
    let mut state = gateway.stream_state();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done(&state.borrow_and_update()) {
            return Ok(Instant::now());
        }
        tokio::time::timeout_at(deadline, state.changed())
            .await
            .with_context(|| format!("{what}: not within {within:?}; last state {:?}", *state.borrow()))??;
    }
}
