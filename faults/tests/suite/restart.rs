//! The servers themselves stopped under load, rather than cut off by a proxy: RabbitMQ's
//! listeners suspended and every connection closed (`rabbitmq-upgrade drain`, then `revive`),
//! and PostgreSQL stopped and started again (`pg_ctlcluster ... stop -m fast`, then `start`).
//! Every other test on the machine uses the same servers, so these run only on demand, on a
//! machine doing nothing else:
//!
//! ```text
//! cargo test -p caseway-faults --test suite -- restart:: --ignored --test-threads 1 --nocapture
//! ```
//!
//! The checks are the proxy scenarios' (`caseway_faults::scenario`).

use caseway_faults::scenario::{self, Commands};
use caseway_integration_tests::TestEnv;

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops the machine's RabbitMQ listeners: on demand only"]
async fn rabbitmq_listeners_stopped_for_30_seconds_fail_no_call_and_lose_no_event() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30);
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let drain = Commands {
        cut: words("rabbitmq-upgrade drain"),
        heal: words("rabbitmq-upgrade revive"),
        how: "listeners stopped, connections closed: rabbitmq-upgrade drain".into(),
    };
    scenario::broker_gone(&env, &node, "drain", &drain, outage).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the machine's PostgreSQL: on demand only"]
async fn postgres_restarted_fails_calls_fast_and_writes_nothing_half() {
    let outage = caseway_faults::seconds("CASEWAY_FAULT_SECONDS", 30) / 2;
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut versions| versions.next())
        .and_then(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL cluster managed by pg_ctlcluster");
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let restart = Commands {
        cut: words(&format!(
            "pg_ctlcluster --skip-systemctl-redirect {version} main stop -m fast"
        )),
        heal: words(&format!(
            "pg_ctlcluster --skip-systemctl-redirect {version} main start"
        )),
        how: "the server stopped and started: pg_ctlcluster".into(),
    };
    scenario::postgres_gone(&env, &node, "restart", &restart, outage).await;
    node.shutdown().await;
}
