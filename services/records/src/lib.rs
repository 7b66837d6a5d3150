//! The records service: services delivered to clients, turn-aways, Quick Services, bulk and
//! indirect services, a client's history and the totals grant reports are built on.

pub mod api;
pub mod domain;
pub mod holds;
pub mod lookups;
pub mod store;

use std::sync::Arc;

use caseway_api::records::v1::records_internal_service_server::RecordsInternalServiceServer;
use caseway_api::records::v1::records_service_server::RecordsServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/records");

/// Adds the records service to a node: it asks the catalog at `catalog_endpoint` and the
/// clients service at `clients_endpoint`, follows their events to keep its caches, and holds
/// authorized units with the authorizations service at `authorizations_endpoint`.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
    clients_endpoint: &str,
    authorizations_endpoint: &str,
) -> anyhow::Result<()> {
    let lookups = Arc::new(lookups::Lookups::new(
        platform,
        catalog_endpoint,
        clients_endpoint,
        "records",
    )?);
    lookups.follow_events(&platform.bus, node);
    node.add_service(
        RecordsServiceServer::new(api::RecordsApi::new(
            platform.clone(),
            lookups,
            authorizations_endpoint,
        )?)
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        RecordsInternalServiceServer::new(api::RecordsInternalApi::new(platform.clone()))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    Ok(())
}
