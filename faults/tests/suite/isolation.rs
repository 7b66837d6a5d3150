//! Tenant isolation as a property: random interleavings (proptest) of writes and reads by three
//! tenants, each as a case worker, a supervisor or a tenant administrator, four at a time,
//! some naming another tenant's ids on purpose. After every answer, whatever it is, nothing
//! of another tenant may show in it: none of its ids (other than those the request itself
//! named) and none of the names it wrote. A read naming another tenant's client,
//! authorization or service is NOT_FOUND, never its data.
//!
//! `CASEWAY_ISOLATION_OPS` sets the least number of operations (600 in CI; 10,000 on
//! demand).

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use caseway::Target;
use caseway_api::authorizations::v1 as authorizations_pb;
use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::records::v1 as records_pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_faults::load::{self, LoadTenant};
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::auth::Role;
use tonic::transport::Channel;

const TENANTS: usize = 3;
/// First names each tenant writes start with one of these, then a word of its own.
const NAMES: [&str; TENANTS] = ["Alma", "Bram", "Cleo"];
const ROLES: [Role; 3] = [Role::Caseworker, Role::Supervisor, Role::TenantAdmin];

/// What one tenant holds that no other may see.
#[derive(Default, Clone)]
struct Holdings {
    clients: Vec<String>,
    authorizations: Vec<String>,
    services: Vec<String>,
    /// Names it wrote.
    names: Vec<String>,
}

impl Holdings {
    fn secrets(&self) -> impl Iterator<Item = &String> {
        self.clients
            .iter()
            .chain(&self.authorizations)
            .chain(&self.services)
            .chain(&self.names)
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    CreateClient,
    RenameClient,
    RecordService,
    CreateService,
    GetClient,
    SearchClients,
    ListClients,
    ListClientServiceRecords,
    GetAuthorizationUtilization,
    ListServices,
}

const KINDS: [Kind; 10] = [
    Kind::CreateClient,
    Kind::RenameClient,
    Kind::RecordService,
    Kind::CreateService,
    Kind::GetClient,
    Kind::SearchClients,
    Kind::ListClients,
    Kind::ListClientServiceRecords,
    Kind::GetAuthorizationUtilization,
    Kind::ListServices,
];

/// One operation: who calls, what, whose ids it names (`target`: its own or another's), and
/// the word a write names things with.
#[derive(Clone, Debug)]
struct Op {
    tenant: usize,
    role: usize,
    kind: Kind,
    target: usize,
    pick: usize,
    word: String,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..TENANTS,
        0..ROLES.len(),
        0..KINDS.len(),
        0..TENANTS,
        any::<usize>(),
        "[a-z]{8}",
    )
        .prop_map(|(tenant, role, kind, target, pick, word)| Op {
            tenant,
            role,
            kind: KINDS[kind],
            target,
            pick,
            word,
        })
}

struct World {
    channel: Channel,
    tenants: Vec<LoadTenant>,
    tokens: Vec<Vec<String>>,
    holdings: Mutex<Vec<Holdings>>,
}

impl World {
    fn pick(&self, list: impl Fn(&Holdings) -> &Vec<String>, tenant: usize, n: usize) -> String {
        let holdings = self.holdings.lock().unwrap();
        let list = list(&holdings[tenant]);
        list[n % list.len()].clone()
    }

    /// Runs `op`; the answer as text (the reply's or the refusal's) and the ids it named.
    async fn run(&self, op: &Op) -> (tonic::Code, String, Vec<String>) {
        let token = &self.tokens[op.tenant][op.role];
        let own = &self.tenants[op.tenant];
        let name = format!("{}{}", NAMES[op.tenant], op.word);
        let client = self.pick(|h| &h.clients, op.target, op.pick);
        let authorization = self.pick(|h| &h.authorizations, op.target, op.pick);
        let clients = ClientsServiceClient::new(self.channel.clone());
        let records = RecordsServiceClient::new(self.channel.clone());
        let catalog = CatalogServiceClient::new(self.channel.clone());
        let authorizations = AuthorizationsServiceClient::new(self.channel.clone());
        fn text<T: std::fmt::Debug>(
            answer: Result<tonic::Response<T>, tonic::Status>,
        ) -> (tonic::Code, String) {
            match answer {
                Ok(reply) => (tonic::Code::Ok, format!("{:?}", reply.into_inner())),
                Err(status) => (status.code(), format!("{status:?}")),
            }
        }
        let ((code, answer), named) = match op.kind {
            Kind::CreateClient => {
                let answer = clients
                    .clone()
                    .create_client(authed(
                        token,
                        clients_pb::CreateClientRequest {
                            client: Some(clients_pb::Client {
                                first_name: name.clone(),
                                last_name: "Isolation".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ))
                    .await;
                if let Ok(reply) = &answer
                    && let Some(created) = &reply.get_ref().client
                {
                    let mut holdings = self.holdings.lock().unwrap();
                    holdings[op.tenant].clients.push(created.id.clone());
                    holdings[op.tenant].names.push(name.clone());
                }
                (text(answer), vec![])
            }
            Kind::RenameClient => {
                let answer = clients
                    .clone()
                    .update_client(authed(
                        token,
                        clients_pb::UpdateClientRequest {
                            client: Some(clients_pb::Client {
                                id: client.clone(),
                                first_name: name.clone(),
                                ..Default::default()
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["first_name".into()],
                            }),
                        },
                    ))
                    .await;
                if answer.is_ok() {
                    self.holdings.lock().unwrap()[op.tenant]
                        .names
                        .push(name.clone());
                }
                (text(answer), vec![client])
            }
            Kind::RecordService => {
                // A plan's client and its authorization, of this tenant or another.
                let plans = &self.tenants[op.target].plans;
                let plan = &plans[op.pick % plans.len()];
                let (client, authorization) = (plan.client.clone(), plan.authorization.clone());
                let answer = records
                    .clone()
                    .record_service(authed(
                        token,
                        records_pb::RecordServiceRequest {
                            request_id: String::new(),
                            record: Some(records_pb::ServiceRecord {
                                client_id: client.clone(),
                                service_id: own.service.clone(),
                                service_date: Some(load::day(own.first_day)),
                                grant_id: own.grant.clone(),
                                units: "1".into(),
                                authorization_id: authorization.clone(),
                                comments: name.clone(),
                                ..Default::default()
                            }),
                        },
                    ))
                    .await;
                if answer.is_ok() {
                    self.holdings.lock().unwrap()[op.tenant]
                        .names
                        .push(name.clone());
                }
                (text(answer), vec![client, authorization])
            }
            Kind::CreateService => {
                let answer = catalog
                    .clone()
                    .create_service(authed(
                        token,
                        catalog_pb::CreateServiceRequest {
                            request_id: String::new(),
                            service: Some(catalog_pb::Service {
                                code: op.word.to_uppercase(),
                                name: name.clone(),
                                unit_of_measure: catalog_pb::UnitOfMeasure::Count as i32,
                                default_unit_value: "1.00".into(),
                                delivery_mode: catalog_pb::DeliveryMode::Direct as i32,
                                ..Default::default()
                            }),
                        },
                    ))
                    .await;
                if let Ok(reply) = &answer
                    && let Some(created) = &reply.get_ref().service
                {
                    let mut holdings = self.holdings.lock().unwrap();
                    holdings[op.tenant].services.push(created.id.clone());
                    holdings[op.tenant].names.push(name.clone());
                }
                (text(answer), vec![])
            }
            Kind::GetClient => {
                let answer = clients
                    .clone()
                    .get_client(authed(
                        token,
                        clients_pb::GetClientRequest {
                            id: client.clone(),
                            ..Default::default()
                        },
                    ))
                    .await;
                (text(answer), vec![client])
            }
            Kind::SearchClients => {
                // Another tenant's name, or this one's.
                let searched = {
                    let holdings = self.holdings.lock().unwrap();
                    let names = &holdings[op.target].names;
                    if names.is_empty() {
                        NAMES[op.target].to_string()
                    } else {
                        names[op.pick % names.len()].clone()
                    }
                };
                let answer = clients
                    .clone()
                    .search_clients(authed(
                        token,
                        clients_pb::SearchClientsRequest {
                            name: searched.clone(),
                            ..Default::default()
                        },
                    ))
                    .await;
                (text(answer), vec![searched])
            }
            Kind::ListClients => {
                let answer = clients
                    .clone()
                    .list_clients(authed(
                        token,
                        clients_pb::ListClientsRequest {
                            page_size: 200,
                            ..Default::default()
                        },
                    ))
                    .await;
                (text(answer), vec![])
            }
            Kind::ListClientServiceRecords => {
                let answer = records
                    .clone()
                    .list_client_service_records(authed(
                        token,
                        records_pb::ListClientServiceRecordsRequest {
                            client_id: client.clone(),
                            ..Default::default()
                        },
                    ))
                    .await;
                (text(answer), vec![client])
            }
            Kind::GetAuthorizationUtilization => {
                let answer = authorizations
                    .clone()
                    .get_authorization_utilization(authed(
                        token,
                        authorizations_pb::GetAuthorizationUtilizationRequest {
                            authorization_id: authorization.clone(),
                        },
                    ))
                    .await;
                (text(answer), vec![authorization])
            }
            Kind::ListServices => {
                let answer = catalog
                    .clone()
                    .list_services(authed(
                        token,
                        catalog_pb::ListServicesRequest {
                            page_size: 200,
                            ..Default::default()
                        },
                    ))
                    .await;
                (text(answer), vec![])
            }
        };
        (code, answer, named)
    }

    /// What of another tenant shows in `answer` to `tenant`, beyond what the request named:
    /// the answer's words (runs of letters, digits and dashes, as ids and the names written
    /// are) looked up among the other tenants' secrets, case aside.
    fn leaks(&self, tenant: usize, answer: &str, named: &[String]) -> Vec<String> {
        let holdings = self.holdings.lock().unwrap();
        let secrets: std::collections::HashSet<String> = holdings
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != tenant)
            .flat_map(|(_, h)| h.secrets())
            .filter(|secret| !named.contains(secret))
            .map(|secret| secret.to_lowercase())
            .collect();
        answer
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map(str::to_lowercase)
            .filter(|word| secrets.contains(word))
            .collect()
    }
}

#[test]
fn no_interleaving_of_tenants_and_roles_shows_one_tenant_anything_of_another() {
    let operations: u32 = std::env::var("CASEWAY_ISOLATION_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (env, node, world) = runtime.block_on(async {
        let env = TestEnv::new().await;
        let mut config = env.config();
        config.tenant_rate_limit = 0;
        let node = env.start_with(config, &Target::ALL).await;
        let mut tenants = Vec::new();
        let mut tokens = Vec::new();
        let mut holdings = Vec::new();
        for t in 0..TENANTS {
            let tenant = load::seed(&env, &node, &format!("isolation-{t}"), 2).await;
            tokens.push(
                ROLES
                    .iter()
                    .map(|role| env.token_for("person", tenant.id, &[*role], &[]))
                    .collect(),
            );
            holdings.push(Holdings {
                clients: tenant.plans.iter().map(|p| p.client.clone()).collect(),
                authorizations: tenant
                    .plans
                    .iter()
                    .map(|p| p.authorization.clone())
                    .collect(),
                services: vec![tenant.service.clone()],
                names: Vec::new(),
            });
            tenants.push(tenant);
        }
        let world = Arc::new(World {
            channel: node.channel.clone(),
            tenants,
            tokens,
            holdings: Mutex::new(holdings),
        });
        (env, node, world)
    });

    // Cases of 20 to 39 operations: at least `operations` in all.
    let cases = operations.div_ceil(20).max(1);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = done.clone();
    let codes = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let tally = codes.clone();
    let outcome = runner.run(&prop::collection::vec(op(), 20..40), |ops| {
        let world = world.clone();
        let count = ops.len();
        let tally = tally.clone();
        let leaks = runtime.block_on(async move {
            let mut leaks = Vec::new();
            // Four at a time: their writes and reads interleave at the server.
            for group in ops.chunks(4) {
                let answers = futures::future::join_all(group.iter().map(|op| world.run(op))).await;
                for (op, (code, answer, named)) in group.iter().zip(answers) {
                    *tally
                        .lock()
                        .unwrap()
                        .entry(format!("{:?} {code:?}", op.kind))
                        .or_default() += 1;
                    let seen = world.leaks(op.tenant, &answer, &named);
                    if !seen.is_empty() {
                        leaks.push(format!("{op:?} showed {seen:?}: {answer}"));
                    }
                    let cross = op.target != op.tenant
                        && matches!(
                            op.kind,
                            Kind::GetClient
                                | Kind::ListClientServiceRecords
                                | Kind::GetAuthorizationUtilization
                        );
                    if cross
                        && !matches!(code, tonic::Code::NotFound | tonic::Code::PermissionDenied)
                    {
                        leaks.push(format!(
                            "{op:?} naming another tenant's id answered {code:?}"
                        ));
                    }
                    if matches!(code, tonic::Code::Internal | tonic::Code::Unknown) {
                        leaks.push(format!("{op:?} answered {code:?}: {answer}"));
                    }
                }
            }
            leaks
        });
        counted.fetch_add(count, std::sync::atomic::Ordering::SeqCst);
        prop_assert!(leaks.is_empty(), "{}", leaks.join("\n"));
        Ok(())
    });
    let names: usize = world
        .holdings
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.names.len())
        .sum();
    println!(
        "{} operations by {TENANTS} tenants in {} cases; {names} names written, none seen by another tenant; answers: {:?}",
        done.load(std::sync::atomic::Ordering::SeqCst),
        cases,
        codes.lock().unwrap()
    );
    runtime.block_on(async move {
        node.shutdown().await;
        drop(env);
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
