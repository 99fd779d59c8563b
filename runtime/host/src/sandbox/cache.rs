//! Compiled halves, keyed by the hash of their bytes.
//!
//! Every device of a product carries the same two halves, so an assistant that
//! enrolls a thousand of them should compile each half once. The cache is
//! content-addressed (SHA-256 of the component bytes), bounded (least recently
//! used entries are dropped first), and single-flight: two enrollments that
//! ask for the same uncached half at once share one compilation. Failures are
//! not kept in [`ComponentCache`] (a transient host error must not poison an
//! app); the refusals that are a property of the bytes themselves are kept,
//! bounded, in [`Refusals`], so a hostile half sent again and again is
//! compiled once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

/// SHA-256 of a component's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", hex::encode(&self.0[..8]))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

struct Slot<V> {
    cell: Arc<OnceCell<Arc<V>>>,
    last_used: u64,
}

struct Inner<V> {
    slots: HashMap<Digest, Slot<V>>,
    clock: u64,
    compilations: u64,
}

/// A bounded, single-flight, content-addressed cache.
pub struct ComponentCache<V> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
}

impl<V> ComponentCache<V> {
    /// A cache that keeps at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner { slots: HashMap::new(), clock: 0, compilations: 0 }),
            capacity: capacity.max(1),
        }
    }

    /// The value for `digest`, building it with `build` if it is not cached.
    /// Concurrent callers for the same digest wait for one build.
    pub async fn get_or_try_insert<E, F, Fut>(&self, digest: Digest, build: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self.slot(digest);
        let result = cell
            .get_or_try_init(|| async {
                self.lock().compilations += 1;
                build().await.map(Arc::new)
            })
            .await
            .cloned();
        if result.is_err() {
            // Do not keep an empty slot for a failed build.
            let mut inner = self.lock();
            if inner.slots.get(&digest).is_some_and(|s| s.cell.get().is_none()) {
                inner.slots.remove(&digest);
            }
        }
        result
    }

    /// Whether `digest` is cached (and built).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.lock().slots.get(digest).is_some_and(|s| s.cell.initialized())
    }

    /// Drops the entry for `digest`, if any.
    pub fn remove(&self, digest: &Digest) {
        self.lock().slots.remove(digest);
    }

    /// How many builds have been started since the cache was created.
    pub fn compilations(&self) -> u64 {
        self.lock().compilations
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, digest: Digest) -> Arc<OnceCell<Arc<V>>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(slot) = inner.slots.get_mut(&digest) {
            slot.last_used = now;
            return slot.cell.clone();
        }
        if inner.slots.len() >= self.capacity {
            let oldest = inner.slots.iter().min_by_key(|(_, s)| s.last_used).map(|(d, _)| *d);
            if let Some(oldest) = oldest {
                inner.slots.remove(&oldest);
            }
        }
        let cell = Arc::new(OnceCell::new());
        inner.slots.insert(digest, Slot { cell: cell.clone(), last_used: now });
        cell
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every mutation is a single insert or remove), so poisoning is moot.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Refusals remembered by key (kind of half and content hash), bounded: when
/// full, the least recently used refusal is forgotten first.
///
/// Only what follows from the bytes alone belongs here (not a valid
/// component, a foreign import, a compile that ran out of time): the same
/// bytes would be refused the same way again, so they are not compiled again.
pub struct Refusals<K, E> {
    inner: Mutex<RefusalsInner<K, E>>,
    capacity: usize,
}

struct RefusalsInner<K, E> {
    entries: HashMap<K, (E, u64)>,
    clock: u64,
}

impl<K: Eq + std::hash::Hash + Clone, E: Clone> Refusals<K, E> {
    /// Keeps at most `capacity` refusals (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(RefusalsInner { entries: HashMap::new(), clock: 0 }), capacity: capacity.max(1) }
    }

    /// The refusal remembered for `key`, if any (and marks it used).
    pub fn get(&self, key: &K) -> Option<E> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let (error, last_used) = inner.entries.get_mut(key)?;
        *last_used = now;
        Some(error.clone())
    }

    /// Remembers `error` for `key`, forgetting the least recently used
    /// refusal if the memory is full.
    pub fn insert(&self, key: K, error: E) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            let oldest = inner.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(key, (error, now));
    }

    /// How many refusals are remembered.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no refusal is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RefusalsInner<K, E>> {
        // Every mutation is a single insert or remove: poisoning is moot.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn builds_once_per_digest_even_when_concurrent() {
        let cache = Arc::new(ComponentCache::<u32>::new(8));
        let builds = Arc::new(AtomicU32::new(0));
        let digest = Digest::of(b"app");
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, builds) = (cache.clone(), builds.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_try_insert(digest, || async {
                        builds.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(7)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(cache.compilations(), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = ComponentCache::<u32>::new(8);
        let d = Digest::of(b"x");
        assert!(cache.get_or_try_insert(d, || async { Err::<u32, _>("boom") }).await.is_err());
        assert!(!cache.contains(&d));
        assert_eq!(*cache.get_or_try_insert(d, || async { Ok::<_, &str>(1) }).await.unwrap(), 1);
        assert!(cache.contains(&d));
    }

    #[tokio::test]
    async fn evicts_least_recently_used() {
        let cache = ComponentCache::<u32>::new(2);
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        for d in [a, b, a, c] {
            cache.get_or_try_insert(d, || async { Ok::<_, ()>(0) }).await.unwrap();
        }
        assert!(cache.contains(&a), "a was used recently");
        assert!(!cache.contains(&b), "b was the least recently used");
        assert!(cache.contains(&c));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn refusals_stay_bounded_and_forget_the_least_recently_used() {
        let refusals = Refusals::<u32, &str>::new(2);
        refusals.insert(1, "one");
        refusals.insert(2, "two");
        assert_eq!(refusals.get(&1), Some("one"));
        refusals.insert(3, "three");
        assert_eq!(refusals.len(), 2, "bounded");
        assert_eq!(refusals.get(&2), None, "2 was the least recently used");
        assert_eq!(refusals.get(&1), Some("one"));
        assert_eq!(refusals.get(&3), Some("three"));
        for k in 10..1000 {
            refusals.insert(k, "flood");
        }
        assert_eq!(refusals.len(), 2, "a flood of refusals stays within the cap");
    }
}
