//! The clients service: the people services are recorded for, with their personal
//! identifiers protected.

pub mod api;
pub mod assessments;
pub mod barriers;
pub mod domain;
pub mod store;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::clients::v1::assessments_service_server::AssessmentsServiceServer;
use caseway_api::clients::v1::barriers_service_server::BarriersServiceServer;
use caseway_api::clients::v1::clients_service_server::ClientsServiceServer;
use caseway_platform::Scoped;
use caseway_platform::error::{Error, Result};
use caseway_platform::pii::PiiCipher;
use caseway_platform::server::{NodeBuilder, Platform};

/// The CloudEvents source of the clients service's events.
pub(crate) const SOURCE: &str = "caseway/clients";

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
    node.add_service(
        ClientsServiceServer::new(api::ClientsApi::new(
            platform.clone(),
            Arc::new(cipher),
            catalog_endpoint,
        )?)
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        AssessmentsServiceServer::new(assessments::AssessmentsApi::new(platform.clone()))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    node.add_service(
        BarriersServiceServer::new(barriers::BarriersApi::new(
            platform.clone(),
            catalog_endpoint,
        )?)
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    Ok(())
}

/// INVALID_ARGUMENT naming `field` unless `client_id` is a (not deleted) client of the tenant.
pub(crate) async fn client_must_exist(
    tx: &mut impl Scoped,
    field: &str,
    client_id: uuid::Uuid,
) -> Result<()> {
    if store::load(tx.conn(), client_id, false).await?.is_none() {
        return Err(Error::invalid(
            field,
            "does not name a client of this tenant",
        ));
    }
    Ok(())
}

/// NOT_FOUND unless `client_id` is a (not deleted) client of the tenant.
pub(crate) async fn ensure_client(tx: &mut impl Scoped, client_id: uuid::Uuid) -> Result<()> {
    if store::load(tx.conn(), client_id, false).await?.is_none() {
        return Err(Error::not_found("client", client_id));
    }
    Ok(())
}
