//! The tenancy service: tenants (the organizations a hosting provider serves) and their
//! security organizations. The rooms: `domain` (types and rules), `convert` (proto <-> domain),
//! `store` (SQL), `events` (what it publishes), `service` (the use cases), `api` (the gRPC
//! handlers); this file wires them into a node.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;

use std::sync::Arc;

use caseway_api::tenancy::v1::tenancy_service_server::TenancyServiceServer;
use caseway_platform::server::{NodeBuilder, Platform};

pub use service::Tenancy;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tenancy");

/// Adds the tenancy service to a node.
pub fn register(platform: &Arc<Platform>, node: &mut NodeBuilder) {
    let tenancy = Tenancy::new(platform.db.clone(), platform.tenants.clone());
    node.add_service(
        TenancyServiceServer::new(api::TenancyApi::new(platform.clone(), tenancy))
            .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
}
