//! The whole-system tests, in one test binary: each file is a module, and nextest still runs
//! each test in a process of its own. One binary is linked once and builds the generic client
//! and server code its files share once, where a binary per file did both for every file.
//!
//!     cargo nextest run -p caseway-integration-tests -E 'test(/^clients::/)'

mod api_contract;
mod assessments;
mod authorizations;
mod catalog;
mod clients;
mod cross_tenant;
mod eligibility;
mod helm_chart;
mod hmis;
mod metrics;
mod migrations;
mod nodes;
mod offboarding;
mod operator;
mod records;
mod row_level_security;
mod security;
mod tenancy;
mod ticket_attachments;
mod ticketing;
mod tls;
mod traces;
