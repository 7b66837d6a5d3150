//! A node stopped with SIGTERM under load, one of two serving every target, the client using
//! both (and dropping the stopping one once its readiness fails, as a Service's endpoints do):
//! no call fails, the stopping node's relay flushes what it committed, its consumers hand
//! their unacknowledged deliveries back, and every record shows once in its authorization's
//! drawdown. The stopping node exits 0 within its shutdown delay and grace.

use std::time::{Duration, Instant};

use caseway_faults::check::{handled, metric, settled_gap, unaudited_records};
use caseway_faults::load::{self, Running};
use caseway_faults::node::{Balanced, ProcessNode};
use caseway_faults::report::Row;
use caseway_integration_tests::TestEnv;

const RATE: u32 = 40;
/// How long after the load ends every effect must show.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_one_node_of_two_fails_no_call_and_loses_no_event() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    // As the chart deploys a node: NOT_SERVING, then 2 s before the listener closes.
    config.shutdown_delay = Duration::from_secs(2);
    config.shutdown_grace = Duration::from_secs(20);
    let stays = env.start_with(config.clone(), &caseway::Target::ALL).await;
    let mut stopping =
        ProcessNode::start(env!("CARGO_BIN_EXE_fault-node").as_ref(), &config, "all").await;
    let tenants = load::two_tenants(&env, &stays, "term").await;
    let client = Balanced::over(&[
        (stays.addr(), stays.metrics_addr()),
        (stopping.addr, stopping.metrics_addr),
    ])
    .await;

    let running = Running::start(&client.channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let served = handled(stopping.metrics_addr).await;
    stopping.signal("TERM");
    let stopped_at = Instant::now();
    let status = stopping
        .exited(config.shutdown_delay + config.shutdown_grace + Duration::from_secs(5))
        .await;
    let exited_in = stopped_at.elapsed();
    // The load goes on through the node that stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (ledger, elapsed) = running.finish().await;

    assert!(status.success(), "the node exits 0 on SIGTERM: {status}");
    assert_eq!(
        client.left(),
        vec![stopping.addr],
        "the stopping node left the client's set"
    );
    assert!(
        stopping.logged("calls drained; stopping workers"),
        "the node drained its calls: {:#?}",
        stopping.log()
    );
    assert!(
        stopping.logged("outbox flushed at shutdown"),
        "the stopping node's relay flushed: {:#?}",
        stopping.log()
    );
    let gap = settled_gap(&client.channel, &tenants, &ledger, RECOVERY).await;
    // Recovery: how long the stopping node took to leave (its delay, the drain, the flush).
    Row::of(
        "SIGTERM of one node of two",
        &ledger,
        elapsed,
        gap,
        exited_in,
        config.shutdown_delay + config.shutdown_grace,
    )
    .check();
    println!("  the stopping node had answered {served} calls and exited 0 in {exited_in:.1?}");
    assert!(served > 0.0, "the stopping node served part of the load");
    assert_eq!(
        unaudited_records(&env).await,
        0,
        "a record without its audit row"
    );
    // Nothing waits in the outbox, and the drawdown queue holds nothing unacknowledged: what
    // the stopping node's consumer had taken went back to the queue and was applied once.
    assert_eq!(metric_of_outbox(&stays).await, 0.0, "the outbox drained");
    assert_eq!(
        env.bus
            .waiting(caseway_authorizations::events::CONSUMER)
            .await,
        0,
        "no delivery waits in the drawdown queue"
    );
    // Stopped before the test's exchange and queues go, so its consumers declare none again.
    stays.shutdown().await;
}

async fn metric_of_outbox(node: &caseway_integration_tests::TestNode) -> f64 {
    for _ in 0..40 {
        if metric(node, "caseway_outbox_events").await == Some(0.0) {
            return 0.0;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    metric(node, "caseway_outbox_events").await.unwrap_or(-1.0)
}
