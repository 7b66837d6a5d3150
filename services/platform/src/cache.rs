//! An in-process cache of tenant-owned entries for hot read paths, dropped when this process
//! changes an entry and when an event says another process did. A generation counter keeps a
//! read that raced with an invalidation from caching what it read.
//!
//! The cache serves only while it hears every change: while its private queue of events is
//! bound. Before that, and from a lost connection to the next binding (a private queue dies
//! with its connection, and the events published meanwhile with it), every read loads and
//! nothing is kept; each binding starts from an empty cache. An entry also lives no longer
//! than [`MAX_AGE`], whatever the events say: a connection lost without a word is noticed only
//! by its heartbeat, and events can wait behind a relay that cannot publish.
//!
//! A cache of facts that never change once made (the client a barrier belongs to) follows no
//! events: [`KeyedCache::unfollowed`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::TenantId;
use crate::bus::{Bus, Envelope, Subscription, consume_watched};
use crate::caller::Caller;

type Key = (TenantId, Uuid);

/// How long an entry is trusted without a read of its own.
pub const MAX_AGE: Duration = Duration::from_secs(60);

pub struct KeyedCache<V> {
    entries: Mutex<HashMap<Key, (Arc<V>, Instant)>>,
    generation: AtomicU64,
    /// Whether the events that drop entries are heard (see the module's comment).
    live: AtomicBool,
    capacity: usize,
}

impl<V> Default for KeyedCache<V> {
    fn default() -> Self {
        KeyedCache {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            capacity: 50_000,
        }
    }
}

impl<V: Send + Sync + 'static> KeyedCache<V> {
    /// A cache that serves once [`follow_events`](Self::follow_events) (or
    /// [`follow_with`](Self::follow_with)) hears its events.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache of facts that no event changes: it serves from the start, each entry for
    /// [`MAX_AGE`].
    pub fn unfollowed() -> Self {
        let cache = Self::default();
        cache.live.store(true, Ordering::Release);
        cache
    }

    pub fn get(&self, tenant: TenantId, id: Uuid) -> Option<Arc<V>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let (value, at) = entries.get(&(tenant, id))?;
        (at.elapsed() < MAX_AGE).then(|| value.clone())
    }

    /// Read before loading; pass to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what a read loaded, unless an invalidation happened since `generation`. When
    /// full, it drops what is too old, and starts over if that is not enough.
    pub fn insert(&self, tenant: TenantId, id: Uuid, value: Arc<V>, generation: u64) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation
            || !self.live.load(Ordering::Acquire)
        {
            return;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, at)| at.elapsed() < MAX_AGE);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert((tenant, id), (value, Instant::now()));
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

    /// As [`get_or_load`](Self::get_or_load) for `caller`'s tenant, except that a caller who
    /// asked for a fresh read ([`Caller::fresh`]) gets what `load` finds, and the cache is
    /// left as it was.
    pub async fn read<E, F, Fut>(
        &self,
        caller: &Caller,
        id: Uuid,
        load: F,
    ) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if caller.fresh {
            Ok(load().await?.map(Arc::new))
        } else {
            self.get_or_load(caller.tenant, id, load).await
        }
    }

    pub fn invalidate(&self, tenant: TenantId, id: Uuid) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(tenant, id));
    }

    /// Drops every entry (and any read under way from being kept).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Whether the events that drop entries are heard: either way the cache starts over, since
    /// what it held may have changed unheard.
    pub fn set_live(&self, live: bool) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.live.store(live, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Arc<V>, Instant)>> {
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
        self.follow_with(bus, event_types, shutdown, |envelope| {
            Ok(envelope.subject.parse().ok())
        })
        .await
    }

    /// As [`follow_events`](Self::follow_events), for events that name the entry otherwise:
    /// `entry_of` reads the id of the entry an event changes (None: none of this cache's). An
    /// event it cannot read says something changed without saying what: the whole cache is
    /// dropped.
    pub async fn follow_with<F>(
        self: Arc<Self>,
        bus: Bus,
        event_types: Vec<String>,
        shutdown: CancellationToken,
        entry_of: F,
    ) where
        F: Fn(&Envelope) -> anyhow::Result<Option<Uuid>>,
    {
        let subscription = Subscription {
            queue: None,
            bindings: event_types,
            concurrency: 1,
        };
        let watched = self.clone();
        let bound = move |live| watched.set_live(live);
        let entry_of = &entry_of;
        consume_watched(bus, subscription, shutdown, 1, bound, |events| {
            let cache = self.clone();
            async move {
                for envelope in events {
                    match entry_of(&envelope) {
                        Ok(Some(id)) => cache.invalidate(envelope.tenant_id, id),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(error = %error, event_id = %envelope.id, event = %envelope.event_type, "an event the cache cannot read; dropping every entry");
                            cache.clear();
                        }
                    }
                }
                Ok(())
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId(Uuid::now_v7())
    }

    #[test]
    fn serves_only_while_live_and_starts_over_at_each_change_of_hearing() {
        let (cache, t, id) = (KeyedCache::<u32>::new(), tenant(), Uuid::now_v7());
        cache.insert(t, id, Arc::new(1), cache.generation());
        assert!(
            cache.get(t, id).is_none(),
            "nothing kept before it hears events"
        );
        cache.set_live(true);
        cache.insert(t, id, Arc::new(1), cache.generation());
        assert_eq!(cache.get(t, id).as_deref(), Some(&1));
        assert!(cache.get(tenant(), id).is_none(), "keyed by tenant");
        cache.set_live(false);
        assert!(cache.get(t, id).is_none(), "deaf: nothing served");
        cache.set_live(true);
        assert!(cache.get(t, id).is_none(), "heard again: it starts empty");
    }

    #[test]
    fn a_read_that_raced_with_a_drop_is_not_kept() {
        let (cache, t, id) = (KeyedCache::<u32>::unfollowed(), tenant(), Uuid::now_v7());
        let before = cache.generation();
        cache.invalidate(t, Uuid::now_v7());
        cache.insert(t, id, Arc::new(1), before);
        assert!(cache.get(t, id).is_none());
        cache.insert(t, id, Arc::new(2), cache.generation());
        assert_eq!(
            cache.get(t, id).as_deref(),
            Some(&2),
            "unfollowed serves at once"
        );
        let before = cache.generation();
        cache.clear();
        assert!(cache.get(t, id).is_none());
        cache.insert(t, id, Arc::new(3), before);
        assert!(
            cache.get(t, id).is_none(),
            "a read begun before the clear is not kept"
        );
    }
}
