//! The in-process cache of services for the hot read path (GetService): the platform's keyed
//! cache, dropped when this process changes a service and when a `catalog.service_updated`
//! (retired, deleted) event says another process did.

use caseway_platform::cache::KeyedCache;

use crate::domain::{Record, ServiceFields};

pub type ServiceCache = KeyedCache<Record<ServiceFields>>;

/// The events after which a cached service is stale (topic patterns match whole words only,
/// so each change is named).
pub fn service_changes() -> Vec<String> {
    ["updated", "retired", "deleted"]
        .iter()
        .map(|verb| crate::catalog::event_type("service", verb))
        .collect()
}
