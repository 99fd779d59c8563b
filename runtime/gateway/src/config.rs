#![doc = include_str!("../CONFIG.md")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use enrollment_assistant::{AssistantRuntime, Compiler, NetworkCredentials, Sandbox, SandboxConfig, SetupError, Timeouts};
use serde::Deserialize;

use crate::Gateway;
use crate::api_auth::ApiToken;
use crate::control::{ControlServer, ControlServerConfig, Geo};
use crate::services::GatewayServices;
use crate::store::{GatewayStore, GatewayStoreError};

/// Why a gateway could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("the identity key {path}: {reason}")]
    IdentityKey { path: PathBuf, reason: String },
    #[error("loading the trusted manufacturer keys: {0}")]
    TrustedKeys(#[from] qr_packer::KeyError),
    #[error("opening the gateway store {path}: {source}")]
    Store { path: PathBuf, source: GatewayStoreError },
    #[error("setting up the sandbox: {0}")]
    Sandbox(#[from] SetupError),
    #[error("setting up the control-server client: {0}")]
    Control(#[from] crate::control::ControlError),
}

/// `gateway.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gateway store (created if missing).
    pub db: PathBuf,
    /// The gateway's Ed25519 identity key, 32 bytes hex (created if missing).
    pub identity_key: PathBuf,
    /// The local HTTP API's address: loopback unless
    /// `listen_beyond_loopback` is set.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Allow `listen` on an address other hosts can reach.
    #[serde(default)]
    pub listen_beyond_loopback: bool,
    /// The bearer token callers of the local API must send
    /// ([`crate::api_auth`]).
    pub api_token: String,
    /// Public key files of the manufacturers whose labels this gateway runs.
    pub trusted_manufacturer_keys: Vec<PathBuf>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    pub control_server: ControlServerSection,
    /// Removed (issue 12): the control server gives each SP's endpoint with
    /// every resolve answer and pushed update. Read only to refuse a file
    /// that still has it with what to do instead ([`REMOVED_SP_ENDPOINTS`]).
    #[serde(default, rename = "sp_endpoints")]
    #[doc(hidden)]
    pub removed_sp_endpoints: Option<toml::Value>,
    /// The networks devices are given (`[[networks]]`, see the module docs).
    #[serde(default)]
    pub networks: Vec<NetworkCredentials>,
    /// Most pushed updates applied in one transaction.
    #[serde(default = "default_update_batch")]
    pub max_update_batch: usize,
    /// How often devices with a pending re-bind are tried again.
    #[serde(default = "default_rebind_retry_ms")]
    pub rebind_retry_ms: u64,
    /// Bounds of the local HTTP API.
    #[serde(default)]
    pub api_limits: ApiLimits,
}

/// Bounds of the gateway's local HTTP API (`[api_limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiLimits {
    /// Connections open at once; at the cap no more are accepted.
    pub max_connections: usize,
    /// A connection that sends no whole request head within this is closed.
    pub header_read_timeout_ms: u64,
    /// Time to receive and answer one request (the update stream excepted).
    pub request_timeout_ms: u64,
    /// Largest request body (`POST /v1/enroll` with a label photo).
    pub max_body_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout_ms: 10_000,
            // An enrollment session is bounded at 90 s (`Timeouts::session`).
            request_timeout_ms: 120_000,
            // A 32 MiB label photo (the assistant's cap) in base64, and its JSON.
            max_body_bytes: 48_000_000,
        }
    }
}

fn default_rebind_retry_ms() -> u64 {
    5_000
}

fn default_update_batch() -> usize {
    crate::MAX_UPDATE_BATCH
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlServerSection {
    /// The preferred replica.
    #[serde(default)]
    pub url: Option<String>,
    /// Further replicas (tried in order after `url`), or all of them.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Return to the preferred replica after this long on another (0: never).
    #[serde(default = "default_prefer_primary_after_ms")]
    pub prefer_primary_after_ms: u64,
    pub gateway_id: String,
    pub credential: String,
    #[serde(default)]
    pub service_type: Option<String>,
    #[serde(default)]
    pub geo: Option<Geo>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_stream_idle_timeout_ms")]
    pub stream_idle_timeout_ms: u64,
}

fn default_prefer_primary_after_ms() -> u64 {
    300_000
}

impl ControlServerSection {
    /// Every replica, the preferred one first (`url`, then `urls`).
    pub fn all_urls(&self) -> Result<Vec<String>, ConfigError> {
        let urls: Vec<String> = self.url.iter().chain(&self.urls).cloned().collect();
        if urls.is_empty() {
            return Err(ConfigError::Invalid {
                key: "control_server.url".into(),
                reason: "no control-server URL: set url (or urls = [...])".into(),
            });
        }
        if let Some(bad) = urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(ConfigError::Invalid {
                key: "control_server.urls".into(),
                reason: format!("{bad:?} is not an http:// or https:// URL"),
            });
        }
        Ok(urls)
    }
}

fn default_stream_idle_timeout_ms() -> u64 {
    control_api::gateway::STREAM_IDLE_TIMEOUT.as_millis() as u64
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl GatewayConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Self =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), reason: e.to_string() })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
        config.no_removed_keys()?;
        config.api_token()?;
        config.listen_addr(None)?;
        config.control_server.all_urls()?;
        Ok((config, base))
    }

    /// Refuses keys that no longer exist, saying what replaced them.
    pub fn no_removed_keys(&self) -> Result<(), ConfigError> {
        if self.removed_sp_endpoints.is_some() {
            return Err(ConfigError::Invalid { key: "sp_endpoints".into(), reason: REMOVED_SP_ENDPOINTS.into() });
        }
        Ok(())
    }

    /// The local API's token, checked.
    pub fn api_token(&self) -> Result<ApiToken, ConfigError> {
        ApiToken::new(&self.api_token).map_err(|reason| ConfigError::Invalid { key: "api_token".into(), reason })
    }

    /// Where the local API listens: `listen`, or `over` (the command line's
    /// `--listen`); refused if other hosts could reach it and
    /// `listen_beyond_loopback` is not set.
    pub fn listen_addr(&self, over: Option<SocketAddr>) -> Result<SocketAddr, ConfigError> {
        let addr = over.unwrap_or(self.listen);
        if !addr.ip().is_loopback() && !self.listen_beyond_loopback {
            return Err(ConfigError::Invalid {
                key: "listen".into(),
                reason: format!(
                    "{addr} is not a loopback address: the enrollment API would be reachable from other hosts; \
                     use 127.0.0.1 or set listen_beyond_loopback = true"
                ),
            });
        }
        Ok(addr)
    }

    /// Builds the gateway this configuration describes; relative paths are
    /// taken relative to `base` (the configuration file's folder).
    pub fn build(&self, base: &Path, compiler: Option<Compiler>) -> Result<Gateway, ConfigError> {
        let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let identity = load_or_create_identity(&resolve(&self.identity_key))?;
        let key_files: Vec<PathBuf> = self.trusted_manufacturer_keys.iter().map(|p| resolve(p)).collect();
        let trusted = qr_packer::TrustedKeys::from_files(&key_files)?;
        let db = resolve(&self.db);
        let store = GatewayStore::open(&db).map_err(|source| ConfigError::Store { path: db.clone(), source })?;
        let cs = &self.control_server;
        let mut urls = cs.all_urls()?.into_iter();
        let preferred = urls.next().unwrap_or_default();
        let control = ControlServer::new(ControlServerConfig {
            base_url: preferred,
            fallback_urls: urls.collect(),
            prefer_primary_after: (cs.prefer_primary_after_ms > 0).then(|| Duration::from_millis(cs.prefer_primary_after_ms)),
            gateway_id: cs.gateway_id.clone(),
            credential: cs.credential.clone(),
            geo: cs.geo,
            service_type: cs.service_type.clone(),
            timeout: Duration::from_millis(cs.timeout_ms),
            stream_idle_timeout: Duration::from_millis(cs.stream_idle_timeout_ms.max(1)),
        })?;
        self.no_removed_keys()?;
        let mut services = GatewayServices::new(control.clone(), store.clone());
        services.owner = self.owner.clone();
        services.location = self.location.clone();
        services.networks = self.networks.clone();

        let sandbox =
            Arc::new(Sandbox::new(SandboxConfig { compiler: compiler.unwrap_or_default(), ..SandboxConfig::default() })?);
        let timeouts = Timeouts::default();
        let services = Arc::new(services);
        let assistant = AssistantRuntime::new(sandbox, services.clone(), identity.clone(), timeouts)?;
        Ok(Gateway::new(assistant, store, control, identity, trusted, timeouts)
            .with_update_batch(self.max_update_batch)
            .with_services(services))
    }
}

/// Why `[sp_endpoints]` is refused.
pub const REMOVED_SP_ENDPOINTS: &str = "[sp_endpoints] is no longer read: the control server provides each SP's endpoint \
     (and key) with every resolve answer and pushed update now. Register it there \
     (control-server sp add --identity SP --endpoint URL …) and delete [sp_endpoints] from this file";

/// The gateway's identity key: read, or created on first start.
fn load_or_create_identity(path: &Path) -> Result<SigningKey, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bad = |reason: &str| ConfigError::IdentityKey { path: path.to_owned(), reason: reason.into() };
            let bytes = hex::decode(text.trim()).map_err(|_| bad("not hex"))?;
            let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("expected 32 bytes of hex"))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            std::fs::write(path, hex::encode(key.to_bytes()))
                .map_err(|e| ConfigError::IdentityKey { path: path.to_owned(), reason: format!("writing it: {e}") })?;
            Ok(key)
        }
        Err(source) => Err(ConfigError::Read { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "db = \"gw.sqlite\"\nidentity_key = \"gw.key\"\ntrusted_manufacturer_keys = []\n";
    const CONTROL: &str = "[control_server]\nurl = \"http://127.0.0.1:1\"\ngateway_id = \"gw-1\"\ncredential = \"c\"\n";

    fn load(text: &str) -> Result<GatewayConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        GatewayConfig::load(&path).map(|(c, _)| c)
    }

    #[test]
    fn the_api_token_is_required_and_checked() {
        let missing = load(&format!("{MINIMAL}{CONTROL}")).unwrap_err();
        assert!(missing.to_string().contains("api_token"), "{missing}");
        let short = load(&format!("{MINIMAL}api_token = \"abc\"\n{CONTROL}")).unwrap_err();
        assert!(matches!(&short, ConfigError::Invalid { key, .. } if key == "api_token"), "{short}");
        let config = load(&format!("{MINIMAL}api_token = \"0123456789abcdef\"\n{CONTROL}")).unwrap();
        assert_eq!(config.api_token().unwrap().as_str(), "0123456789abcdef");
        assert_eq!(config.control_server.stream_idle_timeout_ms, 45_000);
    }

    #[test]
    fn several_control_server_urls_the_first_preferred() {
        let token = "api_token = \"0123456789abcdef\"\n";
        let one = load(&format!("{MINIMAL}{token}{CONTROL}")).unwrap();
        assert_eq!(one.control_server.all_urls().unwrap(), vec!["http://127.0.0.1:1"]);
        assert_eq!(one.control_server.prefer_primary_after_ms, 300_000);
        let both = format!("{CONTROL}urls = [\"http://127.0.0.1:2\", \"http://127.0.0.1:3\"]\nprefer_primary_after_ms = 0\n");
        let both = load(&format!("{MINIMAL}{token}{both}")).unwrap();
        assert_eq!(both.control_server.all_urls().unwrap(), vec!["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"]);
        let only = "[control_server]\nurls = [\"http://127.0.0.1:2\"]\ngateway_id = \"gw-1\"\ncredential = \"c\"\n";
        assert_eq!(load(&format!("{MINIMAL}{token}{only}")).unwrap().control_server.all_urls().unwrap(), vec!["http://127.0.0.1:2"]);
        let none = "[control_server]\ngateway_id = \"gw-1\"\ncredential = \"c\"\n";
        let refused = load(&format!("{MINIMAL}{token}{none}")).unwrap_err();
        assert!(matches!(&refused, ConfigError::Invalid { key, .. } if key == "control_server.url"), "{refused}");
        let bad = "[control_server]\nurls = [\"127.0.0.1:2\"]\ngateway_id = \"gw-1\"\ncredential = \"c\"\n";
        assert!(load(&format!("{MINIMAL}{token}{bad}")).is_err(), "a URL needs its scheme");
    }

    #[test]
    fn a_file_with_sp_endpoints_is_refused_with_what_replaced_it() {
        let token = "api_token = \"0123456789abcdef\"\n";
        let old = "[sp_endpoints]\n\"sp-one.example\" = \"http://127.0.0.1:9001\"\n";
        let refused = load(&format!("{MINIMAL}{token}{CONTROL}{old}")).unwrap_err();
        assert!(matches!(&refused, ConfigError::Invalid { key, .. } if key == "sp_endpoints"), "{refused}");
        assert!(refused.to_string().contains("control-server sp add --identity SP --endpoint URL"), "{refused}");
        let empty = load(&format!("{MINIMAL}{token}{CONTROL}[sp_endpoints]\n")).unwrap_err();
        assert!(empty.to_string().contains("the control server provides"), "even an empty table: {empty}");
    }

    #[test]
    fn the_api_listens_on_loopback_unless_told_otherwise() {
        let token = "api_token = \"0123456789abcdef\"\n";
        let open = load(&format!("{MINIMAL}{token}listen = \"0.0.0.0:7000\"\n{CONTROL}")).unwrap_err();
        assert!(matches!(&open, ConfigError::Invalid { key, .. } if key == "listen"), "{open}");
        assert!(open.to_string().contains("listen_beyond_loopback"), "{open}");
        let allowed =
            load(&format!("{MINIMAL}{token}listen = \"0.0.0.0:7000\"\nlisten_beyond_loopback = true\n{CONTROL}")).unwrap();
        assert_eq!(allowed.listen_addr(None).unwrap().port(), 7000);
        let local = load(&format!("{MINIMAL}{token}{CONTROL}")).unwrap();
        assert!(local.listen_addr(None).unwrap().ip().is_loopback());
        assert!(local.listen_addr(Some("192.0.2.1:7000".parse().unwrap())).is_err(), "--listen is checked too");
        assert!(local.listen_addr(Some("[::1]:7000".parse().unwrap())).is_ok());
    }
}
