//! What runs inside the writer's transaction: one function per operation.
//!
//! Each function here checks an operation's preconditions and writes it
//! with the same connection, inside the savepoint the writer opened for it
//! (`writer`), so nothing can change the device between the check and the
//! write. An `Err` from here makes the writer roll back that savepoint: the
//! device and the log stay exactly as they were. These functions neither
//! begin nor commit anything themselves.

use rusqlite::{Connection, OptionalExtension, params};

use sp_bound_id::{AccessTechnology, Eui, IdentifierError, SpBoundId};

use super::rows::{key32, parse_access, parse_identifier, to_u64};
use super::{CommitReceipt, During, Enrollment, LogKind, StoreError};

/// The row a commit or re-bind checks its preconditions against.
struct Current {
    access: AccessTechnology,
    generation: u64,
    sealed: bool,
    sp_bound_id: Option<String>,
    public_key: Option<Vec<u8>>,
    enrolled_by: Option<Vec<u8>>,
}

fn current(conn: &Connection, device: &Eui) -> Result<Current, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT access, generation, sealed, sp_bound_id, public_key, enrolled_by FROM device WHERE device_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([device.as_bytes()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<Vec<u8>>>(4)?,
                        row.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                })
                .optional()
        })
        .during("reading the device")?;
    let (access, generation, sealed, sp_bound_id, public_key, enrolled_by) =
        row.ok_or(StoreError::UnknownDevice(*device))?;
    Ok(Current {
        access: parse_access(&access, device)?,
        generation: to_u64(generation, "generation", device)?,
        sealed: sealed != 0,
        sp_bound_id,
        public_key,
        enrolled_by,
    })
}

pub(super) fn provision_in(conn: &Connection, devices: &[(Eui, AccessTechnology)], now: u64) -> Result<(), StoreError> {
    for &(device, access) in devices {
        if !access.accepts(device.kind()) {
            return Err(IdentifierError::EuiKindMismatch { access, kind: device.kind() }.into());
        }
        match current(conn, &device) {
            Ok(existing) if existing.access == access => continue,
            Ok(existing) => {
                return Err(StoreError::AlreadyProvisioned { device, provisioned: existing.access, requested: access });
            }
            Err(StoreError::UnknownDevice(_)) => {}
            Err(other) => return Err(other),
        }
        conn.prepare_cached("INSERT INTO device (device_id, access, provisioned_at_ms) VALUES (?1, ?2, ?3)")
            .and_then(|mut statement| statement.execute(params![device.as_bytes(), access.as_str(), to_i64(now)]))
            .during("provisioning a device")?;
    }
    Ok(())
}

pub(super) fn commit_in(conn: &Connection, e: &Enrollment, now: u64) -> Result<CommitReceipt, StoreError> {
    let device = e.device;
    let current = current(conn, &device)?;
    if current.generation != e.expected_generation {
        return Err(StoreError::Conflict { expected: e.expected_generation, found: current.generation });
    }
    if current.sealed && !e.allow_sealed {
        return Err(StoreError::Sealed(device));
    }
    check_identifier(&device, current.access, &e.sp_bound_id)?;

    let generation = current.generation + 1;
    let public_key = e.signing_key.verifying_key().to_bytes();
    let identifier = e.sp_bound_id.to_string();
    conn.prepare_cached(
        "UPDATE device SET
             generation = ?2,
             sealed = (sealed OR ?3),
             sp_bound_id = ?4,
             public_key = ?5,
             private_key = ?6,
             network = coalesce(?7, network),
             owner = coalesce(?8, owner),
             location = coalesce(?9, location),
             name = coalesce(?10, name),
             enrolled_by = ?11,
             enrolled_at_ms = ?12,
             enrollments = enrollments + 1,
             sp_endpoint = ?13,
             sp_public_key = ?14,
             operational_app = ?15,
             last_command_seq = 0
         WHERE device_id = ?1",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            device.as_bytes(),
            to_i64(generation),
            e.sealed,
            identifier,
            public_key,
            e.signing_key.to_bytes(),
            e.network,
            e.owner,
            e.location,
            e.name,
            e.enrolled_by,
            to_i64(now),
            e.sp_endpoint,
            e.sp_public_key,
            e.operational,
        ])
    })
    .during("writing the enrollment")?;
    conn.prepare_cached("DELETE FROM device_config WHERE device_id = ?1")
        .and_then(|mut statement| statement.execute([device.as_bytes()]))
        .during("replacing the configuration")?;
    conn.prepare_cached("DELETE FROM app_kept WHERE device_id = ?1")
        .and_then(|mut statement| statement.execute([device.as_bytes()]))
        .during("dropping what the previous operational app kept")?;
    for (name, value) in &e.config {
        conn.prepare_cached("INSERT INTO device_config (device_id, name, value) VALUES (?1, ?2, ?3)")
            .and_then(|mut statement| statement.execute(params![device.as_bytes(), name, value]))
            .during("writing the configuration")?;
    }
    append_log(conn, &device, generation, LogKind::Enroll, &identifier, &public_key, &e.enrolled_by, now)?;
    Ok(CommitReceipt { generation, sp_bound_id: e.sp_bound_id.clone(), public_key })
}

pub(super) fn rebind_in(
    conn: &Connection,
    device: Eui,
    new: &SpBoundId,
    (sp_endpoint, sp_public_key): (Option<&str>, Option<&[u8; 32]>),
    expected_generation: u64,
    now: u64,
) -> Result<CommitReceipt, StoreError> {
    let current = current(conn, &device)?;
    if current.generation != expected_generation {
        return Err(StoreError::Conflict { expected: expected_generation, found: current.generation });
    }
    let Some(old) = &current.sp_bound_id else {
        return Err(StoreError::NotEnrolled(device));
    };
    if !current.sealed {
        return Err(StoreError::NotSealed(device));
    }
    check_identifier(&device, current.access, new)?;
    let old: SpBoundId = parse_identifier(old, &device)?;
    if old.with_sp(new.sp().clone()) != *new {
        return Err(StoreError::Corrupt(format!("device {device}: stored identifier {old} names another device")));
    }
    let public_key = key32(current.public_key.as_deref(), "public key", &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device}: enrolled without a public key")))?;
    let enrolled_by = key32(current.enrolled_by.as_deref(), "enrolled_by", &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device}: enrolled without an assistant key")))?;

    let generation = current.generation + 1;
    let identifier = new.to_string();
    // The whole binding in one statement: the new SP's endpoint and key, or
    // none, but never the old SP's with the new identity.
    conn.prepare_cached(
        "UPDATE device SET generation = ?2, sp_bound_id = ?3, sp_endpoint = ?4, sp_public_key = ?5
         WHERE device_id = ?1",
    )
        .and_then(|mut statement| {
            statement.execute(params![device.as_bytes(), to_i64(generation), identifier, sp_endpoint, sp_public_key])
        })
        .during("re-binding the device")?;
    append_log(conn, &device, generation, LogKind::RebindSp, &identifier, &public_key, &enrolled_by, now)?;
    Ok(CommitReceipt { generation, sp_bound_id: new.clone(), public_key })
}

/// The identifier must name this device and the access technology it was
/// provisioned with.
pub(super) fn check_identifier(device: &Eui, provisioned: AccessTechnology, id: &SpBoundId) -> Result<(), StoreError> {
    if id.device() != device {
        return Err(StoreError::IdentifierMismatch { device: *device, identifier: *id.device() });
    }
    if id.access() != provisioned {
        return Err(StoreError::AccessMismatch { device: *device, provisioned, identifier: id.access() });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn append_log(
    conn: &Connection,
    device: &Eui,
    generation: u64,
    kind: LogKind,
    identifier: &str,
    public_key: &[u8; 32],
    enrolled_by: &[u8; 32],
    now: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO enrollment_log (device_id, generation, kind, sp_bound_id, public_key, enrolled_by, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            device.as_bytes(),
            to_i64(generation),
            kind.as_str(),
            identifier,
            hex::encode(public_key),
            hex::encode(enrolled_by),
            to_i64(now),
        ])
    })
    .map(drop)
    .during("appending to the enrollment log")
}

/// SQLite integers are signed; the counters and times here never reach 2^63.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::writer::unix_ms;
    use super::super::{DeviceState, LogEntry};
    use super::*;

    #[test]
    fn provision_registers_a_fresh_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        assert_eq!(store.state(&meter).expect("state"), None);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let fresh = DeviceState {
            device: meter,
            access: AccessTechnology::Wifi,
            generation: 0,
            sealed: false,
            sp_bound_id: None,
            public_key: None,
            network: None,
            owner: None,
            location: None,
            name: None,
            enrolled_by: None,
            enrolled_at: None,
            enrollments: 0,
            sp_endpoint: None,
            sp_public_key: None,
            config: Default::default(),
        };
        assert_eq!(store.state(&meter).expect("state"), Some(fresh.clone()));
        assert!(store.private_key(&meter).expect("private key").is_none());
        assert!(store.log(&meter).expect("log").is_empty());

        // Idempotent if identical...
        store.provision(meter, AccessTechnology::Wifi).expect("provision again");
        assert_eq!(store.state(&meter).expect("state"), Some(fresh));
        // ...refused with another access technology or an unusable EUI kind.
        assert!(matches!(
            store.provision(meter, AccessTechnology::Ethernet),
            Err(StoreError::AlreadyProvisioned {
                provisioned: AccessTechnology::Wifi,
                requested: AccessTechnology::Ethernet,
                ..
            })
        ));
        assert!(matches!(
            store.provision(eui(SENSOR), AccessTechnology::Wifi),
            Err(StoreError::Identifier(IdentifierError::EuiKindMismatch { .. }))
        ));
        assert_eq!(store.state(&eui(SENSOR)).expect("state"), None);
        assert!(matches!(store.private_key(&eui(SENSOR)), Err(StoreError::UnknownDevice(_))));
    }

    #[test]
    fn provision_many_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store.provision(eui(METER), AccessTechnology::Wifi).expect("provision");
        let result = store.provision_many([
            (fleet_eui(1), AccessTechnology::Wifi),
            (eui(METER), AccessTechnology::Ethernet),
            (fleet_eui(2), AccessTechnology::Wifi),
        ]);
        assert!(matches!(result, Err(StoreError::AlreadyProvisioned { .. })), "{result:?}");
        assert_eq!(store.state(&fleet_eui(1)).expect("state"), None);
        assert_eq!(store.state(&fleet_eui(2)).expect("state"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_is_durable_and_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sensor = eui(SENSOR);
        let e = enrollment(sensor, AccessTechnology::Zigbee, 0);
        let signing_key = e.signing_key.clone();
        let identifier = e.sp_bound_id.clone();
        let before = unix_ms();
        {
            let store = open(&dir);
            store.provision(sensor, AccessTechnology::Zigbee).expect("provision");
            let receipt = store.commit(e).await.expect("commit");
            assert_eq!(
                receipt,
                CommitReceipt {
                    generation: 1,
                    sp_bound_id: identifier.clone(),
                    public_key: signing_key.verifying_key().to_bytes()
                }
            );
        }
        // A new store on the same file (the old one and its writer are gone).
        let store = open(&dir);
        let state = store.state(&sensor).expect("state").expect("provisioned");
        let enrolled_at = state.enrolled_at.expect("enrolled_at");
        assert!(enrolled_at >= before && enrolled_at <= unix_ms(), "{enrolled_at}");
        assert_eq!(
            state,
            DeviceState {
                device: sensor,
                access: AccessTechnology::Zigbee,
                generation: 1,
                sealed: true,
                sp_bound_id: Some(identifier.clone()),
                public_key: Some(signing_key.verifying_key().to_bytes()),
                network: Some(b"\x01plant-3".to_vec()),
                owner: Some("ACME Utilities".into()),
                location: Some("geo:52.3676,4.9041".into()),
                name: Some("meter 1".into()),
                enrolled_by: Some(ASSISTANT),
                enrolled_at: Some(enrolled_at),
                enrollments: 1,
                sp_endpoint: Some("https://meters.sp-one.example/v1".into()),
                sp_public_key: Some([0x5B; 32]),
                config: [("report-interval".to_string(), b"900".to_vec())].into_iter().collect(),
            }
        );
        let log = store.log(&sensor).expect("log");
        assert_eq!(
            log,
            vec![LogEntry {
                device: sensor,
                generation: 1,
                kind: LogKind::Enroll,
                sp_bound_id: identifier,
                public_key: signing_key.verifying_key().to_bytes(),
                enrolled_by: ASSISTANT,
                at_ms: enrolled_at,
            }]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_precondition_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        let modem = eui("00-1B-63-84-45-E6");
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        store.provision(modem, AccessTechnology::Cellular).expect("provision");
        store.commit(enrollment(meter, AccessTechnology::Wifi, 0)).await.expect("first enrollment");

        // (enrollment, what must be refused) against the sealed meter at generation 1
        let stale = enrollment(meter, AccessTechnology::Wifi, 0);
        let sealed = enrollment(meter, AccessTechnology::Wifi, 1);
        let mut other_device = enrollment(meter, AccessTechnology::Wifi, 1);
        other_device.allow_sealed = true;
        other_device.sp_bound_id = id("sp.example", fleet_eui(9), AccessTechnology::Wifi);
        let mut unknown = enrollment(fleet_eui(9), AccessTechnology::Wifi, 0);
        unknown.allow_sealed = true;

        let before = snapshot(&store, &meter);
        let unknown_before = snapshot(&store, &fleet_eui(9));
        assert!(matches!(store.commit(stale).await, Err(StoreError::Conflict { expected: 0, found: 1 })));
        assert!(matches!(store.commit(sealed).await, Err(StoreError::Sealed(d)) if d == meter));
        assert!(matches!(
            store.commit(other_device).await,
            Err(StoreError::IdentifierMismatch { device, identifier }) if device == meter && identifier == fleet_eui(9)
        ));
        assert!(matches!(store.commit(unknown).await, Err(StoreError::UnknownDevice(d)) if d == fleet_eui(9)));
        assert!(matches!(
            store.rebind_sp(meter, id("sp.example", meter, AccessTechnology::Wifi), None, None, 0).await,
            Err(StoreError::Conflict { expected: 0, found: 1 })
        ));
        assert_eq!(snapshot(&store, &meter), before);
        assert_eq!(snapshot(&store, &fleet_eui(9)), unknown_before);

        // The cellular modem: an identifier for the same EUI over Wi-Fi.
        let modem_before = snapshot(&store, &modem);
        let wrong_access = enrollment(modem, AccessTechnology::Wifi, 0);
        assert!(matches!(
            store.commit(wrong_access).await,
            Err(StoreError::AccessMismatch {
                provisioned: AccessTechnology::Cellular,
                identifier: AccessTechnology::Wifi,
                ..
            })
        ));
        assert_eq!(snapshot(&store, &modem), modem_before);
        assert_eq!(store.stats().failed_batches, 0, "precondition failures are not batch failures");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealed_device_is_enrolled_again_only_when_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let meter = eui(METER);
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let first = store.commit(enrollment(meter, AccessTechnology::Wifi, 0)).await.expect("enroll");
        assert!(store.state(&meter).expect("state").expect("provisioned").sealed);

        let refused = enrollment(meter, AccessTechnology::Wifi, 1);
        assert!(matches!(store.commit(refused).await, Err(StoreError::Sealed(_))));

        // An authorized re-bind with only some fields: the rest are kept, and
        // `sealed: false` does not unseal.
        let mut rebind = enrollment(meter, AccessTechnology::Wifi, 1);
        rebind.allow_sealed = true;
        rebind.sealed = false;
        rebind.sp_bound_id = id("310-410", meter, AccessTechnology::Wifi);
        rebind.network = None;
        rebind.owner = None;
        rebind.location = Some("warehouse 2".into());
        rebind.name = None;
        rebind.enrolled_by = [9; 32];
        let new_key = rebind.signing_key.verifying_key().to_bytes();
        let second = store.commit(rebind).await.expect("authorized re-bind");
        assert_eq!(second.generation, 2);
        assert_ne!(second.public_key, first.public_key);

        let state = store.state(&meter).expect("state").expect("provisioned");
        assert_eq!(state.generation, 2);
        assert_eq!(state.enrollments, 2);
        assert!(state.sealed);
        assert_eq!(state.sp_bound_id, Some(id("310-410", meter, AccessTechnology::Wifi)));
        assert_eq!(state.public_key, Some(new_key));
        assert_eq!(state.network, Some(b"\x01plant-3".to_vec()));
        assert_eq!(state.owner.as_deref(), Some("ACME Utilities"));
        assert_eq!(state.location.as_deref(), Some("warehouse 2"));
        assert_eq!(state.name.as_deref(), Some("meter 1"));
        assert_eq!(state.enrolled_by, Some([9; 32]));
        let log = store.log(&meter).expect("log");
        assert_eq!(log.iter().map(|entry| entry.generation).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(log[1].public_key, new_key);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebind_sp_replaces_the_whole_binding_and_only_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let sensor = eui(SENSOR);
        let meter = eui(METER);
        store.provision(sensor, AccessTechnology::Zigbee).expect("provision");
        store.provision(meter, AccessTechnology::Wifi).expect("provision");
        let new_id = id("new-sp.example", sensor, AccessTechnology::Zigbee);

        assert!(matches!(
            store.rebind_sp(sensor, new_id.clone(), None, None, 0).await,
            Err(StoreError::NotEnrolled(d)) if d == sensor
        ));
        let mut unsealed = enrollment(sensor, AccessTechnology::Zigbee, 0);
        unsealed.sealed = false;
        store.commit(unsealed).await.expect("enroll without sealing");
        assert!(matches!(store.rebind_sp(sensor, new_id.clone(), None, None, 1).await, Err(StoreError::NotSealed(_))));
        store.commit(enrollment(sensor, AccessTechnology::Zigbee, 1)).await.expect("enroll and seal");
        assert!(matches!(
            store.rebind_sp(fleet_eui(3), id("new-sp.example", fleet_eui(3), AccessTechnology::Wifi), None, None, 0).await,
            Err(StoreError::UnknownDevice(_))
        ));
        assert!(matches!(
            store.rebind_sp(sensor, id("new-sp.example", meter, AccessTechnology::Wifi), None, None, 2).await,
            Err(StoreError::IdentifierMismatch { .. })
        ));
        let cellular = id("new-sp.example", sensor, AccessTechnology::Cellular);
        assert!(matches!(store.rebind_sp(sensor, cellular, None, None, 2).await, Err(StoreError::AccessMismatch { .. })));

        let before = store.state(&sensor).expect("state").expect("provisioned");
        let endpoint = "https://devices.new-sp.example/v1".to_string();
        let receipt = store.rebind_sp(sensor, new_id.clone(), Some(endpoint.clone()), Some([0x77; 32]), 2).await.expect("re-bind");
        assert_eq!(receipt.generation, 3);
        assert_eq!(receipt.sp_bound_id, new_id);
        assert_eq!(Some(receipt.public_key), before.public_key);
        let after = store.state(&sensor).expect("state").expect("provisioned");
        // Only the SP binding changed, all of it: identity, endpoint and key are the new SP's.
        assert!(before.sp_endpoint.is_some() && before.sp_public_key.is_some());
        assert_ne!(before.sp_public_key, Some([0x77; 32]));
        assert_eq!(
            after,
            DeviceState {
                generation: 3,
                sp_bound_id: Some(new_id.clone()),
                sp_endpoint: Some(endpoint),
                sp_public_key: Some([0x77; 32]),
                ..before.clone()
            }
        );
        // A new SP that gave no endpoint or key: none is stored, the previous SP's never stays.
        let third = id("third-sp.example", sensor, AccessTechnology::Zigbee);
        store.rebind_sp(sensor, third.clone(), None, None, 3).await.expect("re-bind without details");
        let bare = store.state(&sensor).expect("state").expect("provisioned");
        assert_eq!((bare.sp_bound_id, bare.sp_endpoint, bare.sp_public_key), (Some(third), None, None));
        // A refused re-bind changes none of the three.
        let refused = store.rebind_sp(sensor, new_id.clone(), Some("https://x.example".into()), Some([1; 32]), 3).await;
        assert!(matches!(refused, Err(StoreError::Conflict { .. })));
        let unchanged = store.state(&sensor).expect("state").expect("provisioned");
        assert_eq!((unchanged.sp_endpoint, unchanged.sp_public_key, unchanged.generation), (None, None, 4));
        let log = store.log(&sensor).expect("log");
        let last = log.iter().find(|entry| entry.generation == 3).expect("logged");
        assert_eq!((last.generation, last.kind, &last.sp_bound_id), (3, LogKind::RebindSp, &new_id));
        assert_eq!(Some(last.public_key), before.public_key);
        assert_eq!(Some(last.enrolled_by), before.enrolled_by);
    }
}
