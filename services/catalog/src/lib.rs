//! The catalog service: service groups, services, grants, programs, providers and the code
//! lists recording forms pick from.

pub mod api;
pub mod cache;
pub mod catalog;
pub mod domain;
pub mod store;

use std::sync::Arc;

use caseway_api::catalog::v1::catalog_internal_service_server::CatalogInternalServiceServer;
use caseway_api::catalog::v1::catalog_service_server::CatalogServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};

pub use catalog::Catalog;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/catalog");

/// Adds the catalog service to a node. `tenancy_endpoint` is where it checks security
/// organizations.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    tenancy_endpoint: &str,
) -> anyhow::Result<()> {
    let cache = Arc::new(cache::ServiceCache::new());
    let catalog = Catalog::new(platform.db.clone(), cache.clone());
    let api = api::CatalogApi::new(platform.clone(), catalog, tenancy_endpoint)?;
    node.add_service(
        CatalogServiceServer::new(api)
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        CatalogInternalServiceServer::new(api::CatalogInternalApi::new(platform.clone()))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    let bus = platform.bus.clone();
    node.add_worker("service-cache", move |token| {
        cache.follow_events(bus, cache::service_changes(), token)
    });
    Ok(())
}
