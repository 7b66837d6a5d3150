//! The in-process cache of clients for the hot read path (GetClient with the SSN masked): the
//! platform's keyed cache, dropped when this process changes a client and when a
//! `clients.client_updated` or `clients.client_deleted` event says another replica did (those
//! events are named in `events::client_changes`). It serves only while those events are heard
//! (`caseway_platform::cache`). A helper of the store room.

use caseway_platform::cache::KeyedCache;

use crate::domain::Client;

pub type ClientCache = KeyedCache<Client>;
