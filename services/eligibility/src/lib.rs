//! The eligibility service: a tenant administrator's rules over a client's facts (age, veteran
//! status, assessments, barriers, enrollments, services received), checked when saved,
//! published as versions that never change, and decided per catalog service as of a date with
//! every criterion's result and the facts it read, stored so a decision can be shown and
//! replayed (docs/eligibility.md). Its facts are its own, kept by the other services' events.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod reads;
pub mod rebuild;
pub mod service;
pub mod store;
pub mod worker;

use std::sync::Arc;

use caseway_api::eligibility::v1::eligibility_internal_service_server::EligibilityInternalServiceServer;
use caseway_api::eligibility::v1::eligibility_service_server::EligibilityServiceServer;
use caseway_api::encoded::EncodedReplies;
use caseway_platform::server::{NodeBuilder, Platform};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/eligibility");

pub use events::SOURCE;

/// Adds the eligibility service to a node: the gRPC service, its internal service for the
/// records and authorizations services, and the consumer of the facts its rules read.
pub fn register(platform: &Arc<Platform>, node: &mut NodeBuilder) {
    let eligibility = Arc::new(service::Eligibility::new(platform.db.clone()));
    let api = Arc::new(api::EligibilityApi::new(
        platform.clone(),
        eligibility.clone(),
    ));
    let max = platform.config.grpc_max_message_bytes;
    node.add_service(EncodedReplies::new(
        EligibilityServiceServer::from_arc(api.clone()).max_decoding_message_size(max),
        api::CheckReplies::PATH,
        api::CheckReplies(api),
        max,
    ));
    node.add_service(
        EligibilityInternalServiceServer::from_arc(Arc::new(api::EligibilityInternalApi::new(
            eligibility.clone(),
        )))
        .max_decoding_message_size(platform.config.grpc_max_message_bytes),
    );
    worker::follow_rules(platform, node, eligibility.clone());
    worker::hear_facts(platform, node, eligibility.clone());
    worker::follow_facts(platform, node, eligibility);
}
