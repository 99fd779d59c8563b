//! The store's administration queries (issue 15): listing and removing
//! mapping rows, SPs and gateways with their outbox position, the admin
//! credential, the audit log of admin changes and the bounded log of SP
//! hand-overs. Kept apart from `dialect` (the hot paths) so the two change
//! independently; written once and instantiated per backend the same way.
//!
//! Association changes made by an admin do not live here: they go through
//! [`Store::apply_changes`] like every other change, so history and the
//! gateways' outbox are written in the same transaction. What is here only
//! reads, or changes what is not an association (access technology,
//! removal, credentials, logs). Writes that a running server must notice
//! (removal, access) append to `admin_log` in the same transaction, under
//! the same serialization as change sets, so `admin_log.id` grows in commit
//! order and a follower reading `id > last` misses nothing
//! ([`Store::changes_after`]).

use control_api::gateway::Geo;
use serde::Serialize;

use super::{MappingRow, SpRecord, Store, StoreError};

/// Which mapping rows to list (every given condition must hold).
#[derive(Debug, Clone, Default)]
pub struct MappingFilter {
    /// Part of the canonical device id (upper-case hex digits and `-`).
    pub device_contains: Option<String>,
    pub sp: Option<String>,
    /// Devices this gateway asked about.
    pub gateway: Option<String>,
    /// Only devices after this id (the previous page's last).
    pub after: Option<String>,
    pub limit: i64,
}

/// A gateway as the operator sees it: registration and outbox position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayStatus {
    pub id: String,
    pub revoked: bool,
    pub geo: Option<Geo>,
    /// The last sequence number written to its outbox.
    pub last_seq: i64,
    /// The last sequence number it acknowledged.
    pub acked_seq: i64,
    pub created_at: i64,
    /// Devices recorded against it.
    pub devices: i64,
}

impl GatewayStatus {
    /// Events written but not acknowledged yet.
    pub fn lag(&self) -> i64 {
        (self.last_seq - self.acked_seq).max(0)
    }
}

/// One SP hand-over as logged: accepted or refused, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoverEntry {
    pub id: i64,
    pub at: i64,
    pub accepted: bool,
    /// The SP named by the message (its `kid`; not verified when refused early).
    pub sender: Option<String>,
    pub new_sp: Option<String>,
    pub devices: i64,
    pub changed: i64,
    pub events: i64,
    /// `ok`, or the error code the SP was answered with.
    pub code: String,
    pub reason: String,
    pub message_id: String,
}

/// One admin change as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminLogRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub device_id: Option<String>,
    pub detail: String,
}

/// What changed since a follower's last look: (history id, device) and
/// (admin log id, device) pairs, in id order.
#[derive(Debug, Clone, Default)]
pub struct ChangesAfter {
    pub history: Vec<(i64, String)>,
    pub admin: Vec<(i64, Option<String>)>,
}

macro_rules! admin_backend {
    ($modname:ident, $db:ty, $pool:ty, begin = $begin:literal, serialize = $serialize:literal) => {
        pub mod $modname {
            use control_api::gateway::Geo;
            use sqlx::{QueryBuilder, Row};

            use super::{AdminLogRow, ChangesAfter, GatewayStatus, HandoverEntry, MappingFilter};
            use crate::store::{MappingRow, SpRecord, StoreError};

            type Db = $db;
            type Pool = $pool;
            type Tx = sqlx::Transaction<'static, Db>;

            async fn begin_serialized(pool: &Pool) -> Result<Tx, StoreError> {
                let mut tx = pool.begin_with($begin).await?;
                if !$serialize.is_empty() {
                    sqlx::query($serialize).execute(&mut *tx).await?;
                }
                Ok(tx)
            }

            async fn log(
                tx: &mut Tx,
                at: i64,
                actor: &str,
                action: &str,
                device: Option<&str>,
                detail: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO admin_log (at, actor, action, device_id, detail) VALUES ($1, $2, $3, $4, $5)")
                    .bind(at)
                    .bind(actor)
                    .bind(action)
                    .bind(device)
                    .bind(detail)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            pub async fn append_admin_log(
                pool: &Pool,
                at: i64,
                actor: &str,
                action: &str,
                device: Option<&str>,
                detail: &str,
            ) -> Result<(), StoreError> {
                let mut tx = begin_serialized(pool).await?;
                log(&mut tx, at, actor, action, device, detail).await?;
                tx.commit().await?;
                Ok(())
            }

            pub async fn set_access(
                pool: &Pool,
                rows: &[(&str, &str)],
                at: i64,
                actor: &str,
            ) -> Result<usize, StoreError> {
                let mut tx = begin_serialized(pool).await?;
                let mut changed = 0;
                for (device, access) in rows {
                    let done = sqlx::query(
                        "UPDATE mapping SET access = $1, updated_at = $2 WHERE device_id = $3 AND (access IS NULL OR access <> $1)",
                    )
                    .bind(*access)
                    .bind(at)
                    .bind(*device)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        changed += 1;
                        log(&mut tx, at, actor, "set_access", Some(device), access).await?;
                    }
                }
                tx.commit().await?;
                Ok(changed)
            }

            pub async fn remove_mapping(
                pool: &Pool,
                device: &str,
                at: i64,
                actor: &str,
            ) -> Result<Option<String>, StoreError> {
                let mut tx = begin_serialized(pool).await?;
                let sp: Option<String> = sqlx::query("SELECT sp FROM mapping WHERE device_id = $1")
                    .bind(device)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                let Some(sp) = sp else { return Ok(None) };
                sqlx::query("DELETE FROM mapping_gateways WHERE device_id = $1").bind(device).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM mapping WHERE device_id = $1").bind(device).execute(&mut *tx).await?;
                log(&mut tx, at, actor, "remove", Some(device), &format!("was with {sp}")).await?;
                tx.commit().await?;
                Ok(Some(sp))
            }

            fn push_filter(qb: &mut QueryBuilder<Db>, filter: &MappingFilter) {
                qb.push(" WHERE 1 = 1");
                if let Some(part) = &filter.device_contains {
                    qb.push(" AND m.device_id LIKE ").push_bind(format!("%{part}%"));
                }
                if let Some(sp) = &filter.sp {
                    qb.push(" AND m.sp = ").push_bind(sp.clone());
                }
                if let Some(gateway) = &filter.gateway {
                    qb.push(" AND EXISTS (SELECT 1 FROM mapping_gateways mg WHERE mg.device_id = m.device_id AND mg.gateway_id = ")
                        .push_bind(gateway.clone())
                        .push(")");
                }
            }

            pub async fn list_mappings(pool: &Pool, filter: &MappingFilter) -> Result<Vec<MappingRow>, StoreError> {
                let mut qb = QueryBuilder::<Db>::new(
                    "SELECT m.device_id, m.sp, m.service_type, m.access, m.created_at, m.updated_at, m.validated_at FROM mapping m",
                );
                push_filter(&mut qb, filter);
                if let Some(after) = &filter.after {
                    qb.push(" AND m.device_id > ").push_bind(after.clone());
                }
                qb.push(" ORDER BY m.device_id LIMIT ").push_bind(filter.limit);
                let rows = qb.build().fetch_all(pool).await?;
                let mut out: Vec<MappingRow> = rows
                    .iter()
                    .map(|row| {
                        Ok(MappingRow {
                            device_id: row.try_get(0)?,
                            sp: row.try_get(1)?,
                            service_type: row.try_get(2)?,
                            access: row.try_get(3)?,
                            created_at: row.try_get(4)?,
                            updated_at: row.try_get(5)?,
                            validated_at: row.try_get(6)?,
                            gateways: Vec::new(),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                if let (Some(first), Some(last)) = (out.first(), out.last()) {
                    // The page's gateways in one range scan of the (device, gateway) key.
                    let pairs = sqlx::query(
                        "SELECT device_id, gateway_id FROM mapping_gateways WHERE device_id >= $1 AND device_id <= $2 \
                         ORDER BY device_id, gateway_id",
                    )
                    .bind(first.device_id.clone())
                    .bind(last.device_id.clone())
                    .fetch_all(pool)
                    .await?;
                    let mut by_device: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                    for p in pairs {
                        by_device.entry(p.try_get(0)?).or_default().push(p.try_get(1)?);
                    }
                    for row in &mut out {
                        if let Some(gateways) = by_device.remove(&row.device_id) {
                            row.gateways = gateways;
                        }
                    }
                }
                Ok(out)
            }

            pub async fn count_mappings(pool: &Pool, filter: &MappingFilter) -> Result<i64, StoreError> {
                let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM mapping m");
                push_filter(&mut qb, filter);
                Ok(qb.build().fetch_one(pool).await?.try_get(0)?)
            }

            pub async fn list_sps(pool: &Pool) -> Result<Vec<(SpRecord, i64)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT s.identity, s.base_url, s.public_key, s.may_release, s.may_claim, s.may_move_to, \
                       (SELECT COUNT(*) FROM mapping m WHERE m.sp = s.identity), s.endpoint, s.device_public_key \
                     FROM sps s ORDER BY s.identity",
                )
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let move_to: String = row.try_get(5)?;
                        Ok((
                            SpRecord {
                                identity: row.try_get(0)?,
                                base_url: row.try_get(1)?,
                                public_key: row.try_get(2)?,
                                may_release: row.try_get(3)?,
                                may_claim: row.try_get(4)?,
                                may_move_to: serde_json::from_str(&move_to)
                                    .map_err(|e| StoreError::Corrupt(format!("may_move_to: {e}")))?,
                                endpoint: row.try_get(7)?,
                                device_public_key: row.try_get(8)?,
                            },
                            row.try_get(6)?,
                        ))
                    })
                    .collect()
            }

            pub async fn list_gateways(pool: &Pool, only: Option<&str>) -> Result<Vec<GatewayStatus>, StoreError> {
                let mut qb = QueryBuilder::<Db>::new(
                    "SELECT g.id, g.revoked, g.geo_lat, g.geo_lon, g.last_seq, COALESCE(a.acked_seq, 0), g.created_at, \
                       (SELECT COUNT(*) FROM mapping_gateways mg WHERE mg.gateway_id = g.id) \
                     FROM gateways g LEFT JOIN outbox_acks a ON a.gateway_id = g.id",
                );
                if let Some(id) = only {
                    qb.push(" WHERE g.id = ").push_bind(id.to_owned());
                }
                qb.push(" ORDER BY g.id");
                let rows = qb.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|row| {
                        let lat: Option<f64> = row.try_get(2)?;
                        let lon: Option<f64> = row.try_get(3)?;
                        Ok(GatewayStatus {
                            id: row.try_get(0)?,
                            revoked: row.try_get(1)?,
                            geo: lat.zip(lon).map(|(lat, lon)| Geo { lat, lon }),
                            last_seq: row.try_get(4)?,
                            acked_seq: row.try_get(5)?,
                            created_at: row.try_get(6)?,
                            devices: row.try_get(7)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            pub async fn admin_credential(pool: &Pool) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
                let row = sqlx::query("SELECT salt, hash FROM admin_credentials WHERE id = $1")
                    .bind("admin")
                    .fetch_optional(pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
                    None => None,
                })
            }

            pub async fn set_admin_credential(
                pool: &Pool,
                salt: Option<(&[u8], &[u8])>,
                at: i64,
            ) -> Result<bool, StoreError> {
                let mut tx = begin_serialized(pool).await?;
                let done = match salt {
                    Some((salt, hash)) => {
                        sqlx::query(
                            "INSERT INTO admin_credentials (id, salt, hash, created_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, created_at = excluded.created_at",
                        )
                        .bind("admin")
                        .bind(salt)
                        .bind(hash)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                    }
                    None => sqlx::query("DELETE FROM admin_credentials WHERE id = $1").bind("admin").execute(&mut *tx).await?,
                };
                let action = if salt.is_some() { "set_admin_token" } else { "remove_admin_token" };
                log(&mut tx, at, "cli", action, None, "").await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            pub async fn record_handover(pool: &Pool, e: &HandoverEntry, keep: i64) -> Result<(), StoreError> {
                let mut tx = pool.begin_with($begin).await?;
                sqlx::query(
                    "INSERT INTO handover_log (at, accepted, sender, new_sp, devices, changed, events, code, reason, message_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(e.at)
                .bind(e.accepted)
                .bind(e.sender.as_deref())
                .bind(e.new_sp.as_deref())
                .bind(e.devices)
                .bind(e.changed)
                .bind(e.events)
                .bind(e.code.as_str())
                .bind(e.reason.as_str())
                .bind(e.message_id.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM handover_log WHERE id <= (SELECT MAX(id) FROM handover_log) - $1")
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            pub async fn recent_handovers(
                pool: &Pool,
                accepted: Option<bool>,
                limit: i64,
            ) -> Result<Vec<HandoverEntry>, StoreError> {
                let mut qb = QueryBuilder::<Db>::new(
                    "SELECT id, at, accepted, sender, new_sp, devices, changed, events, code, reason, message_id FROM handover_log",
                );
                if let Some(accepted) = accepted {
                    qb.push(" WHERE accepted = ").push_bind(accepted);
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok(HandoverEntry {
                            id: row.try_get(0)?,
                            at: row.try_get(1)?,
                            accepted: row.try_get(2)?,
                            sender: row.try_get(3)?,
                            new_sp: row.try_get(4)?,
                            devices: row.try_get(5)?,
                            changed: row.try_get(6)?,
                            events: row.try_get(7)?,
                            code: row.try_get(8)?,
                            reason: row.try_get(9)?,
                            message_id: row.try_get(10)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            pub async fn admin_log(
                pool: &Pool,
                device: Option<&str>,
                limit: i64,
            ) -> Result<Vec<AdminLogRow>, StoreError> {
                let mut qb = QueryBuilder::<Db>::new("SELECT id, at, actor, action, device_id, detail FROM admin_log");
                if let Some(device) = device {
                    qb.push(" WHERE device_id = ").push_bind(device.to_owned());
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok(AdminLogRow {
                            id: row.try_get(0)?,
                            at: row.try_get(1)?,
                            actor: row.try_get(2)?,
                            action: row.try_get(3)?,
                            device_id: row.try_get(4)?,
                            detail: row.try_get(5)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            pub async fn change_heads(pool: &Pool) -> Result<(i64, i64), StoreError> {
                let row = sqlx::query(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM history), (SELECT COALESCE(MAX(id), 0) FROM admin_log)",
                )
                .fetch_one(pool)
                .await?;
                Ok((row.try_get(0)?, row.try_get(1)?))
            }

            pub async fn changes_after(
                pool: &Pool,
                history_after: i64,
                admin_after: i64,
                limit: i64,
            ) -> Result<ChangesAfter, StoreError> {
                let history = sqlx::query("SELECT id, device_id FROM history WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(history_after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?;
                let admin = sqlx::query("SELECT id, device_id FROM admin_log WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(admin_after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok(ChangesAfter { history, admin })
            }
        }
    };
}

admin_backend!(sqlite, sqlx::Sqlite, sqlx::SqlitePool, begin = "BEGIN IMMEDIATE", serialize = "");
// The same advisory lock as change sets (`dialect`): admin writes and change
// sets take turns, so `admin_log` ids are assigned in commit order.
admin_backend!(
    postgres,
    sqlx::Postgres,
    sqlx::PgPool,
    begin = "BEGIN",
    serialize = "SELECT pg_advisory_xact_lock(7243501)"
);

/// Runs the body against this module's instantiation for the store's backend.
macro_rules! on_admin_backend {
    ($store:expr, $pool:ident, $m:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                use sqlite as $m;
                $body
            }
            Store::Postgres($pool) => {
                use postgres as $m;
                $body
            }
        }
    };
}

/// Administration queries (see the module documentation).
impl Store {
    /// Mapping rows matching `filter`, by device id, with their gateways.
    pub async fn list_mappings(&self, filter: &MappingFilter) -> Result<Vec<MappingRow>, StoreError> {
        on_admin_backend!(self, pool, m => m::list_mappings(pool, filter).await)
    }

    /// How many rows match `filter` (its `after` and `limit` ignored).
    pub async fn count_mappings(&self, filter: &MappingFilter) -> Result<i64, StoreError> {
        on_admin_backend!(self, pool, m => m::count_mappings(pool, filter).await)
    }

    /// Sets devices' access technology (device, access) in one transaction;
    /// how many changed (unknown devices and equal values are skipped). Each
    /// change is logged in `admin_log`.
    pub async fn set_access(&self, rows: &[(&str, &str)], at: i64, actor: &str) -> Result<usize, StoreError> {
        on_admin_backend!(self, pool, m => m::set_access(pool, rows, at, actor).await)
    }

    /// Removes a device from the mapping table (and the gateways recorded
    /// against it); its history stays. The SP it had, or `None` if the table
    /// did not have it.
    pub async fn remove_mapping(&self, device: &str, at: i64, actor: &str) -> Result<Option<String>, StoreError> {
        on_admin_backend!(self, pool, m => m::remove_mapping(pool, device, at, actor).await)
    }

    /// Appends to the audit log (its own transaction).
    pub async fn append_admin_log(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        device: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_admin_backend!(self, pool, m => m::append_admin_log(pool, at, actor, action, device, detail).await)
    }

    /// The newest admin log rows (of one device, or all), newest first.
    pub async fn admin_log(&self, device: Option<&str>, limit: i64) -> Result<Vec<AdminLogRow>, StoreError> {
        on_admin_backend!(self, pool, m => m::admin_log(pool, device, limit).await)
    }

    /// Every registered SP with the number of devices it holds.
    pub async fn list_sps(&self) -> Result<Vec<(SpRecord, i64)>, StoreError> {
        on_admin_backend!(self, pool, m => m::list_sps(pool).await)
    }

    /// Every gateway (or the one named) with its outbox position.
    pub async fn list_gateways(&self, only: Option<&str>) -> Result<Vec<GatewayStatus>, StoreError> {
        on_admin_backend!(self, pool, m => m::list_gateways(pool, only).await)
    }

    /// The stored admin credential: (salt, salted SHA-256).
    pub async fn admin_credential(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        on_admin_backend!(self, pool, m => m::admin_credential(pool).await)
    }

    /// Stores (Some) or removes (None) the admin credential; true if a row
    /// was written or removed.
    pub async fn set_admin_credential(&self, salted: Option<(&[u8], &[u8])>, at: i64) -> Result<bool, StoreError> {
        on_admin_backend!(self, pool, m => m::set_admin_credential(pool, salted, at).await)
    }

    /// Logs one SP hand-over and keeps only the newest `keep` entries.
    pub async fn record_handover(&self, entry: &HandoverEntry, keep: i64) -> Result<(), StoreError> {
        on_admin_backend!(self, pool, m => m::record_handover(pool, entry, keep).await)
    }

    /// The newest logged hand-overs (accepted, refused, or both), newest first.
    pub async fn recent_handovers(&self, accepted: Option<bool>, limit: i64) -> Result<Vec<HandoverEntry>, StoreError> {
        on_admin_backend!(self, pool, m => m::recent_handovers(pool, accepted, limit).await)
    }

    /// The last history id and admin log id: where a follower starts.
    pub async fn change_heads(&self) -> Result<(i64, i64), StoreError> {
        on_admin_backend!(self, pool, m => m::change_heads(pool).await)
    }

    /// History and admin log rows after the given ids, at most `limit` each.
    pub async fn changes_after(&self, history_after: i64, admin_after: i64, limit: i64) -> Result<ChangesAfter, StoreError> {
        on_admin_backend!(self, pool, m => m::changes_after(pool, history_after, admin_after, limit).await)
    }
}

