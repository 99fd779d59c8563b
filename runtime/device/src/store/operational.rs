//! What the device keeps for its operational app.
//!
//! The app itself (stored by the enrollment's commit, so an enrolled device
//! always has the app its label carried, or none), the values the app keeps
//! between activations (`settings.keep`), and two sequence numbers: the
//! newest SP command the host accepted (an older or equal one is a replay and
//! is dropped) and the newest message the device sent (each message gets a
//! larger one, so an SP can refuse a replayed message). Each activation ends
//! with one transaction ([`DeviceStore::finish_activation`]): a device that
//! loses power mid-activation keeps what the previous one left, whole.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use sp_bound_id::Eui;

use super::{DeviceStore, During, StoreError};

/// The operational app of a device and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationalState {
    /// The component (world `operational`).
    pub app: Vec<u8>,
    pub kept: BTreeMap<String, Vec<u8>>,
    pub last_command_seq: u64,
    pub last_message_seq: u64,
}

/// What one activation leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRecord {
    pub device: Eui,
    /// Everything the app keeps now (replaces the stored set).
    pub kept: BTreeMap<String, Vec<u8>>,
    /// Sequence numbers only move forward: a smaller one is ignored.
    pub last_command_seq: u64,
    pub last_message_seq: u64,
}

pub(super) fn read_operational(conn: &Connection, device: &Eui) -> Result<Option<OperationalState>, StoreError> {
    let row: Option<(Option<Vec<u8>>, i64, i64)> = conn
        .prepare_cached("SELECT operational_app, last_command_seq, last_message_seq FROM device WHERE device_id = ?1")
        .and_then(|mut s| s.query_row([device.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
        .during("reading the operational app")?;
    let Some((Some(app), command, message)) = row else { return Ok(None) };
    let mut kept = BTreeMap::new();
    let mut statement =
        conn.prepare_cached("SELECT name, value FROM app_kept WHERE device_id = ?1").during("reading kept values")?;
    let rows = statement
        .query_map([device.as_bytes()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .during("reading kept values")?;
    for row in rows {
        let (name, value) = row.during("reading a kept value")?;
        kept.insert(name, value);
    }
    Ok(Some(OperationalState { app, kept, last_command_seq: command as u64, last_message_seq: message as u64 }))
}

pub(super) fn finish_activation_in(conn: &Connection, record: &ActivationRecord) -> Result<(), StoreError> {
    let device = record.device.as_bytes();
    let changed = conn
        .prepare_cached(
            "UPDATE device SET last_command_seq = max(last_command_seq, ?2), last_message_seq = max(last_message_seq, ?3)
             WHERE device_id = ?1 AND operational_app IS NOT NULL",
        )
        .and_then(|mut s| {
            s.execute(params![device, record.last_command_seq as i64, record.last_message_seq as i64])
        })
        .during("recording an activation")?;
    if changed == 0 {
        return Err(StoreError::UnknownDevice(record.device));
    }
    conn.prepare_cached("DELETE FROM app_kept WHERE device_id = ?1")
        .and_then(|mut s| s.execute([device]))
        .during("replacing kept values")?;
    for (name, value) in &record.kept {
        conn.prepare_cached("INSERT INTO app_kept (device_id, name, value) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![device, name, value]))
            .during("keeping a value")?;
    }
    Ok(())
}

impl DeviceStore {
    /// The device's operational app and what it keeps, `None` if its
    /// enrollment carried no app (or it is not enrolled).
    pub fn operational(&self, device: &Eui) -> Result<Option<OperationalState>, StoreError> {
        self.read(|conn| read_operational(conn, device))
    }

    /// Records what an activation left behind, durably, in one transaction.
    pub fn finish_activation(
        &self,
        record: ActivationRecord,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, done) = tokio::sync::oneshot::channel();
        let sent = self.send(super::writer::Job::FinishActivation { record: Box::new(record), reply });
        async move {
            sent?;
            done.await.map_err(|_| StoreError::WriterGone)?
        }
    }
}
