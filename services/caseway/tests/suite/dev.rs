//! `caseway dev` as a user runs it, then an independent client with no proto files (Python
//! grpcio, learning the API by reflection) lists the services and calls the catalog; the demo
//! clients are there with their assessments and barriers, and a second run adds nothing.

use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use caseway_test_support::{TestBus, TestDb, authed};

#[tokio::test]
async fn dev_stack_answers_a_reflection_client_without_proto_files() {
    let db = TestDb::create(&caseway::migrators()).await;
    let bus = TestBus::new();
    // The dev stack's consumers run in the child.
    bus.consumers_elsewhere(&[
        caseway_authorizations::events::CONSUMER,
        caseway_eligibility::events::CONSUMER,
    ]);
    let data_dir =
        std::env::temp_dir().join(format!("caseway-dev-{}", uuid::Uuid::new_v4().simple()));
    let (child, address, token) = start_dev(&db, &bus, &data_dir).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integration-tests/reflection_client.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(&address)
        .arg(&token)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "reflection client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let services: Vec<&str> = result["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for expected in [
        "caseway.catalog.v1.CatalogService",
        "caseway.tenancy.v1.TenancyService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&expected),
            "{expected} not listed in {services:?}"
        );
    }
    assert_eq!(
        result["listed"],
        serde_json::json!(["FA", "FC", "FW"]),
        "the seed's Financial Services"
    );
    assert_eq!(result["got"], "FA");
    assert_eq!(result["bad_id"], "INVALID_ARGUMENT");

    check_demo_clients(&address, &token).await;
    stop(child).await;

    // The secrets dev wrote are its owner's alone, from their creation.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: std::path::PathBuf| {
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(data_dir.clone()), 0o700);
        for secret in [
            "jwt-private.pem",
            "service-key.pem",
            "pii-keys",
            "page-token-secret",
        ] {
            assert_eq!(mode(data_dir.join(secret)), 0o600, "{secret}");
        }
    }

    // Again on the same database: the seed finds what it made and adds nothing.
    let mut owner = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
    let before = seeded_counts(&mut owner).await;
    assert_eq!(before, [5, 5, 16, 5, 4, 17, 1, 1, 2, 2, 6]);
    // A ticket in each open state and a resolved one: submitted, waiting on its submitter,
    // escalated, in support's work, waiting on the customer, resolved (none is closed yet: a
    // ticket closes days after its resolution).
    let statuses: Vec<i16> =
        sqlx::query_scalar("SELECT status FROM ticketing.tickets ORDER BY status")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(statuses, [1, 2, 3, 4, 5, 6]);
    let (child, address, token) = start_dev(&db, &bus, &data_dir).await;
    check_demo_clients(&address, &token).await;
    let after = seeded_counts(&mut owner).await;
    assert_eq!(after, before);
    stop(child).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// How many clients, enrollments, assessments, barriers, assessment types, service records,
/// authorizations, draws on them, eligibility rules and their versions, and tickets are stored.
async fn seeded_counts(owner: &mut sqlx::PgConnection) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "clients.clients",
        "clients.enrollments",
        "clients.assessments",
        "clients.barriers",
        "clients.assessment_types",
        "records.service_records",
        "authorizations.authorizations",
        "authorizations.draws",
        "eligibility.rules",
        "eligibility.rule_versions",
        "ticketing.tickets",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *owner)
            .await
            .unwrap();
        counts.push(n);
    }
    counts
}

/// Starts `caseway dev` and waits for its banner: the child, the address and the token.
async fn start_dev(
    db: &TestDb,
    bus: &TestBus,
    data_dir: &std::path::Path,
) -> (tokio::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_caseway"))
        .arg("dev")
        .env("CASEWAY_DATABASE_URL", &db.app_url)
        .env("CASEWAY_MIGRATION_DATABASE_URL", &db.owner_url)
        .env("CASEWAY_DATA_DIR", data_dir)
        .env("CASEWAY_GRPC_LISTEN", "127.0.0.1:0")
        .env("CASEWAY_METRICS_LISTEN", "127.0.0.1:0")
        .env("CASEWAY_EVENTS_EXCHANGE", bus.exchange())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("caseway dev starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut address, mut token, mut watch) = (None, None, false);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // The banner shows how to watch the demo tickets.
            watch |= line.contains("TicketingService/WatchTickets");
            if let Some(rest) = line.strip_prefix("Caseway is serving every target on ") {
                address = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some(value) = line.strip_prefix("CASEWAY_TOKEN=") {
                token = Some(value.to_string());
            }
            if line == "ready" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("caseway dev prints ready");
    assert!(watch, "the banner shows how to watch the tickets");
    (
        child,
        address.expect("the banner names the address"),
        token.expect("the banner prints a token"),
    )
}

/// The demo clients answer through the API: a misspelt search finds John Smith, who has an
/// enrollment, the latest income, household and disability assessments, services recorded and
/// two barriers, and is eligible for Financial Assistance and counseling.
async fn check_demo_clients(address: &str, token: &str) {
    use caseway_api::clients::v1 as pb;
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut clients = pb::clients_service_client::ClientsServiceClient::new(channel.clone());
    let found = clients
        .search_clients(authed(
            token,
            pb::SearchClientsRequest {
                name: "jhon smith".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .matches;
    let john = found[0].client.clone().unwrap();
    assert_eq!(
        (john.first_name.as_str(), john.last_name.as_str()),
        ("John", "Smith")
    );
    let enrollments = clients
        .list_enrollments(authed(
            token,
            pb::ListEnrollmentsRequest {
                client_id: john.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .enrollments;
    assert_eq!(enrollments.len(), 1);
    let latest = pb::assessments_service_client::AssessmentsServiceClient::new(channel.clone())
        .list_latest_assessments(authed(
            token,
            pb::ListLatestAssessmentsRequest {
                client_id: john.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessments;
    assert_eq!(
        latest
            .iter()
            .map(|a| a.assessment_type_code.as_str())
            .collect::<Vec<_>>(),
        ["DISABILITY", "HOUSEHOLD", "INCOME"]
    );
    let history = caseway_api::records::v1::records_service_client::RecordsServiceClient::new(
        channel.clone(),
    )
    .list_client_service_records(authed(
        token,
        caseway_api::records::v1::ListClientServiceRecordsRequest {
            client_id: john.id.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .records;
    assert_eq!(
        history.len(),
        4,
        "assistance, counseling, a workshop and a turn-away"
    );
    let barriers = pb::barriers_service_client::BarriersServiceClient::new(channel.clone())
        .list_barriers(authed(
            token,
            pb::ListBarriersRequest {
                client_id: john.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .barriers;
    assert_eq!(barriers.len(), 2);
    use caseway_api::eligibility::v1 as eligibility_pb;
    let eligibility =
        eligibility_pb::eligibility_service_client::EligibilityServiceClient::new(channel);
    let decided = caseway_test_support::eventually(
        "John's eligibility",
        std::time::Duration::from_secs(10),
        || async {
            let decisions = eligibility
                .clone()
                .check_eligibility(authed(
                    token,
                    eligibility_pb::CheckEligibilityRequest {
                        client_id: john.id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map_err(|s| vec![(s.message().to_string(), 0)])?
                .into_inner()
                .decisions;
            let outcomes: Vec<(String, i32)> = decisions
                .iter()
                .map(|d| (d.service_code.clone(), d.outcome))
                .collect();
            let eligible = eligibility_pb::Outcome::Eligible as i32;
            if outcomes == [("FA".to_string(), eligible), ("FC".to_string(), eligible)] {
                Ok(outcomes)
            } else {
                Err(outcomes)
            }
        },
    )
    .await;
    assert_eq!(decided.len(), 2);
}

/// SIGTERM: a clean exit.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().expect("running");
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
