//! The HUD HMIS CSV export (docs/hmis.md): a tenant's clients, enrollments, exits, programs,
//! funders and services for a date range in HUD's FY2026 CSV format, with HUD's codes taken
//! from mappings the tenant administrator keeps. An export runs as a job on the node that
//! started it; its files go to the export store (`CASEWAY_HMIS_EXPORTS`) and are downloaded
//! by streaming. It publishes and consumes no events.

pub mod api;
pub mod convert;
pub mod domain;
pub mod service;
pub mod store;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::hmis::v1::hmis_service_server::HmisServiceServer;
use caseway_platform::objects::Objects;
use caseway_platform::server::{NodeBuilder, Platform};

pub use service::SsnKeys;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/hmis");

/// Where exports' files are kept (`CASEWAY_HMIS_EXPORTS`), under `tenants/<tenant id>/hmis/`.
pub fn export_store(config: &caseway_platform::Config) -> anyhow::Result<Objects> {
    Objects::open(&config.hmis_exports, &config.data_dir.join("hmis-exports"))
        .context("the HMIS export store (CASEWAY_HMIS_EXPORTS)")
}

/// Adds the HMIS service to a node; `ssn` opens the tenants' SSNs for exports that hold them.
pub fn register(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    ssn: Arc<dyn SsnKeys>,
) -> anyhow::Result<()> {
    let objects = export_store(&platform.config)?;
    let hmis = Arc::new(service::Hmis::new(platform.db.clone(), objects, ssn));
    node.add_service(HmisServiceServer::from_arc(Arc::new(api::HmisApi::new(
        platform.clone(),
        hmis,
    ))));
    Ok(())
}
