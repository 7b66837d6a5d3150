//! What a scenario reads back from the node once a fault has healed.

use std::time::Instant;

use tonic::transport::Channel;

use caseway_integration_tests::{TestEnv, TestNode, http_get};

use crate::load::{self, Ledger, LoadTenant};

/// The value of the sample `series` (its name and labels as written) on the node's
/// `/metrics`.
pub async fn metric(node: &TestNode, series: &str) -> Option<f64> {
    let (_, text) = http_get(node.metrics_addr(), "/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Calls the node whose metrics port is `addr` has answered, over every method and code.
pub async fn handled(addr: std::net::SocketAddr) -> f64 {
    let (_, text) = http_get(addr, "/metrics").await;
    text.lines()
        .filter(|line| line.starts_with("grpc_server_handled_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Units recorded and acknowledged (answered before `before`, when given) against what each
/// authorization shows (its delivered units and its record count): (lost, duplicated) over
/// every plan of every tenant.
pub async fn drawdown_gap(
    channel: &Channel,
    tenants: &[LoadTenant],
    ledger: &Ledger,
    before: Option<Instant>,
) -> (i64, i64) {
    let (mut lost, mut duplicated) = (0, 0);
    for (t, tenant) in tenants.iter().enumerate() {
        let recorded = ledger.recorded(t, tenant.plans.len(), before);
        let shown = load::utilization(channel, tenant)
            .await
            .expect("utilization answers");
        for (expected, shown) in recorded.iter().zip(shown) {
            let expected = *expected as i64;
            let units = shown.delivered_units.parse::<f64>().unwrap_or(0.0) as i64;
            for got in [units, i64::from(shown.service_record_count)] {
                lost += (expected - got).max(0);
                duplicated += (got - expected).max(0);
            }
        }
    }
    (lost, duplicated)
}

/// The drawdown gap once it closes, or as it stands after `bound` (effects still on their way
/// through the outbox and the consumer are given that long).
pub async fn settled_gap(
    channel: &Channel,
    tenants: &[LoadTenant],
    ledger: &Ledger,
    bound: std::time::Duration,
) -> (i64, i64) {
    let settled = Instant::now();
    loop {
        let gap = drawdown_gap(channel, tenants, ledger, None).await;
        if gap == (0, 0) || settled.elapsed() >= bound {
            return gap;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Units held over every plan of every tenant: holds whose record was neither stored nor
/// given back yet.
pub async fn held(channel: &Channel, tenants: &[LoadTenant]) -> f64 {
    let mut held = 0.0;
    for tenant in tenants {
        for shown in load::utilization(channel, tenant)
            .await
            .expect("utilization answers")
        {
            held += shown.held_units.parse::<f64>().unwrap_or(0.0);
        }
    }
    held
}

/// Service records stored without the audit row of their creation (a half-written call),
/// read as the database's owner across tenants.
pub async fn unaudited_records(env: &TestEnv) -> i64 {
    let mut owner = env.db.owner().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM records.service_records r \
         WHERE NOT EXISTS (SELECT 1 FROM platform.audit_log a \
                           WHERE a.tenant_id = r.tenant_id AND a.resource_id = r.id)",
    )
    .fetch_one(&mut owner)
    .await
    .expect("the records and the audit log read")
}
