//! The SQL of the store, written once and instantiated for each backend
//! (`sqlite`, `postgres`) by a macro, because sqlx's executor traits are
//! concrete per database. `$N` placeholders work in both.
//!
//! Bulk writes use multi-row `VALUES` statements of a fixed number of rows,
//! prepared once and reused, so a 100,000-device change is a few hundred
//! executions in one transaction rather than 100,000 round trips.

macro_rules! backend {
    ($modname:ident, $db:ty, $pool:ty, begin = $begin:literal, serialize = $serialize:literal, notify = $notify:literal, bulk = $bulk:ident) => {
        pub mod $modname {
            use std::collections::{BTreeMap, HashMap};

            use control_api::gateway::{AssociationEvent, Geo};
            use sqlx::{QueryBuilder, Row};

            use super::$bulk as bulk;

            use crate::store::{
                AckError, ChangeError, ChangeOutcome, ChangeSet, GatewayRecord, HistoryRow, MappingRow, OutboxRow,
                SpRecord, StoreError,
            };

            type Db = $db;
            type Pool = $pool;
            /// Rows per multi-row statement. Small enough that SQLite/PostgreSQL parse
            /// it cheaply, and constant so a full chunk's statement is prepared once and
            /// reused from sqlx's statement cache (giant one-off statements cost more in
            /// parsing and allocation than they save in round trips).
            const ROWS_PER_STATEMENT: usize = 256;

            fn corrupt(what: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(what.to_string())
            }

            pub async fn upsert_gateway(
                pool: &Pool,
                id: &str,
                salt: &[u8],
                hash: &[u8],
                geo: Option<Geo>,
                revoked: Option<bool>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO gateways (id, credential_salt, credential_hash, revoked, geo_lat, geo_lon, last_seq, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7) \
                     ON CONFLICT (id) DO UPDATE SET credential_salt = excluded.credential_salt, \
                       credential_hash = excluded.credential_hash, geo_lat = excluded.geo_lat, geo_lon = excluded.geo_lon, \
                       revoked = CASE WHEN $8 THEN excluded.revoked ELSE gateways.revoked END",
                )
                .bind(id)
                .bind(salt)
                .bind(hash)
                .bind(revoked.unwrap_or(false))
                .bind(geo.map(|g| g.lat))
                .bind(geo.map(|g| g.lon))
                .bind(crate::clock::now_ms())
                .bind(revoked.is_some())
                .execute(pool)
                .await?;
                Ok(())
            }

            pub async fn revoke_gateway(pool: &Pool, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE gateways SET revoked = $1 WHERE id = $2")
                    .bind(true)
                    .bind(id)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            pub async fn gateway(pool: &Pool, id: &str) -> Result<Option<GatewayRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, credential_salt, credential_hash, revoked, geo_lat, geo_lon, last_seq FROM gateways WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let lat: Option<f64> = row.try_get(4)?;
                let lon: Option<f64> = row.try_get(5)?;
                Ok(Some(GatewayRecord {
                    id: row.try_get(0)?,
                    credential_salt: row.try_get(1)?,
                    credential_hash: row.try_get(2)?,
                    revoked: row.try_get(3)?,
                    geo: lat.zip(lon).map(|(lat, lon)| Geo { lat, lon }),
                    last_seq: row.try_get(6)?,
                }))
            }

            pub async fn active_gateways(pool: &Pool) -> Result<Vec<String>, StoreError> {
                let rows = sqlx::query("SELECT id FROM gateways WHERE revoked = $1 ORDER BY id")
                    .bind(false)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| r.try_get(0).map_err(StoreError::from)).collect()
            }

            pub async fn upsert_sp(pool: &Pool, sp: &SpRecord) -> Result<(), StoreError> {
                let move_to = serde_json::to_string(&sp.may_move_to).map_err(corrupt)?;
                sqlx::query(
                    "INSERT INTO sps (identity, base_url, public_key, may_release, may_claim, may_move_to, endpoint, device_public_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (identity) DO UPDATE SET base_url = excluded.base_url, public_key = excluded.public_key, \
                       may_release = excluded.may_release, may_claim = excluded.may_claim, may_move_to = excluded.may_move_to, \
                       endpoint = excluded.endpoint, device_public_key = excluded.device_public_key",
                )
                .bind(sp.identity.as_str())
                .bind(sp.base_url.as_str())
                .bind(sp.public_key.as_slice())
                .bind(sp.may_release)
                .bind(sp.may_claim)
                .bind(move_to)
                .bind(sp.endpoint.as_deref())
                .bind(sp.device_public_key.as_deref())
                .execute(pool)
                .await?;
                Ok(())
            }

            pub async fn sp(pool: &Pool, identity: &str) -> Result<Option<SpRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT identity, base_url, public_key, may_release, may_claim, may_move_to, endpoint, device_public_key \
                     FROM sps WHERE identity = $1",
                )
                .bind(identity)
                .fetch_optional(pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let move_to: String = row.try_get(5)?;
                Ok(Some(SpRecord {
                    identity: row.try_get(0)?,
                    base_url: row.try_get(1)?,
                    public_key: row.try_get(2)?,
                    may_release: row.try_get(3)?,
                    may_claim: row.try_get(4)?,
                    may_move_to: serde_json::from_str(&move_to).map_err(corrupt)?,
                    endpoint: row.try_get(6)?,
                    device_public_key: row.try_get(7)?,
                }))
            }

            pub async fn seed_mappings(pool: &Pool, rows: &[MappingRow]) -> Result<usize, StoreError> {
                let mut tx = pool.begin_with($begin).await?;
                let mut inserted = 0;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<Db>::new(
                        "INSERT INTO mapping (device_id, sp, service_type, access, created_at, updated_at, validated_at) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.device_id.as_str())
                            .push_bind(r.sp.as_str())
                            .push_bind(r.service_type.as_deref())
                            .push_bind(r.access.as_deref())
                            .push_bind(r.created_at)
                            .push_bind(r.updated_at)
                            .push_bind(r.validated_at);
                    });
                    qb.push(" ON CONFLICT (device_id) DO NOTHING");
                    inserted += qb.build().execute(&mut *tx).await?.rows_affected() as usize;
                }
                let pairs: Vec<(&str, &str)> = rows
                    .iter()
                    .flat_map(|r| r.gateways.iter().map(move |g| (r.device_id.as_str(), g.as_str())))
                    .collect();
                for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<Db>::new("INSERT INTO mapping_gateways (device_id, gateway_id) ");
                    qb.push_values(chunk, |mut b, (d, g)| {
                        b.push_bind(*d).push_bind(*g);
                    });
                    qb.push(" ON CONFLICT (device_id, gateway_id) DO NOTHING");
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            pub async fn mapping(pool: &Pool, device_id: &str) -> Result<Option<MappingRow>, StoreError> {
                let row = sqlx::query(
                    "SELECT device_id, sp, service_type, access, created_at, updated_at, validated_at FROM mapping WHERE device_id = $1",
                )
                .bind(device_id)
                .fetch_optional(pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let gateways =
                    sqlx::query("SELECT gateway_id FROM mapping_gateways WHERE device_id = $1 ORDER BY gateway_id")
                        .bind(device_id)
                        .fetch_all(pool)
                        .await?
                        .iter()
                        .map(|r| r.try_get::<String, _>(0))
                        .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(MappingRow {
                    device_id: row.try_get(0)?,
                    sp: row.try_get(1)?,
                    service_type: row.try_get(2)?,
                    access: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                    updated_at: row.try_get(5)?,
                    validated_at: row.try_get(6)?,
                    gateways,
                }))
            }

            pub async fn add_device_gateway(pool: &Pool, device_id: &str, gateway_id: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO mapping_gateways (device_id, gateway_id) VALUES ($1, $2) \
                     ON CONFLICT (device_id, gateway_id) DO NOTHING",
                )
                .bind(device_id)
                .bind(gateway_id)
                .execute(pool)
                .await?;
                Ok(())
            }

            pub async fn mark_validated(
                pool: &Pool,
                device_id: &str,
                at: i64,
                access: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE mapping SET validated_at = $1, access = COALESCE(access, $2) WHERE device_id = $3",
                )
                .bind(at)
                .bind(access)
                .bind(device_id)
                .execute(pool)
                .await?;
                Ok(())
            }

            pub async fn history(pool: &Pool, device_id: &str) -> Result<Vec<HistoryRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT device_id, old_sp, new_sp, changed_by, message_id, at FROM history WHERE device_id = $1 ORDER BY id",
                )
                .bind(device_id)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(HistoryRow {
                            device_id: row.try_get(0)?,
                            old_sp: row.try_get(1)?,
                            new_sp: row.try_get(2)?,
                            changed_by: row.try_get(3)?,
                            message_id: row.try_get(4)?,
                            at: row.try_get(5)?,
                        })
                    })
                    .collect()
            }

            pub async fn apply_changes<F>(
                pool: &Pool,
                set: &ChangeSet,
                authorize: F,
            ) -> Result<ChangeOutcome, ChangeError>
            where
                F: FnOnce(&[(String, Option<String>)]) -> Result<(), String> + Send,
            {
                let started = std::time::Instant::now();
                let mut phases: Vec<(&'static str, std::time::Duration)> = Vec::new();
                let mut mark = |name: &'static str| phases.push((name, started.elapsed()));
                let mut tx = pool.begin_with($begin).await?;
                if !$serialize.is_empty() {
                    sqlx::query($serialize).execute(&mut *tx).await?;
                }
                mark("begin");

                if let Some((nonce, sender)) = &set.nonce {
                    sqlx::query("DELETE FROM seen_nonces WHERE seen_at < $1")
                        .bind(set.prune_nonces_before)
                        .execute(&mut *tx)
                        .await?;
                    let fresh = sqlx::query(
                        "INSERT INTO seen_nonces (nonce, sender, seen_at) VALUES ($1, $2, $3) ON CONFLICT (nonce) DO NOTHING",
                    )
                    .bind(nonce.as_slice())
                    .bind(sender.as_str())
                    .bind(set.at)
                    .execute(&mut *tx)
                    .await?;
                    if fresh.rows_affected() == 0 {
                        return Err(ChangeError::Replayed);
                    }
                }

                // The current associations and the active gateways recorded against them, in
                // one pass. Change sets are serialized (see `serialize`), so this stays true
                // until commit.
                let mut current: HashMap<String, (String, Option<String>)> = HashMap::with_capacity(set.devices.len());
                let mut device_gateways: HashMap<String, Vec<String>> = HashMap::new();
                let mut access: HashMap<String, String> = HashMap::new();
                for (device, sp, service_type, gateway, tech) in bulk::read_current(&mut *tx, &set.devices).await? {
                    if let Some(gateway) = gateway {
                        device_gateways.entry(device.clone()).or_default().push(gateway);
                    }
                    if let Some(tech) = tech {
                        access.entry(device.clone()).or_insert(tech);
                    }
                    current.entry(device).or_insert((sp, service_type));
                }
                let listing: Vec<(String, Option<String>)> =
                    set.devices.iter().map(|d| (d.clone(), current.get(d).map(|c| c.0.clone()))).collect();
                mark("read current");
                authorize(&listing).map_err(ChangeError::NotAuthorized)?;

                struct Change<'a> {
                    device: &'a str,
                    old_sp: Option<&'a str>,
                    service_type: Option<&'a str>,
                }
                let mut changes: Vec<Change<'_>> = Vec::with_capacity(set.devices.len());
                let mut created = 0;
                for d in &set.devices {
                    match current.get(d) {
                        Some((sp, st)) => {
                            let service_type = set.service_type.as_deref().or(st.as_deref());
                            if *sp == set.new_sp && service_type == st.as_deref() {
                                continue;
                            }
                            changes.push(Change { device: d, old_sp: Some(sp), service_type });
                        }
                        None => {
                            created += 1;
                            changes.push(Change { device: d, old_sp: None, service_type: set.service_type.as_deref() });
                        }
                    }
                }

                let mapping_rows: Vec<(&str, Option<&str>)> = changes.iter().map(|c| (c.device, c.service_type)).collect();
                bulk::upsert_mapping(&mut *tx, &mapping_rows, &set.new_sp, set.at).await?;
                let history_rows: Vec<(&str, Option<&str>)> = changes.iter().map(|c| (c.device, c.old_sp)).collect();
                bulk::insert_history(&mut *tx, &history_rows, &set.new_sp, &set.changed_by, &set.message_id, set.at).await?;
                mark("mapping + history");
                // Who hears about it.
                let mut per_gateway: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                if set.push.associated {
                    for (i, c) in changes.iter().enumerate() {
                        if c.old_sp.is_some()
                            && let Some(gateways) = device_gateways.get(c.device)
                        {
                            for g in gateways {
                                per_gateway.entry(g.clone()).or_default().push(i);
                            }
                        }
                    }
                }
                if set.push.unseen_to_all && created > 0 {
                    let gateways = sqlx::query("SELECT id FROM gateways WHERE revoked = $1")
                        .bind(false)
                        .fetch_all(&mut *tx)
                        .await?;
                    let unseen: Vec<usize> =
                        changes.iter().enumerate().filter(|(_, c)| c.old_sp.is_none()).map(|(i, _)| i).collect();
                    let events = gateways.len().saturating_mul(unseen.len());
                    if events > set.push.max_events {
                        return Err(ChangeError::FanoutTooLarge { events, limit: set.push.max_events });
                    }
                    for row in gateways {
                        per_gateway.entry(row.try_get(0)?).or_default().extend(unseen.iter().copied());
                    }
                }
                let events: usize = per_gateway.values().map(Vec::len).sum();
                if events > set.push.max_events {
                    return Err(ChangeError::FanoutTooLarge { events, limit: set.push.max_events });
                }

                mark("targets");
                // Dense per-gateway sequence numbers, reserved under the gateway rows' write lock.
                let mut gateway_seqs: BTreeMap<String, i64> = BTreeMap::new();
                let counts: Vec<(&str, i64)> =
                    per_gateway.iter().map(|(g, v)| (g.as_str(), v.len() as i64)).collect();
                for chunk in counts.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<Db>::new("WITH v (id, n) AS (");
                    qb.push_values(chunk, |mut b, (g, n)| {
                        b.push_bind(*g).push_bind(*n);
                    });
                    qb.push(
                        ") UPDATE gateways SET last_seq = last_seq + (SELECT v.n FROM v WHERE v.id = gateways.id) \
                         WHERE id IN (SELECT v.id FROM v) RETURNING id, last_seq",
                    );
                    for row in qb.build().fetch_all(&mut *tx).await? {
                        gateway_seqs.insert(row.try_get(0)?, row.try_get(1)?);
                    }
                }
                let changed_at = crate::clock::rfc3339(set.at);
                // What the devices need to reach their new SP, read in this transaction
                // so every event carries the details the SP had when the change committed.
                let (sp_endpoint, sp_public_key) = if events > 0 {
                    let row = sqlx::query("SELECT endpoint, COALESCE(device_public_key, public_key) FROM sps WHERE identity = $1")
                        .bind(set.new_sp.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    match row {
                        Some(row) => (row.try_get::<Option<String>, _>(0)?, Some(hex::encode(row.try_get::<Vec<u8>, _>(1)?))),
                        None => (None, None),
                    }
                } else {
                    (None, None)
                };
                let mut rows: Vec<(&str, i64, String)> = Vec::with_capacity(events);
                for (gateway, devices) in &per_gateway {
                    let Some(&last) = gateway_seqs.get(gateway) else {
                        return Err(corrupt(format!("gateway {gateway} vanished while its sequence was reserved")).into());
                    };
                    let first = last - devices.len() as i64 + 1;
                    for (k, &i) in devices.iter().enumerate() {
                        let c = &changes[i];
                        let event = AssociationEvent {
                            seq: (first + k as i64) as u64,
                            device_id: c.device.to_owned(),
                            sp: set.new_sp.clone(),
                            previous_sp: c.old_sp.map(str::to_owned),
                            service_type: c.service_type.map(str::to_owned),
                            access: access.get(c.device).cloned(),
                            changed_at: changed_at.clone(),
                            message_id: set.message_id.clone(),
                            sp_endpoint: sp_endpoint.clone(),
                            sp_public_key: sp_public_key.clone(),
                        };
                        let payload = serde_json::to_string(&event).map_err(corrupt)?;
                        rows.push((gateway.as_str(), first + k as i64, payload));
                    }
                }
                bulk::insert_outbox(&mut *tx, &rows, set.at).await?;
                mark("outbox");
                if !$notify.is_empty() {
                    // Delivered to every replica's listener on commit, never
                    // before, never for a rolled-back change (`crate::replicas`).
                    for notice in crate::replicas::notices(&gateway_seqs, &set.devices) {
                        sqlx::query($notify).bind(crate::replicas::CHANNEL).bind(notice).execute(&mut *tx).await?;
                    }
                    mark("notify");
                }
                tx.commit().await?;
                mark("commit");
                tracing::debug!(devices = set.devices.len(), events, ?phases, "change set applied");
                Ok(ChangeOutcome { changed: changes.len(), created, events, gateway_seqs })
            }

            pub async fn outbox_after(
                pool: &Pool,
                gateway_id: &str,
                after: i64,
                limit: i64,
            ) -> Result<Vec<OutboxRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT seq, payload FROM outbox WHERE gateway_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(gateway_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| Ok(OutboxRow { seq: r.try_get(0)?, payload: r.try_get(1)? }))
                    .collect()
            }

            /// The last sequence number of each of `gateways` (one query).
            pub async fn last_seqs(pool: &Pool, gateways: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
                let mut out = Vec::with_capacity(gateways.len());
                for chunk in gateways.chunks(ROWS_PER_STATEMENT * 2) {
                    let mut qb = QueryBuilder::<Db>::new("SELECT id, last_seq FROM gateways WHERE id IN (");
                    let mut ids = qb.separated(", ");
                    for g in chunk {
                        ids.push_bind(g.as_str());
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(pool).await? {
                        out.push((row.try_get(0)?, row.try_get(1)?));
                    }
                }
                Ok(out)
            }

            pub async fn ack(pool: &Pool, gateway_id: &str, seq: i64, prune_before: i64) -> Result<(), AckError> {
                let now_ms = crate::clock::now_ms();
                let mut tx = pool.begin_with($begin).await.map_err(StoreError::from)?;
                let last: Option<i64> = sqlx::query("SELECT last_seq FROM gateways WHERE id = $1")
                    .bind(gateway_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(StoreError::from)?;
                let last = last.unwrap_or(0);
                if seq > last {
                    return Err(AckError::BeyondLast { seq, last });
                }
                // The acknowledged position only moves forward (an old ack
                // arriving late changes nothing). One row: O(log n).
                let row = sqlx::query(
                    "INSERT INTO outbox_acks (gateway_id, acked_seq, pruned_at) VALUES ($1, $2, 0) \
                     ON CONFLICT (gateway_id) DO UPDATE SET acked_seq = CASE \
                       WHEN excluded.acked_seq > outbox_acks.acked_seq THEN excluded.acked_seq \
                       ELSE outbox_acks.acked_seq END \
                     RETURNING acked_seq, pruned_at",
                )
                .bind(gateway_id)
                .bind(seq)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                let acked: i64 = row.try_get(0).map_err(StoreError::from)?;
                let pruned_at: i64 = row.try_get(1).map_err(StoreError::from)?;
                if now_ms.saturating_sub(pruned_at) >= crate::store::PRUNE_INTERVAL_MS {
                    // Bounded: the first PRUNE_CHUNK acknowledged entries by
                    // key order, of which the old enough ones go.
                    sqlx::query(
                        "DELETE FROM outbox WHERE gateway_id = $1 AND created_at < $3 AND seq IN \
                         (SELECT seq FROM outbox WHERE gateway_id = $1 AND seq <= $2 ORDER BY seq LIMIT $4)",
                    )
                    .bind(gateway_id)
                    .bind(acked)
                    .bind(prune_before)
                    .bind(crate::store::PRUNE_CHUNK)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                    sqlx::query("UPDATE outbox_acks SET pruned_at = $2 WHERE gateway_id = $1")
                        .bind(gateway_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(())
            }
        }
    };
}

// SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a deferred
// transaction that reads first can fail to upgrade): one writer at a time.
backend!(
    sqlite,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    begin = "BEGIN IMMEDIATE",
    serialize = "",
    notify = "",
    bulk = sqlite_bulk
);

// PostgreSQL: a transaction-scoped advisory lock makes change sets from all
// replicas take turns, so the associations read for authorization stay
// current until commit and per-gateway sequence numbers never interleave
// (row locks on 100,000 mapping rows cost more than they buy; changes are rare).
backend!(
    postgres,
    sqlx::Postgres,
    sqlx::PgPool,
    begin = "BEGIN",
    serialize = "SELECT pg_advisory_xact_lock(7243501)",
    notify = "SELECT pg_notify($1, $2)",
    bulk = postgres_bulk
);

/// One row of the current associations: device, SP, service type, and one
/// active gateway recorded against the device (a device with several
/// gateways has several rows; one with none has `None`).
/// device id, SP, service type, an active gateway recorded against it, access technology.
pub type CurrentRow = (String, String, Option<String>, Option<String>, Option<String>);

const CURRENT_SQL: &str = "SELECT m.device_id, m.sp, m.service_type, g.id, m.access FROM mapping m \
     LEFT JOIN mapping_gateways mg ON mg.device_id = m.device_id \
     LEFT JOIN gateways g ON g.id = mg.gateway_id AND g.revoked = ";

/// SQLite bulk statements: fixed-size multi-row `VALUES` (no arrays in SQLite).
pub mod sqlite_bulk {
    use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

    use super::{CURRENT_SQL, CurrentRow};

    const ROWS_PER_STATEMENT: usize = 256;
    const IDS_PER_STATEMENT: usize = 512;

    pub async fn read_current(conn: &mut SqliteConnection, devices: &[String]) -> Result<Vec<CurrentRow>, sqlx::Error> {
        let mut out = Vec::with_capacity(devices.len());
        for chunk in devices.chunks(IDS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(CURRENT_SQL);
            qb.push_bind(false);
            qb.push(" WHERE m.device_id IN (");
            let mut ids = qb.separated(", ");
            for d in chunk {
                ids.push_bind(d.as_str());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&mut *conn).await? {
                out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?));
            }
        }
        Ok(out)
    }

    pub async fn upsert_mapping(
        conn: &mut SqliteConnection,
        rows: &[(&str, Option<&str>)],
        new_sp: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO mapping (device_id, sp, service_type, created_at, updated_at, validated_at) ",
            );
            qb.push_values(chunk, |mut b, (device, service_type)| {
                b.push_bind(*device).push_bind(new_sp).push_bind(*service_type).push_bind(at).push_bind(at).push_bind(at);
            });
            qb.push(
                " ON CONFLICT (device_id) DO UPDATE SET sp = excluded.sp, service_type = excluded.service_type, \
                 updated_at = excluded.updated_at, validated_at = excluded.validated_at",
            );
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub async fn insert_history(
        conn: &mut SqliteConnection,
        rows: &[(&str, Option<&str>)],
        new_sp: &str,
        changed_by: &str,
        message_id: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO history (device_id, old_sp, new_sp, changed_by, message_id, at) ");
            qb.push_values(chunk, |mut b, (device, old_sp)| {
                b.push_bind(*device)
                    .push_bind(*old_sp)
                    .push_bind(new_sp)
                    .push_bind(changed_by)
                    .push_bind(message_id)
                    .push_bind(at);
            });
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub async fn insert_outbox(
        conn: &mut SqliteConnection,
        rows: &[(&str, i64, String)],
        at: i64,
    ) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO outbox (gateway_id, seq, payload, created_at) ");
            qb.push_values(chunk, |mut b, (gateway, seq, payload)| {
                b.push_bind(*gateway).push_bind(*seq).push_bind(payload.as_str()).push_bind(at);
            });
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// PostgreSQL bulk statements: one statement per table with `UNNEST` over
/// array parameters, planned once whatever the batch size.
pub mod postgres_bulk {
    use sqlx::{PgConnection, Row};

    use super::{CURRENT_SQL, CurrentRow};

    pub async fn read_current(conn: &mut PgConnection, devices: &[String]) -> Result<Vec<CurrentRow>, sqlx::Error> {
        let sql = format!("{CURRENT_SQL} $1 WHERE m.device_id = ANY($2::text[])");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(false).bind(devices).fetch_all(&mut *conn).await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?))).collect()
    }

    pub async fn upsert_mapping(
        conn: &mut PgConnection,
        rows: &[(&str, Option<&str>)],
        new_sp: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        let (devices, service_types): (Vec<&str>, Vec<Option<&str>>) = rows.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO mapping (device_id, sp, service_type, created_at, updated_at, validated_at) \
             SELECT u.d, $3, u.st, $4, $4, $4 FROM UNNEST($1::text[], $2::text[]) AS u(d, st) \
             ON CONFLICT (device_id) DO UPDATE SET sp = excluded.sp, service_type = excluded.service_type, \
             updated_at = excluded.updated_at, validated_at = excluded.validated_at",
        )
        .bind(devices)
        .bind(service_types)
        .bind(new_sp)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn insert_history(
        conn: &mut PgConnection,
        rows: &[(&str, Option<&str>)],
        new_sp: &str,
        changed_by: &str,
        message_id: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        let (devices, old): (Vec<&str>, Vec<Option<&str>>) = rows.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO history (device_id, old_sp, new_sp, changed_by, message_id, at) \
             SELECT u.d, u.o, $3, $4, $5, $6 FROM UNNEST($1::text[], $2::text[]) AS u(d, o)",
        )
        .bind(devices)
        .bind(old)
        .bind(new_sp)
        .bind(changed_by)
        .bind(message_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn insert_outbox(conn: &mut PgConnection, rows: &[(&str, i64, String)], at: i64) -> Result<(), sqlx::Error> {
        let gateways: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let payloads: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        sqlx::query(
            "INSERT INTO outbox (gateway_id, seq, payload, created_at) \
             SELECT u.g, u.s, u.p, $4 FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS u(g, s, p)",
        )
        .bind(gateways)
        .bind(seqs)
        .bind(payloads)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
