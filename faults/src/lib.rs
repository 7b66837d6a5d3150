//! The fault suite: a node under a steady load of mixed calls from several tenants while a
//! real server it depends on is taken away and given back, then a count, against the ledger
//! the load kept, of every call that failed and every effect that was lost or applied twice.
//!
//! - `proxy`: a TCP proxy between the node and a server, cut and healed by the test.
//! - `load`: the tenants, the load and its ledger.
//! - `report`: the table row of each fault (docs/reliability.md keeps the latest).
//! - `scenario`: the broker's and the database's outage, however the server is taken away.
//! - `check`: what a scenario reads back from the node.
//! - `fuzz`: made-up requests from the API's descriptors, random and mangled bytes.
//! - `node`: nodes as processes of their own (stopped and killed by the test), and a client
//!   over several nodes that drops one once its readiness fails.

pub mod check;
pub mod fuzz;
pub mod load;
pub mod node;
pub mod proxy;
pub mod report;
pub mod scenario;

/// The duration the variable `name` gives in seconds, else `default`.
pub fn seconds(name: &str, default: u64) -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}
