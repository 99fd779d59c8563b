//! The mapping table as the resolve path sees it: manufacturer device id →
//! SP identity, service type, access technology, gateways, timestamps.
//!
//! A read-through in-memory cache over the store, because resolve answered
//! from the table must sustain ≥ 10,000 requests/s: a cached hit costs a hash
//! lookup, and a resolve writes to the database only when a gateway asks
//! about a device for the first time. Every committed change invalidates the
//! devices it touched; a generation counter keeps a reader that loaded a row
//! before such an invalidation from caching the old row. Entries also expire
//! after a TTL (`policy.mapping_cache_ttl_ms`); on PostgreSQL, changes
//! committed by another replica invalidate at once through `LISTEN/NOTIFY`
//! ([`crate::replicas`]), and the TTL only bounds a missed notice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::{MappingRow, Store, StoreError};

/// Cache entries before the cache is emptied and refilled on demand.
pub const CACHE_CAPACITY: usize = 1_000_000;

/// The mapping table with its read-through cache.
#[derive(Debug, Clone)]
pub struct MappingTable {
    store: Store,
    ttl: Duration,
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: RwLock<HashMap<String, (Instant, Arc<MappingRow>)>>,
    generation: AtomicU64,
}

impl MappingTable {
    /// A table over `store` whose cached rows are re-read after `ttl`.
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl, inner: Arc::default() }
    }

    /// The row of `device_id` (canonical EUI text), if the table has it,
    /// and whether it came from the cache.
    pub async fn lookup(&self, device_id: &str) -> Result<Option<(Arc<MappingRow>, bool)>, StoreError> {
        {
            let rows = self.inner.rows.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, row)) = rows.get(device_id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some((row.clone(), true)));
            }
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let Some(row) = self.store.mapping(device_id).await? else { return Ok(None) };
        let row = Arc::new(row);
        self.cache(row.clone(), generation);
        Ok(Some((row, false)))
    }

    fn cache(&self, row: Arc<MappingRow>, generation: u64) {
        let mut rows = self.inner.rows.write().unwrap_or_else(|p| p.into_inner());
        if self.inner.generation.load(Ordering::Acquire) != generation {
            return; // an invalidation happened while we read: don't cache what may be old
        }
        if rows.len() >= CACHE_CAPACITY {
            rows.clear();
        }
        rows.insert(row.device_id.clone(), (Instant::now(), row));
    }

    /// Records that `gateway_id` asks about the device (so pushes for it go
    /// there). A database write only the first time.
    pub async fn record_gateway(&self, row: &MappingRow, gateway_id: &str) -> Result<(), StoreError> {
        if row.gateways.iter().any(|g| g == gateway_id) {
            return Ok(());
        }
        self.store.add_device_gateway(&row.device_id, gateway_id).await?;
        self.invalidate([row.device_id.as_str()]);
        Ok(())
    }

    /// Forgets cached rows after a change to them was committed.
    pub fn invalidate<'a>(&self, device_ids: impl IntoIterator<Item = &'a str>) {
        let mut rows = self.inner.rows.write().unwrap_or_else(|p| p.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        for id in device_ids {
            rows.remove(id);
        }
    }
}

impl MappingTable {
    /// Forgets every cached row (another replica changed rows we were not
    /// told about one by one).
    pub fn invalidate_all(&self) {
        let mut rows = self.inner.rows.write().unwrap_or_else(|p| p.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        rows.clear();
    }

    /// Applies a change set (one transaction), then forgets the cached rows
    /// it touched and wakes the outbox readers of every affected gateway.
    pub async fn apply_changes<F>(
        &self,
        set: &crate::store::ChangeSet,
        authorize: F,
        notifier: &crate::outbox::Notifier,
    ) -> Result<crate::store::ChangeOutcome, crate::store::ChangeError>
    where
        F: FnOnce(&[(String, Option<String>)]) -> Result<(), String> + Send,
    {
        let outcome = self.store.apply_changes(set, authorize).await?;
        self.invalidate(set.devices.iter().map(String::as_str));
        notifier.publish(&outcome.gateway_seqs);
        Ok(outcome)
    }
}
