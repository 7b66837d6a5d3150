//! `caseway serve` as deployed: the real binary on an ephemeral port, called as a gateway
//! would; and the catalog and tenancy targets as two processes.

use caseway_api::catalog::v1 as pb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as cpb;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::tenancy::v1 as tpb;
use caseway_api::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use caseway_platform::auth::Role;
use caseway_test_support::authed;

use crate::support::Fixture;

#[tokio::test]
async fn serve_all_and_serve_split_targets_answer_a_gateway() {
    let fixture = Fixture::new().await;
    let (issuer, root) = (&fixture.issuer, &fixture.root);
    // Every target in one process.
    let all = fixture.serve("all", &[]).await;
    let channel = all.channel().await;
    let tenant = TenancyServiceClient::new(channel.clone())
        .create_tenant(authed(
            root,
            tpb::CreateTenantRequest {
                request_id: String::new(),
                tenant: Some(tpb::Tenant {
                    slug: "gateway".into(),
                    display_name: "Gateway Test".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let admin = issuer
        .issue(
            "admin",
            Some(tenant.id.parse().unwrap()),
            &[Role::TenantAdmin],
            &[],
            chrono::Duration::hours(1),
        )
        .unwrap();
    let service = pb::Service {
        code: "FA".into(),
        name: "Financial Assistance".into(),
        unit_of_measure: pb::UnitOfMeasure::Dollars as i32,
        default_unit_value: "1.00".into(),
        delivery_mode: pb::DeliveryMode::Direct as i32,
        ..Default::default()
    };
    CatalogServiceClient::new(channel)
        .create_service(authed(
            &admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(service.clone()),
            },
        ))
        .await
        .unwrap();
    all.stop().await;

    // The two targets as two processes; the catalog reaches tenancy through its endpoint.
    let tenancy = fixture.serve("tenancy", &[]).await;
    let catalog = fixture
        .serve(
            "catalog",
            &[(
                "CASEWAY_TENANCY_ENDPOINT",
                format!("http://{}", tenancy.address),
            )],
        )
        .await;
    let organization = TenancyServiceClient::new(tenancy.channel().await)
        .create_organization(authed(
            &admin,
            tpb::CreateOrganizationRequest {
                request_id: String::new(),
                organization: Some(tpb::Organization {
                    code: "NORTH".into(),
                    name: "North".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let mut restricted = service.clone();
    restricted.code = "FW".into();
    restricted.organization_ids = vec![organization.id];
    let mut catalog_client = CatalogServiceClient::new(catalog.channel().await);
    catalog_client
        .create_service(authed(
            &admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(restricted),
            },
        ))
        .await
        .expect("the catalog process validated the organization with the tenancy process");
    let listed = catalog_client
        .list_services(authed(&admin, pb::ListServicesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .services
            .iter()
            .map(|s| s.code.as_str())
            .collect::<Vec<_>>(),
        ["FA", "FW"]
    );
    let status = TenancyServiceClient::new(catalog.channel().await)
        .list_organizations(authed(&admin, tpb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::Unimplemented,
        "the catalog process serves only the catalog"
    );
    catalog.stop().await;
    tenancy.stop().await;
}

#[tokio::test]
async fn no_ssn_reaches_the_log_even_at_debug_level() {
    let fixture = Fixture::new().await;
    let (issuer, root) = (&fixture.issuer, &fixture.root);
    let server = fixture
        .serve("all", &[("CASEWAY_LOG", "debug".to_string())])
        .await;
    let channel = server.channel().await;
    let tenant = TenancyServiceClient::new(channel.clone())
        .create_tenant(authed(
            root,
            tpb::CreateTenantRequest {
                request_id: String::new(),
                tenant: Some(tpb::Tenant {
                    slug: "pii".into(),
                    display_name: "PII".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let reader = issuer
        .issue_with_permissions(
            "ana",
            Some(tenant.id.parse().unwrap()),
            &[Role::Caseworker],
            &[],
            &["clients.read_ssn"],
            chrono::Duration::hours(1),
        )
        .unwrap();
    let mut clients = ClientsServiceClient::new(channel);
    let created = clients
        .create_client(authed(
            &reader,
            cpb::CreateClientRequest {
                request_id: "intake-7".into(),
                client: Some(cpb::Client {
                    first_name: "Maria".into(),
                    last_name: "Lopez".into(),
                    ssn: "123-45-6789".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    clients
        .get_client(authed(
            &reader,
            cpb::GetClientRequest {
                id: created.id.clone(),
                ssn_view: cpb::SsnView::Full as i32,
            },
        ))
        .await
        .unwrap();
    clients
        .search_clients(authed(
            &reader,
            cpb::SearchClientsRequest {
                ssn: "123456789".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // A bad SSN's error names the field, not the value.
    let status = clients
        .create_client(authed(
            &reader,
            cpb::CreateClientRequest {
                request_id: String::new(),
                client: Some(cpb::Client {
                    last_name: "Lopez".into(),
                    ssn: "987-65-432".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert!(!status.message().contains("98765432"));
    let log = server.stop().await;
    assert!(log.len() > 5, "the server logged at debug level");
    for line in &log {
        for secret in ["123456789", "123-45-6789", "98765432", "987-65-432"] {
            assert!(!line.contains(secret), "an SSN reached the log: {line}");
        }
    }
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_page_token_secret_of_its_own() {
    let fixture = Fixture::new().await;
    let run = |secret: Option<std::path::PathBuf>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_caseway"));
        command
            .args(["serve", "--target", "catalog"])
            .env("CASEWAY_DATABASE_URL", &fixture.db.app_url)
            .env("CASEWAY_DATA_DIR", &fixture.data_dir)
            .env("CASEWAY_GRPC_LISTEN", "127.0.0.1:0")
            .env("CASEWAY_METRICS_LISTEN", "127.0.0.1:0")
            .env_remove("CASEWAY_PAGE_TOKEN_SECRET_FILE");
        if let Some(path) = secret {
            command.env("CASEWAY_PAGE_TOKEN_SECRET_FILE", path);
        }
        command.output().expect("caseway runs")
    };
    // Without one: nothing is derived from the public key (anyone holding it could forge
    // page tokens); the node does not start.
    let output = run(None);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("CASEWAY_PAGE_TOKEN_SECRET_FILE"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Nor with one too short to be a secret.
    let short = fixture.data_dir.join("short-secret");
    std::fs::write(&short, "password").unwrap();
    let output = run(Some(short));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32"));
}

#[tokio::test]
async fn probe_exits_zero_only_when_the_node_answers_200() {
    let fixture = Fixture::new().await;
    let node = fixture.serve("tenancy", &[]).await;
    let probe = |listen: &str, path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_caseway"))
            .args(["probe", "--path", path])
            .env("CASEWAY_METRICS_LISTEN", listen)
            .output()
            .expect("caseway runs")
    };
    assert!(probe(&node.metrics_address, "/readyz").status.success());
    assert!(probe(&node.metrics_address, "/healthz").status.success());
    let missing = probe(&node.metrics_address, "/nowhere");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    // A wildcard listen address is asked on this machine's own.
    let port = node.metrics_address.rsplit(':').next().unwrap().to_string();
    assert!(
        probe(&format!("0.0.0.0:{port}"), "/readyz")
            .status
            .success()
    );
    // Nothing answering is a failure too.
    let address = node.metrics_address.clone();
    node.stop().await;
    assert!(!probe(&address, "/readyz").status.success());
}

#[tokio::test]
async fn migrate_gives_the_services_role_the_password_of_its_file() {
    let fixture = Fixture::new().await;
    let migrate = |password: &str| {
        let file = fixture.data_dir.join("app-role-password");
        std::fs::write(&file, password).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_caseway"))
            .arg("migrate")
            .env("CASEWAY_MIGRATION_DATABASE_URL", &fixture.db.owner_url)
            .env("CASEWAY_APP_ROLE_PASSWORD_FILE", &file)
            .output()
            .expect("caseway runs")
    };
    // Too short to be a password: refused, and said why.
    let short = migrate("secret\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16"));
    // A password with a quote in it is given as it is (PostgreSQL quotes it).
    let done = migrate("a-long-pass'word-for-the-role\n");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut owner = fixture.db.owner().await;
    let verifier: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'caseway_app'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(
        verifier.is_some_and(|v| v.starts_with("SCRAM-SHA-256$")),
        "the role has no SCRAM verifier"
    );
}
