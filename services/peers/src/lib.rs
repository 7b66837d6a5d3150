//! Typed clients of the other Caseway services, one module per service called. A service crate
//! asks its peers only through these: each call has a deadline, only idempotent calls are
//! retried (and only when the peer could not be reached), a peer's failures become this
//! service's [`Error`](caseway_platform::Error) in one place ([`call`]), and what is looked up
//! often is cached until an event says it changed.
//!
//! [`rules`] holds the rules two services apply to what the catalog says of a service (units of
//! measure and their scale, who may use a restricted service), so that records and
//! authorizations apply the same ones.

pub mod authorizations;
pub mod call;
pub mod catalog;
pub mod clients;
pub mod eligibility;
pub mod records;
pub mod rules;
pub mod tenancy;
