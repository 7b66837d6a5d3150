//! The catalog service: service groups, services, grants, programs, providers and the code
//! lists recording forms pick from. This module wires them: the rooms, `MIGRATOR`, and
//! `register`, which adds the gRPC services, the tenancy peer and the cache's worker to a node.

pub mod api;
pub mod cache;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;

use std::sync::Arc;

use caseway_api::catalog::v1::catalog_internal_service_server::CatalogInternalServiceServer;
use caseway_api::catalog::v1::catalog_service_server::CatalogServiceServer;
use caseway_peers::tenancy::Tenancy;
use caseway_platform::server::{NodeBuilder, Platform};

pub use service::Catalog;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/catalog");

/// Adds the catalog service to a node. `tenancy_endpoint` is where it checks security
/// organizations.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    tenancy_endpoint: &str,
) -> anyhow::Result<()> {
    let cache = Arc::new(cache::ServiceCache::new());
    let tenancy = Tenancy::new(platform, tenancy_endpoint)?;
    let catalog = Catalog::new(platform.db.clone(), cache.clone(), Some(tenancy));
    let api = api::CatalogApi::new(platform.clone(), catalog.clone());
    node.add_service(
        CatalogServiceServer::new(api)
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        CatalogInternalServiceServer::new(api::CatalogInternalApi::new(catalog))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    let bus = platform.bus.clone();
    node.add_worker("service-cache", move |token| {
        cache.follow_events(bus, events::service_changes(), token)
    });
    Ok(())
}
