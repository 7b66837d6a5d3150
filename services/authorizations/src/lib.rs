//! The authorizations service: plans of services for a client over a period with a
//! recurrence, their approval, and the drawdown by recorded services that never overspends.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod recurrence;
pub mod service;
pub mod store;
pub mod worker;

use std::sync::Arc;

use caseway_api::authorizations::v1::authorizations_internal_service_server::AuthorizationsInternalServiceServer;
use caseway_api::authorizations::v1::authorizations_service_server::AuthorizationsServiceServer;
use caseway_peers::catalog::Catalog;
use caseway_peers::clients::Clients;
use caseway_peers::eligibility::Eligibility;
use caseway_peers::records::Records;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/authorizations");

pub use events::SOURCE;

/// Adds the authorizations service to a node: the gRPC service (asking the catalog at
/// `catalog_endpoint` and the clients service at `clients_endpoint`), the consumer of the
/// records' events, and the worker (closing what has ended; asking the records service at
/// `records_endpoint` about holds that were never settled); a plan of a service whose rule is
/// REQUIRED is decided by the eligibility service at `eligibility_endpoint`.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
    clients_endpoint: &str,
    records_endpoint: &str,
    eligibility_endpoint: &str,
) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog::new(platform, catalog_endpoint, "authorizations")?);
    catalog.follow_events(&platform.bus, node);
    let clients = Arc::new(Clients::new(platform, clients_endpoint, "authorizations")?);
    clients.follow_events(&platform.bus, node);
    let records = Arc::new(Records::new(platform, records_endpoint)?);
    let eligibility = Arc::new(Eligibility::new(
        platform,
        eligibility_endpoint,
        "authorizations",
    )?);
    eligibility.follow_events(&platform.bus, node);
    let authorizations = Arc::new(service::Authorizations::new(
        platform.db.clone(),
        catalog,
        clients,
        records,
        eligibility,
    ));
    let api = Arc::new(api::AuthorizationsApi::new(
        platform.clone(),
        authorizations.clone(),
    ));
    node.add_service(
        AuthorizationsServiceServer::from_arc(api.clone())
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        AuthorizationsInternalServiceServer::from_arc(api)
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    worker::follow_records(platform, node, authorizations.clone());
    worker::add(
        platform,
        node,
        platform.config.authorizations_sweep_interval,
        platform.config.authorizations_unsettled_after,
        authorizations,
    );
    Ok(())
}
