//! A steady load of mixed calls from several tenants, and the ledger of every call and its
//! answer that a scenario checks the servers against once the fault has healed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use tonic::transport::Channel;

use caseway_api::authorizations::v1 as authorizations_pb;
use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::records::v1 as records_pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_integration_tests::{TestEnv, TestNode, authed, date};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

/// A tenant the load calls as: a case worker's token, and clients each with an approved
/// authorization (1000 sessions a day) from 27 days ago to 90 days on, to record services of
/// its first 28 days against.
pub struct LoadTenant {
    pub id: TenantId,
    pub slug: String,
    /// The authorizations' first day.
    pub first_day: NaiveDate,
    pub worker: String,
    pub service: String,
    pub grant: String,
    pub plans: Vec<Plan>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub client: String,
    pub authorization: String,
}

/// Makes a tenant to load, through the public API.
pub async fn seed(env: &TestEnv, node: &TestNode, slug: &str, clients: usize) -> LoadTenant {
    // Dated from today: the worker closes an authorization whose end date has passed.
    let first_day = chrono::Utc::now().date_naive() - chrono::Days::new(27);
    let tenant = node.test_tenant(env, slug).await;
    let worker = env.token_for("worker", tenant.id, &[Role::Caseworker], &[]);
    let supervisor = env.token_for("supervisor", tenant.id, &[Role::Supervisor], &[]);
    let make = &tenant.make;
    let grant = make
        .grant(catalog_pb::Grant {
            code: "ESG".into(),
            name: "Emergency Solutions".into(),
            funder: "HUD".into(),
            start_date: Some(day(first_day - chrono::Days::new(365))),
            end_date: Some(day(first_day + chrono::Days::new(365))),
            ..Default::default()
        })
        .await
        .expect("a grant");
    let service = make
        .service(catalog_pb::Service {
            code: "FC".into(),
            name: "Counseling".into(),
            unit_of_measure: catalog_pb::UnitOfMeasure::Count as i32,
            default_unit_value: "45.00".into(),
            delivery_mode: catalog_pb::DeliveryMode::Direct as i32,
            grant_ids: vec![grant.clone()],
            ..Default::default()
        })
        .await
        .expect("a service");
    let approver = make.acting_as(&supervisor).expect("a token");
    let mut plans = Vec::new();
    for n in 0..clients {
        let client = make
            .client(clients_pb::Client {
                first_name: format!("Client{n}"),
                last_name: format!("Load {slug}"),
                ..Default::default()
            })
            .await
            .expect("a client");
        let planned = make
            .authorization(authorizations_pb::Authorization {
                client_id: client.clone(),
                service_id: service.clone(),
                grant_id: grant.clone(),
                begin_date: Some(day(first_day)),
                end_date: Some(day(first_day + chrono::Days::new(117))),
                units_per_occurrence: "1000".into(),
                recurrence: "FREQ=DAILY".into(),
                ..Default::default()
            })
            .await
            .expect("an authorization");
        approver.approve(&planned).await.expect("approved");
        plans.push(Plan {
            client,
            authorization: planned.id,
        });
    }
    LoadTenant {
        id: tenant.id,
        slug: slug.into(),
        first_day,
        worker,
        service,
        grant,
        plans,
    }
}

/// `d` as the API's date.
pub fn day(d: NaiveDate) -> caseway_api::google::r#type::Date {
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// What the load asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// One unit recorded against an authorization.
    RecordService,
    /// A client's name changed.
    UpdateClient,
}

/// One call and its answer.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The call's number in the load (its request id is made of it).
    pub n: usize,
    pub tenant: usize,
    pub plan: usize,
    pub operation: Operation,
    pub code: tonic::Code,
    pub latency: Duration,
    /// When the answer came.
    pub answered: Instant,
}

#[derive(Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Ledger {
    fn push(&self, entry: Entry) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each call that failed tried again once, as a client does, under the same request id:
    /// one whose first attempt was stored after all is answered with that, and nothing is
    /// stored twice. The entries take the retry's answer; the first answers are returned.
    pub async fn retry_failed(&self, channel: &Channel, tenants: &[LoadTenant]) -> Vec<Entry> {
        let failed = self.failed();
        for entry in &failed {
            let tenant = &tenants[entry.tenant];
            let code = match call(
                channel.clone(),
                tenant,
                &tenant.plans[entry.plan],
                entry.operation,
                entry.n,
                NO_DEADLINE,
            )
            .await
            {
                Ok(()) => tonic::Code::Ok,
                Err(status) => status.code(),
            };
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(stored) = entries.iter_mut().find(|e| e.n == entry.n) {
                stored.code = code;
            }
        }
        failed
    }

    /// The calls that did not succeed.
    pub fn failed(&self) -> Vec<Entry> {
        self.entries()
            .into_iter()
            .filter(|e| e.code != tonic::Code::Ok)
            .collect()
    }

    /// Units recorded and acknowledged against each plan of `tenant`, answered before
    /// `before` when given.
    pub fn recorded(&self, tenant: usize, plans: usize, before: Option<Instant>) -> Vec<u64> {
        let mut counts = vec![0; plans];
        for e in self.entries() {
            if e.tenant == tenant
                && e.operation == Operation::RecordService
                && e.code == tonic::Code::Ok
                && before.is_none_or(|at| e.answered < at)
            {
                counts[e.plan] += 1;
            }
        }
        counts
    }
}

/// Calls at `rate` a second, spread over the tenants and their plans, alternating records
/// and client updates (three records to one update), until `stop`, each call waiting at most
/// `deadline` when one is given (sent as its `grpc-timeout`, and the client's own bound, as
/// gRPC clients do); every call and its answer goes to the ledger.
pub async fn drive(
    channel: Channel,
    tenants: Arc<Vec<LoadTenant>>,
    rate: u32,
    deadline: Option<Duration>,
    ledger: Ledger,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut calls = Vec::new();
    let mut n: usize = 0;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        let tenant_index = n % tenants.len();
        let tenant = &tenants[tenant_index];
        let plan_index = (n / tenants.len()) % tenant.plans.len();
        let operation = if n % 4 == 3 {
            Operation::UpdateClient
        } else {
            Operation::RecordService
        };
        let (channel, tenants, ledger) = (channel.clone(), tenants.clone(), ledger.clone());
        calls.push(tokio::spawn(async move {
            let tenant = &tenants[tenant_index];
            let plan = &tenant.plans[plan_index];
            let started = Instant::now();
            let answer = match deadline {
                Some(deadline) => tokio::time::timeout(
                    deadline + CLIENT_MARGIN,
                    call(channel, tenant, plan, operation, n, deadline),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(
                        "the client's deadline passed",
                    ))
                }),
                None => call(channel, tenant, plan, operation, n, NO_DEADLINE).await,
            };
            let code = match answer {
                Ok(()) => tonic::Code::Ok,
                // tonic's client reports its own deadline passing as CANCELLED "Timeout
                // expired"; gRPC's other clients say DEADLINE_EXCEEDED, as the ledger does.
                Err(status)
                    if status.code() == tonic::Code::Cancelled
                        && status.message() == "Timeout expired" =>
                {
                    tonic::Code::DeadlineExceeded
                }
                Err(status) => status.code(),
            };
            ledger.push(Entry {
                n,
                tenant: tenant_index,
                plan: plan_index,
                operation,
                code,
                latency: started.elapsed(),
                answered: Instant::now(),
            });
        }));
        n += 1;
    }
    for call in calls {
        let _ = call.await;
    }
}

/// How long past its deadline the client waits for the server's own answer before it gives
/// up on its side.
const CLIENT_MARGIN: Duration = Duration::from_millis(250);

/// `message` as the holder of `token`, with `deadline` as its `grpc-timeout` unless zero.
fn request<T>(token: &str, deadline: Duration, message: T) -> tonic::Request<T> {
    let mut request = authed(token, message);
    if !deadline.is_zero() {
        request.set_timeout(deadline);
    }
    request
}

/// A call's deadline when the load sets none: the server's own bound applies.
const NO_DEADLINE: Duration = Duration::ZERO;

async fn call(
    channel: Channel,
    tenant: &LoadTenant,
    plan: &Plan,
    operation: Operation,
    n: usize,
    deadline: Duration,
) -> Result<(), tonic::Status> {
    let token = &tenant.worker;
    // Each call is its own request: a request id the ledger could retry under.
    let request_id = format!("load-{}-{n}", tenant.slug);
    match operation {
        Operation::RecordService => {
            RecordsServiceClient::new(channel)
                .record_service(request(
                    token,
                    deadline,
                    records_pb::RecordServiceRequest {
                        request_id,
                        record: Some(records_pb::ServiceRecord {
                            client_id: plan.client.clone(),
                            service_id: tenant.service.clone(),
                            service_date: Some(day(
                                tenant.first_day + chrono::Days::new((n % 28) as u64)
                            )),
                            grant_id: tenant.grant.clone(),
                            units: "1".into(),
                            authorization_id: plan.authorization.clone(),
                            ..Default::default()
                        }),
                    },
                ))
                .await?;
        }
        Operation::UpdateClient => {
            ClientsServiceClient::new(channel)
                .update_client(request(
                    token,
                    deadline,
                    clients_pb::UpdateClientRequest {
                        client: Some(clients_pb::Client {
                            id: plan.client.clone(),
                            first_name: format!("Renamed{n}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["first_name".into()],
                        }),
                    },
                ))
                .await?;
        }
    }
    Ok(())
}

/// What each plan's authorization shows of its drawdown.
pub async fn utilization(
    channel: &Channel,
    tenant: &LoadTenant,
) -> Result<Vec<authorizations_pb::Utilization>, tonic::Status> {
    let mut shown = Vec::new();
    for plan in &tenant.plans {
        let utilization = AuthorizationsServiceClient::new(channel.clone())
            .get_authorization_utilization(authed(
                &tenant.worker,
                authorizations_pb::GetAuthorizationUtilizationRequest {
                    authorization_id: plan.authorization.clone(),
                },
            ))
            .await?
            .into_inner()
            .utilization
            .unwrap_or_default();
        shown.push(utilization);
    }
    Ok(shown)
}

/// The two tenants every scenario loads (`<prefix>-a`, `<prefix>-b`), four clients each.
pub async fn two_tenants(env: &TestEnv, node: &TestNode, prefix: &str) -> Arc<Vec<LoadTenant>> {
    Arc::new(vec![
        seed(env, node, &format!("{prefix}-a"), 4).await,
        seed(env, node, &format!("{prefix}-b"), 4).await,
    ])
}

/// A connection to the node, as the load's client.
pub async fn connect(node: &TestNode) -> Channel {
    connect_to(node.addr()).await
}

/// A connection to the node serving gRPC at `addr`.
pub async fn connect_to(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("the node's address")
        .connect()
        .await
        .expect("the node answers")
}

/// A load running in the background ([`drive`]), and its ledger.
pub struct Running {
    pub ledger: Ledger,
    pub started: Instant,
    stop: tokio_util::sync::CancellationToken,
    driver: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts calling at `rate` a second, with no deadline of the client's.
    pub fn start(channel: &Channel, tenants: &Arc<Vec<LoadTenant>>, rate: u32) -> Running {
        Running::start_with(channel, tenants, rate, None)
    }

    /// Starts calling at `rate` a second, each call waiting at most `deadline` when given.
    pub fn start_with(
        channel: &Channel,
        tenants: &Arc<Vec<LoadTenant>>,
        rate: u32,
        deadline: Option<Duration>,
    ) -> Running {
        let ledger = Ledger::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let driver = tokio::spawn(drive(
            channel.clone(),
            tenants.clone(),
            rate,
            deadline,
            ledger.clone(),
            stop.clone(),
        ));
        Running {
            ledger,
            started: Instant::now(),
            stop,
            driver,
        }
    }

    /// Stops the load once every call made has answered; how long it ran.
    pub async fn finish(self) -> (Ledger, Duration) {
        self.stop.cancel();
        let _ = self.driver.await;
        (self.ledger, self.started.elapsed())
    }
}
