//! An in-process cache of tenant-owned entries for hot read paths, dropped when this process
//! changes an entry and when an event says another process did. A generation counter keeps a
//! read that raced with an invalidation from caching what it read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::TenantId;
use crate::bus::{Bus, Subscription, consume};

type Key = (TenantId, Uuid);

pub struct KeyedCache<V> {
    entries: Mutex<HashMap<Key, Arc<V>>>,
    generation: AtomicU64,
    capacity: usize,
}

impl<V> Default for KeyedCache<V> {
    fn default() -> Self {
        KeyedCache {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            capacity: 50_000,
        }
    }
}

impl<V: Send + Sync + 'static> KeyedCache<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, tenant: TenantId, id: Uuid) -> Option<Arc<V>> {
        self.lock().get(&(tenant, id)).cloned()
    }

    /// Read before loading; pass to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what a read loaded, unless an invalidation happened since `generation`. When
    /// full, the cache starts over.
    pub fn insert(&self, tenant: TenantId, id: Uuid, value: Arc<V>, generation: u64) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert((tenant, id), value);
    }

    /// The cached entry, or what `load` finds (cached unless an invalidation raced with it).
    /// What `load` does not find (`None`) is not cached: it may exist a moment later.
    pub async fn get_or_load<E, F, Fut>(
        &self,
        tenant: TenantId,
        id: Uuid,
        load: F,
    ) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(found) = self.get(tenant, id) {
            return Ok(Some(found));
        }
        let generation = self.generation();
        let Some(value) = load().await? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        self.insert(tenant, id, value.clone(), generation);
        Ok(Some(value))
    }

    pub fn invalidate(&self, tenant: TenantId, id: Uuid) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(tenant, id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<V>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the entries that events of `event_types` (whose subject is the entry's id) say
    /// changed, until `shutdown`. Each process gets its own queue, so every replica hears every
    /// change.
    pub async fn follow_events(
        self: Arc<Self>,
        bus: Bus,
        event_types: Vec<String>,
        shutdown: CancellationToken,
    ) {
        let subscription = Subscription {
            queue: None,
            bindings: event_types,
            concurrency: 1,
        };
        consume(bus, subscription, shutdown, |envelope| {
            let cache = self.clone();
            async move {
                if let Ok(id) = envelope.subject.parse() {
                    cache.invalidate(envelope.tenant_id, id);
                }
                Ok(())
            }
        })
        .await;
    }
}
