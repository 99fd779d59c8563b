//! The shared state of the request handlers ([`ServerState`]), and
//! registering what the configuration lists. Knows nothing of HTTP: the
//! routes ([`crate::api`]) and the decisions ([`crate::resolve`],
//! [`crate::unsolicited`]) take it, [`crate::server`] serves it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock;
use crate::config::{Config, parse_endpoint, parse_public_key};
use crate::gateway_auth::{GatewayAuth, hash_credential};
use crate::mapping::MappingTable;
use crate::outbox::Notifier;
use crate::sp_client::SpClient;
use crate::store::{MappingRow, SpRecord, Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot set up the HTTP client for SP calls: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Everything a request handler needs.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub store: Store,
    pub(crate) mapping: MappingTable,
    pub(crate) auth: GatewayAuth,
    pub(crate) sp_client: SpClient,
    pub(crate) notifier: Notifier,
    /// Permits for SP hand-overs being read and verified
    /// ([`crate::limits::Limits::max_concurrent_handovers`]).
    pub(crate) handovers: Arc<tokio::sync::Semaphore>,
    /// What `GET /metrics` serves ([`crate::metrics`]).
    pub(crate) metrics: Arc<crate::metrics::ControlMetrics>,
    pub(crate) config: Arc<Config>,
}

impl ServerState {
    /// Registers the configuration's gateways, SPs and initial mapping in
    /// `store`, and builds the state.
    pub async fn new(store: Store, config: Config) -> Result<Self, StartError> {
        register(&store, &config).await?;
        let metrics = Arc::new(crate::metrics::ControlMetrics::default());
        Ok(Self {
            mapping: MappingTable::new(store.clone(), config.policy.mapping_cache_ttl()),
            auth: GatewayAuth::new(store.clone(), config.policy.auth_cache_ttl()),
            sp_client: SpClient::new(config.policy.sp_timeout(), config.policy.max_redirects)?.with_metrics(metrics.clone()),
            metrics,
            notifier: Notifier::default(),
            handovers: Arc::new(tokio::sync::Semaphore::new(config.limits.max_concurrent_handovers)),
            store,
            config: Arc::new(config),
        })
    }
}

/// Writes the gateways, SPs and mapping rows a configuration lists.
/// Mapping rows already in the table are kept as they are.
pub async fn register(store: &Store, config: &Config) -> Result<(), StartError> {
    for gw in &config.gateways {
        let (salt, hash) = hash_credential(&gw.credential);
        store.upsert_gateway(&gw.id, &salt, &hash, gw.geo, Some(gw.revoked)).await?;
    }
    for sp in &config.sps {
        let key = parse_public_key(&sp.public_key).map_err(StartError::Config)?;
        let device_key = sp.device_public_key.as_deref().map(parse_public_key).transpose().map_err(StartError::Config)?;
        let endpoint = sp.endpoint.as_deref().map(parse_endpoint).transpose().map_err(StartError::Config)?;
        store
            .upsert_sp(&SpRecord {
                identity: sp.identity.as_str().to_owned(),
                base_url: sp.base_url.clone(),
                public_key: key.to_vec(),
                endpoint,
                device_public_key: device_key.map(|k| k.to_vec()),
                may_release: sp.may_release,
                may_claim: sp.may_claim,
                may_move_to: sp.may_move_to.clone(),
            })
            .await?;
    }
    let now = clock::now_ms();
    let rows: Vec<MappingRow> = config
        .mappings
        .iter()
        .map(|m| MappingRow {
            device_id: m.device_id.to_string(),
            sp: m.sp.as_str().to_owned(),
            service_type: m.service_type.clone(),
            access: m.access.map(|a| a.as_str().to_owned()),
            created_at: now,
            updated_at: now,
            validated_at: m.validated_at.map(|s| s.saturating_mul(1000)).unwrap_or(now),
            gateways: m.gateways.clone(),
        })
        .collect();
    if !rows.is_empty() {
        store.seed_mappings(&rows).await?;
    }
    Ok(())
}
