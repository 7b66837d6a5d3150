//! RabbitMQ gone under load: a node's connections to the broker run through a proxy the test
//! cuts for 30 s (`CASEWAY_FAULT_SECONDS`) while two tenants record services against their
//! authorizations and update their clients at a steady rate. Nothing may fail, no event may be
//! lost or applied twice (every authorization's drawdown equals the records acknowledged
//! against it), and the outbox must drain within 30 s of the broker's return; readiness holds
//! and the metrics show the outage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use caseway_faults::check::{drawdown_gap, metric};
use caseway_faults::load::{self, Ledger};
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
    let tenants = Arc::new(vec![
        load::seed(&env, &node, "fault-a", 4).await,
        load::seed(&env, &node, "fault-b", 4).await,
    ]);
    let channel = Channel::from_shared(format!("http://{}", node.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let ledger = Ledger::default();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let driver = tokio::spawn(load::drive(
        channel.clone(),
        tenants.clone(),
        RATE,
        ledger.clone(),
        stop.clone(),
    ));
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
        let (lost, _) = drawdown_gap(&channel, &tenants, &ledger, Some(healed)).await;
        if lost == 0 || healed.elapsed() > RECOVERY * 2 {
            break healed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(healed.elapsed())).await;
    stop.cancel();
    driver.await.unwrap();
    let elapsed = started.elapsed();

    // Every record acknowledged shows in its authorization's drawdown, once.
    let settled = Instant::now();
    let mut gap = drawdown_gap(&channel, &tenants, &ledger, None).await;
    while gap != (0, 0) && settled.elapsed() < RECOVERY {
        tokio::time::sleep(Duration::from_millis(250)).await;
        gap = drawdown_gap(&channel, &tenants, &ledger, None).await;
    }
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
