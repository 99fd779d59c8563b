//! The gateway's durable table of the devices it serves.
//!
//! For every device the gateway knows: the manufacturer device id, its access
//! technology (once the device has said it), its unique identifier (SP
//! identity + device id + access technology, US 2017/0257341 claims 1 and 8),
//! where the device can be reached on the local link, its public key once
//! enrolled, its SP's endpoint and key as the control server last gave them
//! (resolve answers and pushed updates: withdrawals go to that endpoint and
//! re-binds hand both to the device), and whether the device itself still
//! has to be told about an SP change (`rebind_pending`).
//!
//! The store also keeps the position in the control server's update stream
//! (`last_seq`). Applying a batch of updates and advancing `last_seq` happen in
//! ONE transaction ([`GatewayStore::apply_updates`]), so a gateway killed
//! half-way through a large update finds after restart every identifier
//! either old or new, and resumes the stream exactly after the last update it
//! applied: nothing is lost and nothing is applied twice.
//!
//! Each applied update is also logged (`applied_updates`, for diagnosis).
//! Idempotence does not need the log, only `last_seq`, so the log keeps the
//! last [`APPLIED_LOG_KEPT`] updates and older rows are deleted in the same
//! transaction that applies a batch: a gateway that follows a busy stream
//! for years keeps a bounded file.
//!
//! One SQLite file in WAL mode with `synchronous=FULL`; writes are few (an
//! enrollment, a batch of pushed updates), so one connection behind a mutex,
//! used from blocking threads, is enough.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use sp_bound_id::{AccessTechnology, Eui, SpBoundId, SpIdentity};

mod in_doubt;
pub use in_doubt::InDoubt;

/// Why the gateway store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayStoreError {
    #[error("gateway store: SQLite failed while {during}: {reason}")]
    Sqlite { during: &'static str, reason: String },
    #[error("gateway store: a stored value is corrupt ({0})")]
    Corrupt(String),
    #[error("gateway store: the store thread panicked")]
    Panicked,
}

/// One device as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDevice {
    pub device_id: Eui,
    pub access: Option<AccessTechnology>,
    /// The current SP identity (also known before the access technology is).
    pub sp: Option<SpIdentity>,
    /// The unique identifier, once SP and access technology are both known.
    pub identifier: Option<SpBoundId>,
    /// `known` (resolved or pushed, not enrolled by this gateway), `enrolled`.
    pub state: DeviceStatus,
    /// Where the device's local link was reached.
    pub link_addr: Option<String>,
    /// The device's public key, hex, once enrolled.
    pub public_key: Option<String>,
    /// The SP changed and the device has not been told yet.
    pub rebind_pending: bool,
    /// The device's generation after the last enrollment or re-bind we saw.
    pub device_generation: Option<u64>,
    pub updated_at_ms: u64,
    /// Where the device's current SP is reached, as the control server said.
    #[serde(default)]
    pub sp_endpoint: Option<String>,
    /// The current SP's Ed25519 key (hex) that devices verify it with.
    #[serde(default)]
    pub sp_public_key: Option<String>,
}

/// Where a device stands with this gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Known,
    Enrolled,
}

/// One association change pushed by the control server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationUpdate {
    /// This gateway's sequence number for the change (dense, from 1).
    pub seq: u64,
    pub device_id: Eui,
    pub sp: SpIdentity,
    #[serde(default)]
    pub previous_sp: Option<SpIdentity>,
    #[serde(default)]
    pub access: Option<AccessTechnology>,
    #[serde(default)]
    pub message_id: Option<String>,
    /// The new SP's endpoint and device-facing key, when the event carries
    /// them: they replace what the device's record held.
    #[serde(default)]
    pub sp_endpoint: Option<String>,
    #[serde(default)]
    pub sp_public_key: Option<[u8; 32]>,
}

/// Why a pushed event could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Identifier(#[from] sp_bound_id::IdentifierError),
    #[error("sp_public_key is not 64 hex digits")]
    SpKey,
}

/// Reads an SP key as the control server writes it (64 hex digits).
pub fn parse_sp_key(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).ok().map(|()| key)
}

impl TryFrom<control_api::gateway::AssociationEvent> for AssociationUpdate {
    type Error = UpdateError;

    /// Reads the wire event into typed values: an event naming an invalid
    /// device id, SP, access technology or SP key is refused whole.
    fn try_from(e: control_api::gateway::AssociationEvent) -> Result<Self, Self::Error> {
        Ok(Self {
            sp_public_key: e.sp_public_key.as_deref().map(|k| parse_sp_key(k).ok_or(UpdateError::SpKey)).transpose()?,
            sp_endpoint: e.sp_endpoint,
            seq: e.seq,
            device_id: e.device_id.parse()?,
            sp: SpIdentity::new(&e.sp)?,
            previous_sp: e.previous_sp.as_deref().map(SpIdentity::new).transpose()?,
            access: e.access.as_deref().map(str::parse).transpose()?,
            message_id: Some(e.message_id),
        })
    }
}

/// What one [`GatewayStore::apply_updates`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Updates applied (the ones at or below `last_seq` are skipped).
    pub applied: usize,
    pub skipped: usize,
    /// Identifiers created for devices this gateway had not seen.
    pub created: usize,
    /// Enrolled devices that now need to be told (`rebind_pending`).
    pub rebinds: usize,
    pub last_seq: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    access TEXT,
    sp TEXT,
    identifier TEXT,
    state TEXT NOT NULL CHECK (state IN ('known', 'enrolled')),
    link_addr TEXT,
    public_key TEXT,
    rebind_pending INTEGER NOT NULL DEFAULT 0,
    device_generation INTEGER,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stream (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO stream (id, last_seq) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS applied_updates (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    sp TEXT NOT NULL,
    previous_sp TEXT,
    message_id TEXT,
    applied_at_ms INTEGER NOT NULL
);
";

/// Columns added after the first release, each with its definition: added
/// to an existing file when missing (SQLite has no `ADD COLUMN IF NOT EXISTS`).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Issue 12: the SP's endpoint and key come from the control server.
    ("devices", "sp_endpoint", "TEXT"),
    ("devices", "sp_public_key", "TEXT"),
    ("in_doubt", "sp_endpoint", "TEXT"),
];

fn add_missing_columns(conn: &Connection) -> Result<(), GatewayStoreError> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn
            .query_row(&format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"), [column], |r| {
                r.get::<_, i64>(0)
            })
            .during("reading the schema")?
            > 0;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))
                .during("adding a column to the schema")?;
        }
    }
    Ok(())
}

/// How many of the latest applied updates the `applied_updates` log keeps.
pub const APPLIED_LOG_KEPT: u64 = 10_000;

/// The gateway's device table.
#[derive(Clone)]
pub struct GatewayStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// [`APPLIED_LOG_KEPT`], smaller in tests.
    applied_log_kept: u64,
}

impl GatewayStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, GatewayStoreError> {
        let conn = Connection::open(path).during("opening the store")?;
        conn.pragma_update(None, "journal_mode", "WAL").during("switching to WAL")?;
        conn.pragma_update(None, "synchronous", "FULL").during("setting synchronous=FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).during("setting the busy timeout")?;
        conn.execute_batch(SCHEMA).during("creating the schema")?;
        conn.execute_batch(in_doubt::SCHEMA).during("creating the in-doubt table")?;
        add_missing_columns(&conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path: path.to_owned(), applied_log_kept: APPLIED_LOG_KEPT })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, GatewayStoreError> + Send + 'static,
    ) -> Result<T, GatewayStoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| GatewayStoreError::Panicked)?;
            f(&mut guard)
        })
        .await
        .map_err(|_| GatewayStoreError::Panicked)?
    }

    /// Records the SP the control server named for a device that appeared,
    /// with that SP's endpoint and key (replacing the ones held).
    /// No identifier yet: creates it. One exists: only its SP part changes.
    /// Returns the device's identifier.
    pub async fn record_resolved(
        &self,
        device: Eui,
        access: AccessTechnology,
        sp: SpIdentity,
        sp_endpoint: Option<String>,
        sp_public_key: Option<[u8; 32]>,
    ) -> Result<SpBoundId, GatewayStoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().during("starting a transaction")?;
            let existing = read_device(&tx, &device)?;
            let id = match existing.as_ref().and_then(|d| d.identifier.clone()) {
                Some(id) if id.access() == access => id.with_sp(sp.clone()),
                _ => SpBoundId::new(sp.clone(), device, access)
                    .map_err(|e| GatewayStoreError::Corrupt(format!("identifier for {device}: {e}")))?,
            };
            tx.execute(
                "INSERT INTO devices (device_id, access, sp, identifier, state, updated_at_ms, sp_endpoint, sp_public_key)
                 VALUES (?1, ?2, ?3, ?4, 'known', ?5, ?6, ?7)
                 ON CONFLICT (device_id) DO UPDATE SET access = ?2, sp = ?3, identifier = ?4, updated_at_ms = ?5,
                     sp_endpoint = ?6, sp_public_key = ?7",
                params![
                    device.to_string(),
                    access.as_str(),
                    sp.as_str(),
                    id.to_string(),
                    now_ms(),
                    sp_endpoint,
                    sp_public_key.map(hex::encode)
                ],
            )
            .during("recording a resolved device")?;
            tx.commit().during("committing a resolved device")?;
            Ok(id)
        })
        .await
    }

    /// Records a completed enrollment: identifier, key, where the device is;
    /// its in-doubt note goes in the same transaction. Returns the identifier
    /// recorded: the committed one, or, if a pushed update moved the device
    /// meanwhile, that SP's (and the device is marked for re-bind).
    pub async fn record_enrolled(
        &self,
        id: SpBoundId,
        public_key: [u8; 32],
        link_addr: Option<String>,
        generation: u64,
    ) -> Result<SpBoundId, GatewayStoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().during("starting a transaction")?;
            let id = in_doubt::write_committed(&tx, &id, public_key, link_addr, generation)?;
            tx.commit().during("committing an enrollment")?;
            Ok(id)
        })
        .await
    }

    /// Applies pushed association updates in one transaction together with
    /// the new stream position. Updates at or below the stored position were
    /// applied before (a replay after a restart) and are skipped.
    pub async fn apply_updates(&self, updates: Vec<AssociationUpdate>) -> Result<Applied, GatewayStoreError> {
        let kept = self.applied_log_kept;
        self.with(move |conn| {
            let tx = conn.transaction().during("starting a transaction")?;
            let mut last_seq: u64 =
                tx.query_row("SELECT last_seq FROM stream WHERE id = 1", [], |r| r.get::<_, i64>(0)).during("reading the stream position")? as u64;
            let mut applied = Applied::default();
            let now = now_ms();
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO devices (device_id, access, sp, identifier, state, updated_at_ms, sp_endpoint, sp_public_key)
                         VALUES (?1, ?2, ?3, ?4, 'known', ?5, ?6, ?7)
                         ON CONFLICT (device_id) DO UPDATE SET
                             access = COALESCE(?2, access), sp = ?3, identifier = ?4, updated_at_ms = ?5,
                             rebind_pending = (state = 'enrolled' AND COALESCE(sp, '') <> ?3) OR rebind_pending,
                             -- another SP: its details, or none; never the previous SP's
                             sp_endpoint = CASE WHEN COALESCE(sp, '') <> ?3 THEN ?6 ELSE COALESCE(?6, sp_endpoint) END,
                             sp_public_key = CASE WHEN COALESCE(sp, '') <> ?3 THEN ?7 ELSE COALESCE(?7, sp_public_key) END",
                    )
                    .during("preparing the update")?;
                let mut log = tx
                    .prepare_cached(
                        "INSERT INTO applied_updates (seq, device_id, sp, previous_sp, message_id, applied_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .during("preparing the update log")?;
                for update in updates {
                    if update.seq <= last_seq {
                        applied.skipped += 1;
                        continue;
                    }
                    let existing = read_device(&tx, &update.device_id)?;
                    let access = update.access.or(existing.as_ref().and_then(|d| d.access));
                    let identifier = match (existing.as_ref().and_then(|d| d.identifier.as_ref()), access) {
                        (Some(id), _) => Some(id.with_sp(update.sp.clone())),
                        (None, Some(access)) => SpBoundId::new(update.sp.clone(), update.device_id, access).ok(),
                        (None, None) => None,
                    };
                    match &existing {
                        None => applied.created += 1,
                        Some(d) if d.state == DeviceStatus::Enrolled && d.sp.as_ref() != Some(&update.sp) => {
                            applied.rebinds += 1
                        }
                        Some(_) => {}
                    }
                    upsert
                        .execute(params![
                            update.device_id.to_string(),
                            access.map(|a| a.as_str()),
                            update.sp.as_str(),
                            identifier.map(|i| i.to_string()),
                            now,
                            update.sp_endpoint,
                            update.sp_public_key.map(hex::encode)
                        ])
                        .during("applying an update")?;
                    log.execute(params![
                        update.seq as i64,
                        update.device_id.to_string(),
                        update.sp.as_str(),
                        update.previous_sp.as_ref().map(|s| s.as_str()),
                        update.message_id,
                        now
                    ])
                    .during("logging an update")?;
                    last_seq = update.seq;
                    applied.applied += 1;
                }
            }
            tx.execute("UPDATE stream SET last_seq = ?1 WHERE id = 1", params![last_seq as i64])
                .during("advancing the stream position")?;
            if applied.applied > 0 && last_seq > kept {
                tx.execute("DELETE FROM applied_updates WHERE seq <= ?1", params![(last_seq - kept) as i64])
                    .during("pruning the update log")?;
            }
            tx.commit().during("committing updates")?;
            applied.last_seq = last_seq;
            Ok(applied)
        })
        .await
    }

    /// The last stream sequence number applied.
    pub async fn last_seq(&self) -> Result<u64, GatewayStoreError> {
        self.with(|conn| {
            let v: i64 = conn
                .query_row("SELECT last_seq FROM stream WHERE id = 1", [], |r| r.get(0))
                .during("reading the stream position")?;
            Ok(v as u64)
        })
        .await
    }

    /// One device, if known.
    pub async fn device(&self, device: Eui) -> Result<Option<GatewayDevice>, GatewayStoreError> {
        self.with(move |conn| read_device(conn, &device)).await
    }

    /// Every device, ordered by id.
    pub async fn devices(&self) -> Result<Vec<GatewayDevice>, GatewayStoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_DEVICE} ORDER BY device_id")).during("listing devices")?;
            let rows = stmt.query_map([], row_to_raw).during("listing devices")?;
            rows.map(|r| r.during("reading a device").and_then(RawDevice::parse)).collect()
        })
        .await
    }

    /// Enrolled devices whose SP changed and that were not told yet.
    pub async fn pending_rebinds(&self) -> Result<Vec<GatewayDevice>, GatewayStoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(&format!("{SELECT_DEVICE} WHERE rebind_pending = 1 ORDER BY device_id"))
                .during("listing pending re-binds")?;
            let rows = stmt.query_map([], row_to_raw).during("listing pending re-binds")?;
            rows.map(|r| r.during("reading a device").and_then(RawDevice::parse)).collect()
        })
        .await
    }

    /// The device confirmed it now holds `id`. Clears `rebind_pending` only if
    /// the SP did not change again meanwhile.
    pub async fn rebind_done(&self, id: SpBoundId, generation: u64) -> Result<(), GatewayStoreError> {
        self.with(move |conn| {
            conn.execute(
                "UPDATE devices SET rebind_pending = 0, device_generation = ?3, updated_at_ms = ?4
                 WHERE device_id = ?1 AND identifier = ?2",
                params![id.device().to_string(), id.to_string(), generation as i64, now_ms()],
            )
            .during("recording a re-bind")?;
            Ok(())
        })
        .await
    }
}

const SELECT_DEVICE: &str = "SELECT device_id, access, sp, identifier, state, link_addr, public_key, rebind_pending,
                                    device_generation, updated_at_ms, sp_endpoint, sp_public_key FROM devices";

struct RawDevice {
    device_id: String,
    access: Option<String>,
    sp: Option<String>,
    identifier: Option<String>,
    state: String,
    link_addr: Option<String>,
    public_key: Option<String>,
    rebind_pending: bool,
    device_generation: Option<i64>,
    updated_at_ms: i64,
    sp_endpoint: Option<String>,
    sp_public_key: Option<String>,
}

fn row_to_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
    Ok(RawDevice {
        device_id: r.get(0)?,
        access: r.get(1)?,
        sp: r.get(2)?,
        identifier: r.get(3)?,
        state: r.get(4)?,
        link_addr: r.get(5)?,
        public_key: r.get(6)?,
        rebind_pending: r.get(7)?,
        device_generation: r.get(8)?,
        updated_at_ms: r.get(9)?,
        sp_endpoint: r.get(10)?,
        sp_public_key: r.get(11)?,
    })
}

impl RawDevice {
    fn parse(self) -> Result<GatewayDevice, GatewayStoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| GatewayStoreError::Corrupt(format!("{what}: {e}"));
        Ok(GatewayDevice {
            device_id: self.device_id.parse().map_err(|e| corrupt("device id", &e))?,
            access: self.access.map(|a| a.parse()).transpose().map_err(|e| corrupt("access", &e))?,
            sp: self.sp.map(|s| SpIdentity::new(&s)).transpose().map_err(|e| corrupt("sp", &e))?,
            identifier: self.identifier.map(|s| s.parse()).transpose().map_err(|e| corrupt("identifier", &e))?,
            state: match self.state.as_str() {
                "enrolled" => DeviceStatus::Enrolled,
                "known" => DeviceStatus::Known,
                other => return Err(corrupt("state", &other)),
            },
            link_addr: self.link_addr,
            public_key: self.public_key,
            rebind_pending: self.rebind_pending,
            device_generation: self.device_generation.map(|g| g as u64),
            updated_at_ms: self.updated_at_ms as u64,
            sp_endpoint: self.sp_endpoint,
            sp_public_key: self.sp_public_key,
        })
    }
}

fn read_device(conn: &Connection, device: &Eui) -> Result<Option<GatewayDevice>, GatewayStoreError> {
    // Cached: a batch of pushed updates reads every device it touches.
    conn.prepare_cached(&format!("{SELECT_DEVICE} WHERE device_id = ?1"))
        .during("reading a device")?
        .query_row(params![device.to_string()], row_to_raw)
        .optional()
        .during("reading a device")?
        .map(RawDevice::parse)
        .transpose()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

trait During<T> {
    fn during(self, during: &'static str) -> Result<T, GatewayStoreError>;
}

impl<T> During<T> for rusqlite::Result<T> {
    fn during(self, during: &'static str) -> Result<T, GatewayStoreError> {
        self.map_err(|e| GatewayStoreError::Sqlite { during, reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eui(s: &str) -> Eui {
        s.parse().expect("eui")
    }
    fn sp(s: &str) -> SpIdentity {
        SpIdentity::new(s).expect("sp")
    }
    fn update(seq: u64, device: &str, to: &str) -> AssociationUpdate {
        AssociationUpdate {
            seq,
            device_id: eui(device),
            sp: sp(to),
            previous_sp: None,
            access: None,
            message_id: None,
            sp_endpoint: None,
            sp_public_key: None,
        }
    }

    #[tokio::test]
    async fn resolve_creates_then_changes_only_the_sp_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = GatewayStore::open(&dir.path().join("gw.db")).expect("open");
        let d = eui("AC-DE-48-00-00-80");
        let first = store
            .record_resolved(d, AccessTechnology::Wifi, sp("sp-one.example"), Some("http://127.0.0.1:9001".into()), Some([1; 32]))
            .await
            .expect("first");
        assert_eq!(first.to_string(), "sp-one.example/wifi/AC-DE-48-00-00-80");
        let second = store.record_resolved(d, AccessTechnology::Wifi, sp("sp-two.example"), None, None).await.expect("second");
        assert_eq!(second, first.with_sp(sp("sp-two.example")));
        let known = store.device(d).await.expect("read").expect("known");
        assert_eq!(known.identifier, Some(second));
        assert_eq!((known.sp_endpoint, known.sp_public_key), (None, None), "sp-one's details went with it");
    }

    #[tokio::test]
    async fn pushed_updates_replace_the_sp_details_and_never_keep_the_old_sps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = GatewayStore::open(&dir.path().join("gw.db")).expect("open");
        let d = eui("AC-DE-48-00-00-80");
        let one = Some("http://127.0.0.1:9001".to_string());
        store.record_resolved(d, AccessTechnology::Wifi, sp("sp-one.example"), one.clone(), Some([1; 32])).await.expect("resolved");
        let details = |store: &GatewayStore| {
            let store = store.clone();
            async move {
                let known = store.device(d).await.expect("read").expect("known");
                (known.sp, known.sp_endpoint, known.sp_public_key)
            }
        };
        // The same SP again without details (an event stored before they were sent): kept.
        store.apply_updates(vec![update(1, "AC-DE-48-00-00-80", "sp-one.example")]).await.expect("apply");
        assert_eq!(details(&store).await, (Some(sp("sp-one.example")), one, Some(hex::encode([1; 32]))));
        // Another SP with its details: replaced.
        let two = Some("http://127.0.0.1:9002".to_string());
        let moved = AssociationUpdate { sp_endpoint: two.clone(), sp_public_key: Some([2; 32]), ..update(2, "AC-DE-48-00-00-80", "sp-two.example") };
        store.apply_updates(vec![moved]).await.expect("apply");
        assert_eq!(details(&store).await, (Some(sp("sp-two.example")), two, Some(hex::encode([2; 32]))));
        // Another SP without details: none, not sp-two's.
        store.apply_updates(vec![update(3, "AC-DE-48-00-00-80", "sp-three.example")]).await.expect("apply");
        assert_eq!(details(&store).await, (Some(sp("sp-three.example")), None, None));
    }

    #[tokio::test]
    async fn a_store_file_from_before_the_sp_details_is_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gw.db");
        {
            let conn = Connection::open(&path).expect("old file");
            conn.execute_batch(
                "CREATE TABLE devices (device_id TEXT PRIMARY KEY, access TEXT, sp TEXT, identifier TEXT,
                     state TEXT NOT NULL, link_addr TEXT, public_key TEXT, rebind_pending INTEGER NOT NULL DEFAULT 0,
                     device_generation INTEGER, updated_at_ms INTEGER NOT NULL);
                 INSERT INTO devices (device_id, sp, state, updated_at_ms) VALUES ('AC-DE-48-00-00-80', 'sp-one.example', 'known', 1);
                 CREATE TABLE in_doubt (device_id TEXT PRIMARY KEY, identifier TEXT NOT NULL, public_key TEXT NOT NULL,
                     link_addr TEXT NOT NULL, rebind INTEGER NOT NULL, since_ms INTEGER NOT NULL,
                     attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);",
            )
            .expect("old schema");
        }
        let store = GatewayStore::open(&path).expect("upgraded");
        let known = store.device(eui("AC-DE-48-00-00-80")).await.expect("read").expect("kept");
        assert_eq!((known.sp_endpoint, known.sp_public_key), (None, None));
        drop(store);
        GatewayStore::open(&path).expect("opening twice adds nothing twice");
    }

    #[tokio::test]
    async fn updates_apply_once_and_mark_enrolled_devices_for_rebind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gw.db");
        let store = GatewayStore::open(&path).expect("open");
        let enrolled = eui("AC-DE-48-00-00-80");
        let id = SpBoundId::new(sp("sp-one.example"), enrolled, AccessTechnology::Wifi).expect("id");
        store.record_enrolled(id.clone(), [9; 32], Some("127.0.0.1:1".into()), 1).await.expect("enrolled");

        let unseen = "00-1B-44-11-3A-B7";
        let applied = store
            .apply_updates(vec![update(1, "AC-DE-48-00-00-80", "sp-two.example"), update(2, unseen, "sp-two.example")])
            .await
            .expect("apply");
        assert_eq!((applied.applied, applied.created, applied.rebinds, applied.last_seq), (2, 1, 1, 2));
        let now = store.device(enrolled).await.expect("read").expect("known");
        assert_eq!(now.identifier, Some(id.with_sp(sp("sp-two.example"))));
        assert!(now.rebind_pending);
        let pushed = store.device(eui(unseen)).await.expect("read").expect("created");
        assert_eq!((pushed.sp, pushed.identifier), (Some(sp("sp-two.example")), None));

        // A replay after a restart changes nothing.
        drop(store);
        let store = GatewayStore::open(&path).expect("reopen");
        let again = store.apply_updates(vec![update(2, unseen, "sp-three.example")]).await.expect("replay");
        assert_eq!((again.applied, again.skipped, again.last_seq), (0, 1, 2));
        assert_eq!(store.device(eui(unseen)).await.expect("read").expect("known").sp, Some(sp("sp-two.example")));

        assert_eq!(store.pending_rebinds().await.expect("pending").len(), 1);
        store.rebind_done(id.with_sp(sp("sp-two.example")), 2).await.expect("done");
        assert!(store.pending_rebinds().await.expect("pending").is_empty());
    }

    /// The seqs the update log holds.
    async fn logged(store: &GatewayStore) -> Vec<u64> {
        store
            .with(|conn| {
                let mut stmt = conn.prepare("SELECT seq FROM applied_updates ORDER BY seq").during("listing the log")?;
                let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).during("listing the log")?;
                rows.map(|r| r.map(|s| s as u64).during("reading the log")).collect()
            })
            .await
            .expect("log")
    }

    #[tokio::test]
    async fn the_update_log_is_pruned_and_replays_stay_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = GatewayStore::open(&dir.path().join("gw.db")).expect("open");
        store.applied_log_kept = 3;
        let device = "AC-DE-48-00-00-80";
        let batch = |seqs: std::ops::RangeInclusive<u64>, to: &str| seqs.map(|n| update(n, device, to)).collect::<Vec<_>>();
        store.apply_updates(batch(1..=2, "sp-one.example")).await.expect("apply");
        assert_eq!(logged(&store).await, vec![1, 2], "below the limit nothing is pruned");
        store.apply_updates(batch(3..=10, "sp-two.example")).await.expect("apply");
        assert_eq!(logged(&store).await, vec![8, 9, 10], "only the last 3 are kept");
        // A replay of pruned and kept updates is still skipped: idempotence is the stream position.
        let again = store.apply_updates(batch(5..=10, "sp-three.example")).await.expect("replay");
        assert_eq!((again.applied, again.skipped, again.last_seq), (0, 6, 10));
        assert_eq!(store.device(eui(device)).await.expect("read").expect("known").sp, Some(sp("sp-two.example")));
        store.apply_updates(batch(11..=11, "sp-three.example")).await.expect("apply");
        assert_eq!(logged(&store).await, vec![9, 10, 11]);
    }
}
