//! A node killed with SIGKILL mid-write, one of two serving every target under load: calls in
//! flight on it fail (the client sees the connection go), and each, retried once under its
//! request id as a client does, is stored once. Nothing is half-written (every record has its
//! audit row, every record's event reaches the drawdown: the outbox loses nothing), and units
//! held for records the killed node never stored are given back by the sweeper, which gives
//! back nothing of a record that was stored.

use std::time::{Duration, Instant};

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_internal_service_client::AuthorizationsInternalServiceClient;
use caseway_faults::check::{handled, held, settled_gap, unaudited_records};
use caseway_faults::load::{self, Running};
use caseway_faults::node::{Balanced, ProcessNode};
use caseway_faults::report::Row;
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::access::HOLD_UNITS;

const RATE: u32 = 60;
/// Holds older than this are looked into by the sweeper (10 minutes in a deployment).
const UNSETTLED_AFTER: Duration = Duration::from_secs(5);
/// From the kill until every hold of a record never stored is given back.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_half_writes_nothing_and_holds_no_unit_forever() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    config.authorizations_sweep_interval = Duration::from_secs(1);
    config.authorizations_unsettled_after = UNSETTLED_AFTER;
    let stays = env.start_with(config.clone(), &caseway::Target::ALL).await;
    let mut killed =
        ProcessNode::start(env!("CARGO_BIN_EXE_fault-node").as_ref(), &config, "all").await;
    let tenants = load::two_tenants(&env, &stays, "kill").await;
    let client = Balanced::over(&[
        (stays.addr(), stays.metrics_addr()),
        (killed.addr, killed.metrics_addr),
    ])
    .await;

    let running = Running::start(&client.channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A records process that died between holding units and storing its record, for sure
    // (the kill below leaves such holds only when it lands between the two): units held by
    // the records service's identity for a record that is never stored.
    let tenant = &tenants[0];
    let plan = &tenant.plans[0];
    let never_stored = uuid::Uuid::now_v7().to_string();
    AuthorizationsInternalServiceClient::new(client.channel.clone())
        .reserve_units(authed(
            &env.service_token("records", tenant.id, HOLD_UNITS),
            pb::ReserveUnitsRequest {
                authorization_id: plan.authorization.clone(),
                service_record_id: never_stored,
                service_record_version: 1,
                client_id: plan.client.clone(),
                service_id: tenant.service.clone(),
                service_date: Some(load::day(tenant.first_day + chrono::Days::new(1))),
                units: "7".into(),
                hold_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .expect("units held");

    let served = handled(killed.metrics_addr).await;
    killed.signal("KILL");
    let killed_at = Instant::now();
    let status = killed.exited(Duration::from_secs(5)).await;
    assert!(!status.success(), "the node was killed: {status}");
    // The client drops it once its readiness does not answer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held_at_kill = held(&client.channel, &tenants).await;
    assert!(
        held_at_kill >= 7.0,
        "the hold of a record never stored counts: {held_at_kill}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (ledger, elapsed) = running.finish().await;

    // The calls the kill cut, each retried once under its request id through the node that
    // stays: stored once, whether or not the killed node had committed it.
    let cut = ledger.retry_failed(&client.channel, &tenants).await;
    assert!(
        ledger.failed().is_empty(),
        "a retried call failed: {:?}",
        ledger.failed()
    );
    for entry in &cut {
        assert!(
            // The connection went mid-call: tonic says UNAVAILABLE, UNKNOWN or (hyper's
            // "operation was canceled: connection closed") CANCELLED.
            matches!(
                entry.code,
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ),
            "a call cut by the kill failed with {:?}",
            entry.code
        );
    }
    // Every hold of a record never stored is given back, and no stored record's units are.
    let given_back = loop {
        let held = held(&client.channel, &tenants).await;
        if held == 0.0 || killed_at.elapsed() > RECOVERY * 2 {
            break killed_at.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let gap = settled_gap(&client.channel, &tenants, &ledger, RECOVERY).await;
    // The calls cut by the kill were refused as they must be, and stored once on retry.
    let row = Row::of(
        "SIGKILL of one node of two mid-write",
        &ledger,
        elapsed,
        gap,
        given_back,
        RECOVERY,
    );
    row.print();
    println!(
        "  the killed node had answered {served} calls; {} calls cut by the kill ({:?}), each \
         stored once when retried; {held_at_kill} units held at the kill, all given back",
        cut.len(),
        cut.iter().map(|e| e.code).collect::<Vec<_>>()
    );
    assert_eq!(
        held(&client.channel, &tenants).await,
        0.0,
        "units held forever"
    );
    assert_eq!(
        unaudited_records(&env).await,
        0,
        "a record without its audit row"
    );
    assert!(row.met(), "{row:?}");
    stays.shutdown().await;
}
