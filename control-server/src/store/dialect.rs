//! The SQL of the store, written once and instantiated for each backend
//! (`sqlite`, `postgres`) by a macro, because sqlx's executor traits are
//! concrete per database. `$N` placeholders work in both.
//!
//! Bulk writes use multi-row `VALUES` statements sized to stay under each
//! backend's bound-parameter limit, so a 100,000-device change is a few
//! dozen statements in one transaction rather than 100,000 round trips.

macro_rules! backend {
    ($modname:ident, $db:ty, $pool:ty, begin = $begin:literal, lock_rows = $lock:literal, max_params = $max_params:expr) => {
        pub mod $modname {
            use std::collections::{BTreeMap, HashMap};

            use sqlx::{QueryBuilder, Row};

            use crate::outbox::AssociationEvent;
            use crate::store::{
                AckError, ChangeError, ChangeOutcome, ChangeSet, GatewayRecord, Geo, HistoryRow, MappingRow,
                OutboxRow, SpRecord, StoreError,
            };

            type Db = $db;
            type Pool = $pool;
            const MAX_PARAMS: usize = $max_params;

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
                    "INSERT INTO sps (identity, base_url, public_key, may_release, may_claim, may_move_to) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (identity) DO UPDATE SET base_url = excluded.base_url, public_key = excluded.public_key, \
                       may_release = excluded.may_release, may_claim = excluded.may_claim, may_move_to = excluded.may_move_to",
                )
                .bind(sp.identity.as_str())
                .bind(sp.base_url.as_str())
                .bind(sp.public_key.as_slice())
                .bind(sp.may_release)
                .bind(sp.may_claim)
                .bind(move_to)
                .execute(pool)
                .await?;
                Ok(())
            }

            pub async fn sp(pool: &Pool, identity: &str) -> Result<Option<SpRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT identity, base_url, public_key, may_release, may_claim, may_move_to FROM sps WHERE identity = $1",
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
                }))
            }

            pub async fn seed_mappings(pool: &Pool, rows: &[MappingRow]) -> Result<usize, StoreError> {
                let mut tx = pool.begin_with($begin).await?;
                let mut inserted = 0;
                for chunk in rows.chunks(MAX_PARAMS / 7) {
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
                for chunk in pairs.chunks(MAX_PARAMS / 2) {
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

                // The current associations, locked (PostgreSQL) for the rest of the transaction.
                let mut current: HashMap<String, (String, Option<String>)> = HashMap::with_capacity(set.devices.len());
                for chunk in set.devices.chunks(MAX_PARAMS) {
                    let mut qb =
                        QueryBuilder::<Db>::new("SELECT device_id, sp, service_type FROM mapping WHERE device_id IN (");
                    let mut ids = qb.separated(", ");
                    for d in chunk {
                        ids.push_bind(d.as_str());
                    }
                    qb.push(")");
                    qb.push($lock);
                    for row in qb.build().fetch_all(&mut *tx).await? {
                        current.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
                    }
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

                for chunk in changes.chunks(MAX_PARAMS / 6) {
                    let mut qb = QueryBuilder::<Db>::new(
                        "INSERT INTO mapping (device_id, sp, service_type, created_at, updated_at, validated_at) ",
                    );
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.device)
                            .push_bind(set.new_sp.as_str())
                            .push_bind(c.service_type)
                            .push_bind(set.at)
                            .push_bind(set.at)
                            .push_bind(set.at);
                    });
                    qb.push(
                        " ON CONFLICT (device_id) DO UPDATE SET sp = excluded.sp, service_type = excluded.service_type, \
                         updated_at = excluded.updated_at, validated_at = excluded.validated_at",
                    );
                    qb.build().execute(&mut *tx).await?;
                }
                for chunk in changes.chunks(MAX_PARAMS / 6) {
                    let mut qb = QueryBuilder::<Db>::new(
                        "INSERT INTO history (device_id, old_sp, new_sp, changed_by, message_id, at) ",
                    );
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.device)
                            .push_bind(c.old_sp)
                            .push_bind(set.new_sp.as_str())
                            .push_bind(set.changed_by.as_str())
                            .push_bind(set.message_id.as_str())
                            .push_bind(set.at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }

                mark("mapping + history");
                // Who hears about it.
                let index: HashMap<&str, usize> = changes.iter().enumerate().map(|(i, c)| (c.device, i)).collect();
                let mut per_gateway: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                if set.push.associated {
                    let known: Vec<&str> = changes.iter().filter(|c| c.old_sp.is_some()).map(|c| c.device).collect();
                    for chunk in known.chunks(MAX_PARAMS - 1) {
                        let mut qb = QueryBuilder::<Db>::new(
                            "SELECT mg.device_id, mg.gateway_id FROM mapping_gateways mg JOIN gateways g ON g.id = mg.gateway_id \
                             WHERE g.revoked = ",
                        );
                        qb.push_bind(false);
                        qb.push(" AND mg.device_id IN (");
                        let mut ids = qb.separated(", ");
                        for d in chunk {
                            ids.push_bind(*d);
                        }
                        qb.push(")");
                        for row in qb.build().fetch_all(&mut *tx).await? {
                            let device: String = row.try_get(0)?;
                            let gateway: String = row.try_get(1)?;
                            if let Some(&i) = index.get(device.as_str()) {
                                per_gateway.entry(gateway).or_default().push(i);
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
                for chunk in counts.chunks(MAX_PARAMS / 2) {
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
                            changed_at: changed_at.clone(),
                            message_id: set.message_id.clone(),
                        };
                        let payload = serde_json::to_string(&event).map_err(corrupt)?;
                        rows.push((gateway.as_str(), first + k as i64, payload));
                    }
                }
                for chunk in rows.chunks(MAX_PARAMS / 4) {
                    let mut qb = QueryBuilder::<Db>::new("INSERT INTO outbox (gateway_id, seq, payload, created_at) ");
                    qb.push_values(chunk, |mut b, (g, seq, payload)| {
                        b.push_bind(*g).push_bind(*seq).push_bind(payload.as_str()).push_bind(set.at);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                mark("outbox");
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

            pub async fn ack(pool: &Pool, gateway_id: &str, seq: i64, prune_before: i64) -> Result<(), AckError> {
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
                sqlx::query("UPDATE outbox SET acked = $1 WHERE gateway_id = $2 AND seq <= $3 AND acked = $4")
                    .bind(true)
                    .bind(gateway_id)
                    .bind(seq)
                    .bind(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                sqlx::query("DELETE FROM outbox WHERE gateway_id = $1 AND acked = $2 AND created_at < $3")
                    .bind(gateway_id)
                    .bind(true)
                    .bind(prune_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(())
            }
        }
    };
}

// SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a deferred
// transaction that reads first can fail to upgrade); one writer at a time
// anyway. Bound-parameter limit 32,766.
backend!(sqlite, sqlx::Sqlite, sqlx::SqlitePool, begin = "BEGIN IMMEDIATE", lock_rows = "", max_params = 30_000);

// PostgreSQL: row locks serialize concurrent changes of the same devices
// (and the gateway rows serialize sequence numbers). Limit 65,535.
backend!(postgres, sqlx::Postgres, sqlx::PgPool, begin = "BEGIN", lock_rows = " FOR UPDATE", max_params = 60_000);
