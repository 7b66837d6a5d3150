//! The ticketing service: the help desk inside the product. A user of an organization submits
//! a ticket; the organization's administrators answer it or escalate it to the hosting
//! provider's support desk, which triages it into a tier and works it; every note and status
//! change is the organization's to read (docs/ticketing.md). Support sees escalated tickets
//! of every tenant and nothing else, by PostgreSQL's policies for its own role.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::ticketing::v1::ticketing_service_server::TicketingServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/ticketing");

pub use events::SOURCE;

/// Adds the ticketing service to a node; refuses a configured tier matrix it cannot read.
pub fn register(platform: &Arc<Platform>, node: &mut NodeBuilder) -> anyhow::Result<()> {
    let matrix = match platform.config.ticketing_tier_matrix.trim() {
        "" => domain::TierMatrix::default(),
        text => domain::TierMatrix::parse(text)
            .map_err(anyhow::Error::msg)
            .context("CASEWAY_TICKETING_TIER_MATRIX")?,
    };
    let ticketing = Arc::new(service::Ticketing::new(platform.db.clone(), matrix));
    node.add_service(
        TicketingServiceServer::from_arc(Arc::new(api::TicketingApi::new(
            platform.clone(),
            ticketing,
        )))
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    Ok(())
}
