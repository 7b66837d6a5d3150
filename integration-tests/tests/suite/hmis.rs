//! The HUD HMIS CSV export: the demo tenant's export checked against the FY2026 specification
//! (each file's columns, types, empty values and allowed values, written as data in
//! `services/hmis/spec/fy2026.json`), its counts and amounts against the records service's
//! totals for the same range, SSNs only with `clients.read_ssn`, a second start of a running
//! range joined, and the mappings' and settings' checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::Connection;
use tonic::Code;

use caseway_api::clients::v1 as cpb;
use caseway_api::google::r#type::Date;
use caseway_api::hmis::v1 as hpb;
use caseway_api::records::v1 as rpb;
use caseway_fixtures::{Fixtures, date};
use caseway_integration_tests::{TestEnv, TestNode, authed, reason, rule_of, violated_fields};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

/// One parsed CSV file: its header and rows, each a map by column.
struct Csv {
    header: Vec<String>,
    rows: Vec<BTreeMap<String, String>>,
}

/// Parses RFC 4180 CSV: quoted fields with doubled quotes, CRLF line ends.
fn parse_csv(text: &str) -> Csv {
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "lines end with CRLF"),
            (false, '\n') => panic!("a bare LF ends a line"),
            (false, c) => field.push(c),
        }
        if !quoted && c == '\r' {
            record.push(std::mem::take(&mut field));
            records.push(std::mem::take(&mut record));
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last line ends with CRLF"
    );
    let header = records.remove(0);
    let rows = records
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "every row has the header's columns");
            header.iter().cloned().zip(r).collect()
        })
        .collect();
    Csv { header, rows }
}

fn spec() -> Json {
    serde_json::from_str(caseway_hmis::domain::SPEC_JSON).unwrap()
}

/// Checks `csv` as the specification's `file`: its columns in order, and every value against
/// its column's type, whether it may be empty, and its list.
fn check_against_spec(spec: &Json, file: &str, csv: &Csv) {
    let columns = spec["files"][file].as_array().unwrap();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(csv.header, names, "{file}'s columns");
    let date = |v: &str| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok();
    let time = |v: &str| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").is_ok();
    for (n, row) in csv.rows.iter().enumerate() {
        for column in columns {
            let name = column["name"].as_str().unwrap();
            let value = &row[name];
            let at = format!("{file} row {n} {name} = {value:?}");
            if value.is_empty() {
                assert!(
                    column["nullable"].as_bool().unwrap(),
                    "{at}: may not be empty"
                );
                continue;
            }
            match column["type"].as_str().unwrap() {
                "I" => assert!(value.parse::<i64>().is_ok(), "{at}: an integer"),
                "D" => assert!(date(value), "{at}: a date"),
                "T" => assert!(time(value), "{at}: a date and time"),
                "M" => assert!(
                    value.parse::<rust_decimal::Decimal>().is_ok() && !value.contains(['$', ',']),
                    "{at}: money"
                ),
                text => {
                    let max: usize = text.strip_prefix('S').unwrap().parse().unwrap();
                    assert!(
                        value.chars().count() <= max,
                        "{at}: at most {max} characters"
                    );
                }
            }
            if let Some(list) = column["list"].as_str() {
                let allowed: Vec<i64> = spec["lists"][list]["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["value"].as_i64().unwrap())
                    .collect();
                let value: i64 = value.parse().unwrap();
                assert!(allowed.contains(&value), "{at}: a value of list {list}");
            }
        }
    }
    if file == "Services.csv" {
        for row in &csv.rows {
            let types = &spec["services_record_types"][&row["RecordType"]]["TypeProvided_values"];
            let provided: i64 = row["TypeProvided"].parse().unwrap();
            assert!(
                types
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["value"].as_i64() == Some(provided)),
                "TypeProvided {provided} is one of RecordType {}'s",
                row["RecordType"]
            );
        }
    }
}

fn day(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(date(year, month, day))
}

async fn start(
    node: &TestNode,
    token: &str,
    (from, to): (Option<Date>, Option<Date>),
    include_ssn: bool,
) -> Result<hpb::StartExportResponse, tonic::Status> {
    node.fixtures(token)
        .hmis()
        .start_export(authed(
            token,
            hpb::StartExportRequest {
                start_date: from,
                end_date: to,
                include_ssn,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// The export once it has ended.
async fn finished(node: &TestNode, token: &str, id: &str) -> hpb::Export {
    let hmis = node.fixtures(token).hmis();
    eventually("the export to end", Duration::from_secs(30), || {
        let mut hmis = hmis.clone();
        async move {
            let export = hmis
                .get_export(authed(token, hpb::GetExportRequest { id: id.into() }))
                .await
                .unwrap()
                .into_inner()
                .export
                .unwrap();
            match export.state() {
                hpb::ExportState::Running => Err(export.files_written),
                _ => Ok(export),
            }
        }
    })
    .await
}

async fn download(
    node: &TestNode,
    token: &str,
    id: &str,
    name: &str,
) -> Result<String, tonic::Status> {
    let mut stream = node
        .fixtures(token)
        .hmis()
        .download_export_file(authed(
            token,
            hpb::DownloadExportFileRequest {
                id: id.into(),
                name: name.into(),
            },
        ))
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend(chunk.chunk);
    }
    Ok(String::from_utf8(bytes).expect("UTF-8"))
}

async fn download_all(node: &TestNode, token: &str, export: &hpb::Export) -> HashMap<String, Csv> {
    let mut files = HashMap::new();
    for file in &export.files {
        let text = download(node, token, &export.id, &file.name).await.unwrap();
        assert_eq!(text.len() as i64, file.bytes, "{} bytes", file.name);
        let sha = sha2::Sha256::digest(text.as_bytes());
        let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, file.sha256, "{}'s checksum", file.name);
        let csv = parse_csv(&text);
        assert_eq!(csv.rows.len() as i64, file.rows, "{}'s rows", file.name);
        files.insert(file.name.clone(), csv);
    }
    files
}

use sha2::Digest;

fn column<'a>(csv: &'a Csv, name: &str) -> BTreeSet<&'a str> {
    csv.rows.iter().map(|r| r[name].as_str()).collect()
}

#[tokio::test]
async fn the_demo_tenants_export_meets_the_specification_and_the_records_totals() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let demo = caseway_fixtures::demo::seed(node.channel.clone(), &env.issuer)
        .await
        .unwrap();
    let tenant = demo.tenant_id;
    let worker = node.fixtures(&demo.token);
    // One demo client leaves the program, to a destination the tenant maps and one it does not.
    let enrollments = worker
        .clients()
        .list_enrollments(authed(
            &demo.token,
            cpb::ListEnrollmentsRequest {
                client_id: demo.client_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .enrollments;
    worker
        .clients()
        .exit_enrollment(authed(
            &demo.token,
            cpb::ExitEnrollmentRequest {
                id: enrollments[0].id.clone(),
                exit_date: day(2026, 11, 30),
                exit_destination: "RENTAL".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    worker
        .hmis_mapping(hpb::Subject::ExitDestination, "RENTAL", 435, 0)
        .await
        .unwrap();
    // A client whose gender HUD's Sex has no value for, and who gave no race.
    let sam = worker
        .client(cpb::Client {
            first_name: "Sam".into(),
            last_name: "Rivera".into(),
            birth_date_quality: cpb::DataQuality::NotCollected as i32,
            ssn_quality: cpb::DataQuality::ClientPrefersNotToAnswer as i32,
            veteran_status: cpb::VeteranStatus::NotCollected as i32,
            demographics: vec![cpb::Demographic {
                category: "gender".into(),
                code: "4".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let program = worker
        .catalog()
        .list_programs(authed(
            &demo.token,
            caseway_api::catalog::v1::ListProgramsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
        .programs
        .remove(0);
    let sams_enrollment = worker
        .enrollment(&sam, &program.id, date(2026, 2, 1))
        .await
        .unwrap();

    // Three workshops HMIS cannot place, each left out for its reason: one recorded without an
    // enrollment; one dated after an exit recorded later; one of a client deleted since.
    let catalog_services = worker
        .catalog()
        .list_services(authed(
            &demo.token,
            caseway_api::catalog::v1::ListServicesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
        .services;
    let workshop = catalog_services
        .iter()
        .find(|s| s.code == "FW")
        .unwrap()
        .id
        .clone();
    let workshop_on = |client: &str, enrollment: &str, on: Date| rpb::ServiceRecord {
        client_id: client.into(),
        service_id: workshop.clone(),
        service_date: Some(on),
        enrollment_id: enrollment.into(),
        units: "1".into(),
        ..Default::default()
    };
    worker
        .record(workshop_on(&sam, "", date(2026, 5, 4)))
        .await
        .unwrap();
    worker
        .record(workshop_on(&sam, &sams_enrollment, date(2026, 6, 15)))
        .await
        .unwrap();
    worker
        .clients()
        .exit_enrollment(authed(
            &demo.token,
            cpb::ExitEnrollmentRequest {
                id: sams_enrollment.clone(),
                exit_date: day(2026, 5, 31),
                exit_destination: "UNKNOWN-PLACE".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let gone = worker
        .client(cpb::Client {
            first_name: "Gone".into(),
            last_name: "Away".into(),
            birth_date_quality: cpb::DataQuality::NotCollected as i32,
            ssn_quality: cpb::DataQuality::NotCollected as i32,
            veteran_status: cpb::VeteranStatus::NotCollected as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let gones_enrollment = worker
        .enrollment(&gone, &program.id, date(2026, 2, 1))
        .await
        .unwrap();
    worker
        .record(workshop_on(&gone, &gones_enrollment, date(2026, 3, 3)))
        .await
        .unwrap();
    worker
        .clients()
        .delete_client(authed(
            &demo.token,
            cpb::DeleteClientRequest {
                id: gone.clone(),
                reason: "entered twice".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();

    let auditor =
        env.token_with_permissions(tenant, &[Role::Supervisor], &[], &["clients.read_ssn"]);
    let range = (day(2026, 1, 1), day(2026, 12, 31));
    let started = start(&node, &auditor, range, true).await.unwrap();
    assert!(!started.joined);
    let export = finished(&node, &auditor, &started.export.unwrap().id).await;
    assert_eq!(
        export.state(),
        hpb::ExportState::Succeeded,
        "{}",
        export.error
    );
    assert_eq!(export.files_written, 8);
    let spec = spec();
    let files = download_all(&node, &auditor, &export).await;
    assert_eq!(files.len(), 8);
    for (name, csv) in &files {
        check_against_spec(&spec, name, csv);
    }

    // What the tenant holds, as HUD reads it.
    let clients = &files["Client.csv"];
    // The demo's five, and Sam; not the client deleted.
    assert_eq!(clients.rows.len(), 6);
    let maria = clients
        .rows
        .iter()
        .find(|r| r["FirstName"] == "Maria")
        .unwrap();
    assert_eq!(maria["SSN"], "123456789");
    assert_eq!(maria["Sex"], "0");
    assert_eq!(maria["HispanicLatinao"], "1");
    assert_eq!(maria["White"], "0");
    assert_eq!(maria["RaceNone"], "");
    assert_eq!(maria["PersonalID"], demo.client_id.replace('-', ""));
    let ahmed = clients
        .rows
        .iter()
        .find(|r| r["FirstName"] == "Ahmed")
        .unwrap();
    assert_eq!(ahmed["SSN"], "");
    assert_eq!(ahmed["SSNDataQuality"], "8");
    // A gender HUD's Sex has no value for is reported, never guessed.
    let sam = clients
        .rows
        .iter()
        .find(|r| r["FirstName"] == "Sam")
        .unwrap();
    assert_eq!(sam["Sex"], "");
    assert_eq!(sam["RaceNone"], "99");
    assert_eq!(sam["DOB"], "");
    assert_eq!(
        (
            sam["DOBDataQuality"].as_str(),
            sam["VeteranStatus"].as_str()
        ),
        ("99", "99")
    );
    let unmapped: Vec<(i32, &str, i64)> = export
        .unmapped
        .iter()
        .map(|u| (u.subject, u.code.as_str(), u.rows))
        .collect();
    assert_eq!(
        unmapped,
        [
            (hpb::Subject::Gender as i32, "4", 1),
            // Written as 99, Data not collected.
            (hpb::Subject::ExitDestination as i32, "UNKNOWN-PLACE", 1),
        ]
    );
    assert_eq!(files["Organization.csv"].rows.len(), 1);
    assert_eq!(
        files["Organization.csv"].rows[0]["OrganizationName"],
        "Demo Community Services"
    );
    let project = &files["Project.csv"].rows[0];
    assert_eq!(
        (
            project["ProjectType"].as_str(),
            project["ContinuumProject"].as_str()
        ),
        ("12", "1")
    );
    assert_eq!(files["Funder.csv"].rows.len(), 1);
    assert_eq!(files["Funder.csv"].rows[0]["Funder"], "9");
    let exits = &files["Exit.csv"].rows;
    assert_eq!(exits.len(), 2);
    let exit = |date: &str| exits.iter().find(|e| e["ExitDate"] == date).unwrap();
    assert_eq!(exit("2026-11-30")["Destination"], "435");
    assert_eq!(exit("2026-05-31")["Destination"], "99");
    assert_eq!(
        exit("2026-05-31")["EnrollmentID"],
        sams_enrollment.replace('-', "")
    );
    for row in &files["Enrollment.csv"].rows {
        assert_eq!(row["EnrollmentCoC"], "XX-500");
    }

    // Every id one file names is in the file that holds it.
    let personal = column(clients, "PersonalID");
    let enrollment_ids = column(&files["Enrollment.csv"], "EnrollmentID");
    let projects = column(&files["Project.csv"], "ProjectID");
    for row in &files["Enrollment.csv"].rows {
        assert!(personal.contains(row["PersonalID"].as_str()));
        assert!(projects.contains(row["ProjectID"].as_str()));
    }
    for row in &files["Services.csv"].rows {
        assert!(personal.contains(row["PersonalID"].as_str()));
        assert!(enrollment_ids.contains(row["EnrollmentID"].as_str()));
    }
    for row in &files["Funder.csv"].rows {
        assert!(projects.contains(row["ProjectID"].as_str()));
    }
    for row in &files["Exit.csv"].rows {
        assert!(personal.contains(row["PersonalID"].as_str()));
        assert!(enrollment_ids.contains(row["EnrollmentID"].as_str()));
    }
    let organization = &files["Organization.csv"].rows[0]["OrganizationID"];
    assert!(
        files["Project.csv"]
            .rows
            .iter()
            .all(|p| &p["OrganizationID"] == organization)
    );
    // Services lie within their enrollments.
    let enrollments: HashMap<&str, &BTreeMap<String, String>> = files["Enrollment.csv"]
        .rows
        .iter()
        .map(|e| (e["EnrollmentID"].as_str(), e))
        .collect();
    let exit_of: HashMap<&str, &str> = exits
        .iter()
        .map(|e| (e["EnrollmentID"].as_str(), e["ExitDate"].as_str()))
        .collect();
    for row in &files["Services.csv"].rows {
        let enrollment = enrollments[row["EnrollmentID"].as_str()];
        assert!(row["DateProvided"] >= enrollment["EntryDate"]);
        if let Some(exit) = exit_of.get(row["EnrollmentID"].as_str()) {
            assert!(row["DateProvided"].as_str() <= *exit);
        }
    }
    let export_id = &files["Export.csv"].rows[0]["ExportID"];
    for csv in files.values() {
        assert!(csv.rows.iter().all(|r| &r["ExportID"] == export_id));
    }

    // Row counts and amounts against the records service's totals for the same range.
    let totals = worker
        .records()
        .get_service_totals(authed(
            &demo.token,
            rpb::GetServiceTotalsRequest {
                start_date: range.0,
                end_date: range.1,
                group_by: vec![rpb::TotalsGrouping::Service as i32],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .totals;
    let services = &files["Services.csv"].rows;
    let skipped: BTreeMap<&str, i64> = export
        .skipped
        .iter()
        .map(|s| (s.reason.as_str(), s.rows))
        .collect();
    assert_eq!(skipped.get("no_enrollment"), Some(&1));
    assert_eq!(skipped.get("outside_enrollment"), Some(&1));
    assert_eq!(skipped.get("client_deleted"), Some(&1));
    let records: i64 = totals.iter().map(|t| t.records).sum();
    let turn_aways: i64 = totals.iter().map(|t| t.turn_aways).sum();
    assert!(turn_aways > 0);
    assert_eq!(skipped.get("turn_away").copied().unwrap_or(0), turn_aways);
    let left_out: i64 = skipped
        .iter()
        .filter(|(reason, _)| **reason != "turn_away")
        .map(|(_, rows)| rows)
        .sum();
    assert_eq!(services.len() as i64 + left_out, records, "{skipped:?}");
    let code_of: HashMap<&str, &str> = catalog_services
        .iter()
        .map(|s| (s.id.as_str(), s.code.as_str()))
        .collect();
    let kind = |code: &str| match code {
        "FA" => ("152", "1"),
        "FC" => ("144", "2"),
        _ => ("144", "6"),
    };
    for total in &totals {
        let code = code_of[total.service_id.as_str()];
        let (record_type, provided) = kind(code);
        let rows: Vec<_> = services
            .iter()
            .filter(|r| r["RecordType"] == record_type && r["TypeProvided"] == provided)
            .collect();
        // The three workshops left out.
        let left_out = if code == "FW" { 3 } else { 0 };
        assert_eq!(
            rows.len() as i64 + left_out,
            total.records,
            "{code}'s records"
        );
        if code == "FA" {
            let amount: rust_decimal::Decimal = rows
                .iter()
                .map(|r| r["FAAmount"].parse::<rust_decimal::Decimal>().unwrap())
                .sum();
            assert_eq!(
                amount,
                total.value.parse::<rust_decimal::Decimal>().unwrap()
            );
        }
    }

    // The same clients, enrollments and services keep their ids in the next export; one
    // without SSNs holds only their last four digits.
    let supervisor = env.token(tenant, &[Role::Supervisor], &[]);
    let again = start(&node, &supervisor, range, false).await.unwrap();
    let again = finished(&node, &supervisor, &again.export.unwrap().id).await;
    let again_files = download_all(&node, &supervisor, &again).await;
    assert_eq!(column(&again_files["Client.csv"], "PersonalID"), personal);
    assert_eq!(
        column(&again_files["Services.csv"], "ServicesID"),
        column(&files["Services.csv"], "ServicesID")
    );
    // Withheld, an SSN is its last four digits, padded as HUD pads a partial one.
    let withheld: BTreeSet<&str> = column(&again_files["Client.csv"], "SSN");
    assert!(withheld.contains("xxxxx6789"), "{withheld:?}");
    assert!(
        withheld
            .iter()
            .all(|s| s.is_empty() || s.starts_with("xxxxx"))
    );

    // SSNs leave only with clients.read_ssn: neither a start with them nor a download of an
    // export that holds them without it. Every start and download is audited.
    let denied = start(&node, &supervisor, range, true).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    for file in &export.files {
        let denied = download(&node, &supervisor, &export.id, &file.name)
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    let mut owner = env.db.owner().await;
    let audited: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT action, changed_fields FROM platform.audit_log \
         WHERE tenant_id = $1 AND resource_id = $2 ORDER BY id",
    )
    .bind(tenant.as_uuid())
    .bind(export.id.parse::<uuid::Uuid>().unwrap())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        audited[0],
        ("hmis.export.start".into(), vec!["include_ssn".into()])
    );
    assert_eq!(
        audited
            .iter()
            .filter(|(a, _)| a == "hmis.export.download")
            .count(),
        8
    );
    owner.close().await.unwrap();
    node.shutdown().await;
}

/// A tenant administrator's token and fixtures on a fresh tenant with its HMIS settings.
async fn hmis_tenant(env: &TestEnv, node: &TestNode, slug: &str) -> (TenantId, String, Fixtures) {
    let tenant = node.create_tenant(env, slug).await;
    let admin = env.token(tenant, &[Role::TenantAdmin, Role::Supervisor], &[]);
    let fixtures = node.fixtures(&admin);
    (tenant, admin, fixtures)
}

#[tokio::test]
async fn a_second_start_of_a_running_range_joins_it() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, admin, fixtures) = hmis_tenant(&env, &node, "joining").await;
    // Without settings, no export.
    let refused = start(&node, &admin, (day(2026, 1, 1), day(2026, 3, 31)), false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(rule_of(&refused), "hmis_settings");
    fixtures.hmis_settings("XX-501").await.unwrap();

    // The job waits on the records table while the test holds it.
    let mut owner = env.db.owner().await;
    let mut lock = owner.begin().await.unwrap();
    sqlx::query("LOCK TABLE records.service_records IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let range = (day(2026, 1, 1), day(2026, 3, 31));
    let first = start(&node, &admin, range, false).await.unwrap();
    let second = start(&node, &admin, range, false).await.unwrap();
    let (first, second) = (first.export.unwrap(), second);
    assert!(second.joined);
    assert_eq!(second.export.as_ref().unwrap().id, first.id);
    let other = start(&node, &admin, (day(2026, 1, 1), day(2026, 4, 30)), false)
        .await
        .unwrap();
    assert!(!other.joined);
    let other = other.export.unwrap();
    assert_ne!(other.id, first.id);
    // Two run: a third range waits its turn.
    let busy = start(&node, &admin, (day(2026, 1, 1), day(2026, 5, 31)), false)
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);
    assert_eq!(reason(&busy), "EXPORTS_BUSY");
    // A running export's files are not ready.
    let early = download(&node, &admin, &first.id, "Client.csv")
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert_eq!(rule_of(&early), "hmis_export_ready");

    // An export marked failed while it runs (as a node that thought it dead would) stops at
    // its next step, leaves the state it was given and deletes what it wrote.
    let store = caseway_hmis::export_store(&env.config()).unwrap();
    let folder = store.path(&format!("tenants/{tenant}/hmis/{}", other.id));
    let written = || {
        let (store, folder) = (store.store.clone(), folder.clone());
        async move {
            let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&folder)))
                .await
                .unwrap();
            listed.len()
        }
    };
    eventually("the first files", Duration::from_secs(10), || async {
        match written().await {
            0 => Err(0),
            n => Ok(n),
        }
    })
    .await;
    let mut other_owner = env.db.owner().await;
    sqlx::query("UPDATE hmis.exports SET state = 'failed', error = 'declared dead' WHERE id = $1")
        .bind(other.id.parse::<uuid::Uuid>().unwrap())
        .execute(&mut other_owner)
        .await
        .unwrap();
    lock.rollback().await.unwrap();
    eventually(
        "the failed export's files to go",
        Duration::from_secs(10),
        || async {
            match written().await {
                0 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    let shown = finished(&node, &admin, &other.id).await;
    assert_eq!(
        (shown.state(), shown.error.as_str()),
        (hpb::ExportState::Failed, "declared dead")
    );
    other_owner.close().await.unwrap();

    let done = finished(&node, &admin, &first.id).await;
    assert_eq!(done.state(), hpb::ExportState::Succeeded, "{}", done.error);
    let files = download_all(&node, &admin, &done).await;
    // A tenant with nothing: the headers, one Export and one Organization row.
    assert_eq!(files["Client.csv"].rows.len(), 0);
    assert_eq!(files["Export.csv"].rows.len(), 1);
    check_against_spec(&spec(), "Export.csv", &files["Export.csv"]);
    // Once it has ended, the same range starts a new export.
    let next = start(&node, &admin, range, false).await.unwrap();
    assert!(!next.joined);
    assert_ne!(next.export.unwrap().id, first.id);

    // A running export whose node went silent shows failed, and does not hold its range.
    let january = (day(2025, 1, 1), day(2025, 1, 31));
    let stale = start(&node, &admin, january, false).await;
    let stale = finished(&node, &admin, &stale.unwrap().export.unwrap().id).await;
    // As a node that died midway leaves it.
    sqlx::query(
        "UPDATE hmis.exports SET state = 'running', heartbeat_at = now() - interval '2 minutes' \
         WHERE id = $1",
    )
    .bind(stale.id.parse::<uuid::Uuid>().unwrap())
    .execute(&mut owner)
    .await
    .unwrap();
    let shown = finished(&node, &admin, &stale.id).await;
    assert_eq!(shown.state(), hpb::ExportState::Failed);
    assert_eq!(shown.error, "the node running it stopped");
    let restarted = start(&node, &admin, january, false).await.unwrap();
    assert!(!restarted.joined);
    owner.close().await.unwrap();
    node.shutdown().await;
}

#[tokio::test]
async fn mappings_and_settings_are_checked_against_huds_lists() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (_, admin, fixtures) = hmis_tenant(&env, &node, "mapping").await;
    let set = |subject: hpb::Subject, code: &str, value: i32, record_type: i32| {
        let mut hmis = fixtures.hmis();
        let admin = admin.clone();
        let code = code.to_string();
        async move {
            hmis.set_mapping(authed(
                &admin,
                hpb::SetMappingRequest {
                    mapping: Some(hpb::Mapping {
                        subject: subject as i32,
                        code,
                        value,
                        record_type,
                        ..Default::default()
                    }),
                },
            ))
            .await
        }
    };
    fixtures
        .code_value(caseway_api::catalog::v1::CodeList::Gender, "W", "Woman")
        .await
        .unwrap();

    // A value HUD's list lacks, a record type on a gender, an unknown record type.
    let error = set(hpb::Subject::Gender, "W", 5, 0).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["mapping.value"]);
    let error = set(hpb::Subject::Gender, "W", 0, 144).await.unwrap_err();
    assert_eq!(violated_fields(&error), ["mapping.record_type"]);
    let error = set(hpb::Subject::Service, "FA", 1, 999).await.unwrap_err();
    assert_eq!(violated_fields(&error), ["mapping.record_type"]);
    let error = set(hpb::Subject::Unspecified, "W", 0, 0).await.unwrap_err();
    assert_eq!(violated_fields(&error), ["mapping.subject"]);
    // A code the tenant does not have.
    let error = set(hpb::Subject::Gender, "NOPE", 0, 0).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = set(hpb::Subject::Service, "NOPE", 1, 152)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // Set, replaced, listed by page, removed.
    set(hpb::Subject::Gender, "W", 1, 0).await.unwrap();
    let replaced = set(hpb::Subject::Gender, "W", 0, 0)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.mapping.unwrap().value, 0);
    for code in ["A", "B", "C"] {
        set(hpb::Subject::ExitDestination, code, 99, 0)
            .await
            .unwrap();
    }
    let mut hmis = fixtures.hmis();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = hmis
            .list_mappings(authed(
                &admin,
                hpb::ListMappingsRequest {
                    subject: 0,
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.mappings.into_iter().map(|m| (m.subject, m.code)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        [
            (1, "W".to_string()),
            (7, "A".to_string()),
            (7, "B".to_string()),
            (7, "C".to_string())
        ]
    );
    hmis.delete_mapping(authed(
        &admin,
        hpb::DeleteMappingRequest {
            subject: hpb::Subject::ExitDestination as i32,
            code: "B".into(),
        },
    ))
    .await
    .unwrap();
    let gone = hmis
        .delete_mapping(authed(
            &admin,
            hpb::DeleteMappingRequest {
                subject: hpb::Subject::ExitDestination as i32,
                code: "B".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // Settings: a CoC code is two capitals, a hyphen and three digits.
    let error = fixtures.hmis_settings("XX500").await.unwrap_err();
    assert_eq!(violated_fields(&error), ["settings.coc_code"]);
    let missing = hmis
        .get_settings(authed(&admin, hpb::GetSettingsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    fixtures.hmis_settings("XX-500").await.unwrap();

    // A range that ends before it starts, or runs past five years; a file that is none of
    // the eight; an export that is not one.
    let error = start(&node, &admin, (day(2026, 2, 1), day(2026, 1, 1)), false)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["end_date"]);
    let error = start(&node, &admin, (day(2016, 1, 1), day(2026, 1, 1)), false)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["end_date"]);
    let error = start(&node, &admin, (None, day(2026, 1, 1)), false)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["start_date"]);
    let export = start(&node, &admin, (day(2026, 1, 1), day(2026, 1, 31)), false)
        .await
        .unwrap()
        .export
        .unwrap();
    let export = finished(&node, &admin, &export.id).await;
    let error = download(&node, &admin, &export.id, "Secrets.csv")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["name"]);
    let error = download(
        &node,
        &admin,
        &uuid::Uuid::now_v7().to_string(),
        "Client.csv",
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    node.shutdown().await;
}
