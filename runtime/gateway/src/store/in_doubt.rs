//! Enrollments whose outcome the gateway does not know yet.
//!
//! Before the gateway relays a device's identity to its SP (and so before it
//! sends `Commit`), it writes an `in_doubt` row: the identity and key the
//! device staged and where the device is. The row goes when the outcome is
//! known: in the same transaction that records the committed enrollment
//! ([`GatewayStore::record_enrolled`], [`GatewayStore::settle_committed`]),
//! or once the SP has been told to drop a key no device committed
//! ([`GatewayStore::settle_rolled_back`]). A gateway killed anywhere in
//! between finds the row after restart and asks the device.

use rusqlite::{Connection, params};
use serde::Serialize;

use sp_bound_id::{Eui, SpBoundId, SpIdentity};

use super::{During, GatewayStore, GatewayStoreError, now_ms, read_device};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS in_doubt (
    device_id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL,
    public_key TEXT NOT NULL,
    link_addr TEXT NOT NULL,
    rebind INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
";

/// An enrollment the device may or may not have committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    pub device_id: Eui,
    /// What the device staged and the SP was (or was about to be) told.
    pub identifier: SpBoundId,
    #[serde(serialize_with = "hex_key")]
    pub public_key: [u8; 32],
    pub link_addr: String,
    /// A second enrollment of a sealed device.
    pub rebind: bool,
    /// Where the SP was reached (the endpoint the control server gave for
    /// this enrollment): a withdrawal goes there, even if the device has
    /// moved to another SP since.
    pub sp_endpoint: Option<String>,
    pub since_ms: u64,
    /// Times the gateway asked the device and got no answer.
    pub attempts: u64,
    pub last_error: Option<String>,
}

fn hex_key<S: serde::Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(key))
}

impl GatewayStore {
    /// Notes durably that the device at `link_addr` may commit `identifier`
    /// with `public_key`, relayed to the SP at `sp_endpoint` (replacing an
    /// older note for the same device).
    pub async fn record_in_doubt(
        &self,
        identifier: SpBoundId,
        public_key: [u8; 32],
        link_addr: String,
        rebind: bool,
        sp_endpoint: Option<String>,
    ) -> Result<(), GatewayStoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO in_doubt (device_id, identifier, public_key, link_addr, rebind, since_ms, sp_endpoint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    identifier.device().to_string(),
                    identifier.to_string(),
                    hex::encode(public_key),
                    link_addr,
                    rebind,
                    now_ms(),
                    sp_endpoint
                ],
            )
            .during("noting an enrollment in doubt")?;
            Ok(())
        })
        .await
    }

    /// Every enrollment in doubt, oldest first.
    pub async fn in_doubt(&self) -> Result<Vec<InDoubt>, GatewayStoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT device_id, identifier, public_key, link_addr, rebind, since_ms, attempts, last_error, sp_endpoint
                     FROM in_doubt ORDER BY since_ms, device_id",
                )
                .during("listing enrollments in doubt")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
                })
                .during("listing enrollments in doubt")?;
            let corrupt = |what: &str, e: &dyn std::fmt::Display| GatewayStoreError::Corrupt(format!("in_doubt {what}: {e}"));
            rows.map(|row| {
                let (device, identifier, key, link_addr, rebind, since, attempts, last_error, sp_endpoint) =
                    row.during("reading an enrollment in doubt")?;
                let mut public_key = [0u8; 32];
                hex::decode_to_slice(&key, &mut public_key).map_err(|e| corrupt("public key", &e))?;
                Ok(InDoubt {
                    device_id: device.parse().map_err(|e| corrupt("device id", &e))?,
                    identifier: identifier.parse().map_err(|e| corrupt("identifier", &e))?,
                    public_key,
                    link_addr,
                    rebind,
                    sp_endpoint,
                    since_ms: since as u64,
                    attempts: attempts as u64,
                    last_error,
                })
            })
            .collect()
        })
        .await
    }

    /// Forgets `device`: its record and any enrollment in doubt of it, in one
    /// transaction (`gateway device reset`).
    pub async fn forget(&self, device: Eui) -> Result<(), GatewayStoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().during("starting a transaction")?;
            tx.execute("DELETE FROM in_doubt WHERE device_id = ?1", params![device.to_string()])
                .during("forgetting a device's enrollment in doubt")?;
            tx.execute("DELETE FROM devices WHERE device_id = ?1", params![device.to_string()])
                .during("forgetting a device")?;
            tx.commit().during("committing a reset")?;
            Ok(())
        })
        .await
    }

    /// The device was asked and could not answer; it stays in doubt.
    pub async fn in_doubt_unanswered(&self, device: Eui, error: String) -> Result<(), GatewayStoreError> {
        self.with(move |conn| {
            conn.execute(
                "UPDATE in_doubt SET attempts = attempts + 1, last_error = ?2 WHERE device_id = ?1",
                params![device.to_string(), error],
            )
            .during("counting an unanswered status request")?;
            Ok(())
        })
        .await
    }

    /// The device showed it committed `note`'s key as `committed` at
    /// `generation`: record the enrollment and forget the note, in one
    /// transaction. Returns the identifier recorded (see `write_committed`).
    pub async fn settle_committed(
        &self,
        note: &InDoubt,
        committed: SpBoundId,
        generation: u64,
    ) -> Result<SpBoundId, GatewayStoreError> {
        let (key, addr) = (note.public_key, note.link_addr.clone());
        self.with(move |conn| {
            let tx = conn.transaction().during("starting a transaction")?;
            let id = write_committed(&tx, &committed, key, Some(addr), generation)?;
            tx.commit().during("committing a settled enrollment")?;
            Ok(id)
        })
        .await
    }

    /// The device did not commit `note` and its SP has been told to drop the
    /// key: forget the note (only if it is still this one).
    pub async fn settle_rolled_back(&self, note: &InDoubt) -> Result<(), GatewayStoreError> {
        let (device, key) = (note.device_id, hex::encode(note.public_key));
        self.with(move |conn| {
            conn.execute("DELETE FROM in_doubt WHERE device_id = ?1 AND public_key = ?2", params![device.to_string(), key])
                .during("forgetting an enrollment that did not commit")?;
            Ok(())
        })
        .await
    }
}

/// Records a committed enrollment and drops its in-doubt note, inside `conn`'s
/// transaction. If the SP of the device changed while it was enrolling (a
/// pushed update landed between resolve and commit), the gateway's SP wins
/// and the device is marked for re-bind: the device committed the old SP,
/// and the control server has since moved it. Returns what is recorded.
pub(super) fn write_committed(
    conn: &Connection,
    committed: &SpBoundId,
    public_key: [u8; 32],
    link_addr: Option<String>,
    generation: u64,
) -> Result<SpBoundId, GatewayStoreError> {
    let device: Eui = *committed.device();
    let current: Option<SpIdentity> = read_device(conn, &device)?.and_then(|d| d.sp);
    let (id, rebind_pending) = match current {
        Some(sp) if &sp != committed.sp() => (committed.with_sp(sp), true),
        _ => (committed.clone(), false),
    };
    conn.execute(
        "INSERT INTO devices (device_id, access, sp, identifier, state, link_addr, public_key,
                              rebind_pending, device_generation, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, 'enrolled', ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (device_id) DO UPDATE SET access = ?2, sp = ?3, identifier = ?4, state = 'enrolled',
             link_addr = ?5, public_key = ?6, rebind_pending = ?7, device_generation = ?8, updated_at_ms = ?9",
        params![
            device.to_string(),
            id.access().as_str(),
            id.sp().as_str(),
            id.to_string(),
            link_addr,
            hex::encode(public_key),
            rebind_pending,
            generation as i64,
            now_ms()
        ],
    )
    .during("recording an enrollment")?;
    conn.execute("DELETE FROM in_doubt WHERE device_id = ?1", params![device.to_string()])
        .during("forgetting the enrollment's in-doubt note")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use sp_bound_id::AccessTechnology;

    use super::*;
    use crate::store::AssociationUpdate;

    fn meter() -> Eui {
        "AC-DE-48-00-00-80".parse().expect("valid EUI")
    }

    fn staged(sp: &str) -> SpBoundId {
        SpBoundId::new(SpIdentity::new(sp).expect("valid SP"), meter(), AccessTechnology::Wifi).expect("valid id")
    }

    #[tokio::test]
    async fn a_note_survives_a_restart_and_goes_with_the_recorded_enrollment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gw.db");
        let store = GatewayStore::open(&path).expect("open");
        store.record_in_doubt(staged("sp-one.example"), [7; 32], "127.0.0.1:9".into(), false, None).await.expect("note");
        drop(store);

        let store = GatewayStore::open(&path).expect("reopen");
        let notes = store.in_doubt().await.expect("list");
        assert_eq!(notes.len(), 1);
        assert_eq!((notes[0].device_id, notes[0].public_key, notes[0].link_addr.as_str()), (meter(), [7; 32], "127.0.0.1:9"));
        store.in_doubt_unanswered(meter(), "connection refused".into()).await.expect("count");
        assert_eq!(store.in_doubt().await.expect("list")[0].attempts, 1);

        store.record_enrolled(staged("sp-one.example"), [7; 32], Some("127.0.0.1:9".into()), 1).await.expect("record");
        assert!(store.in_doubt().await.expect("list").is_empty(), "recording the enrollment drops its note");
    }

    #[tokio::test]
    async fn a_rollback_forgets_only_the_note_it_settled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = GatewayStore::open(&dir.path().join("gw.db")).expect("open");
        store.record_in_doubt(staged("sp-one.example"), [7; 32], "127.0.0.1:9".into(), false, None).await.expect("note");
        let old = store.in_doubt().await.expect("list").remove(0);
        // A newer enrollment of the same device replaced the note meanwhile.
        store.record_in_doubt(staged("sp-one.example"), [8; 32], "127.0.0.1:9".into(), false, None).await.expect("note");
        store.settle_rolled_back(&old).await.expect("settle");
        let left = store.in_doubt().await.expect("list");
        assert_eq!(left.len(), 1, "the newer note stays");
        assert_eq!(left[0].public_key, [8; 32]);
    }

    #[tokio::test]
    async fn a_device_moved_while_in_doubt_is_recorded_under_its_new_sp_and_marked_for_rebind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = GatewayStore::open(&dir.path().join("gw.db")).expect("open");
        store
            .record_resolved(meter(), AccessTechnology::Wifi, SpIdentity::new("sp-one.example").expect("sp"), None, None)
            .await
            .expect("resolved");
        store.record_in_doubt(staged("sp-one.example"), [7; 32], "127.0.0.1:9".into(), false, None).await.expect("note");
        let pushed = AssociationUpdate {
            seq: 1,
            device_id: meter(),
            sp: SpIdentity::new("sp-two.example").expect("sp"),
            previous_sp: None,
            access: None,
            message_id: None,
            sp_endpoint: None,
            sp_public_key: None,
        };
        store.apply_updates(vec![pushed]).await.expect("push");

        let note = store.in_doubt().await.expect("list").remove(0);
        let recorded = store.settle_committed(&note, staged("sp-one.example"), 1).await.expect("settle");
        assert_eq!(recorded, staged("sp-two.example"));
        let device = store.device(meter()).await.expect("read").expect("known");
        assert!(device.rebind_pending, "the device holds sp-one and must be told");
        assert_eq!(device.public_key.as_deref(), Some(hex::encode([7; 32]).as_str()));
        assert_eq!(store.pending_rebinds().await.expect("pending").len(), 1);
        assert!(store.in_doubt().await.expect("list").is_empty());
    }
}
