//! Reading rows back: decoding what SQLite returns into the store's types.
//!
//! The file is trusted only as far as it checks out. Everything read here is
//! decoded and checked (access technologies and identifiers parse, keys are
//! 32 bytes, counters are not negative, a stored identifier names its own
//! device), and anything this runtime would never have written is reported
//! as [`StoreError::Corrupt`] instead of being handed on.

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension};

use sp_bound_id::{AccessTechnology, Eui, SpBoundId};

use super::ops::check_identifier;
use super::{DeviceState, During, LogEntry, LogKind, StoreError};

pub(super) fn read_state(conn: &Connection, device: &Eui) -> Result<Option<DeviceState>, StoreError> {
    type Raw = (
        String,
        i64,
        i64,
        Option<String>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        Option<i64>,
        i64,
        Option<String>,
        Option<Vec<u8>>,
    );
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT access, generation, sealed, sp_bound_id, public_key, network, owner, location, name,
                    enrolled_by, enrolled_at_ms, enrollments, sp_endpoint, sp_public_key
             FROM device WHERE device_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([device.as_bytes()], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                        row.get(10)?,
                        row.get(11)?,
                        row.get(12)?,
                        row.get(13)?,
                    ))
                })
                .optional()
        })
        .during("reading the device state")?;
    let Some((access, generation, sealed, id, public_key, network, owner, location, name, by, at, enrollments, endpoint, sp_key)) =
        raw
    else {
        return Ok(None);
    };
    let access = parse_access(&access, device)?;
    let sp_bound_id = id.map(|id| parse_identifier(&id, device)).transpose()?;
    if let Some(id) = &sp_bound_id {
        check_identifier(device, access, id)
            .map_err(|e| StoreError::Corrupt(format!("device {device}: stored identifier: {e}")))?;
    }
    Ok(Some(DeviceState {
        device: *device,
        access,
        generation: to_u64(generation, "generation", device)?,
        sealed: sealed != 0,
        sp_bound_id,
        public_key: key32(public_key.as_deref(), "public key", device)?,
        network,
        owner,
        location,
        name,
        enrolled_by: key32(by.as_deref(), "enrolled_by", device)?,
        enrolled_at: at.map(|at| to_u64(at, "enrolled_at_ms", device)).transpose()?,
        enrollments: to_u64(enrollments, "enrollments", device)?,
        sp_endpoint: endpoint,
        sp_public_key: key32(sp_key.as_deref(), "SP public key", device)?,
        config: read_config(conn, device)?,
    }))
}

fn read_config(conn: &Connection, device: &Eui) -> Result<std::collections::BTreeMap<String, Vec<u8>>, StoreError> {
    conn.prepare_cached("SELECT name, value FROM device_config WHERE device_id = ?1 ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([device.as_bytes()], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?)))?
                .collect()
        })
        .during("reading the configuration")
}

pub(super) fn read_private_key(conn: &Connection, device: &Eui) -> Result<Option<SigningKey>, StoreError> {
    type Keys = (Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<Keys> = conn
        .prepare_cached("SELECT private_key, public_key FROM device WHERE device_id = ?1")
        .and_then(|mut statement| {
            statement.query_row([device.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        })
        .during("reading the private key")?;
    let (secret, public) = row.ok_or(StoreError::UnknownDevice(*device))?;
    let Some(secret) = key32(secret.as_deref(), "private key", device)? else {
        return Ok(None);
    };
    let key = SigningKey::from_bytes(&secret);
    if key32(public.as_deref(), "public key", device)? != Some(key.verifying_key().to_bytes()) {
        return Err(StoreError::Corrupt(format!("device {device}: the stored public key is not the private key's")));
    }
    Ok(Some(key))
}

pub(super) fn read_log(conn: &Connection, device: &Eui) -> Result<Vec<LogEntry>, StoreError> {
    type Raw = (i64, String, String, String, String, i64);
    let rows: Vec<Raw> = conn
        .prepare_cached(
            "SELECT generation, kind, sp_bound_id, public_key, enrolled_by, at_ms
             FROM enrollment_log WHERE device_id = ?1 ORDER BY generation",
        )
        .and_then(|mut statement| {
            statement
                .query_map([device.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
                })?
                .collect()
        })
        .during("reading the enrollment log")?;
    rows.into_iter()
        .map(|(generation, kind, id, public_key, enrolled_by, at)| {
            let kind = match kind.as_str() {
                "enroll" => LogKind::Enroll,
                "rebind-sp" => LogKind::RebindSp,
                other => return Err(StoreError::Corrupt(format!("device {device}: log entry of kind {other:?}"))),
            };
            Ok(LogEntry {
                device: *device,
                generation: to_u64(generation, "log generation", device)?,
                kind,
                sp_bound_id: parse_identifier(&id, device)?,
                public_key: hex32(&public_key, "logged public key", device)?,
                enrolled_by: hex32(&enrolled_by, "logged enrolled_by", device)?,
                at_ms: to_u64(at, "log time", device)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Conversions; anything unexpected in the file is `Corrupt`.

pub(super) fn parse_access(text: &str, device: &Eui) -> Result<AccessTechnology, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("device {device}: stored access technology: {e}")))
}

pub(super) fn parse_identifier(text: &str, device: &Eui) -> Result<SpBoundId, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("device {device}: stored identifier {text:?}: {e}")))
}

pub(super) fn key32(bytes: Option<&[u8]>, what: &str, device: &Eui) -> Result<Option<[u8; 32]>, StoreError> {
    bytes
        .map(|b| {
            <[u8; 32]>::try_from(b).map_err(|_| {
                StoreError::Corrupt(format!("device {device}: stored {what} is {} bytes, not 32", b.len()))
            })
        })
        .transpose()
}

fn hex32(text: &str, what: &str, device: &Eui) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|e| StoreError::Corrupt(format!("device {device}: {what} {text:?}: {e}")))?;
    Ok(out)
}

pub(super) fn to_u64(value: i64, what: &str, device: &Eui) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("device {device}: negative {what} {value}")))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, Verifier};

    use super::super::DeviceStore;
    use super::super::schema::BUSY_TIMEOUT;
    use super::super::testing::*;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_private_key_round_trips_and_matches_the_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let e = enrollment(meter, AccessTechnology::Wifi, 0);
        let original = e.signing_key.to_bytes();
        let receipt = store.commit(e).await.expect("commit");
        let key = store.private_key(&meter).expect("read").expect("enrolled");
        assert_eq!(key.to_bytes(), original);
        assert_eq!(key.verifying_key().to_bytes(), receipt.public_key);
        let public = ed25519_dalek::VerifyingKey::from_bytes(
            &store.state(&meter).expect("state").expect("provisioned").public_key.expect("public key"),
        )
        .expect("valid public key");
        let signature = key.sign(b"hello from the device");
        assert!(public.verify(b"hello from the device", &signature).is_ok());
        assert!(public.verify(b"something else", &signature).is_err());
    }

    #[test]
    fn corrupt_rows_are_reported_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.sqlite");
        let store = DeviceStore::open(&path).expect("open");
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let raw = Connection::open(&path).expect("raw");
        raw.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
        raw.execute("UPDATE device SET sp_bound_id = 'sp.example/wifi/ac-de-48-00-00-80'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE device SET sp_bound_id = 'sp.example/wifi/AC-DE-48-00-00-81'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE device SET sp_bound_id = NULL, access = 'carrier-pigeon'", []).expect("corrupt");
        assert!(matches!(store.state(&meter), Err(StoreError::Corrupt(_))));
    }
}
