//! Durable storage: the mapping table, its history, gateways, SPs, seen
//! nonces and the per-gateway outbox, in SQLite (default, zero set-up) or
//! PostgreSQL (several replicas sharing one database).
//!
//! Queries are runtime-checked (`sqlx::query`, no build-time database). The
//! SQL is written once in `dialect` and instantiated per backend; only the
//! migrations, the way a write transaction starts, and row locking differ.
//! Every association change — one unsolicited message of up to 100,000
//! devices, or one redirect found while resolving — is one transaction that
//! updates the mapping, writes history, and appends outbox rows with dense
//! per-gateway sequence numbers (see [`Store::apply_changes`]).

mod admin;
mod dialect;

pub use admin::{AdminLogRow, ChangesAfter, GatewayStatus, HandoverEntry, MappingFilter};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use control_api::gateway::Geo;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlSafeStr;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite://… nor postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Why an association change was refused inside its transaction (nothing of
/// it is written).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message's nonce was seen before: a replay.
    #[error("nonce already seen: the message is a replay")]
    Replayed,
    /// The authorization check (given the current associations) said no.
    #[error("{0}")]
    NotAuthorized(String),
    /// Pushing the change would write more outbox rows than allowed.
    #[error("the change would write {events} outbox events, more than the limit of {limit}")]
    FanoutTooLarge { events: usize, limit: usize },
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// A registered gateway as stored.
#[derive(Debug, Clone)]
pub struct GatewayRecord {
    pub id: String,
    pub credential_salt: Vec<u8>,
    pub credential_hash: Vec<u8>,
    pub revoked: bool,
    pub geo: Option<Geo>,
    pub last_seq: i64,
}

/// A registered SP: where to validate, which key signs its messages, where
/// its devices reach it and with which key they check it, and what it may do
/// to associations.
#[derive(Debug, Clone, PartialEq)]
pub struct SpRecord {
    pub identity: String,
    /// Where the control server validates associations (`POST {base_url}/v1/validate`).
    pub base_url: String,
    /// Verifies the SP's signed hand-overs (`POST /v1/sp/associations`).
    pub public_key: Vec<u8>,
    /// Where the SP's devices and gateways reach it: device reports
    /// (`POST {endpoint}/v1/devices`), withdrawals, device messages. Handed
    /// out in resolve answers and pushed events; `None` for an SP registered
    /// without one (a gateway then refuses to enroll devices to it).
    pub endpoint: Option<String>,
    /// The key devices verify the SP with, when it is not `public_key`
    /// (see [`SpRecord::device_key`]).
    pub device_public_key: Option<Vec<u8>>,
    /// May move its own devices away to another SP.
    pub may_release: bool,
    /// As the new SP, may claim devices currently held by others (or unseen).
    pub may_claim: bool,
    /// The SPs it may hand its devices to; `"*"` means any registered SP.
    pub may_move_to: Vec<String>,
}

impl SpRecord {
    /// The Ed25519 key handed to devices: `device_public_key`, else the
    /// registered `public_key`.
    ///
    /// Why a separate, optional key: the registered key is the SP's
    /// control-plane key — with it an SP moves devices between SPs at the
    /// control server, so an operator keeps it close. The device-facing key
    /// signs commands to devices from the SP's device servers, which are far
    /// more exposed. An SP that wants the two apart registers a
    /// `device_public_key`: a leak of its device servers' key then reaches its
    /// own devices only, never the associations. One that does not care
    /// gets the registered key, with nothing more to configure.
    pub fn device_key(&self) -> &[u8] {
        self.device_public_key.as_deref().unwrap_or(&self.public_key)
    }

    /// Whether this SP may hand its devices to `new_sp`.
    pub fn may_move_to(&self, new_sp: &str) -> bool {
        self.may_release && self.may_move_to.iter().any(|s| s == "*" || s == new_sp)
    }
}

/// One row of the mapping table with the gateways recorded against it.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub device_id: String,
    pub sp: String,
    pub service_type: Option<String>,
    pub access: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub validated_at: i64,
    pub gateways: Vec<String>,
}

/// One history row: who changed a device's SP, when, from which SP.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub device_id: String,
    pub old_sp: Option<String>,
    pub new_sp: String,
    pub changed_by: String,
    pub message_id: Option<String>,
    pub at: i64,
}

/// Which gateways get an outbox event for a changed device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRule {
    /// Push changes of known devices to the gateways recorded against them.
    pub associated: bool,
    /// Push devices the table did not have yet to every active gateway.
    pub unseen_to_all: bool,
    /// At most this many outbox events per change set.
    pub max_events: usize,
}

/// A set of association changes applied as one transaction.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub message_id: String,
    /// Who made the change (an SP identity, or `resolve:<sp>` for redirects).
    pub changed_by: String,
    pub at: i64,
    pub new_sp: String,
    /// Replaces the service type when given; kept otherwise.
    pub service_type: Option<String>,
    /// Device ids (canonical text), without duplicates.
    pub devices: Vec<String>,
    /// Replay protection: (nonce, sender); also prunes nonces older than `prune_nonces_before`.
    pub nonce: Option<(Vec<u8>, String)>,
    pub prune_nonces_before: i64,
    pub push: PushRule,
}

/// What an applied change set did.
#[derive(Debug, Clone, Default)]
pub struct ChangeOutcome {
    /// Devices whose SP or service type changed (including created ones).
    pub changed: usize,
    /// Devices the table did not have.
    pub created: usize,
    /// Outbox events written.
    pub events: usize,
    /// Per affected gateway: its last sequence number after the change.
    pub gateway_seqs: BTreeMap<String, i64>,
}

/// One stored outbox entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub payload: String,
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sequence {seq} was never assigned to this gateway (last is {last})")]
    BeyondLast { seq: i64, last: i64 },
}

/// A gateway's acknowledged outbox entries are pruned at most this often
/// (unix ms between prunes), so an acknowledgement usually costs one row.
pub const PRUNE_INTERVAL_MS: i64 = 10_000;

/// Most outbox entries one prune deletes: a prune costs a bounded amount
/// (10,000 entries every 10 s is 86 million a day per gateway).
pub const PRUNE_CHUNK: i64 = 10_000;

/// Which SQL backend a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection pool to the control server's database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever backend module the store uses.
macro_rules! on_backend {
    ($store:expr, $pool:ident, $m:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                use dialect::sqlite as $m;
                $body
            }
            Store::Postgres($pool) => {
                use dialect::postgres as $m;
                $body
            }
        }
    };
}

fn migrator(dialect: Dialect) -> Migrator {
    let sqls: [(i64, &'static str, &'static str); 4] = match dialect {
        Dialect::Sqlite => [
            (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
            (2, "outbox_acks", include_str!("../../migrations/sqlite/0002_outbox_acks.sql")),
            (3, "admin", include_str!("../../migrations/sqlite/0003_admin.sql")),
            (4, "sp_endpoint", include_str!("../../migrations/sqlite/0004_sp_endpoint.sql")),
        ],
        Dialect::Postgres => [
            (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
            (2, "outbox_acks", include_str!("../../migrations/postgres/0002_outbox_acks.sql")),
            (3, "admin", include_str!("../../migrations/postgres/0003_admin.sql")),
            (4, "sp_endpoint", include_str!("../../migrations/postgres/0004_sp_endpoint.sql")),
        ],
    };
    Migrator::with_migrations(
        sqls.into_iter()
            .map(|(version, name, sql)| {
                Migration::new(version, Cow::Borrowed(name), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

impl Store {
    /// Connects (creating an SQLite file if missing, in WAL mode) and runs
    /// the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                // 64 MiB page cache: a 100,000-device change stays in memory until commit
                // instead of spilling pages to the WAL half-way.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
            Store::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new().max_connections(16).connect_with(options).await?;
            Store::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => migrator(Dialect::Sqlite).run(pool).await?,
            Store::Postgres(pool) => migrator(Dialect::Postgres).run(pool).await?,
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }

    /// Registers a gateway or replaces its credential and geo; `revoked`
    /// `None` keeps the stored flag (a new gateway starts active).
    pub async fn upsert_gateway(
        &self,
        id: &str,
        salt: &[u8],
        hash: &[u8],
        geo: Option<Geo>,
        revoked: Option<bool>,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool, m => m::upsert_gateway(pool, id, salt, hash, geo, revoked).await)
    }

    /// Marks a gateway revoked; false if there is no such gateway.
    pub async fn revoke_gateway(&self, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, pool, m => m::revoke_gateway(pool, id).await)
    }

    pub async fn gateway(&self, id: &str) -> Result<Option<GatewayRecord>, StoreError> {
        on_backend!(self, pool, m => m::gateway(pool, id).await)
    }

    pub async fn upsert_sp(&self, sp: &SpRecord) -> Result<(), StoreError> {
        on_backend!(self, pool, m => m::upsert_sp(pool, sp).await)
    }

    pub async fn sp(&self, identity: &str) -> Result<Option<SpRecord>, StoreError> {
        on_backend!(self, pool, m => m::sp(pool, identity).await)
    }

    /// Inserts mapping rows that are not there yet (existing rows are left
    /// as they are, so restarting with the same config loses nothing) and
    /// records their gateways.
    pub async fn seed_mappings(&self, rows: &[MappingRow]) -> Result<usize, StoreError> {
        on_backend!(self, pool, m => m::seed_mappings(pool, rows).await)
    }

    pub async fn mapping(&self, device_id: &str) -> Result<Option<MappingRow>, StoreError> {
        on_backend!(self, pool, m => m::mapping(pool, device_id).await)
    }

    /// Records that `gateway_id` asked about `device_id` (idempotent).
    pub async fn add_device_gateway(&self, device_id: &str, gateway_id: &str) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let done = on_backend!(self, pool, m => m::add_device_gateway(pool, device_id, gateway_id).await);
        crate::metrics::store_commit("gateway_seen", started);
        done
    }

    /// The SP confirmed the current association: refresh `validated_at`, and
    /// fill in the access technology if the table did not know it.
    pub async fn mark_validated(&self, device_id: &str, at: i64, access: Option<&str>) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let done = on_backend!(self, pool, m => m::mark_validated(pool, device_id, at, access).await);
        crate::metrics::store_commit("validated", started);
        done
    }

    pub async fn history(&self, device_id: &str) -> Result<Vec<HistoryRow>, StoreError> {
        on_backend!(self, pool, m => m::history(pool, device_id).await)
    }

    /// Applies a change set in one transaction: replay check, authorization
    /// against the current associations (`authorize` gets `(device, current
    /// SP)` for every listed device), mapping upsert, history, outbox rows.
    pub async fn apply_changes<F>(&self, set: &ChangeSet, authorize: F) -> Result<ChangeOutcome, ChangeError>
    where
        F: FnOnce(&[(String, Option<String>)]) -> Result<(), String> + Send,
    {
        let started = std::time::Instant::now();
        let done = on_backend!(self, pool, m => m::apply_changes(pool, set, authorize).await);
        crate::metrics::store_commit("change_set", started);
        done
    }

    /// Outbox entries of a gateway with `seq > after`, in order.
    pub async fn outbox_after(&self, gateway_id: &str, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        on_backend!(self, pool, m => m::outbox_after(pool, gateway_id, after, limit).await)
    }

    /// Records that the gateway acknowledged every entry `≤ seq` (its
    /// acknowledged position: one row, O(log n) whatever the outbox holds)
    /// and, at most once per [`PRUNE_INTERVAL_MS`] per gateway, deletes up to
    /// [`PRUNE_CHUNK`] of its acknowledged entries older than `prune_before`.
    pub async fn ack(&self, gateway_id: &str, seq: i64, prune_before: i64) -> Result<(), AckError> {
        let started = std::time::Instant::now();
        let done = on_backend!(self, pool, m => m::ack(pool, gateway_id, seq, prune_before).await);
        crate::metrics::store_commit("ack", started);
        done
    }

    /// The last sequence number of each of `gateways` that exists.
    pub async fn last_seqs(&self, gateways: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self, pool, m => m::last_seqs(pool, gateways).await)
    }

    /// Every non-revoked gateway id.
    pub async fn active_gateways(&self) -> Result<Vec<String>, StoreError> {
        on_backend!(self, pool, m => m::active_gateways(pool).await)
    }
}
