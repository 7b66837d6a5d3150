//! From commit to updated utilization under load: concurrent case workers record services
//! against their clients' approved authorizations over real gRPC; each, once RecordService
//! answers (the record is committed), waits until the authorization counts it as delivered.
//! That path is the outbox relay, RabbitMQ, the drawdown consumer and its transaction. Prints p50, p99 and max
//! (target p99 at most 20 ms and max at most 50 ms; the authorizations work first asked p99
//! under 50 ms) and the recordings per second it held.
//!
//!     cargo bench -p caseway-integration-tests --bench authorization_drawdown
//!
//! CASEWAY_BENCH_CONCURRENCY (default 16) and CASEWAY_BENCH_SECONDS (default 10).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use tonic::transport::Channel;

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::records::v1 as records_pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_integration_tests::stalls::StallWatch;
use caseway_integration_tests::{TestEnv, TestNode, authed, date};
use caseway_platform::auth::Role;
use caseway_test_support::env_or;

#[tokio::main]
async fn main() {
    run().await;
}

/// What one case worker records against.
#[derive(Clone)]
struct Plan {
    client: String,
    authorization: String,
}

async fn run() {
    let concurrency: usize = env_or("CASEWAY_BENCH_CONCURRENCY", 16);
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 10);
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    config.database_max_connections = 16;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "drawdown-bench").await;
    let worker = env.token_for("ana", tenant, &[Role::Caseworker, Role::TenantAdmin], &[]);
    let supervisor = env.token_for("bo", tenant, &[Role::Supervisor], &[]);
    let (service, grant) = catalog(&node, &worker).await;
    let mut plans = Vec::new();
    for n in 0..concurrency {
        plans.push(plan(&node, &worker, &supervisor, &service, &grant, n).await);
    }
    let channel = Channel::from_shared(format!("http://{}", node.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    println!(
        "Commit to updated utilization: {concurrency} case workers, each on its own authorization, {seconds} s"
    );
    // Warm up, then measure.
    drive(
        &env,
        &channel,
        &worker,
        &service,
        &grant,
        &plans,
        Duration::from_secs(2),
    )
    .await;
    let started = Instant::now();
    let watch = StallWatch::start();
    let mut latencies = drive(
        &env,
        &channel,
        &worker,
        &service,
        &grant,
        &plans,
        Duration::from_secs(seconds),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let stalls = watch.finish();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = at(0.99);
    println!(
        "recordings: {} ({:.0}/s), each counted in utilization after",
        latencies.len(),
        latencies.len() as f64 / elapsed
    );
    let max = *latencies.last().unwrap();
    println!(
        "commit -> utilization: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 20 ms and max <= 50 ms: {})",
        ms(at(0.5)),
        ms(p99),
        ms(max),
        if p99 <= Duration::from_millis(20) && max <= Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("  {stalls}");
    node.shutdown().await;
}

/// Commits waiting to be seen in utilization: per authorization, the delivered units that
/// will show the commit, when it committed, and whom to tell.
type Waiting = Arc<Mutex<HashMap<String, (i64, Instant, oneshot::Sender<Instant>)>>>;

/// Every case worker records one unit at a time and waits to see it counted; returns the time
/// from each commit to its utilization. One observer reads the authorizations' delivered units
/// from PostgreSQL every millisecond (one small query, whatever the number of workers), so
/// watching does not load the path it measures the way 16 clients polling the API would; the
/// API's own answer is checked at the end.
async fn drive(
    env: &TestEnv,
    channel: &Channel,
    token: &str,
    service: &str,
    grant: &str,
    plans: &[Plan],
    length: Duration,
) -> Vec<Duration> {
    let deadline = Instant::now() + length;
    let waiting: Waiting = Arc::new(Mutex::new(HashMap::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let observer = {
        let waiting = waiting.clone();
        let stop = stop.clone();
        let mut owner = env.db.owner().await;
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let ids: Vec<uuid::Uuid> = waiting
                    .lock()
                    .unwrap()
                    .keys()
                    .map(|id| id.parse().unwrap())
                    .collect();
                if !ids.is_empty() {
                    let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
                        "SELECT id, delivered_units::bigint FROM authorizations.authorizations \
                         WHERE id = ANY($1)",
                    )
                    .bind(&ids)
                    .fetch_all(&mut owner)
                    .await
                    .unwrap();
                    let seen = Instant::now();
                    let mut waiting = waiting.lock().unwrap();
                    for (id, delivered) in rows {
                        let id = id.to_string();
                        if waiting
                            .get(&id)
                            .is_some_and(|(target, _, _)| delivered >= *target)
                            && let Some((_, _, tell)) = waiting.remove(&id)
                        {
                            let _ = tell.send(seen);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for plan in plans.iter().cloned() {
        let mut records = RecordsServiceClient::new(channel.clone());
        let mut authorizations = AuthorizationsServiceClient::new(channel.clone());
        let token = token.to_string();
        let service = service.to_string();
        let grant = grant.to_string();
        let waiting = waiting.clone();
        tasks.push(tokio::spawn(async move {
            let utilization = authorizations
                .get_authorization_utilization(authed(
                    &token,
                    pb::GetAuthorizationUtilizationRequest {
                        authorization_id: plan.authorization.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .utilization
                .unwrap();
            let mut delivered: i64 = utilization.delivered_units.parse().unwrap();
            let mut latencies = Vec::new();
            let mut day = 0;
            while Instant::now() < deadline {
                day = (day % 28) + 1;
                records
                    .record_service(authed(
                        &token,
                        records_pb::RecordServiceRequest {
                            request_id: String::new(),
                            record: Some(records_pb::ServiceRecord {
                                client_id: plan.client.clone(),
                                service_id: service.clone(),
                                service_date: Some(date(2026, 6, day)),
                                grant_id: grant.clone(),
                                units: "1".into(),
                                authorization_id: plan.authorization.clone(),
                                ..Default::default()
                            }),
                        },
                    ))
                    .await
                    .unwrap();
                let committed = Instant::now();
                delivered += 1;
                let (tell, seen) = oneshot::channel();
                waiting
                    .lock()
                    .unwrap()
                    .insert(plan.authorization.clone(), (delivered, committed, tell));
                let seen = tokio::time::timeout(Duration::from_secs(30), seen)
                    .await
                    .expect("utilization follows within 30 s")
                    .unwrap();
                latencies.push(seen.saturating_duration_since(committed));
            }
            // What the API says agrees.
            let utilization = authorizations
                .get_authorization_utilization(authed(
                    &token,
                    pb::GetAuthorizationUtilizationRequest {
                        authorization_id: plan.authorization.clone(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .utilization
                .unwrap();
            assert_eq!(utilization.delivered_units, delivered.to_string());
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    stop.cancel();
    observer.await.unwrap();
    all
}

async fn catalog(node: &TestNode, token: &str) -> (String, String) {
    let mut catalog = node.catalog.clone();
    let grant = catalog
        .create_grant(authed(
            token,
            catalog_pb::CreateGrantRequest {
                request_id: String::new(),
                grant: Some(catalog_pb::Grant {
                    code: "ESG".into(),
                    name: "Emergency Solutions".into(),
                    funder: "HUD".into(),
                    start_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 12, 31)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap()
        .id;
    let service = catalog
        .create_service(authed(
            token,
            catalog_pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(catalog_pb::Service {
                    code: "FC".into(),
                    name: "Counseling".into(),
                    unit_of_measure: catalog_pb::UnitOfMeasure::Count as i32,
                    default_unit_value: "45.00".into(),
                    delivery_mode: catalog_pb::DeliveryMode::Direct as i32,
                    grant_ids: vec![grant.clone()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
        .id;
    (service, grant)
}

/// A client with an approved authorization of June 2026: daily, 1000 sessions a day.
async fn plan(
    node: &TestNode,
    worker: &str,
    supervisor: &str,
    service: &str,
    grant: &str,
    n: usize,
) -> Plan {
    let client = node
        .clients
        .clone()
        .create_client(authed(
            worker,
            clients_pb::CreateClientRequest {
                request_id: String::new(),
                client: Some(clients_pb::Client {
                    first_name: format!("Client{n}"),
                    last_name: "Bench".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
        .id;
    let mut authorizations = node.authorizations.clone();
    let created = authorizations
        .create_authorization(authed(
            worker,
            pb::CreateAuthorizationRequest {
                request_id: String::new(),
                authorization: Some(pb::Authorization {
                    client_id: client.clone(),
                    service_id: service.into(),
                    grant_id: grant.into(),
                    begin_date: Some(date(2026, 6, 1)),
                    end_date: Some(date(2026, 6, 30)),
                    units_per_occurrence: "1000".into(),
                    recurrence: "FREQ=DAILY".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    authorizations
        .approve_authorization(authed(
            supervisor,
            pb::ApproveAuthorizationRequest {
                id: created.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    Plan {
        client,
        authorization: created.id,
    }
}
