//! The file's layout and how connections to it are opened.
//!
//! Everything that decides what the file looks like on disk is here, in one
//! place: the tables, [`SCHEMA_VERSION`] and the migrations that reach it,
//! and the pragmas every connection is opened with. The write connection
//! gets WAL mode and `synchronous=FULL` (what makes a returned commit
//! durable, see the module docs of `store`); read connections are
//! `query_only`, so a read can never write by mistake.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{During, StoreError};

/// The schema version this runtime writes (SQLite `user_version`).
pub const SCHEMA_VERSION: i64 = 3;

/// How long a connection waits for a lock held by another process.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order: `MIGRATIONS[n]` takes the schema from version `n`
/// to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE device (
        device_id         BLOB PRIMARY KEY CHECK (length(device_id) IN (6, 8)),
        access            TEXT NOT NULL,
        generation        INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
        sealed            INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1)),
        sp_bound_id       TEXT,
        public_key        BLOB CHECK (length(public_key) = 32),
        private_key       BLOB CHECK (length(private_key) = 32),
        network           BLOB,
        owner             TEXT,
        location          TEXT,
        name              TEXT,
        enrolled_by       BLOB CHECK (length(enrolled_by) = 32),
        enrolled_at_ms    INTEGER,
        enrollments       INTEGER NOT NULL DEFAULT 0 CHECK (enrollments >= 0),
        provisioned_at_ms INTEGER NOT NULL,
        CHECK ((public_key IS NULL) = (private_key IS NULL))
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE enrollment_log (
        device_id   BLOB NOT NULL REFERENCES device (device_id),
        generation  INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'rebind-sp')),
        sp_bound_id TEXT NOT NULL,
        public_key  TEXT NOT NULL,
        enrolled_by TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        PRIMARY KEY (device_id, generation)
    ) STRICT, WITHOUT ROWID;
    ",
    // Version 2: the SP binding's endpoint and key (WIT 0.2's service-provider
    // item), and the configuration values an enrollment stages.
    "
    ALTER TABLE device ADD COLUMN sp_endpoint TEXT;
    ALTER TABLE device ADD COLUMN sp_public_key BLOB CHECK (length(sp_public_key) = 32);

    CREATE TABLE device_config (
        device_id BLOB NOT NULL REFERENCES device (device_id),
        name      TEXT NOT NULL,
        value     BLOB NOT NULL,
        PRIMARY KEY (device_id, name)
    ) STRICT, WITHOUT ROWID;
    ",
    // Version 3: the operational app (issue 12), what it keeps between
    // activations, and the newest SP command and device message sequence
    // numbers (a replayed command is dropped; messages never reuse one).
    "
    ALTER TABLE device ADD COLUMN operational_app BLOB;
    ALTER TABLE device ADD COLUMN last_command_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_command_seq >= 0);
    ALTER TABLE device ADD COLUMN last_message_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_message_seq >= 0);

    CREATE TABLE app_kept (
        device_id BLOB NOT NULL REFERENCES device (device_id),
        name      TEXT NOT NULL,
        value     BLOB NOT NULL,
        PRIMARY KEY (device_id, name)
    ) STRICT, WITHOUT ROWID;
    ",
];

/// Opens the only write connection: WAL mode with `synchronous=FULL`,
/// foreign keys on, the busy timeout, and the schema migrated to
/// [`SCHEMA_VERSION`].
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut writer = Connection::open(path).during("opening the store")?;
    let journal: String = writer
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .during("switching to WAL mode")?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal { journal_mode: journal });
    }
    writer.pragma_update(None, "synchronous", "FULL").during("setting synchronous=FULL")?;
    writer.pragma_update(None, "foreign_keys", true).during("enabling foreign keys")?;
    writer.busy_timeout(BUSY_TIMEOUT).during("setting the busy timeout")?;
    writer.set_prepared_statement_cache_capacity(32);
    migrate(&mut writer)?;
    Ok(writer)
}

/// Opens a read connection (`query_only`); in WAL mode it sees the last
/// committed state and never waits for the writer.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).during("opening a read connection")?;
    conn.busy_timeout(BUSY_TIMEOUT).during("setting the busy timeout")?;
    conn.pragma_update(None, "query_only", true).during("making a read connection read-only")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a new file at once migrate it once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).during("starting the migration")?;
    let version: i64 =
        tx.pragma_query_value(None, "user_version", |row| row.get(0)).during("reading the schema version")?;
    let supported = MIGRATIONS.len() as i64;
    debug_assert_eq!(supported, SCHEMA_VERSION);
    let from = usize::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema version {version}")))?;
    if version > supported {
        return Err(StoreError::UnsupportedSchema { found: version, supported });
    }
    for (to, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql).during("migrating the schema")?;
        tx.pragma_update(None, "user_version", to as i64 + 1).during("recording the schema version")?;
    }
    tx.commit().during("committing the migration")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeviceStore;

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        drop(DeviceStore::open(&path).expect("create"));
        let raw = Connection::open(&path).expect("raw");
        raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
        drop(raw);
        assert!(matches!(
            DeviceStore::open(&path),
            Err(StoreError::UnsupportedSchema { found, supported: SCHEMA_VERSION }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn opening_sets_durable_wal_mode_and_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        let store = DeviceStore::open(&path).expect("create");
        let raw = Connection::open(&path).expect("raw");
        let journal: String = raw.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("journal");
        assert_eq!(journal, "wal");
        let version: i64 = raw.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        drop(store);
        // Reopening an up-to-date file migrates nothing.
        DeviceStore::open(&path).expect("reopen");
    }
}
