//! The clients service: the people services are recorded for, with their personal
//! identifiers protected. This holds its rooms (docs/code-shape.md), those of its assessments
//! and barriers, its migrations and the wiring of its gRPC services and peers.

pub mod api;
pub mod assessments;
pub mod barriers;
pub mod cache;
pub mod convert;
pub mod domain;
pub mod events;
pub mod pii;
pub mod service;
pub mod store;
pub mod tenant_keys;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::clients::v1::assessments_service_server::AssessmentsServiceServer;
use caseway_api::clients::v1::barriers_service_server::BarriersServiceServer;
use caseway_api::clients::v1::clients_service_server::ClientsServiceServer;
use caseway_peers::catalog::Catalog;
use caseway_platform::server::{NodeBuilder, Platform};

use pii::PiiCipher;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/clients");

/// Adds the clients service to a node; it needs the PII key file of the configuration, and
/// reaches the catalog at `catalog_endpoint` to check programs, demographics and barrier types.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
) -> anyhow::Result<()> {
    let cipher = PiiCipher::from_file(&platform.config.pii_keys_file)
        .context("the clients target needs CASEWAY_PII_KEYS_FILE")?;
    // Without the catalog's events followed, nothing it answers is cached.
    let catalog = Arc::new(Catalog::new(platform, catalog_endpoint, "clients")?);
    let keys = tenant_keys::TenantKeys::open(
        Arc::new(cipher),
        &platform.config.pii_tenant_keys,
        &platform.config.data_dir,
    )
    .context("the tenants' PII keys (CASEWAY_PII_TENANT_KEYS)")?;
    let cache = Arc::new(cache::ClientCache::new());
    let clients = service::Clients::new(
        platform.clone(),
        Arc::new(keys),
        catalog.clone(),
        cache.clone(),
    );
    node.add_service(
        ClientsServiceServer::new(api::ClientsApi::new(Arc::new(clients)))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    let assessments = assessments::service::Assessments::new(platform.clone());
    node.add_service(
        AssessmentsServiceServer::new(assessments::api::AssessmentsApi::new(Arc::new(assessments)))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    let barriers = barriers::service::Barriers::new(platform.clone(), catalog);
    node.add_service(
        BarriersServiceServer::new(barriers::api::BarriersApi::new(Arc::new(barriers)))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    let bus = platform.bus.clone();
    node.add_worker("client-cache", move |token| {
        cache.follow_events(bus, events::client_changes(), token)
    });
    Ok(())
}
