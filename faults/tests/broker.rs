//! RabbitMQ gone under load: a node's connections to the broker run through a proxy the test
//! cuts for 30 s (`CASEWAY_FAULT_SECONDS`) while two tenants record services against their
//! authorizations and update their clients at a steady rate. Nothing may fail, no event may be
//! lost or applied twice (every authorization's drawdown equals the records acknowledged
//! against it), and the outbox must drain within 30 s of the broker's return; readiness holds
//! and the metrics show the outage.

use std::time::{Duration, Instant};

use caseway_faults::check::{drawdown_gap, metric, settled_gap};
use caseway_faults::load::{self, Running};
use caseway_faults::proxy::TcpProxy;
use caseway_faults::report::Row;
use caseway_integration_tests::{TestEnv, http_get};

/// Calls a second the load holds, over both tenants.
const RATE: u32 = 40;
/// How long after the broker's return every effect must show.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_gone_for_30_seconds_fails_no_call_and_loses_no_event() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30);
    let env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut config = env.config();
    assert!(
        config.amqp_url.contains("127.0.0.1:5672"),
        "{}",
        config.amqp_url
    );
    config.amqp_url = config
        .amqp_url
        .replace("127.0.0.1:5672", &proxy.addr.to_string());
    config.tenant_rate_limit = 0;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let tenants = load::two_tenants(&env, &node, "fault").await;
    let channel = load::connect(&node).await;

    let running = Running::start(&channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(5)).await;

    proxy.cut();
    let cut = Instant::now();
    // The node notices, and keeps serving: readiness does not depend on the broker.
    let mut noticed = false;
    while cut.elapsed() < outage {
        if metric(&node, "caseway_rabbitmq_up").await == Some(0.0) {
            noticed = true;
        }
        let (ready, _) = http_get(node.metrics_addr(), "/readyz").await;
        assert_eq!(ready, 200, "readiness holds while the broker is away");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(noticed, "caseway_rabbitmq_up showed the outage");
    let waiting = metric(&node, "caseway_outbox_events").await.unwrap_or(0.0);
    assert!(waiting > 0.0, "events waited in the outbox ({waiting})");
    proxy.heal();
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
    let row = Row {
        fault: format!("RabbitMQ gone {} s (proxy cut)", outage.as_secs()),
        load: ledger.entries().len() as f64 / elapsed.as_secs_f64(),
        calls: ledger.entries().len(),
        failed: ledger.failed().len(),
        lost: gap.0,
        duplicated: gap.1,
        recovery,
        recovery_target: RECOVERY,
    };
    row.print();
    assert!(
        ledger.failed().is_empty(),
        "failed calls: {:?}",
        ledger.failed()
    );
    assert!(row.met(), "{row:?}");
    // The outbox drained.
    let mut drained = false;
    for _ in 0..40 {
        if metric(&node, "caseway_outbox_events").await == Some(0.0) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(drained, "the outbox drained once the broker was back");
}
