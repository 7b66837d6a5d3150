//! An in-process cache of services for the hot read path (GetService, and the records service's
//! lookups later). Entries are dropped when this process changes a service and when a
//! `catalog.service_updated` (retired, deleted) event says another process did. A generation counter keeps a read that
//! raced with an invalidation from caching what it read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::bus::{Bus, Subscription, consume};

use crate::domain::{Record, ServiceFields};

const CAPACITY: usize = 50_000;

type Key = (TenantId, Uuid);

#[derive(Default)]
pub struct ServiceCache {
    entries: Mutex<HashMap<Key, Arc<Record<ServiceFields>>>>,
    generation: AtomicU64,
}

impl ServiceCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, tenant: TenantId, id: Uuid) -> Option<Arc<Record<ServiceFields>>> {
        self.lock().get(&(tenant, id)).cloned()
    }

    /// Read before loading from the database; pass to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what a read loaded, unless an invalidation happened since `generation`.
    pub fn insert(&self, tenant: TenantId, record: Arc<Record<ServiceFields>>, generation: u64) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert((tenant, record.id), record);
    }

    pub fn invalidate(&self, tenant: TenantId, id: Uuid) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(tenant, id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Record<ServiceFields>>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops entries that other processes changed, as their events arrive.
    pub async fn follow_events(self: Arc<Self>, bus: Bus, shutdown: CancellationToken) {
        let subscription = Subscription {
            queue: None,
            // Topic patterns match whole words only, so each change is named.
            bindings: ["updated", "retired", "deleted"]
                .iter()
                .map(|verb| crate::catalog::event_type("service", verb))
                .collect(),
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
