//! Every table has row-level security enabled and forced; the services' role owns nothing, is
//! not a superuser and cannot bypass RLS; a transaction with no tenant reads zero rows and
//! cannot write. The table list is read from the catalog of PostgreSQL, so a future table
//! without a policy fails here.

use std::time::Duration;

use sqlx::{Connection, Row};

use caseway_api::authorizations::v1 as auth_pb;
use caseway_api::catalog::v1 as pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::eligibility::v1 as elig_pb;
use caseway_api::hmis::v1 as hmis_pb;
use caseway_api::ticketing::v1 as ticket_pb;
use caseway_integration_tests::{TestEnv, authed, criterion, date};
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

const SCHEMAS: &[&str] = &[
    "platform",
    "tenancy",
    "catalog",
    "clients",
    "records",
    "authorizations",
    "eligibility",
    "ticketing",
    "hmis",
];

#[tokio::test]
async fn every_table_is_isolated_by_forced_row_level_security() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    // Put a row in every table through the API (and the inbox directly: no consumer writes it yet).
    let tenant = node.create_tenant(&env, "rls-a").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let org = node.create_organization(&admin, "NORTH").await;
    let mut catalog = node.catalog.clone();
    let group = catalog
        .create_service_group(authed(
            &admin,
            pb::CreateServiceGroupRequest {
                request_id: "group-1".into(),
                service_group: Some(pb::ServiceGroup {
                    name: "Financial Services".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service_group
        .unwrap();
    let service = catalog
        .create_service(authed(
            &admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(pb::Service {
                    code: "FA".into(),
                    name: "Financial Assistance".into(),
                    unit_of_measure: pb::UnitOfMeasure::Dollars as i32,
                    default_unit_value: "1.00".into(),
                    delivery_mode: pb::DeliveryMode::Direct as i32,
                    service_group_id: group.id.clone(),
                    organization_ids: vec![org.to_string()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let grant = catalog
        .create_grant(authed(
            &admin,
            pb::CreateGrantRequest {
                request_id: String::new(),
                grant: Some(pb::Grant {
                    code: "G1".into(),
                    name: "Grant".into(),
                    start_date: Some(date(2026, 1, 1)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap();
    let sessions = catalog
        .create_service(authed(
            &admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(pb::Service {
                    code: "FC".into(),
                    name: "Counseling".into(),
                    unit_of_measure: pb::UnitOfMeasure::Count as i32,
                    default_unit_value: "45.00".into(),
                    delivery_mode: pb::DeliveryMode::Direct as i32,
                    grant_ids: vec![grant.id.clone()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    catalog
        .create_program(authed(
            &admin,
            pb::CreateProgramRequest {
                request_id: String::new(),
                program: Some(pb::Program {
                    code: "P1".into(),
                    name: "Program".into(),
                    start_date: Some(date(2026, 1, 1)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    catalog
        .create_provider(authed(
            &admin,
            pb::CreateProviderRequest {
                request_id: String::new(),
                provider: Some(pb::Provider {
                    name: "Ana Diaz".into(),
                    kind: pb::ProviderKind::Staff as i32,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    catalog
        .create_code_value(authed(
            &admin,
            pb::CreateCodeValueRequest {
                request_id: String::new(),
                code_value: Some(pb::CodeValue {
                    code_list: pb::CodeList::Reason as i32,
                    code: "R1".into(),
                    label: "Reason".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    // An eligibility rule, published before the client's facts come, so they are decided.
    let make = node.fixtures(&admin);
    eventually(
        "a rule for the service",
        Duration::from_secs(10),
        || async {
            make.published_rule(elig_pb::Rule {
                service_id: service.id.clone(),
                criteria: vec![criterion("adult", "age >= 18", "")],
                ..Default::default()
            })
            .await
            .map_err(|s| s.message().to_string())
        },
    )
    .await;
    node.clients
        .clone()
        .create_client(authed(
            &admin,
            caseway_api::clients::v1::CreateClientRequest {
                request_id: String::new(),
                client: Some(caseway_api::clients::v1::Client {
                    first_name: "Maria".into(),
                    last_name: "Lopez".into(),
                    ssn: "123-45-6789".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let client_id = node
        .clients
        .clone()
        .search_clients(authed(
            &admin,
            caseway_api::clients::v1::SearchClientsRequest {
                ssn: "6789".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .matches[0]
        .client
        .clone()
        .unwrap()
        .id;
    let program_id = catalog
        .list_programs(authed(&admin, pb::ListProgramsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .programs[0]
        .id
        .clone();
    node.clients
        .clone()
        .start_enrollment(authed(
            &admin,
            caseway_api::clients::v1::StartEnrollmentRequest {
                request_id: String::new(),
                enrollment: Some(caseway_api::clients::v1::Enrollment {
                    client_id: client_id.clone(),
                    program_id,
                    entry_date: Some(date(2026, 1, 5)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let household = node
        .assessments
        .clone()
        .create_assessment_type(authed(
            &admin,
            clients_pb::CreateAssessmentTypeRequest {
                request_id: String::new(),
                assessment_type: Some(clients_pb::AssessmentType {
                    code: "HOUSEHOLD".into(),
                    name: "Household".into(),
                    fields: vec![clients_pb::AssessmentField {
                        key: "household_size".into(),
                        label: "Household size".into(),
                        r#type: clients_pb::FieldType::Integer as i32,
                        required: true,
                        options: vec![],
                    }],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment_type
        .unwrap();
    node.assessments
        .clone()
        .record_assessment(authed(
            &admin,
            clients_pb::RecordAssessmentRequest {
                request_id: String::new(),
                assessment: Some(clients_pb::Assessment {
                    client_id: client_id.clone(),
                    assessment_type_id: household.id,
                    assessment_date: Some(date(2026, 1, 5)),
                    answers: vec![clients_pb::AssessmentAnswer {
                        key: "household_size".into(),
                        value: Some(clients_pb::assessment_answer::Value::IntegerValue(3)),
                    }],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let housing = catalog
        .create_code_value(authed(
            &admin,
            pb::CreateCodeValueRequest {
                request_id: String::new(),
                code_value: Some(pb::CodeValue {
                    code_list: pb::CodeList::BarrierType as i32,
                    code: "HOUSING".into(),
                    label: "Housing".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .code_value
        .unwrap();
    node.barriers
        .clone()
        .create_barrier(authed(
            &admin,
            clients_pb::CreateBarrierRequest {
                request_id: String::new(),
                barrier: Some(clients_pb::Barrier {
                    client_id: client_id.clone(),
                    barrier_type_id: housing.id,
                    identified_date: Some(date(2026, 1, 5)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    node.records
        .clone()
        .record_service(authed(
            &admin,
            caseway_api::records::v1::RecordServiceRequest {
                request_id: String::new(),
                record: Some(caseway_api::records::v1::ServiceRecord {
                    client_id: client_id.clone(),
                    service_id: service.id,
                    service_date: Some(date(2026, 1, 6)),
                    units: "25".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    // An authorization, approved by someone else, and a record drawing on it.
    let mut authorizations = node.authorizations.clone();
    let authorization = authorizations
        .create_authorization(authed(
            &admin,
            auth_pb::CreateAuthorizationRequest {
                request_id: String::new(),
                authorization: Some(auth_pb::Authorization {
                    client_id: client_id.clone(),
                    service_id: sessions.id.clone(),
                    grant_id: grant.id.clone(),
                    begin_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 1, 31)),
                    units_per_occurrence: "1".into(),
                    recurrence: "FREQ=WEEKLY;BYDAY=MO".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    let supervisor = env.token_for("supervisor", tenant, &[Role::Supervisor], &[]);
    authorizations
        .approve_authorization(authed(
            &supervisor,
            auth_pb::ApproveAuthorizationRequest {
                id: authorization.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    node.records
        .clone()
        .record_service(authed(
            &admin,
            caseway_api::records::v1::RecordServiceRequest {
                request_id: String::new(),
                record: Some(caseway_api::records::v1::ServiceRecord {
                    client_id,
                    service_id: sessions.id,
                    service_date: Some(date(2026, 1, 5)),
                    units: "1".into(),
                    authorization_id: authorization.id,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    // The eligibility service keeps the facts of those events, decides and stores a decision.
    eventually("eligibility's rows", Duration::from_secs(10), || async {
        let mut owner = env.db.owner().await;
        let mut empty = Vec::new();
        for table in [
            "rules",
            "rule_versions",
            "checks",
            "fact_snapshots",
            "outcomes",
            "services",
            "programs",
            "assessment_types",
            "clients",
            "assessments",
            "barriers",
            "enrollments",
            "deliveries",
        ] {
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM eligibility.{table}"
            )))
            .fetch_one(&mut owner)
            .await
            .unwrap();
            if rows == 0 {
                empty.push(table);
            }
        }
        if empty.is_empty() { Ok(()) } else { Err(empty) }
    })
    .await;
    // A ticket with a note (the administrator's question).
    let ticket =
        caseway_integration_tests::submit_ticket(&node, &admin, "How do I record a turn-away?")
            .await;
    node.ticketing
        .clone()
        .add_ticket_note(authed(
            &admin,
            ticket_pb::AddTicketNoteRequest {
                ticket_id: ticket.id.clone(),
                body: "With a turn-away reason.".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // A screenshot, released to support and read by it (a read on record).
    let png = caseway_test_support::images::picture(image::ImageFormat::Png);
    let shot = caseway_integration_tests::upload_attachment(
        &node, &admin, &ticket.id, "s.png", &png, 4096,
    )
    .await
    .unwrap();
    node.ticketing
        .clone()
        .escalate_ticket(authed(
            &admin,
            ticket_pb::EscalateTicketRequest {
                id: ticket.id.clone(),
                severity: ticket_pb::Severity::Low as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    node.ticketing
        .clone()
        .release_ticket_attachment(authed(
            &admin,
            ticket_pb::ReleaseTicketAttachmentRequest {
                id: shot.id.clone(),
                redact: Vec::new(),
            },
        ))
        .await
        .unwrap();
    caseway_integration_tests::download_attachment(&node, &env.support_token("sam"), &shot.id)
        .await
        .unwrap();
    // HMIS settings, a mapping and an export.
    let hmis = node.fixtures(&admin);
    hmis.hmis_settings("XX-500").await.unwrap();
    hmis.hmis_mapping(hmis_pb::Subject::ExitDestination, "RENTAL", 435, 0)
        .await
        .unwrap();
    let export = hmis
        .hmis()
        .start_export(authed(
            &admin,
            hmis_pb::StartExportRequest {
                start_date: Some(date(2026, 1, 1)),
                end_date: Some(date(2026, 12, 31)),
                include_ssn: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .export
        .unwrap();
    eventually("the HMIS export to end", Duration::from_secs(10), || {
        let (mut api, admin, id) = (hmis.hmis(), admin.clone(), export.id.clone());
        async move {
            let export = api
                .get_export(authed(&admin, hmis_pb::GetExportRequest { id }))
                .await
                .unwrap()
                .into_inner()
                .export
                .unwrap();
            match export.state() {
                hmis_pb::ExportState::Succeeded => Ok(()),
                state => Err(state),
            }
        }
    })
    .await;
    // Decisions stored one to a row, as before checks were stored whole, are still read.
    caseway_integration_tests::store_as_a_decision_row(&mut env.db.owner().await, tenant).await;
    // The relay deletes what it published: stop the node, then leave an event behind.
    node.shutdown().await;
    let mut owner = env.db.owner().await;
    sqlx::query(
        "INSERT INTO platform.outbox (id, tenant_id, event_type, source, subject, occurred_at, \
         payload) VALUES (gen_random_uuid(), $1, 'test.sample.v1', 'test', 'sample', now(), '')",
    )
    .bind(tenant.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("INSERT INTO platform.inbox (tenant_id, consumer, event_id) VALUES ($1, 'test', gen_random_uuid())")
        .bind(tenant.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    // The records' day totals, folded as GetServiceTotals folds them, and a change of a
    // record left waiting for the next fold.
    sqlx::query("SELECT records.fold_totals(100000)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO records.totals_changes (tenant_id, service_date, kind, service_id, \
         service_group_id, grant_id, program_id, client_id, sign, units, value, people_reached) \
         SELECT tenant_id, service_date, kind, service_id, service_group_id, grant_id, \
                program_id, NULL, 1, 0, 0, 0 FROM records.daily_totals WHERE tenant_id = $1 LIMIT 1",
    )
    .bind(tenant.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    // The offboarding ledger, as `caseway tenant export` writes it (offboarding.rs runs it).
    sqlx::query(
        "INSERT INTO tenancy.offboardings (tenant_id, exported_at, export_location, \
         export_manifest) VALUES ($1, now(), 'sample', 'sample')",
    )
    .bind(tenant.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();

    // The role itself.
    let role =
        sqlx::query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'caseway_app'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(
        !role.get::<bool, _>("rolsuper"),
        "the services' role must not be a superuser"
    );
    assert!(
        !role.get::<bool, _>("rolbypassrls"),
        "the services' role must not bypass RLS"
    );
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname = 'caseway_app'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(owned, 0, "the services' role must own no relation");

    let tables: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) ORDER BY 1, 2",
    )
    .bind(SCHEMAS)
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(
        tables.len() >= 12,
        "expected every service's tables, found {tables:?}"
    );

    let mut app = sqlx::PgConnection::connect(&env.db.app_url).await.unwrap();
    for (schema, table, enabled, forced) in &tables {
        let name = format!("{schema}.{table}");
        assert!(enabled, "{name}: row-level security is not enabled");
        assert!(forced, "{name}: row-level security is not forced");
        let policies: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_policies WHERE schemaname = $1 AND tablename = $2",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        assert!(policies > 0, "{name}: no policy");

        let sample: Option<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM {name} t LIMIT 1"
        )))
        .fetch_optional(&mut owner)
        .await
        .unwrap();
        let sample = sample.unwrap_or_else(|| {
            panic!("{name}: no sample row; make this test create one so isolation is checked")
        });

        // No tenant set: nothing to read.
        let mut tx = app.begin().await.unwrap();
        let visible: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(visible, 0, "{name}: a transaction with no tenant sees rows");
        tx.rollback().await.unwrap();

        // No tenant set: nothing can be written, even a copy of an existing row.
        let columns: String = sqlx::query_scalar(
            "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER'",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        let mut tx = app.begin().await.unwrap();
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {name} ({columns}) OVERRIDING SYSTEM VALUE \
             SELECT {columns} FROM jsonb_populate_record(NULL::{name}, $1)"
        )))
        .bind(&sample)
        .execute(&mut *tx)
        .await;
        let error = insert.expect_err(&format!("{name}: a transaction with no tenant could write"));
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert!(
            matches!(code.as_deref(), Some("42501")),
            "{name}: expected a row-level security or privilege refusal, got {error}"
        );
        tx.rollback().await.unwrap();

        // Another tenant set: still nothing of this tenant's.
        let mut tx = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', gen_random_uuid()::text, true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let visible: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(visible, 0, "{name}: another tenant's transaction sees rows");
        tx.rollback().await.unwrap();

        // Another tenant that also sets the scope the platform once ran under: nothing more.
        let mut tx = app.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('app.tenant_id', gen_random_uuid()::text, true), \
             set_config('app.scope', 'system', true)",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        let visible: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(
            visible, 0,
            "{name}: a tenant's transaction widened its own scope"
        );
        tx.rollback().await.unwrap();
    }

    // The platform's own role: nobody logs in as it, the services' role cannot become it, and
    // each function it owns has a search path of its own.
    let system = sqlx::query(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'caseway_system'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(!system.get::<bool, _>("rolcanlogin"));
    assert!(!system.get::<bool, _>("rolsuper"));
    assert!(!system.get::<bool, _>("rolbypassrls"));
    let error = sqlx::query("SET ROLE caseway_system")
        .execute(&mut app)
        .await
        .expect_err("the services' role may not become the platform's");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "{error}"
    );
    let definers: Vec<(String, String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, r.rolname::text, p.proconfig::text[] \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_roles r ON r.oid = p.proowner WHERE p.prosecdef AND n.nspname = ANY($1)",
    )
    .bind(SCHEMAS)
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(definers.len() >= 7, "{definers:?}");
    for (function, owner_role, config) in &definers {
        assert_eq!(owner_role, "caseway_system", "{function}");
        assert!(
            config
                .iter()
                .flatten()
                .any(|c| c.starts_with("search_path=")),
            "{function} runs with the caller's search path"
        );
    }

    // The statements that enter their tenant (`TenantStatements`): each sees the tenant it
    // enters and no other, and leaves no tenant behind on the connection.
    let (tenant_id, client, records): (uuid::Uuid, uuid::Uuid, i64) = sqlx::query_as(
        "SELECT tenant_id, client_id, count(*) FROM records.service_records \
         WHERE client_id IS NOT NULL AND deleted_at IS NULL \
         GROUP BY tenant_id, client_id LIMIT 1",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let (authorization, delivered): (uuid::Uuid, i64) = sqlx::query_as(
        "SELECT a.id, (SELECT count(*) FROM authorizations.draws d \
         WHERE d.authorization_id = a.id AND d.delivered_units > 0) \
         FROM authorizations.authorizations a WHERE a.tenant_id = $1 LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let reads = [
        (
            "SELECT count(*) FROM clients.read_client($1, $2)",
            client,
            1,
        ),
        (
            "SELECT count(*) FROM records.read_client_records($1, $2, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL, NULL, 50, '{}')",
            client,
            records.min(50),
        ),
        (
            "SELECT count(*) FROM authorizations.read_authorization($1, $2)",
            authorization,
            1,
        ),
        (
            "SELECT delivery_records FROM authorizations.read_deliveries($1, $2)",
            authorization,
            delivered,
        ),
        (
            "SELECT count(client_facts) FROM eligibility.read_facts($1, $2, NULL, NULL, NULL)",
            client,
            1,
        ),
    ];
    for (read, id, expected) in reads {
        for (tenant, expected) in [(tenant_id, expected), (uuid::Uuid::new_v4(), 0)] {
            let found: i64 = sqlx::query_scalar(read)
                .bind(tenant)
                .bind(id)
                .fetch_one(&mut app)
                .await
                .unwrap();
            assert_eq!(found, expected, "{read} for {tenant}");
            let left: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM clients.clients) \
                 + (SELECT count(*) FROM authorizations.authorizations) \
                 + (SELECT count(*) FROM records.service_records)",
            )
            .fetch_one(&mut app)
            .await
            .unwrap();
            assert_eq!(left, 0, "{read} left a tenant on the connection");
        }
    }
    // The name vocabulary's trigram index is read as the platform's role (the only one it
    // serves), and only for the tenant the transaction set: its own terms, and none of
    // another's or with no tenant.
    let term: String = sqlx::query_scalar("SELECT first_key FROM clients.clients WHERE id = $1")
        .bind(client)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    for (tenant, expected) in [
        (Some(tenant_id), 1),
        (Some(uuid::Uuid::new_v4()), 0),
        (None, 0),
    ] {
        let mut tx = app.begin().await.unwrap();
        if let Some(tenant) = tenant {
            sqlx::query("SELECT set_config('app.tenant_id', $1::text, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM clients.similar_name_terms(ARRAY[$1], 10) \
             WHERE term = $1 AND score = 1",
        )
        .bind(&term)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(found, expected, "similar_name_terms({term}) for {tenant:?}");
        tx.rollback().await.unwrap();
    }
    // A check stored for a tenant is that tenant's, and the connection keeps no tenant.
    let other = uuid::Uuid::new_v4();
    let stored: uuid::Uuid = sqlx::query_scalar(
        "SELECT stored_id FROM eligibility.store_check($1, '\\x01', $2, '{}', $3, \
         '2026-01-01', ARRAY[$3], ARRAY[$3], '{1}', '{1}', '[[]]', 'rls', now(), '\\x02')",
    )
    .bind(other)
    .bind(client)
    .bind(uuid::Uuid::now_v7())
    .fetch_one(&mut app)
    .await
    .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM eligibility.checks")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(seen, 0, "store_check left a tenant on the connection");
    let owner_of: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM eligibility.checks WHERE id = $1")
            .bind(stored)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(owner_of, other);
}
