//! RabbitMQ gone under load: a node's connections to the broker run through a proxy the test
//! cuts for 30 s (`CASEWAY_FAULT_SECONDS`) while two tenants record services against their
//! authorizations and update their clients at a steady rate (see
//! `caseway_faults::scenario::broker_gone` for what is checked).

use caseway_faults::proxy::TcpProxy;
use caseway_faults::scenario;
use caseway_integration_tests::TestEnv;

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
    scenario::broker_gone(&env, &node, "fault", &proxy, outage).await;
    node.shutdown().await;
}
