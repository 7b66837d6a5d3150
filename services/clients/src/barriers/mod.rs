//! Barriers (needs) of clients: a type from the catalog's BARRIER_TYPE list, checked with the
//! catalog over gRPC, followed from identification to resolution. This folder holds their rooms
//! (docs/code-shape.md).

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
