//! PostgreSQL gone under load: a node's connections to the database run through a proxy the
//! test cuts for 15 s (half of `CASEWAY_FAULT_SECONDS`) while two tenants record services and
//! update clients (see `caseway_faults::scenario::postgres_gone` for what is checked).

use caseway_faults::proxy::TcpProxy;
use caseway_faults::scenario;
use caseway_integration_tests::TestEnv;

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
    scenario::postgres_gone(&env, &node, "pg", &proxy, outage).await;
    node.shutdown().await;
}
