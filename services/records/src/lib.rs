//! The records service: services delivered to clients, turn-aways, Quick Services, bulk and
//! indirect services, a client's history and the totals grant reports are built on.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
pub mod worker;

use std::sync::Arc;

use caseway_api::records::v1::records_internal_service_server::RecordsInternalServiceServer;
use caseway_api::records::v1::records_service_server::RecordsServiceServer;
use caseway_peers::catalog::Catalog;
use caseway_peers::clients::Clients;
use caseway_peers::eligibility::Eligibility;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/records");

/// Adds the records service to a node: it asks the catalog at `catalog_endpoint` and the
/// clients service at `clients_endpoint`, follows their events to keep its caches, holds
/// authorized units with the authorizations service at `authorizations_endpoint`, and asks the
/// eligibility service at `eligibility_endpoint` where a service's rule is REQUIRED.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
    clients_endpoint: &str,
    authorizations_endpoint: &str,
    eligibility_endpoint: &str,
) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog::new(platform, catalog_endpoint, "records")?);
    catalog.follow_events(&platform.bus, node);
    let clients = Arc::new(Clients::new(platform, clients_endpoint, "records")?);
    clients.follow_events(&platform.bus, node);
    let eligibility = Arc::new(Eligibility::new(platform, eligibility_endpoint, "records")?);
    eligibility.follow_events(&platform.bus, node);
    let records = service::Records::new(
        platform,
        catalog,
        clients,
        eligibility,
        authorizations_endpoint,
    )?;
    worker::add(platform.db.clone(), node);
    node.add_service(
        RecordsServiceServer::new(api::RecordsApi::new(platform.clone(), records))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        RecordsInternalServiceServer::new(api::RecordsInternalApi::new(platform.clone()))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    Ok(())
}
