//! The in-process cache of services for the hot read path (GetService): the platform's keyed
//! cache, dropped when this process changes a service and when a `catalog.service_updated`
//! (retired, deleted) event says another process did (those events are named in
//! `events::service_changes`). A helper of the store room.

use caseway_platform::cache::KeyedCache;

use crate::domain::{Record, ServiceFields};

pub type ServiceCache = KeyedCache<Record<ServiceFields>>;
