//! Whole-node behaviour: the targets as separate servers, a suspension that reaches another
//! process by event, a broker outage that delays events without failing calls, health and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use caseway::Target;
use caseway_api::catalog::v1 as pb;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{TestEnv, authed, http_get, violated_fields};
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

fn service(code: &str, organization_ids: Vec<String>) -> pb::CreateServiceRequest {
    pb::CreateServiceRequest {
        request_id: String::new(),
        service: Some(pb::Service {
            code: code.into(),
            name: format!("Service {code}"),
            unit_of_measure: pb::UnitOfMeasure::Count as i32,
            default_unit_value: "0".into(),
            delivery_mode: pb::DeliveryMode::Indirect as i32,
            organization_ids,
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn catalog_and_tenancy_run_as_two_servers() {
    let env = TestEnv::new().await;
    let tenancy_node = env.start(&[Target::Tenancy]).await;
    let mut config = env.config();
    config.tenancy_endpoint = Some(format!("http://{}", tenancy_node.addr()));
    let catalog_node = env.start_with(config, &[Target::Catalog]).await;

    let tenant = tenancy_node.create_tenant(&env, "split").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let org = tenancy_node.create_organization(&admin, "NORTH").await;
    let mut catalog = catalog_node.catalog.clone();

    // The catalog server checks organizations by calling the tenancy server.
    let created = catalog
        .create_service(authed(&admin, service("FW", vec![org.to_string()])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.service.unwrap().organization_ids,
        vec![org.to_string()]
    );
    let status = catalog
        .create_service(authed(
            &admin,
            service("FX", vec![uuid::Uuid::now_v7().to_string()]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["service.organization_ids[0]"]
    );

    // Each server serves only its targets.
    let status = catalog_node
        .tenancy
        .clone()
        .list_organizations(authed(&admin, tpb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let mut health = HealthClient::new(catalog_node.channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let serving = health
        .check(check("caseway.catalog.v1.CatalogService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);
    assert_eq!(
        health
            .check(check("caseway.tenancy.v1.TenancyService"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // A suspension on the tenancy server reaches the catalog server by event, within seconds
    // (its cached status would otherwise be trusted for 30 s).
    assert!(
        catalog
            .list_services(authed(&admin, pb::ListServicesRequest::default()))
            .await
            .is_ok()
    );
    tenancy_node
        .tenancy
        .clone()
        .suspend_tenant(authed(
            &env.platform_admin_token(),
            tpb::SuspendTenantRequest {
                id: tenant.to_string(),
                reason: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let suspended_at = Instant::now();
    eventually(
        "the suspension reaching the catalog server",
        Duration::from_secs(5),
        || async {
            let request = authed(&admin, pb::ListServicesRequest::default());
            match catalog.clone().list_services(request).await {
                Err(status) if status.code() == Code::PermissionDenied => Ok(()),
                other => Err(other.map(|_| "still served")),
            }
        },
    )
    .await;
    println!(
        "suspension reached the other server in {:?}",
        suspended_at.elapsed()
    );

    // RED metrics per RPC on the metrics port.
    let (status, metrics) = http_get(catalog_node.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="caseway.catalog.v1.CatalogService",grpc_method="CreateService",grpc_code="OK"} 1"#,
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="caseway.catalog.v1.CatalogService",grpc_method="CreateService",grpc_code="InvalidArgument"} 1"#,
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="caseway.catalog.v1.CatalogService",grpc_method="ListServices",grpc_code="PermissionDenied"}"#,
        "grpc_server_handling_seconds_bucket",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
}

/// A TCP proxy to a real server of this machine (RabbitMQ, PostgreSQL) that the test can cut
/// and restore, standing in for an outage without stopping the server.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (accept_up, accept_generation) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            generation,
        }
    }

    fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_split_node_without_a_peer_endpoint_does_not_start_and_names_the_variable() {
    let env = TestEnv::new().await;
    // Records calls the catalog (served here), then the clients service (neither served nor
    // configured): calling itself would answer every call UNIMPLEMENTED.
    let start = |config, targets: &'static [Target]| async move {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        caseway::start(config, targets, grpc, metrics, shutdown).await
    };
    let error = start(env.config(), &[Target::Records, Target::Catalog])
        .await
        .err()
        .expect("a records node without the clients service's endpoint must not start");
    let message = format!("{error:#}");
    assert!(
        message.contains("CASEWAY_CLIENTS_ENDPOINT") && message.contains("records"),
        "{message}"
    );
    // With every peer named, it starts.
    let all = env.start(&Target::ALL).await;
    let mut config = env.config();
    let at = Some(format!("http://{}", all.addr()));
    config.tenancy_endpoint = at.clone();
    config.clients_endpoint = at.clone();
    config.authorizations_endpoint = at.clone();
    config.eligibility_endpoint = at;
    let node = start(config, &[Target::Records, Target::Catalog])
        .await
        .unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn broker_outage_delays_events_without_failing_calls() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("catalog.#").await;
    let proxy = Proxy::start(5672).await;
    let mut config = env.config();
    config.amqp_url = proxy.amqp_url();
    let node = env.start_with(config, &Target::ALL).await;
    let tenant = node.create_tenant(&env, "outage").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut catalog = node.catalog.clone();
    catalog
        .create_service(authed(&admin, service("BEFORE", vec![])))
        .await
        .unwrap();
    events
        .expect("catalog.service_created.v1", Duration::from_secs(10))
        .await;
    // The consumer can see the event before the relay has its confirm and commits; a cut in
    // between would (rightly, at least once) publish it again after the outage. Cut only once
    // the outbox holds nothing unpublished.
    eventually(
        "the relay committing what it published",
        Duration::from_secs(10),
        || async {
            let unpublished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM platform.outbox WHERE published_at IS NULL",
            )
            .fetch_one(&mut env.db.owner().await)
            .await
            .unwrap();
            if unpublished == 0 {
                Ok(())
            } else {
                Err(unpublished)
            }
        },
    )
    .await;
    let mut owner = env.db.owner().await;

    proxy.cut();
    let during = catalog
        .create_service(authed(&admin, service("DURING", vec![])))
        .await
        .expect("the call succeeds with the broker down");
    let during_id = during.into_inner().service.unwrap().id;
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "nothing can be published while the broker is down"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.outbox WHERE published_at IS NULL AND subject = $1",
    )
    .bind(&during_id)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(pending, 1, "the event waits in the outbox");
    // The pod can still serve, so it stays ready; the metric says the broker is away.
    let ready = reqwest_status(node.metrics_addr(), "/readyz").await;
    assert_eq!(ready, 200, "a broker outage alone leaves the node ready");
    eventually("rabbitmq_up 0", Duration::from_secs(15), || async {
        let (_, metrics) = http_get(node.metrics_addr(), "/metrics").await;
        if metrics.contains("caseway_rabbitmq_up 0") {
            Ok(())
        } else {
            Err(metrics
                .lines()
                .filter(|l| l.contains("rabbitmq"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    })
    .await;

    proxy.restore();
    let (envelope, _) = events
        .expect("catalog.service_created.v1", Duration::from_secs(15))
        .await;
    assert_eq!(envelope.subject, during_id);
    assert!(
        events.next(Duration::from_millis(500)).await.is_none(),
        "published once"
    );
    assert_eq!(reqwest_status(node.metrics_addr(), "/readyz").await, 200);
    eventually("rabbitmq_up 1", Duration::from_secs(15), || async {
        let (_, metrics) = http_get(node.metrics_addr(), "/metrics").await;
        if metrics.contains("caseway_rabbitmq_up 1") {
            Ok(())
        } else {
            Err(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_database_outage_makes_the_node_unready_until_it_is_back() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start(5432).await;
    let mut config = env.config();
    assert!(
        config.database_url.contains("127.0.0.1:5432"),
        "{}",
        config.database_url
    );
    config.database_url = config
        .database_url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    let node = env.start_with(config, &[Target::Tenancy]).await;
    assert_eq!(reqwest_status(node.metrics_addr(), "/readyz").await, 200);
    let readiness = |expected: u16| {
        let addr = node.metrics_addr();
        eventually("readiness", Duration::from_secs(15), move || async move {
            match reqwest_status(addr, "/readyz").await {
                status if status == expected => Ok(()),
                other => Err(other),
            }
        })
    };
    proxy.cut();
    readiness(503).await;
    proxy.restore();
    readiness(200).await;
}

/// How many Health/Check calls a node has answered, from its metrics.
async fn health_checks(node: &caseway_integration_tests::TestNode) -> u64 {
    let (_, metrics) = http_get(node.metrics_addr(), "/metrics").await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total{")
                && l.contains("grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Check\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn calls_to_a_peer_named_by_dns_spread_over_its_addresses_and_follow_them() {
    use std::sync::Mutex;
    let env = TestEnv::new().await;
    let first = env.start(&[Target::Tenancy]).await;
    let second = env.start(&[Target::Tenancy]).await;
    // What the name resolves to, as a headless Service's DNS would answer, changed by the test.
    let addresses = Arc::new(Mutex::new(vec![first.addr(), second.addr()]));
    let answers = addresses.clone();
    let resolve: caseway_platform::tls::Resolve = Arc::new(move |host, _port| {
        assert_eq!(host, "tenancy.caseway.svc");
        let found = answers.lock().unwrap().clone();
        Box::pin(async move { Ok(found) })
    });
    let peers = caseway_platform::tls::Peers::new(&env.config()).unwrap();
    let channel = peers
        .balanced("http://tenancy.caseway.svc:50051", resolve)
        .unwrap();
    let mut health = HealthClient::new(channel);
    let call = |health: &mut HealthClient<tonic::transport::Channel>| {
        let mut health = health.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                health.check(HealthCheckRequest::default()),
            )
            .await
            .expect("a call within its deadline")
            .expect("a call answered")
        }
    };
    for _ in 0..200 {
        call(&mut health).await;
    }
    let (a, b) = (health_checks(&first).await, health_checks(&second).await);
    assert_eq!(a + b, 200);
    assert!(a >= 40 && b >= 40, "calls were not spread: {a} and {b}");

    // The second replica leaves the name: within a resolution, every call goes to the first.
    addresses
        .lock()
        .unwrap()
        .retain(|addr| *addr == first.addr());
    tokio::time::sleep(caseway_platform::tls::RESOLVE_EVERY + Duration::from_secs(1)).await;
    let before = (health_checks(&first).await, health_checks(&second).await);
    for _ in 0..50 {
        call(&mut health).await;
    }
    let after = (health_checks(&first).await, health_checks(&second).await);
    assert_eq!(after.0 - before.0, 50);
    assert_eq!(after.1, before.1);
}

async fn reqwest_status(addr: SocketAddr, path: &str) -> u16 {
    http_get(addr, path).await.0
}

/// A GET on the metrics port, with a hand-written request (no HTTP client dependency for a
/// few calls): the status and the whole response.
#[tokio::test]
async fn shutdown_reports_not_serving_then_closes_with_no_event_left_behind() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("catalog.#").await;
    let mut config = env.config();
    // Long enough to observe NOT_SERVING before the listener closes.
    config.shutdown_delay = Duration::from_millis(800);
    let node = env.start_with(config, &Target::ALL).await;
    let tenant = node.create_tenant(&env, "shutdown").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut health = HealthClient::new(node.channel.clone());
    let overall = HealthCheckRequest {
        service: String::new(),
    };
    assert_eq!(
        health
            .check(overall.clone())
            .await
            .unwrap()
            .into_inner()
            .status,
        ServingStatus::Serving as i32
    );
    node.catalog
        .clone()
        .create_service(authed(&admin, service("LAST", vec![])))
        .await
        .unwrap();

    let addr = node.addr();
    let channel = node.channel.clone();
    let stopping = tokio::spawn(node.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut health = HealthClient::new(channel);
    assert_eq!(
        health.check(overall).await.unwrap().into_inner().status,
        ServingStatus::NotServing as i32
    );
    stopping.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    let (envelope, _) = events
        .expect("catalog.service_created.v1", Duration::from_secs(5))
        .await;
    assert_eq!(envelope.source, "caseway/catalog");
}

#[tokio::test]
async fn one_tenant_spending_its_rate_limit_does_not_slow_another() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 10;
    let node = env.start_with(config, &Target::ALL).await;
    let noisy = node.create_tenant(&env, "noisy").await;
    let quiet = node.create_tenant(&env, "quiet").await;
    let noisy_token = env.token(noisy, &[Role::Caseworker], &[]);
    let quiet_token = env.token(quiet, &[Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();
    let started = Instant::now();
    let (mut allowed, mut refused) = (0, 0);
    for _ in 0..40 {
        match catalog
            .list_service_groups(authed(
                &noisy_token,
                pb::ListServiceGroupsRequest::default(),
            ))
            .await
        {
            Ok(_) => allowed += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(caseway_integration_tests::reason(&status), "RATE_LIMITED");
                assert!(status.get_details_retry_info().is_some(), "{status:?}");
                refused += 1;
            }
        }
    }
    // Budgets are per clock second, so calls spread over `t` seconds can touch `t + 2` of them.
    let seconds = started.elapsed().as_secs() + 2;
    assert!(
        refused > 0,
        "40 calls at once must pass a limit of 10 a second"
    );
    assert!(
        allowed <= 10 * seconds as usize,
        "{allowed} calls allowed in {seconds} s windows"
    );
    // The other tenant's budget is its own.
    catalog
        .list_service_groups(authed(
            &quiet_token,
            pb::ListServiceGroupsRequest::default(),
        ))
        .await
        .expect("another tenant is not limited by the noisy one");
}

/// GetClient answers from a replica's cache of clients: its own changes are seen at once,
/// another replica's once their event arrives, and while the replica cannot hear those events
/// (its broker connection cut) it reads PostgreSQL instead, so a change made meanwhile is
/// never hidden behind what it had cached. The cache is per tenant.
#[tokio::test]
async fn a_replica_answers_get_client_from_its_cache_only_while_it_hears_client_events() {
    use caseway_api::clients::v1 as cpb;
    use caseway_integration_tests::tenants::{client, clients_tenant};

    let env = TestEnv::new().await;
    let writer = env.start(&Target::ALL).await;
    let proxy = Proxy::start(5672).await;
    let mut config = env.config();
    config.amqp_url = proxy.amqp_url();
    let reader = env.start_with(config, &Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &writer, "client-cache").await;
    let (_, other_worker) = clients_tenant(&env, &writer, "client-cache-other").await;

    let created = writer
        .clients
        .clone()
        .create_client(authed(
            &worker,
            cpb::CreateClientRequest {
                request_id: String::new(),
                client: Some(client("Ana", "Reyes", "", (1980, 1, 2))),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    let get = |node: &caseway_integration_tests::TestNode, token: &str| {
        let (mut clients, token, id) =
            (node.clients.clone(), token.to_string(), created.id.clone());
        async move {
            clients
                .get_client(authed(&token, cpb::GetClientRequest { id, ssn_view: 0 }))
                .await
                .map(|reply| reply.into_inner().client.unwrap())
        }
    };
    let rename = |last: &'static str| {
        let (mut clients, worker, id) =
            (writer.clients.clone(), worker.clone(), created.id.clone());
        async move {
            clients
                .update_client(authed(
                    &worker,
                    cpb::UpdateClientRequest {
                        client: Some(cpb::Client {
                            id,
                            last_name: last.into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["last_name".into()],
                        }),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .client
                .unwrap()
        }
    };
    let reads = |node: &caseway_integration_tests::TestNode, last: &'static str| {
        let get = get(node, &worker);
        async move {
            let found = get.await.unwrap();
            if found.last_name == last {
                Ok(())
            } else {
                Err(found.last_name)
            }
        }
    };

    // Both replicas hold the client; another tenant asking for the same id finds nothing.
    assert_eq!(get(&writer, &worker).await.unwrap().last_name, "Reyes");
    eventually(
        "the reader reading the client",
        Duration::from_secs(10),
        || reads(&reader, "Reyes"),
    )
    .await;
    for node in [&writer, &reader] {
        let status = get(node, &other_worker).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    // The replica that changes a client reads its change at once; the other once the event
    // arrives.
    rename("Reyes-Ortiz").await;
    assert_eq!(
        get(&writer, &worker).await.unwrap().last_name,
        "Reyes-Ortiz"
    );
    eventually(
        "the reader hearing the update",
        Duration::from_secs(10),
        || reads(&reader, "Reyes-Ortiz"),
    )
    .await;

    // The reader answers from its cache: a change written past the service (no event) is not
    // seen, until a caller asks for a fresh read. (Until the reader's queue is bound it reads
    // PostgreSQL each time, so the change is undone and tried again until the cache holds.)
    let id = uuid::Uuid::parse_str(&created.id).unwrap();
    let mut owner = env.db.owner().await;
    let set_last_name = |last: &'static str| {
        sqlx::query("UPDATE clients.clients SET last_name = $2 WHERE id = $1")
            .bind(id)
            .bind(last)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(
            get(&reader, &worker).await.unwrap().last_name,
            "Reyes-Ortiz"
        );
        set_last_name("Unheard").execute(&mut owner).await.unwrap();
        if get(&reader, &worker).await.unwrap().last_name == "Reyes-Ortiz" {
            break;
        }
        set_last_name("Reyes-Ortiz")
            .execute(&mut owner)
            .await
            .unwrap();
        assert!(
            Instant::now() < deadline,
            "the reader never cached the client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut fresh = authed(
        &worker,
        cpb::GetClientRequest {
            id: created.id.clone(),
            ssn_view: 0,
        },
    );
    fresh
        .metadata_mut()
        .insert("cache-control", "no-cache".parse().unwrap());
    let read = reader.clients.clone().get_client(fresh).await.unwrap();
    assert_eq!(read.into_inner().client.unwrap().last_name, "Unheard");
    assert_eq!(
        get(&reader, &worker).await.unwrap().last_name,
        "Reyes-Ortiz"
    );

    // Cut off from the broker, the reader cannot hear the next change: it must read it from
    // PostgreSQL, not answer what it cached before.
    proxy.cut();
    rename("Ortiz").await;
    eventually(
        "the cut-off reader reading the change",
        Duration::from_secs(10),
        || reads(&reader, "Ortiz"),
    )
    .await;

    // Back on the broker, it follows changes again, deletions included.
    proxy.restore();
    rename("Ortiz-Reyes").await;
    eventually(
        "the reader hearing the update again",
        Duration::from_secs(20),
        || reads(&reader, "Ortiz-Reyes"),
    )
    .await;
    let current = get(&writer, &worker).await.unwrap();
    let supervisor = env.token(tenant, &[Role::Supervisor], &[]);
    writer
        .clients
        .clone()
        .delete_client(authed(
            &supervisor,
            cpb::DeleteClientRequest {
                id: current.id.clone(),
                etag: current.etag.clone(),
                reason: "duplicate record".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        get(&writer, &worker).await.unwrap_err().code(),
        Code::NotFound
    );
    eventually(
        "the reader hearing the deletion",
        Duration::from_secs(10),
        || {
            let get = get(&reader, &worker);
            async move {
                match get.await {
                    Err(status) if status.code() == Code::NotFound => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
}
