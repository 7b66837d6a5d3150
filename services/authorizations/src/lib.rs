//! The authorizations service: plans of services for a client over a period with a
//! recurrence, their approval, and the drawdown by recorded services that never overspends.

pub mod api;
pub mod domain;
pub mod events;
pub mod records;
pub mod recurrence;
pub mod store;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use caseway_api::authorizations::v1::authorizations_internal_service_server::AuthorizationsInternalServiceServer;
use caseway_api::authorizations::v1::authorizations_service_server::AuthorizationsServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};
use caseway_records::lookups::Lookups;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/authorizations");

pub const SOURCE: &str = "caseway/authorizations";

/// How often the worker looks for authorizations whose end date has passed and for holds
/// never settled.
pub const CLOSE_INTERVAL: Duration = Duration::from_secs(300);

/// Adds the authorizations service to a node: the gRPC service (asking the catalog at
/// `catalog_endpoint` and the clients service at `clients_endpoint`), the consumer of the
/// records' events, and the worker (closing what has ended; asking the records service at
/// `records_endpoint` about holds that were never settled).
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
    clients_endpoint: &str,
    records_endpoint: &str,
) -> anyhow::Result<()> {
    let lookups = Arc::new(Lookups::new(
        platform,
        catalog_endpoint,
        clients_endpoint,
        "authorizations",
    )?);
    lookups.follow_events(&platform.bus, node);
    let records = Arc::new(records::Records::new(platform, records_endpoint)?);
    let api = Arc::new(api::AuthorizationsApi::new(
        platform.clone(),
        lookups,
        records.clone(),
    ));
    node.add_service(
        AuthorizationsServiceServer::from_arc(api.clone())
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        AuthorizationsInternalServiceServer::from_arc(api)
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    events::follow_records(platform, node);
    worker::add(
        platform,
        node,
        CLOSE_INTERVAL,
        worker::HoldSweeper::new(records),
    );
    Ok(())
}
