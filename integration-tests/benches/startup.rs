//! Start-up: how long a node takes from its start to its readiness (`/readyz` answering 200),
//! for each target alone and for all of them, against a database already migrated and the
//! other targets already serving (as a new pod of a running deployment finds them). Issue 21's target: within 1 s, so a pod an
//! autoscaler adds helps at once. The node starts in this process (`caseway::start`, what
//! `caseway serve` runs after reading its configuration); the process's own start (exec,
//! runtime) is not counted.
//!
//!     cargo bench -p caseway-integration-tests --bench startup
//!
//! CASEWAY_BENCH_ROUNDS (default 5) starts of each.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use caseway::Target;
use caseway_integration_tests::{TestEnv, http_get};

const TARGET: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let rounds: usize = std::env::var("CASEWAY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let env = TestEnv::new().await;
    // The rest of the deployment, which a target alone calls.
    let peers = caseway::start(
        env.config(),
        &Target::ALL,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut config = env.config();
    let at = Some(format!("http://{}", peers.grpc_addr));
    config.tenancy_endpoint = at.clone();
    config.catalog_endpoint = at.clone();
    config.clients_endpoint = at.clone();
    config.authorizations_endpoint = at.clone();
    config.records_endpoint = at.clone();
    config.eligibility_endpoint = at;
    let mut sets: Vec<(String, Vec<Target>)> = Target::ALL
        .iter()
        .map(|t| (t.name().to_string(), vec![*t]))
        .collect();
    sets.push(("all".into(), Target::ALL.to_vec()));
    println!("start to ready, {rounds} starts of each, the database migrated");
    let mut worst = Duration::ZERO;
    for (name, targets) in &sets {
        let mut took = Vec::new();
        for _ in 0..rounds {
            let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let started = Instant::now();
            let node = caseway::start(
                config.clone(),
                targets,
                grpc,
                metrics,
                CancellationToken::new(),
            )
            .await
            .unwrap();
            loop {
                if http_get(node.metrics_addr, "/readyz").await.0 == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            took.push(started.elapsed());
            node.shutdown().await.unwrap();
        }
        took.sort();
        let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
        worst = worst.max(max);
        println!(
            "{name:<16} median {:>6.1} ms, max {:>6.1} ms",
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
    println!(
        "start-up: the slowest start to ready took {:.1} ms (target <= {} ms: {})",
        worst.as_secs_f64() * 1000.0,
        TARGET.as_millis(),
        if worst <= TARGET { "met" } else { "NOT met" }
    );
    peers.shutdown().await.unwrap();
}
