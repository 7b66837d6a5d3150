//! The clients service: the people services are recorded for, with their personal
//! identifiers protected.

pub mod api;
pub mod domain;
pub mod store;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::clients::v1::clients_service_server::ClientsServiceServer;
use caseway_platform::pii::PiiCipher;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/clients");

/// Adds the clients service to a node; it needs the PII key file of the configuration, and
/// reaches the catalog at `catalog_endpoint` to check programs.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    catalog_endpoint: &str,
) -> anyhow::Result<()> {
    let cipher = PiiCipher::from_file(&platform.config.pii_keys_file)
        .context("the clients target needs CASEWAY_PII_KEYS_FILE")?;
    node.add_service(ClientsServiceServer::new(api::ClientsApi::new(
        platform.clone(),
        Arc::new(cipher),
        catalog_endpoint,
    )?));
    Ok(())
}
