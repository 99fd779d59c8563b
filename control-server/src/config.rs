//! The operator's configuration: policy, and what to register at start-up
//! (gateways, SPs, an initial mapping) so a demo or test starts from a known
//! state. Read from a TOML file (`control-server serve --config cfg.toml`).
//!
//! ```toml
//! [policy]
//! max_age_secs = 86400             # answer from the table while the association is this fresh
//! allow_stale_when_sp_down = false # if the SP cannot be reached: error (false) or the table's answer (true)
//! sp_timeout_ms = 2000             # per SP call
//! max_redirects = 4                # SP redirect hops before giving up
//! message_window_secs = 300        # accepted clock skew of signed SP messages
//! max_batch = 100000               # devices per unsolicited message
//! auth_cache_ttl_ms = 1000         # how long a verified gateway credential is trusted without a DB read
//! mapping_cache_ttl_ms = 60000     # how long a cached mapping row is trusted (other replicas' changes)
//!
//! [push]
//! mode = "associated"              # "associated": to gateways recorded against the device; "none"
//! unseen_devices = "none"          # devices the table did not have: "none" or "all_gateways"
//! max_events = 2000000             # outbox events one change may write
//! safety_poll_ms = 30000           # outbox readers' safety sweep (one query for all); wake-ups are instant
//!
//! [limits]                         # what a peer can make the server hold (see `limits`)
//! max_connections = 4096           # open HTTP connections (kept below the fd limit)
//! header_read_timeout_ms = 10000   # idle or half-sent connections are closed after this
//! request_timeout_ms = 30000       # body and answer of one request (408 request_timeout)
//! max_concurrent_handovers = 4     # SP hand-overs read and verified at once (503 overloaded)
//!
//! [[gateway]]
//! id = "gw-1"
//! credential = "secret"
//! geo = { lat = 52.37, lon = 4.89 }
//!
//! [[sp]]
//! identity = "sp-one.example"
//! base_url = "http://127.0.0.1:9001"
//! public_key = "<64 hex digits: Ed25519 public key>"
//! endpoint = "http://127.0.0.1:9001"  # where its devices and gateways reach it (resolve answers carry it)
//! # device_public_key = "<64 hex>"    # the key devices check it with; default: public_key
//! may_release = true               # may move its devices away …
//! may_move_to = ["sp-two.example"] # … to these SPs ("*": any registered SP)
//! may_claim = false                # as the new SP, may claim devices by itself
//!
//! [[mapping]]
//! device_id = "AC-DE-48-00-00-80"
//! sp = "sp-one.example"
//! service_type = "metering"
//! access = "wifi"
//! gateways = ["gw-1"]
//! validated_at = 1700000000        # unix seconds; default: now
//! ```

use std::path::Path;
use std::time::Duration;

use control_api::gateway::Geo;
use serde::Deserialize;
use sp_bound_id::{AccessTechnology, Eui, SpIdentity};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub push: PushPolicy,
    #[serde(default)]
    pub limits: crate::limits::Limits,
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewayConfig>,
    #[serde(default, rename = "sp")]
    pub sps: Vec<SpConfig>,
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<MappingConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub max_age_secs: u64,
    pub allow_stale_when_sp_down: bool,
    pub sp_timeout_ms: u64,
    pub max_redirects: usize,
    pub message_window_secs: u64,
    pub max_batch: usize,
    pub auth_cache_ttl_ms: u64,
    /// How long a cached mapping row is trusted before it is re-read. Changes
    /// made through this process invalidate at once; this bounds how long a
    /// change made by another replica (PostgreSQL) can go unseen.
    pub mapping_cache_ttl_ms: u64,
    /// Acknowledged outbox entries are pruned once older than this.
    pub outbox_retention_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_age_secs: 86_400,
            allow_stale_when_sp_down: false,
            sp_timeout_ms: 2_000,
            max_redirects: 4,
            message_window_secs: 300,
            max_batch: 100_000,
            auth_cache_ttl_ms: 1_000,
            mapping_cache_ttl_ms: 60_000,
            outbox_retention_secs: 86_400,
        }
    }
}

impl Policy {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }
    pub fn sp_timeout(&self) -> Duration {
        Duration::from_millis(self.sp_timeout_ms)
    }
    pub fn mapping_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.mapping_cache_ttl_ms)
    }
    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.auth_cache_ttl_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    #[default]
    Associated,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenDevices {
    #[default]
    None,
    AllGateways,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushPolicy {
    pub mode: PushMode,
    pub unseen_devices: UnseenDevices,
    pub max_events: usize,
    /// How often one query checks every streaming gateway for events no
    /// wake-up announced (`crate::replicas`).
    pub safety_poll_ms: u64,
}

impl Default for PushPolicy {
    fn default() -> Self {
        Self { mode: PushMode::Associated, unseen_devices: UnseenDevices::None, max_events: 2_000_000, safety_poll_ms: 30_000 }
    }
}

impl PushPolicy {
    pub fn rule(&self) -> crate::store::PushRule {
        crate::store::PushRule {
            associated: self.mode == PushMode::Associated,
            unseen_to_all: self.mode == PushMode::Associated && self.unseen_devices == UnseenDevices::AllGateways,
            max_events: self.max_events,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub id: String,
    pub credential: String,
    pub geo: Option<Geo>,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpConfig {
    pub identity: SpIdentity,
    pub base_url: String,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// Where the SP's devices and gateways reach it (`http(s)://…`), handed
    /// out in resolve answers and pushed events.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The Ed25519 key devices verify the SP with, 64 hex digits; default
    /// `public_key` (see [`crate::store::SpRecord::device_key`] for why a
    /// separate one).
    #[serde(default)]
    pub device_public_key: Option<String>,
    #[serde(default)]
    pub may_release: bool,
    #[serde(default)]
    pub may_move_to: Vec<String>,
    #[serde(default)]
    pub may_claim: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    pub device_id: Eui,
    pub sp: SpIdentity,
    pub service_type: Option<String>,
    pub access: Option<AccessTechnology>,
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Unix seconds; default: the time of loading.
    pub validated_at: Option<i64>,
}

/// Checks an SP endpoint: an absolute `http://` or `https://` URL without
/// spaces or control characters, at most 256 bytes (what a device stores
/// of it, `enrollment_host::handover::MAX_TEXT`). Returns it without a
/// trailing `/`.
pub fn parse_endpoint(url: &str) -> Result<String, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("endpoint {url:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("endpoint {url:?} names no host"));
    }
    if url.len() > 256 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("endpoint {url:?} is longer than 256 bytes or holds spaces or control characters"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Parses an Ed25519 public key from hex.
pub fn parse_public_key(hex_text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| format!("public key is not hex: {e}"))?;
    let key: [u8; 32] =
        bytes.try_into().map_err(|b: Vec<u8>| format!("an Ed25519 public key is 32 bytes, not {}", b.len()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| format!("not an Ed25519 public key: {e}"))?;
    Ok(key)
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for gw in &self.gateways {
            crate::gateway_auth::validate_gateway_id(&gw.id).map_err(ConfigError::Invalid)?;
            if gw.credential.is_empty() {
                return Err(ConfigError::Invalid(format!("gateway {}: empty credential", gw.id)));
            }
        }
        for sp in &self.sps {
            parse_public_key(&sp.public_key).map_err(|e| ConfigError::Invalid(format!("sp {}: {e}", sp.identity)))?;
            if let Some(key) = &sp.device_public_key {
                parse_public_key(key)
                    .map_err(|e| ConfigError::Invalid(format!("sp {}: device_public_key: {e}", sp.identity)))?;
            }
            if let Some(endpoint) = &sp.endpoint {
                parse_endpoint(endpoint).map_err(|e| ConfigError::Invalid(format!("sp {}: {e}", sp.identity)))?;
            }
            for target in &sp.may_move_to {
                if target != "*" {
                    SpIdentity::new(target)
                        .map_err(|e| ConfigError::Invalid(format!("sp {}: may_move_to {target:?}: {e}", sp.identity)))?;
                }
            }
        }
        for m in &self.mappings {
            if let Some(access) = m.access
                && !access.accepts(m.device_id.kind())
            {
                return Err(ConfigError::Invalid(format!(
                    "mapping {}: {access} devices are not identified by an {}",
                    m.device_id,
                    m.device_id.kind()
                )));
            }
        }
        if self.policy.max_redirects == 0 {
            return Err(ConfigError::Invalid("policy.max_redirects must be at least 1".into()));
        }
        self.limits.validate().map_err(ConfigError::Invalid)?;
        let chain_ms = self.policy.sp_timeout_ms.saturating_mul(self.policy.max_redirects as u64 + 1);
        if self.limits.request_timeout_ms <= chain_ms {
            return Err(ConfigError::Invalid(format!(
                "limits.request_timeout_ms ({}) must exceed a full SP redirect chain, policy.sp_timeout_ms × \
                 (policy.max_redirects + 1) = {chain_ms} ms: raise it or lower those",
                self.limits.request_timeout_ms
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let key = hex::encode(ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes());
        let doc = doc.replace("<64 hex digits: Ed25519 public key>", &key);
        let config = Config::from_toml(&doc).expect("documented example parses");
        assert_eq!(config.gateways[0].id, "gw-1");
        assert_eq!(config.sps[0].may_move_to, vec!["sp-two.example"]);
        assert_eq!(config.mappings[0].access, Some(AccessTechnology::Wifi));
        assert_eq!(config.policy.max_redirects, 4);
        assert_eq!(config.limits.max_concurrent_handovers, 4);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_keys() {
        assert!(matches!(Config::from_toml("[policy]\nmax_agee_secs = 3"), Err(ConfigError::Parse(_))));
        let bad = "[[sp]]\nidentity = \"a.example\"\nbase_url = \"http://x\"\npublic_key = \"abcd\"";
        assert!(matches!(Config::from_toml(bad), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("[limits]\nrequest_timeout_ms = 0"), Err(ConfigError::Invalid(_))));
        let short = Config::from_toml("[policy]\nsp_timeout_ms = 10000\n[limits]\nrequest_timeout_ms = 30000");
        assert!(matches!(&short, Err(ConfigError::Invalid(m)) if m.contains("redirect chain")), "{short:?}");
        assert!(matches!(Config::from_toml("[limits]\nmax_conections = 9"), Err(ConfigError::Parse(_))));
    }
}
