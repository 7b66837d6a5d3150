//! A slow peer under load: the authorizations service a node's records service holds units
//! with answers only after 10 s (a proxy holds its answers) while two tenants record services
//! and update clients, each call with a deadline of 2 s. Calls that need the slow peer fail at
//! their caller's deadline with DEADLINE_EXCEEDED or UNAVAILABLE, never later and never
//! INTERNAL (a call with no deadline of its own fails UNAVAILABLE after the node's 5 s for a
//! peer, asked once); calls that do not need it are untouched; nothing piles up (the node's tasks, its
//! connections to the peer and its database connections in use are measured through the
//! outage); once the peer is quick again every call succeeds, each refused one retried under
//! its request id is stored once, and the units held for the abandoned calls are given back.

use std::time::{Duration, Instant};

use caseway::Target;
use caseway_api::records::v1 as records_pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_faults::check::{held, metric, settled_gap};
use caseway_faults::load::{self, Operation, Running};
use caseway_faults::proxy::TcpProxy;
use caseway_faults::report::Row;
use caseway_integration_tests::{TestEnv, authed};

const RATE: u32 = 20;
/// How late the slow peer answers.
const LAG: Duration = Duration::from_secs(10);
/// The deadline each call of the load carries.
const DEADLINE: Duration = Duration::from_secs(2);
/// How long a node waits for a peer when its caller set no deadline.
const PEER_DEADLINE: Duration = Duration::from_secs(5);
/// How long after the peer is quick again calls must succeed: answers the proxy already held
/// come out up to its lag later.
const RECOVERY: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_answering_after_10_seconds_fails_calls_at_their_deadline_and_piles_up_nothing() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30) / 2;
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    config.authorizations_sweep_interval = Duration::from_secs(1);
    config.authorizations_unsettled_after = Duration::from_secs(5);
    let peer = env.start_with(config.clone(), &Target::ALL).await;
    let proxy = TcpProxy::start(peer.addr()).await;
    // A node serving every target but authorizations, which it calls through the proxy.
    let mut node_config = config;
    node_config.authorizations_endpoint = Some(format!("http://{}", proxy.addr));
    let targets: Vec<Target> = Target::ALL
        .iter()
        .copied()
        .filter(|t| *t != Target::Authorizations)
        .collect();
    let node = env.start_with(node_config, &targets).await;
    let tenants = load::two_tenants(&env, &peer, "slow").await;
    let channel = load::connect(&node).await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };

    let running = Running::start_with(&channel, &tenants, RATE, Some(DEADLINE));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (tasks_before, connections_before) = (tasks(), proxy.connections());
    proxy.slow(LAG);
    let slowed = Instant::now();
    // A caller that sets no deadline: the node gives the slow peer its own 5 s, once (a peer
    // that did not answer in time is not asked again), and answers UNAVAILABLE.
    let patient = {
        let (channel, tenant) = (channel.clone(), &tenants[0]);
        let request = records_pb::RecordServiceRequest {
            request_id: "slow-no-deadline".into(),
            record: Some(records_pb::ServiceRecord {
                client_id: tenant.plans[0].client.clone(),
                service_id: tenant.service.clone(),
                service_date: Some(load::day(tenant.first_day)),
                grant_id: tenant.grant.clone(),
                units: "1".into(),
                authorization_id: tenant.plans[0].authorization.clone(),
                ..Default::default()
            }),
        };
        let request = authed(&tenant.worker, request);
        tokio::spawn(async move {
            let at = Instant::now();
            let answer = RecordsServiceClient::new(channel)
                .record_service(request)
                .await;
            (answer.map(|_| ()), at.elapsed())
        })
    };
    // Sampled through the outage: the first half against the second shows whether anything
    // grows with the outage's length.
    let (mut first_half, mut second_half, mut in_use) = (0, 0, 0.0f64);
    while slowed.elapsed() < outage {
        let now = tasks();
        if slowed.elapsed() < outage / 2 {
            first_half = first_half.max(now);
        } else {
            second_half = second_half.max(now);
        }
        let db = metric(&node, "caseway_db_connections{state=\"in_use\"}").await;
        in_use = in_use.max(db.unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let connections_during = proxy.connections() - connections_before;
    let (answer, waited) = patient.await.expect("the call without a deadline answers");
    let status = answer.expect_err("a call needing the slow peer fails");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        waited < PEER_DEADLINE + Duration::from_secs(1),
        "a call without a deadline waited {waited:?} on the slow peer"
    );
    proxy.heal();
    let healed = Instant::now();
    tokio::time::sleep(RECOVERY).await;
    let (ledger, elapsed) = running.finish().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tasks_after = tasks();

    let entries = ledger.entries();
    let failed = ledger.failed();
    for entry in &failed {
        assert_eq!(
            entry.operation,
            Operation::RecordService,
            "a call that does not need the slow peer failed: {entry:?}"
        );
        assert!(
            matches!(
                entry.code,
                tonic::Code::DeadlineExceeded | tonic::Code::Unavailable
            ),
            "a call failed with {:?}",
            entry.code
        );
        assert!(
            entry.latency < DEADLINE + Duration::from_millis(500),
            "a call failed only after {:?}",
            entry.latency
        );
    }
    assert!(
        !failed.is_empty(),
        "calls that needed the slow peer failed at their deadline"
    );
    // Back once the held answers are out: the last failure, from the heal.
    let last_failure = failed
        .iter()
        .map(|e| e.answered.saturating_duration_since(healed))
        .max()
        .unwrap_or_default();
    let late = entries
        .iter()
        .filter(|e| e.code != tonic::Code::Ok && e.answered > healed + LAG + DEADLINE)
        .count();
    assert_eq!(late, 0, "calls still failed once the held answers were out");

    let refused = ledger.retry_failed(&channel, &tenants).await;
    assert!(
        ledger.failed().is_empty(),
        "a retry failed: {:?}",
        ledger.failed()
    );
    let gap = settled_gap(&peer.channel, &tenants, &ledger, Duration::from_secs(30)).await;
    let given_back = Instant::now();
    while held(&peer.channel, &tenants).await > 0.0
        && given_back.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The calls refused at their deadline were refused as they must be, and stored once on
    // retry.
    let row = Row::of(
        format!(
            "A peer answering after {} s, for {} s (proxy lag)",
            LAG.as_secs(),
            outage.as_secs()
        ),
        &ledger,
        elapsed,
        gap,
        last_failure,
        LAG + DEADLINE,
    );
    row.print();
    println!(
        "  {} calls refused at their {} s deadline (slowest {:?}), each stored once when retried",
        refused.len(),
        DEADLINE.as_secs(),
        refused.iter().map(|e| e.latency).max().unwrap_or_default()
    );
    println!("  a call without a deadline answered UNAVAILABLE in {waited:.1?}");
    println!(
        "  tasks: {tasks_before} before, at most {first_half} in the outage's first half and \
         {second_half} in its second, {tasks_after} after; connections to the peer opened \
         during it: {connections_during}; database connections in use at most {in_use}"
    );
    assert_eq!(
        held(&peer.channel, &tenants).await,
        0.0,
        "units held forever"
    );
    // Nothing grows with the outage: no more tasks in its second half than its first (and a
    // margin for the load's own calls in flight), and a connection or two to the peer at most.
    assert!(
        second_half <= first_half + RATE as usize,
        "tasks grew through the outage: {first_half} then {second_half}"
    );
    assert!(
        tasks_after <= tasks_before + RATE as usize,
        "tasks piled up: {tasks_before} before, {tasks_after} after"
    );
    assert!(
        connections_during <= 2,
        "{connections_during} connections opened to the slow peer"
    );
    assert!(row.met(), "{row:?}");
    node.shutdown().await;
    peer.shutdown().await;
}
