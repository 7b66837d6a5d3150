//! Assessments: tenant-defined types of typed fields, and the assessments recorded for clients
//! against them, kept as history. This folder holds their rooms (docs/code-shape.md).

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod service;
pub mod store;
