//! The cross-cutting library every Caseway service stands on: configuration, authentication and
//! the tenant context, database access under row-level security, the outbox/inbox event bus, the
//! error model, telemetry, health and graceful shutdown, and the gRPC server assembly.

pub mod access;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod caller;
pub mod config;
pub mod convert;
pub mod db;
pub mod error;
pub mod etag;
pub mod idempotency;
pub mod ids;
pub mod inbox;
pub mod layer;
pub mod metrics;
pub mod objects;
pub mod outbox;
pub mod paging;
mod pool;
pub mod rate_limit;
pub mod redis;
pub mod revocation;
pub mod sealing;
pub mod secrets;
pub mod server;
pub mod telemetry;
mod tenant_cap;
pub mod tenant_status;
pub mod tls;
pub mod validate;

pub use config::Config;
pub use db::{Db, PLATFORM_TENANT, Scoped, SupportTx, SystemTx, TenantStatements, TenantTx};
pub use error::{Error, FieldViolation, Result};
pub use ids::{
    AuthorizationId, ClientId, DecisionId, GrantId, HoldId, RecordId, RuleId, ServiceId, TenantId,
};

/// Migrations of the platform's own schema (outbox, inbox, idempotency keys, audit log).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/platform");
