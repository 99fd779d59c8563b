//! Push to gateways: the durable per-gateway outbox read as a stream.
//!
//! Every association change writes, in its own transaction, one event per
//! affected gateway with that gateway's next sequence number (dense, from 1;
//! see [`crate::store::Store::apply_changes`]). A gateway reads its events
//! with `GET /v1/updates?after=<seq>` (SSE) or the long-poll variant, and
//! acknowledges with `POST /v1/updates/ack`. Because the events are in the
//! database before anyone is told, a gateway that was offline resumes from
//! its last acknowledged sequence and misses nothing.
//!
//! The [`Notifier`] only wakes readers: after a commit the writer publishes
//! each gateway's new last sequence; a reader that was waiting re-queries the
//! store. A reader that nobody wakes does not query: changes committed by
//! another replica wake it through PostgreSQL `LISTEN/NOTIFY`, and a slow
//! sweep (one query for all readers, `push.safety_poll_ms`) covers what no
//! notice reaches ([`crate::replicas`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_api::gateway::AssociationEvent;
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// Wakes the readers of a gateway's outbox when new events are committed.
#[derive(Debug, Default, Clone)]
pub struct Notifier {
    channels: Arc<Mutex<HashMap<String, watch::Sender<i64>>>>,
}

impl Notifier {
    /// A receiver that changes whenever `gateway_id` gets new events.
    pub fn subscribe(&self, gateway_id: &str) -> watch::Receiver<i64> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(gateway_id.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Tells the readers of each gateway its new last sequence number.
    pub fn publish<'a>(&self, seqs: impl IntoIterator<Item = (&'a String, &'a i64)>) {
        self.send(seqs, false);
    }

    /// Like [`Notifier::publish`], but wakes only readers that were told
    /// less (the safety sweep: an unchanged gateway costs nobody a query).
    pub fn publish_if_newer<'a>(&self, seqs: impl IntoIterator<Item = (&'a String, &'a i64)>) {
        self.send(seqs, true);
    }

    fn send<'a>(&self, seqs: impl IntoIterator<Item = (&'a String, &'a i64)>, only_newer: bool) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for (gateway, &seq) in seqs {
            if let Some(tx) = channels.get(gateway) {
                tx.send_if_modified(|told| {
                    let wake = !only_newer || seq > *told;
                    *told = (*told).max(seq);
                    wake
                });
                if tx.receiver_count() == 0 {
                    channels.remove(gateway);
                }
            }
        }
    }

    /// Wakes every reader (notices may have been missed).
    pub fn wake_all(&self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, tx| tx.receiver_count() > 0);
        for tx in channels.values() {
            tx.send_modify(|_| {});
        }
    }

    /// The gateways that have readers now.
    pub fn subscribed(&self) -> Vec<String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels.keys().cloned().collect()
    }
}

/// Reads one gateway's outbox in order, waiting for new events.
pub struct OutboxReader {
    store: Store,
    gateway_id: String,
    cursor: i64,
    wake: watch::Receiver<i64>,
}

impl OutboxReader {
    pub fn new(store: Store, notifier: &Notifier, gateway_id: &str, after: i64) -> Self {
        Self { store, gateway_id: gateway_id.to_owned(), cursor: after, wake: notifier.subscribe(gateway_id) }
    }

    /// The last sequence number handed out.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Events after the cursor, at most `limit`, without waiting.
    pub async fn next_batch(&mut self, limit: i64) -> Result<Vec<AssociationEvent>, StoreError> {
        // Mark the current wake-up value seen before querying, so a commit
        // racing with the query still wakes the next `wait`.
        self.wake.borrow_and_update();
        let rows = self.store.outbox_after(&self.gateway_id, self.cursor, limit).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let event: AssociationEvent = serde_json::from_str(&row.payload)
                .map_err(|e| StoreError::Corrupt(format!("outbox {} #{}: {e}", self.gateway_id, row.seq)))?;
            self.cursor = row.seq;
            events.push(event);
        }
        Ok(events)
    }

    /// Waits until new events may be there (a wake-up), at most `max`.
    pub async fn wait(&mut self, max: Duration) {
        let _ = tokio::time::timeout(max, self.wake.changed()).await;
    }

    /// Waits until new events may be there, however long that takes.
    pub async fn wait_for_wake(&mut self) {
        if self.wake.changed().await.is_err() {
            // The notifier is gone (the server is stopping): never busy-loop.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_wakes_only_that_gateway() {
        let notifier = Notifier::default();
        let mut a = notifier.subscribe("gw-a");
        let b = notifier.subscribe("gw-b");
        let seqs: HashMap<String, i64> = [("gw-a".to_owned(), 7)].into();
        notifier.publish(&seqs);
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), 7);
        assert!(!b.has_changed().unwrap());
    }

    #[tokio::test]
    async fn the_sweep_wakes_only_readers_that_are_behind() {
        let notifier = Notifier::default();
        let mut a = notifier.subscribe("gw-a");
        let seqs: HashMap<String, i64> = [("gw-a".to_owned(), 7)].into();
        notifier.publish_if_newer(&seqs);
        assert!(a.has_changed().unwrap(), "behind: woken");
        a.borrow_and_update();
        notifier.publish_if_newer(&seqs);
        assert!(!a.has_changed().unwrap(), "told already: no query for nothing");
        notifier.publish(&seqs);
        assert!(a.has_changed().unwrap(), "a commit always wakes");
        a.borrow_and_update();
        notifier.wake_all();
        assert!(a.has_changed().unwrap());
        assert_eq!(notifier.subscribed(), vec!["gw-a".to_owned()]);
        drop(a);
        assert!(notifier.subscribed().is_empty());
    }
}
