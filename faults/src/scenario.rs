//! The scenarios more than one fault shares: a server the node depends on taken away for a
//! while under load and given back, however it is taken away (a proxy cut, or the server
//! itself stopped by its own commands), checked against the load's ledger. Each asserts its
//! targets and returns its row of the table.

use std::time::{Duration, Instant};

use caseway_integration_tests::{TestEnv, TestNode, http_get};

use crate::check::{drawdown_gap, metric, settled_gap, unaudited_records};
use crate::load::{self, Running};
use crate::proxy::TcpProxy;
use crate::report::Row;

/// Calls a second the load holds, over both tenants.
pub const RATE: u32 = 40;
/// How long after the broker's return every effect must show.
const RECOVERY: Duration = Duration::from_secs(30);
/// How soon after the database's return calls succeed again.
const BACK_WITHIN: Duration = Duration::from_secs(5);
/// The longest a call may take while the database is away: the pool's wait and a margin.
const FAIL_WITHIN: Duration = Duration::from_secs(7);

/// A way of taking a server away from a node and giving it back.
pub trait Fault {
    fn cut(&self);
    fn heal(&self);
    /// How, for the table.
    fn how(&self) -> String;
}

impl Fault for TcpProxy {
    fn cut(&self) {
        TcpProxy::cut(self)
    }

    fn heal(&self) {
        TcpProxy::heal(self)
    }

    fn how(&self) -> String {
        "proxy cut".into()
    }
}

/// A server stopped and started again with its own commands (each a program and its
/// arguments), described as `how`.
pub struct Commands {
    pub cut: Vec<String>,
    pub heal: Vec<String>,
    pub how: String,
}

fn run(command: &[String]) {
    let status = std::process::Command::new(&command[0])
        .args(&command[1..])
        .status()
        .unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
    assert!(status.success(), "{command:?}: {status}");
}

impl Fault for Commands {
    fn cut(&self) {
        run(&self.cut)
    }

    fn heal(&self) {
        run(&self.heal)
    }

    fn how(&self) -> String {
        self.how.clone()
    }
}

/// RabbitMQ away from `node` for `outage` under load: no call fails, no event is lost or
/// applied twice (every authorization's drawdown equals the records acknowledged against
/// it), the outbox drains within 30 s of the broker's return; readiness holds and the
/// metrics show the outage.
pub async fn broker_gone(
    env: &TestEnv,
    node: &TestNode,
    prefix: &str,
    fault: &dyn Fault,
    outage: Duration,
) -> Row {
    let tenants = load::two_tenants(env, node, prefix).await;
    let channel = load::connect(node).await;

    let running = Running::start(&channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(5)).await;

    fault.cut();
    let cut = Instant::now();
    // The node notices, and keeps serving: readiness does not depend on the broker.
    let mut noticed = false;
    while cut.elapsed() < outage {
        if metric(node, "caseway_rabbitmq_up").await == Some(0.0) {
            noticed = true;
        }
        let (ready, _) = http_get(node.metrics_addr(), "/readyz").await;
        assert_eq!(ready, 200, "readiness holds while the broker is away");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(noticed, "caseway_rabbitmq_up showed the outage");
    let waiting = metric(node, "caseway_outbox_events").await.unwrap_or(0.0);
    assert!(waiting > 0.0, "events waited in the outbox ({waiting})");
    fault.heal();
    let healed = Instant::now();
    // Recovered once every record acknowledged before the broker came back shows in its
    // authorization's drawdown, while the load goes on.
    let recovery = loop {
        let (lost, _) = drawdown_gap(&channel, &tenants, &running.ledger, Some(healed)).await;
        if lost == 0 || healed.elapsed() > RECOVERY * 2 {
            break healed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(healed.elapsed())).await;
    let (ledger, elapsed) = running.finish().await;

    // Every record acknowledged shows in its authorization's drawdown, once.
    let gap = settled_gap(&channel, &tenants, &ledger, RECOVERY).await;
    let row = Row::of(
        format!("RabbitMQ gone {} s ({})", outage.as_secs(), fault.how()),
        &ledger,
        elapsed,
        gap,
        recovery,
        RECOVERY,
    );
    row.check();
    // The outbox drained.
    let mut drained = false;
    for _ in 0..40 {
        if metric(node, "caseway_outbox_events").await == Some(0.0) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(drained, "the outbox drained once the broker was back");
    row
}

/// PostgreSQL away from `node` for `outage` under load: calls fail fast with UNAVAILABLE
/// (never INTERNAL, never hanging past the pool's 5 s wait); nothing is half-written (each
/// call retried once under its request id, as a client does, leaves exactly one effect); the
/// node serves again within 5 s of the database's return, and readiness says when it cannot.
pub async fn postgres_gone(
    env: &TestEnv,
    node: &TestNode,
    prefix: &str,
    fault: &dyn Fault,
    outage: Duration,
) -> Row {
    let tenants = load::two_tenants(env, node, prefix).await;
    let channel = load::connect(node).await;
    let running = Running::start(&channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;

    fault.cut();
    let cut = Instant::now();
    let mut unready = false;
    while cut.elapsed() < outage {
        let (ready, _) = http_get(node.metrics_addr(), "/readyz").await;
        unready |= ready == 503;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        unready,
        "readiness said the node cannot serve without its database"
    );
    fault.heal();
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ledger, elapsed) = running.finish().await;

    let entries = ledger.entries();
    // During the outage: UNAVAILABLE, fast; never INTERNAL or anything else.
    for entry in ledger.failed() {
        assert!(
            matches!(entry.code, tonic::Code::Unavailable),
            "a call failed with {:?}, not UNAVAILABLE",
            entry.code
        );
        assert!(
            entry.latency < FAIL_WITHIN,
            "a call took {:?}",
            entry.latency
        );
    }
    assert!(
        !ledger.failed().is_empty(),
        "calls were refused while the database was away"
    );
    // Back: the first call answered after the heal that succeeded, and none failing after it.
    let back = entries
        .iter()
        .filter(|e| e.answered > healed && e.code == tonic::Code::Ok)
        .map(|e| e.answered - healed)
        .min()
        .expect("calls succeed after the heal");
    let late_failures = entries
        .iter()
        .filter(|e| e.code != tonic::Code::Ok && e.answered > healed + BACK_WITHIN)
        .count();
    assert_eq!(
        late_failures, 0,
        "calls failed more than 5 s after the database came back"
    );

    // Each refused call tried again under its request id: one effect per request in the end.
    let refused = ledger.retry_failed(&channel, &tenants).await;
    assert!(
        ledger.failed().is_empty(),
        "a retry failed: {:?}",
        ledger.failed()
    );
    let gap = settled_gap(&channel, &tenants, &ledger, Duration::from_secs(30)).await;
    // Every record stored came with its audit row (and its event: the drawdown counts it).
    assert_eq!(
        unaudited_records(env).await,
        0,
        "a record without its audit row"
    );
    let row = Row::of(
        format!("PostgreSQL gone {} s ({})", outage.as_secs(), fault.how()),
        &ledger,
        elapsed,
        gap,
        back,
        BACK_WITHIN,
    );
    row.print();
    println!(
        "  {} calls refused UNAVAILABLE during the outage (slowest {:?}), each stored once when retried",
        refused.len(),
        refused.iter().map(|e| e.latency).max().unwrap_or_default()
    );
    assert!(row.met(), "{row:?}");
    row
}
