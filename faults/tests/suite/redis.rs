//! Redis gone under load: a node's connections to Redis run through a proxy the test cuts for
//! 15 s (`CASEWAY_FAULT_SECONDS` / 2) while two tenants record services and update clients.
//! As documented, the tenants' rate limits are not enforced while Redis is away (an outage of
//! the limiter must not become an outage of the product) and everything else serves: no call
//! fails, no effect is lost; once Redis is back, a tenant over its limit is refused again.

use std::time::{Duration, Instant};

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_faults::check::{metric, settled_gap};
use caseway_faults::load::{self, Running};
use caseway_faults::proxy::TcpProxy;
use caseway_faults::report::Row;
use caseway_integration_tests::{TestEnv, TestNode, authed};
use caseway_platform::auth::Role;

const RATE: u32 = 40;
const RECOVERY: Duration = Duration::from_secs(30);

/// A burst of 20 calls by a tenant limited to 5 a second: how many were refused
/// RESOURCE_EXHAUSTED (anything else fails the test).
async fn refused_of_a_burst(node: &TestNode, token: &str) -> usize {
    let mut refused = 0;
    for _ in 0..20 {
        match node
            .catalog
            .clone()
            .list_services(authed(token, catalog_pb::ListServicesRequest::default()))
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::ResourceExhausted => refused += 1,
            Err(status) => panic!("a call of the burst failed: {status:?}"),
        }
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_lifts_the_rate_limits_and_fails_no_call() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30) / 2;
    let env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let mut config = env.config();
    config.redis_url = format!("redis://{}", proxy.addr);
    // The deployment's limit is enforced (through Redis) and never reached by the load.
    config.tenant_rate_limit = 10_000;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let tenants = load::two_tenants(&env, &node, "redis").await;
    // A third tenant with a limit of its own, 5 calls a second.
    let limited = node.create_tenant(&env, "redis-limited").await;
    node.tenancy
        .clone()
        .update_tenant(authed(
            &env.platform_admin_token(),
            tenancy_pb::UpdateTenantRequest {
                tenant: Some(tenancy_pb::Tenant {
                    id: limited.to_string(),
                    limits: Some(tenancy_pb::TenantLimits {
                        calls_per_second: 5,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["limits".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let limited_worker = env.token(limited, &[Role::Caseworker], &[]);
    // Some of the burst refused (how many depends on how many seconds it spans).
    assert!(
        refused_of_a_burst(&node, &limited_worker).await > 0,
        "the limit holds"
    );

    let channel = load::connect(&node).await;
    let running = Running::start(&channel, &tenants, RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.cut();
    let cut = Instant::now();
    // Let the limiter find Redis gone, then the limited tenant's burst goes through.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        refused_of_a_burst(&node, &limited_worker).await,
        0,
        "without Redis the limit is not enforced"
    );
    assert_eq!(metric(&node, "caseway_redis_up").await, Some(0.0));
    tokio::time::sleep(outage.saturating_sub(cut.elapsed())).await;
    proxy.heal();
    let healed = Instant::now();
    // The limit holds again within seconds (the limiter backs off a second after a failure).
    let mut enforced = false;
    while healed.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        if refused_of_a_burst(&node, &limited_worker).await > 0 {
            enforced = true;
            break;
        }
    }
    let recovery = healed.elapsed();
    assert!(enforced, "the limit holds again once Redis is back");
    let (ledger, elapsed) = running.finish().await;

    let gap = settled_gap(&channel, &tenants, &ledger, RECOVERY).await;
    Row::of(
        format!("Redis gone {} s (proxy cut)", outage.as_secs()),
        &ledger,
        elapsed,
        gap,
        recovery,
        Duration::from_secs(10),
    )
    .check();
    assert_eq!(metric(&node, "caseway_redis_up").await, Some(1.0));
    node.shutdown().await;
}
