//! The ticketing service: the help desk inside the product. A user of an organization submits
//! a ticket; the organization's administrators answer it or escalate it to the hosting
//! provider's support desk, which triages it into a tier and works it; every note and status
//! change is the organization's to read (docs/ticketing.md). Support sees escalated tickets
//! of every tenant and nothing else, by PostgreSQL's policies for its own role.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod files;
pub mod screenshot;
pub mod service;
pub mod sla;
pub mod store;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;

use caseway_api::ticketing::v1::ticketing_service_server::TicketingServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/ticketing");

pub use events::SOURCE;

/// Adds the ticketing service to a node, with the follower that feeds its watchers and the
/// sweeps of service levels and resolved tickets; refuses a configured tier matrix, SLA
/// policy or calendar it cannot read.
pub fn register(platform: &Arc<Platform>, node: &mut NodeBuilder) -> anyhow::Result<()> {
    let matrix = match platform.config.ticketing_tier_matrix.trim() {
        "" => domain::TierMatrix::default(),
        text => domain::TierMatrix::parse(text)
            .map_err(anyhow::Error::msg)
            .context("CASEWAY_TICKETING_TIER_MATRIX")?,
    };
    let config = &platform.config;
    let calendar = sla::Calendar::parse(&config.ticketing_sla_calendar)
        .map_err(anyhow::Error::msg)
        .context("CASEWAY_TICKETING_SLA_CALENDAR")?;
    let sla = match config.ticketing_sla.trim() {
        "" => sla::SlaPolicy {
            calendar,
            ..sla::SlaPolicy::default()
        },
        text => sla::SlaPolicy::parse(text, calendar)
            .map_err(anyhow::Error::msg)
            .context("CASEWAY_TICKETING_SLA")?,
    };
    if !(1..=3650).contains(&config.ticketing_close_after_days) {
        anyhow::bail!("CASEWAY_TICKETING_CLOSE_AFTER_DAYS: from 1 to 3650 days");
    }
    let close_after = chrono::Duration::days(i64::from(config.ticketing_close_after_days));
    let files = files::Files::open(config).context("CASEWAY_TICKETING_ATTACHMENTS")?;
    let ticketing = Arc::new(service::Ticketing::new(
        platform.db.clone(),
        matrix,
        sla,
        close_after,
        files,
    ));
    node.add_service(
        TicketingServiceServer::from_arc(Arc::new(api::TicketingApi::new(
            platform.clone(),
            ticketing.clone(),
        )))
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    worker::follow_changes(platform, node, ticketing.clone());
    worker::sweep(node, config.ticketing_sweep_interval, ticketing);
    Ok(())
}
