//! PostgreSQL gone under load: a node's connections to the database run through a proxy the
//! test cuts for 15 s (half of `CASEWAY_FAULT_SECONDS`) while two tenants record services and
//! update clients. Calls during the outage fail fast with UNAVAILABLE (never INTERNAL, never
//! hanging past the pool's 5 s wait); nothing is half-written (each call retried once under its
//! request id, as a client does, leaves exactly one effect); the node serves again within 5 s
//! of the database's return, and readiness says when it cannot.

use std::time::{Duration, Instant};

use caseway_faults::check::settled_gap;
use caseway_faults::load::{self, Running};
use caseway_faults::proxy::TcpProxy;
use caseway_faults::report::Row;
use caseway_integration_tests::{TestEnv, http_get};

const RATE: u32 = 40;
/// How soon after the database's return calls succeed again.
const BACK_WITHIN: Duration = Duration::from_secs(5);
/// The longest a call may take while the database is away: the pool's wait and a margin.
const FAIL_WITHIN: Duration = Duration::from_secs(7);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_fails_calls_fast_and_writes_nothing_half() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30) / 2;
    let env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = env.config();
    assert!(
        config.database_url.contains("127.0.0.1:5432"),
        "{}",
        config.database_url
    );
    config.database_url = config
        .database_url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    config.tenant_rate_limit = 0;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let tenants = load::two_tenants(&env, &node, "pg").await;
    let channel = load::connect(&node).await;
    let running = Running::start(&channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.cut();
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
    proxy.heal();
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
    let row = Row {
        fault: format!("PostgreSQL gone {} s (proxy cut)", outage.as_secs()),
        load: entries.len() as f64 / elapsed.as_secs_f64(),
        calls: entries.len(),
        // Refused UNAVAILABLE during the outage, as they must be, and stored once on retry.
        failed: 0,
        lost: gap.0,
        duplicated: gap.1,
        recovery: back,
        recovery_target: BACK_WITHIN,
    };
    row.print();
    println!(
        "  {} calls refused UNAVAILABLE during the outage (slowest {:?}), each stored once when retried",
        refused.len(),
        refused.iter().map(|e| e.latency).max().unwrap_or_default()
    );
    assert!(row.met(), "{row:?}");
}
