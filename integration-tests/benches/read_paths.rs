//! The read paths against grpc.health.v1.Health/Check at the same concurrency, in one run:
//! GetClient, ListClientServiceRecords (a page of 50), GetAuthorizationUtilization,
//! SearchClients by the SSN's last four and the birth date, CheckEligibility (every service,
//! the BASIC view) and GetService, each at least half of Health/Check's throughput (issue 21's
//! target). The demo tenant is seeded through the API; its first client gets service records
//! copied (new ids) until a page of 50 is full.
//!
//!     cargo bench -p caseway-integration-tests --bench read_paths
//!
//! CASEWAY_BENCH_CONCURRENCY (default 32), CASEWAY_BENCH_SECONDS (default 3 per call per
//! round) and CASEWAY_BENCH_ROUNDS (default 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use caseway_api::authorizations::v1 as apb;
use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
use caseway_api::catalog::v1 as catpb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as cpb;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::eligibility::v1 as epb;
use caseway_api::eligibility::v1::eligibility_service_client::EligibilityServiceClient;
use caseway_api::records::v1 as rpb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_fixtures::date;
use caseway_integration_tests::{TestEnv, authed};
use caseway_test_support::env_or;

const CONNECTIONS: usize = 4;
const TARGET: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    Health,
    GetClient,
    ListClientServiceRecords,
    GetAuthorizationUtilization,
    SearchClients,
    CheckEligibility,
    GetService,
}

impl Call {
    const READS: [Call; 6] = [
        Call::GetClient,
        Call::ListClientServiceRecords,
        Call::GetAuthorizationUtilization,
        Call::SearchClients,
        Call::CheckEligibility,
        Call::GetService,
    ];
}

/// What the calls ask for.
#[derive(Clone)]
struct Subject {
    token: String,
    client: String,
    authorization: String,
    service: String,
}

/// One connection's clients of each service.
#[derive(Clone)]
struct Clients {
    health: HealthClient<Channel>,
    clients: ClientsServiceClient<Channel>,
    records: RecordsServiceClient<Channel>,
    authorizations: AuthorizationsServiceClient<Channel>,
    eligibility: EligibilityServiceClient<Channel>,
    catalog: CatalogServiceClient<Channel>,
}

impl Clients {
    fn new(channel: Channel) -> Clients {
        Clients {
            health: HealthClient::new(channel.clone()),
            clients: ClientsServiceClient::new(channel.clone()),
            records: RecordsServiceClient::new(channel.clone()),
            authorizations: AuthorizationsServiceClient::new(channel.clone()),
            eligibility: EligibilityServiceClient::new(channel.clone()),
            catalog: CatalogServiceClient::new(channel),
        }
    }

    /// One call; what it answered, counted in items, so an empty answer is caught.
    async fn call(&mut self, call: Call, s: &Subject) -> Result<usize, tonic::Status> {
        let t = &s.token;
        Ok(match call {
            Call::Health => {
                self.health
                    .check(HealthCheckRequest {
                        service: "caseway.clients.v1.ClientsService".into(),
                    })
                    .await?;
                1
            }
            Call::GetClient => {
                let request = cpb::GetClientRequest {
                    id: s.client.clone(),
                    ..Default::default()
                };
                let reply = self.clients.get_client(authed(t, request)).await?;
                usize::from(reply.into_inner().client.is_some())
            }
            Call::ListClientServiceRecords => {
                let request = rpb::ListClientServiceRecordsRequest {
                    client_id: s.client.clone(),
                    page_size: 50,
                    ..Default::default()
                };
                let reply = self
                    .records
                    .list_client_service_records(authed(t, request))
                    .await?;
                reply.into_inner().records.len()
            }
            Call::GetAuthorizationUtilization => {
                let request = apb::GetAuthorizationUtilizationRequest {
                    authorization_id: s.authorization.clone(),
                };
                let reply = self
                    .authorizations
                    .get_authorization_utilization(authed(t, request))
                    .await?;
                usize::from(reply.into_inner().utilization.is_some())
            }
            Call::SearchClients => {
                let request = cpb::SearchClientsRequest {
                    ssn: "6789".into(),
                    birth_date: Some(date(1980, 2, 29)),
                    ..Default::default()
                };
                let reply = self.clients.search_clients(authed(t, request)).await?;
                reply.into_inner().matches.len()
            }
            Call::CheckEligibility => {
                let request = epb::CheckEligibilityRequest {
                    client_id: s.client.clone(),
                    view: epb::DecisionView::Basic as i32,
                    ..Default::default()
                };
                let reply = self
                    .eligibility
                    .check_eligibility(authed(t, request))
                    .await?;
                reply.into_inner().decisions.len()
            }
            Call::GetService => {
                let request = catpb::GetServiceRequest {
                    id: s.service.clone(),
                };
                let reply = self.catalog.get_service(authed(t, request)).await?;
                usize::from(reply.into_inner().service.is_some())
            }
        })
    }
}

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let concurrency: usize = env_or("CASEWAY_BENCH_CONCURRENCY", 32);
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 3);
    let rounds: usize = env_or("CASEWAY_BENCH_ROUNDS", 2);
    let env = TestEnv::new().await;
    // The rate limiter runs, with a budget above what one machine can send.
    let mut config = env.config();
    config.tenant_rate_limit = 10_000_000;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let demo = caseway_fixtures::demo::seed(node.channel.clone(), &env.issuer)
        .await
        .unwrap();
    // A page of 50 for the first client: copies of its records with new ids.
    let mut owner = env.db.owner().await;
    sqlx::query(
        "INSERT INTO records.service_records \
         SELECT (jsonb_populate_record(NULL::records.service_records, \
                 to_jsonb(r) || jsonb_build_object('id', gen_random_uuid()))).* \
         FROM records.service_records r, generate_series(1, 20) \
         WHERE r.tenant_id = $1 AND r.client_id = $2 AND r.deleted_at IS NULL",
    )
    .bind(demo.tenant_id.as_uuid())
    .bind(demo.client_id.parse::<uuid::Uuid>().unwrap())
    .execute(&mut owner)
    .await
    .unwrap();
    let subject = Subject {
        token: demo.token.clone(),
        client: demo.client_id.clone(),
        authorization: demo.authorization_id.clone(),
        service: demo.service_id.clone(),
    };
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel = Channel::from_shared(format!("http://{}", node.addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        connections.push(Clients::new(channel));
    }
    // What each call answers, and a warm-up of caches and connections.
    let mut probe = connections[0].clone();
    for call in Call::READS {
        let items = probe.call(call, &subject).await.unwrap();
        assert!(items > 0, "{call:?} answered nothing");
        drive(
            call,
            &connections,
            concurrency,
            Duration::from_secs(1),
            &subject,
        )
        .await;
    }
    let page = probe
        .call(Call::ListClientServiceRecords, &subject)
        .await
        .unwrap();
    assert_eq!(page, 50, "a full page");
    println!(
        "read paths vs Health/Check: {concurrency} concurrent callers over {CONNECTIONS} \
         connections, {rounds} rounds of {seconds} s per call"
    );

    let length = Duration::from_secs(seconds);
    let mut health = Vec::new();
    let mut reads: Vec<Vec<f64>> = vec![Vec::new(); Call::READS.len()];
    for _ in 0..rounds {
        health.push(drive(Call::Health, &connections, concurrency, length, &subject).await);
        for (i, call) in Call::READS.into_iter().enumerate() {
            reads[i].push(drive(call, &connections, concurrency, length, &subject).await);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let health = mean(&health);
    println!("{:<30} {health:>9.0} calls/s", "Health/Check");
    let mut missed = Vec::new();
    for (call, figures) in Call::READS.iter().zip(&reads) {
        let rate = mean(figures);
        let ratio = rate / health;
        println!(
            "{:<30} {rate:>9.0} calls/s  ratio {ratio:.2} (target >= {TARGET:.2}: {})",
            format!("{call:?}"),
            if ratio >= TARGET { "met" } else { "NOT met" }
        );
        if ratio < TARGET {
            missed.push(format!("{call:?}"));
        }
    }
    println!(
        "read paths: {} of {} at >= {TARGET:.2} of Health/Check{}",
        Call::READS.len() - missed.len(),
        Call::READS.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!("; below: {}", missed.join(", "))
        }
    );
    sqlx::Connection::close(owner).await.ok();
    node.shutdown().await;
}

/// Calls `call` from `concurrency` tasks for `length`: calls a second.
async fn drive(
    call: Call,
    connections: &[Clients],
    concurrency: usize,
    length: Duration,
    subject: &Subject,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let mut clients = connections[worker % connections.len()].clone();
        let (done, errors, subject) = (done.clone(), errors.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match clients.call(call, &subject).await {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failed {call:?}: {status:?}");
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "{call:?} calls failed");
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
