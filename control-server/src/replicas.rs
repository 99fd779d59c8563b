//! Changes committed by another replica, seen at once: PostgreSQL
//! `LISTEN/NOTIFY`, and a slow safety sweep.
//!
//! Several control-server replicas share one PostgreSQL database. A change
//! set ([`crate::store::Store::apply_changes`]) sends, inside its own
//! transaction, notices on [`CHANNEL`] naming every gateway's new last
//! sequence number and the devices it changed; PostgreSQL delivers them to
//! every listening session only when (and only if) the transaction commits.
//! Each replica's [`spawn_listener`] task wakes the outbox readers of those
//! gateways ([`Notifier`]) and forgets the cached mapping rows of those
//! devices ([`MappingTable`]), so a gateway streaming from replica A hears of
//! a change posted to replica B within milliseconds, and A's resolve answers
//! with the new SP at once, not after `mapping_cache_ttl_ms`.
//!
//! Nothing is lost if a notice is: the outbox is the truth, notices only
//! wake. When the listening session is (re)established, every reader is woken
//! and the whole mapping cache dropped, because notices sent meanwhile were
//! not heard. [`spawn_sweeper`] is the safety net for what no notice covers
//! (SQLite written by another process, a replica of an older version): every
//! `push.safety_poll_ms` it reads every streaming gateway's last sequence
//! number in ONE query and wakes the readers that are behind. Idle readers
//! never query: 1,000 idle streams cost one query per sweep, not 1,000.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};

use crate::mapping::MappingTable;
use crate::outbox::Notifier;
use crate::store::Store;

/// The PostgreSQL notification channel of committed changes.
pub const CHANNEL: &str = "control_server_changes";

/// PostgreSQL refuses payloads of 8,000 bytes or more; notices stay below.
const NOTICE_BYTES: usize = 7_000;

/// A change naming more devices than this invalidates the whole mapping
/// cache on the other replicas instead of listing them.
const DEVICES_NAMED: usize = 256;

/// Pause before listening again after the session failed.
const RELISTEN_PAUSE: Duration = Duration::from_millis(500);

/// One notification's payload (JSON).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notice {
    /// Gateways and their new last sequence number.
    #[serde(default, rename = "g", skip_serializing_if = "Vec::is_empty")]
    gateways: Vec<(String, i64)>,
    /// Devices whose mapping row changed.
    #[serde(default, rename = "d", skip_serializing_if = "Vec::is_empty")]
    devices: Vec<String>,
    /// Too many devices to name: every cached row is old.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    all_devices: bool,
}

/// The payloads telling the other replicas about a committed change set:
/// each under [`NOTICE_BYTES`].
pub(crate) fn notices(gateway_seqs: &BTreeMap<String, i64>, devices: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Notice { all_devices: devices.len() > DEVICES_NAMED, ..Notice::default() };
    let mut size = 32;
    let items = gateway_seqs
        .iter()
        .map(|(g, s)| (Some((g.clone(), *s)), None))
        .chain(devices.iter().filter(|_| devices.len() <= DEVICES_NAMED).map(|d| (None, Some(d.clone()))));
    for (gateway, device) in items {
        let len = gateway.as_ref().map_or(0, |(g, _)| g.len() + 24) + device.as_ref().map_or(0, |d| d.len() + 4);
        if size + len > NOTICE_BYTES && (!current.gateways.is_empty() || !current.devices.is_empty()) {
            out.extend(serde_json::to_string(&current).ok());
            current = Notice::default();
            size = 32;
        }
        size += len;
        current.gateways.extend(gateway);
        current.devices.extend(device);
    }
    if !current.gateways.is_empty() || !current.devices.is_empty() || current.all_devices {
        out.extend(serde_json::to_string(&current).ok());
    }
    out
}

/// Acts on one notice: wakes the readers, forgets the cached rows.
fn heard(payload: &str, notifier: &Notifier, mapping: &MappingTable) {
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) => {
            if notice.all_devices {
                mapping.invalidate_all();
            } else if !notice.devices.is_empty() {
                mapping.invalidate(notice.devices.iter().map(String::as_str));
            }
            notifier.publish(notice.gateways.iter().map(|(g, s)| (g, s)));
        }
        Err(e) => {
            // Not ours, or a newer format: assume everything changed.
            tracing::warn!(error = %e, "unreadable change notice; waking every reader");
            mapping.invalidate_all();
            notifier.wake_all();
        }
    }
}

/// Listens on [`CHANNEL`] for as long as the task runs (abort it to stop),
/// re-listening after a failure.
pub fn spawn_listener(pool: PgPool, notifier: Notifier, mapping: MappingTable) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the change-notice session; retrying");
                    tokio::time::sleep(RELISTEN_PAUSE).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(RELISTEN_PAUSE).await;
                continue;
            }
            // Whatever was committed while nobody listened was not heard.
            mapping.invalidate_all();
            notifier.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => heard(notification.payload(), &notifier, &mapping),
                    Ok(None) => {
                        tracing::warn!("the change-notice session was lost; listening again");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the change-notice session failed; listening again");
                        tokio::time::sleep(RELISTEN_PAUSE).await;
                        break;
                    }
                }
            }
        }
    })
}

/// Every `every`, one query for the last sequence numbers of the gateways
/// that have readers; wakes those that are behind.
pub fn spawn_sweeper(store: Store, notifier: Notifier, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let listening = notifier.subscribed();
            if listening.is_empty() {
                continue;
            }
            match store.last_seqs(&listening).await {
                Ok(seqs) => notifier.publish_if_newer(seqs.iter().map(|(g, s)| (g, s))),
                Err(e) => tracing::warn!(error = %e, "the outbox safety sweep failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_stay_small_and_name_everything() {
        let gateways: BTreeMap<String, i64> = (0..1000).map(|g| (format!("gw-{g}"), g)).collect();
        let few: Vec<String> = (0..10).map(|d| format!("AC-DE-48-00-00-{d:02X}")).collect();
        let out = notices(&gateways, &few);
        assert!(out.len() > 1, "1,000 gateways need several notices");
        let read: Vec<Notice> = out.iter().map(|p| serde_json::from_str(p).unwrap()).collect();
        assert!(out.iter().all(|p| p.len() < 8000), "under PostgreSQL's payload limit");
        let named: usize = read.iter().map(|n| n.gateways.len()).sum();
        assert_eq!(named, 1000);
        let devices: Vec<&String> = read.iter().flat_map(|n| &n.devices).collect();
        assert_eq!(devices.len(), 10);
        assert!(read.iter().all(|n| !n.all_devices));

        let many: Vec<String> = (0..100_000).map(|d| format!("AC-DE-48-{d:06X}")).collect();
        let out = notices(&BTreeMap::new(), &many);
        assert_eq!(out.len(), 1, "many devices: one notice that drops the whole cache");
        let notice: Notice = serde_json::from_str(&out[0]).unwrap();
        assert!(notice.all_devices && notice.devices.is_empty());
    }
}
