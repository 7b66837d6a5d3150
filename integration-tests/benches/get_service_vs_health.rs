//! GetService against grpc.health.v1.Health/Check at the same concurrency, in one run, over
//! real gRPC, PostgreSQL, Redis (the tenant's rate limit) and RabbitMQ. Prints both throughputs and their ratio; the target is
//! GetService at no less than half of Health/Check.
//!
//!     cargo bench -p caseway-integration-tests --bench get_service_vs_health
//!
//! CASEWAY_BENCH_CONCURRENCY (default 32) and CASEWAY_BENCH_SECONDS (default 5 per round).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use caseway_api::catalog::v1 as pb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::auth::Role;
use caseway_test_support::env_or;

const CONNECTIONS: usize = 4;

#[derive(Clone, Copy)]
enum Call {
    Health,
    GetService,
}

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let concurrency: usize = env_or("CASEWAY_BENCH_CONCURRENCY", 32);
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 5);
    let env = TestEnv::new().await;
    // The rate limiter runs, with a budget above what one machine can send.
    let mut config = env.config();
    config.tenant_rate_limit = 10_000_000;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "bench").await;
    let token = env.token(tenant, &[Role::TenantAdmin, Role::Caseworker], &[]);
    let service = node
        .catalog
        .clone()
        .create_service(authed(
            &token,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(pb::Service {
                    code: "FC".into(),
                    name: "Financial Counseling".into(),
                    unit_of_measure: pb::UnitOfMeasure::Hours as i32,
                    default_unit_value: "45.00".into(),
                    delivery_mode: pb::DeliveryMode::Direct as i32,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(
            Channel::from_shared(format!("http://{}", node.addr()))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    println!(
        "GetService vs Health/Check: {concurrency} concurrent callers over {CONNECTIONS} connections, 2 rounds of {seconds} s each"
    );
    // Warm the caches and connections.
    drive(
        Call::Health,
        &channels,
        concurrency,
        Duration::from_secs(1),
        &token,
        &service.id,
    )
    .await;
    drive(
        Call::GetService,
        &channels,
        concurrency,
        Duration::from_secs(1),
        &token,
        &service.id,
    )
    .await;
    let (mut health, mut get) = (0.0, 0.0);
    for _ in 0..2 {
        health += drive(
            Call::Health,
            &channels,
            concurrency,
            Duration::from_secs(seconds),
            &token,
            &service.id,
        )
        .await;
        get += drive(
            Call::GetService,
            &channels,
            concurrency,
            Duration::from_secs(seconds),
            &token,
            &service.id,
        )
        .await;
    }
    let (health, get) = (health / 2.0, get / 2.0);
    let ratio = get / health;
    println!("Health/Check: {health:>10.0} calls/s");
    println!("GetService:   {get:>10.0} calls/s");
    println!(
        "ratio GetService / Health/Check: {ratio:.2} (target >= 0.50: {})",
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
    node.shutdown().await;
}

async fn drive(
    call: Call,
    channels: &[Channel],
    concurrency: usize,
    length: Duration,
    token: &str,
    id: &str,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let channel = channels[worker % channels.len()].clone();
        let (done, errors) = (done.clone(), errors.clone());
        let (token, id) = (token.to_string(), id.to_string());
        tasks.push(tokio::spawn(async move {
            let mut health = HealthClient::new(channel.clone());
            let mut catalog = CatalogServiceClient::new(channel);
            while Instant::now() < deadline {
                let outcome = match call {
                    Call::Health => health
                        .check(HealthCheckRequest {
                            service: "caseway.catalog.v1.CatalogService".into(),
                        })
                        .await
                        .map(|_| ()),
                    Call::GetService => catalog
                        .get_service(authed(&token, pb::GetServiceRequest { id: id.clone() }))
                        .await
                        .map(|_| ()),
                };
                match outcome {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failed call: {status:?}");
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let errors = errors.load(Ordering::Relaxed);
    assert_eq!(errors, 0, "calls failed during the benchmark");
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
