//! The catalog service over real gRPC, PostgreSQL and RabbitMQ.

use std::time::Duration;

use tonic::Code;
use uuid::Uuid;

use caseway_api::catalog::v1 as pb;
use caseway_api::common::v1::LifecycleState;
use caseway_integration_tests::{TestEnv, TestNode, authed, date, violated_fields};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

fn service(code: &str) -> pb::Service {
    pb::Service {
        code: code.into(),
        name: format!("Service {code}"),
        unit_of_measure: pb::UnitOfMeasure::Hours as i32,
        default_unit_value: "45.00".into(),
        delivery_mode: pb::DeliveryMode::Direct as i32,
        ..Default::default()
    }
}

async fn create_service(
    node: &TestNode,
    token: &str,
    service: pb::Service,
) -> Result<pb::Service, tonic::Status> {
    node.catalog
        .clone()
        .create_service(authed(
            token,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(service),
            },
        ))
        .await
        .map(|r| r.into_inner().service.expect("service"))
}

async fn count(env: &TestEnv, sql: &'static str, tenant: TenantId) -> i64 {
    let mut owner = env.db.owner().await;
    sqlx::query_scalar(sql)
        .bind(tenant.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn catalog_change_is_published_with_cloudevents_headers_and_trace_context() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("catalog.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "events").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = authed(
        &admin,
        pb::CreateServiceRequest {
            request_id: String::new(),
            service: Some(service("FC")),
        },
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let created = node
        .catalog
        .clone()
        .create_service(request)
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();

    let (envelope, headers) = events
        .expect("catalog.service_created.v1", Duration::from_secs(10))
        .await;
    assert_eq!(envelope.tenant_id, tenant);
    assert_eq!(envelope.subject, created.id);
    assert_eq!(envelope.source, "caseway/catalog");
    for header in [
        "cloudEvents_specversion",
        "cloudEvents_id",
        "cloudEvents_source",
        "cloudEvents_type",
        "cloudEvents_subject",
        "cloudEvents_time",
        "cloudEvents_dataschema",
        "cloudEvents_tenantid",
        "cloudEvents_traceparent",
        "traceparent",
    ] {
        assert!(
            headers.iter().any(|h| h == header),
            "missing header {header} in {headers:?}"
        );
    }
    let traceparent = envelope.traceparent.expect("traceparent");
    assert!(
        traceparent.contains(trace_id),
        "{traceparent} is not in the caller's trace"
    );
    let payload: caseway_api::events::v1::ServiceChanged =
        prost::Message::decode(&envelope.payload[..]).unwrap();
    assert_eq!(payload.service.unwrap().code, "FC");

    // An update publishes what changed.
    node.catalog
        .clone()
        .update_service(authed(
            &admin,
            pb::UpdateServiceRequest {
                service: Some(pb::Service {
                    id: created.id.clone(),
                    name: "Counseling".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let (envelope, _) = events
        .expect("catalog.service_updated.v1", Duration::from_secs(10))
        .await;
    let payload: caseway_api::events::v1::ServiceChanged =
        prost::Message::decode(&envelope.payload[..]).unwrap();
    assert_eq!(payload.changed_fields, vec!["name".to_string()]);
}

#[tokio::test]
async fn malformed_input_is_invalid_argument_naming_the_field_and_writes_nothing() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "malformed").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);

    // Over its length limit, a field is refused at the edge, before any other check.
    let mut long = service("LONG");
    long.name = "x".repeat(201);
    let status = create_service(&node, &admin, long).await.unwrap_err();
    assert_eq!(violated_fields(&status), vec!["service.name"]);

    let bad = pb::Service {
        code: String::new(),
        name: "   ".into(),
        unit_of_measure: 99,
        default_unit_value: "-1".into(),
        delivery_mode: pb::DeliveryMode::Direct as i32,
        ..Default::default()
    };
    let status = create_service(&node, &admin, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    for field in [
        "service.code",
        "service.name",
        "service.unit_of_measure",
        "service.default_unit_value",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} not named in {fields:?}"
        );
    }

    let mut over_precise = service("FA");
    over_precise.default_unit_value = "1.005".into();
    let status = create_service(&node, &admin, over_precise)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["service.default_unit_value"]);

    let mut unknown_group = service("FA");
    unknown_group.service_group_id = Uuid::now_v7().to_string();
    let status = create_service(&node, &admin, unknown_group)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["service.service_group_id"]);

    let mut not_an_id = service("FA");
    not_an_id.grant_ids = vec!["grant-1".into()];
    let status = create_service(&node, &admin, not_an_id).await.unwrap_err();
    assert_eq!(violated_fields(&status), vec!["service.grant_ids[0]"]);

    let mut nul = service("FA");
    nul.description = "a\0b".into();
    let status = create_service(&node, &admin, nul).await.unwrap_err();
    assert_eq!(violated_fields(&status), vec!["service.description"]);

    let status = node
        .catalog
        .clone()
        .create_grant(authed(
            &admin,
            pb::CreateGrantRequest {
                request_id: String::new(),
                grant: Some(pb::Grant {
                    code: "G".into(),
                    name: "Grant".into(),
                    start_date: Some(date(2026, 7, 1)),
                    end_date: Some(date(2026, 2, 30)),
                    budget: "12.345".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    assert!(fields.contains(&"grant.end_date".to_string()), "{fields:?}");
    assert!(fields.contains(&"grant.budget".to_string()), "{fields:?}");

    let status = node
        .catalog
        .clone()
        .get_service(authed(
            &admin,
            pb::GetServiceRequest {
                id: "not-a-uuid".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["id"]);

    let status = node
        .catalog
        .clone()
        .list_services(authed(
            &admin,
            pb::ListServicesRequest {
                page_token: "forged".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["page_token"]);

    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM catalog.services WHERE tenant_id = $1",
            tenant
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM catalog.grants WHERE tenant_id = $1",
            tenant
        )
        .await,
        0
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM platform.outbox WHERE tenant_id = $1 AND event_type LIKE 'catalog.%'", tenant).await,
        0
    );
}

#[tokio::test]
async fn same_request_id_twice_stores_one_service_and_a_different_request_is_refused() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "idempotent").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let request = pb::CreateServiceRequest {
        request_id: "create-fa-1".into(),
        service: Some(service("FA")),
    };
    let mut catalog = node.catalog.clone();
    let first = catalog
        .create_service(authed(&admin, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = catalog
        .create_service(authed(&admin, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM catalog.services WHERE tenant_id = $1",
            tenant
        )
        .await,
        1
    );

    let mut different = request.clone();
    different.service.as_mut().unwrap().name = "Something else".into();
    let status = catalog
        .create_service(authed(&admin, different))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["request_id"]);

    // A request id is per tenant: another tenant may use the same one.
    let other = node.create_tenant(&env, "idempotent-b").await;
    let other_admin = env.token(other, &[Role::TenantAdmin], &[]);
    let theirs = catalog
        .create_service(authed(&other_admin, request))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(theirs.service.unwrap().id, first.service.unwrap().id);

    // The same code without a request id is a conflict, not a second row.
    let status = create_service(&node, &admin, service("FA"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn update_with_a_stale_etag_is_aborted_and_changes_are_audited() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "etag").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let created = create_service(&node, &admin, service("FC")).await.unwrap();
    let mut catalog = node.catalog.clone();
    let update = |etag: &str, name: &str| pb::UpdateServiceRequest {
        service: Some(pb::Service {
            id: created.id.clone(),
            etag: etag.into(),
            name: name.into(),
            default_unit_value: "50.00".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into(), "default_unit_value".into()],
        }),
    };
    let updated = catalog
        .update_service(authed(&admin, update(&created.etag, "Counseling")))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(updated.name, "Counseling");
    assert_eq!(updated.default_unit_value, "50.00");
    assert_eq!(
        updated.unit_of_measure,
        pb::UnitOfMeasure::Hours as i32,
        "unmasked fields stay"
    );
    assert_ne!(updated.etag, created.etag);

    let status = catalog
        .update_service(authed(&admin, update(&created.etag, "Stale")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let current = catalog
        .get_service(authed(
            &admin,
            pb::GetServiceRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(current.name, "Counseling", "the stale update wrote nothing");

    let status = catalog
        .update_service(authed(
            &admin,
            pb::UpdateServiceRequest {
                service: Some(pb::Service {
                    id: created.id.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["state".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["update_mask"]);

    let mut owner = env.db.owner().await;
    let audited: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT action, changed_fields FROM platform.audit_log WHERE tenant_id = $1 AND resource_type = 'service' ORDER BY id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        audited,
        vec![
            ("catalog.service.create".to_string(), vec![]),
            (
                "catalog.service.update".to_string(),
                vec!["name".to_string(), "default_unit_value".to_string()]
            ),
        ]
    );
}

#[tokio::test]
async fn restricted_service_is_invisible_outside_its_organizations() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "restricted").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let north = node.create_organization(&admin, "NORTH").await;
    let south = node.create_organization(&admin, "SOUTH").await;
    let mut restricted = service("FW");
    restricted.organization_ids = vec![north.to_string()];
    let restricted = create_service(&node, &admin, restricted).await.unwrap();
    let open = create_service(&node, &admin, service("FC")).await.unwrap();

    let north_worker = env.token(tenant, &[Role::Caseworker], &[north]);
    let south_worker = env.token(tenant, &[Role::Caseworker], &[south]);
    let mut catalog = node.catalog.clone();
    let list = |token: &str| authed(token, pb::ListServicesRequest::default());

    let codes =
        |services: Vec<pb::Service>| services.into_iter().map(|s| s.code).collect::<Vec<_>>();
    assert_eq!(
        codes(
            catalog
                .list_services(list(&north_worker))
                .await
                .unwrap()
                .into_inner()
                .services
        ),
        ["FC", "FW"]
    );
    assert_eq!(
        codes(
            catalog
                .list_services(list(&south_worker))
                .await
                .unwrap()
                .into_inner()
                .services
        ),
        ["FC"]
    );
    assert_eq!(
        codes(
            catalog
                .list_services(list(&admin))
                .await
                .unwrap()
                .into_inner()
                .services
        ),
        ["FC", "FW"]
    );

    let get = |token: &str, id: &str| authed(token, pb::GetServiceRequest { id: id.into() });
    assert!(
        catalog
            .get_service(get(&north_worker, &restricted.id))
            .await
            .is_ok()
    );
    let status = catalog
        .get_service(get(&south_worker, &restricted.id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        catalog
            .get_service(get(&south_worker, &open.id))
            .await
            .is_ok()
    );

    // An organization of another tenant, or none at all, cannot be named.
    let mut unknown = service("FX");
    unknown.organization_ids = vec![Uuid::now_v7().to_string()];
    let status = create_service(&node, &admin, unknown).await.unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["service.organization_ids[0]"]
    );
}

#[tokio::test]
async fn roles_and_tokens_are_enforced() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "roles").await;
    let worker = env.token(tenant, &[Role::Caseworker, Role::Supervisor], &[]);
    let mut catalog = node.catalog.clone();

    let status = create_service(&node, &worker, service("FA"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        catalog
            .list_services(authed(&worker, pb::ListServicesRequest::default()))
            .await
            .is_ok()
    );

    let status = catalog
        .list_services(tonic::Request::new(pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = catalog
        .list_services(authed("not.a.token", pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let foreign = TestEnv::new().await;
    let forged = foreign.token(tenant, &[Role::TenantAdmin], &[]);
    let status = catalog
        .list_services(authed(&forged, pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Hosting-provider staff hold no tenant: catalog data is not theirs to read.
    let status = catalog
        .list_services(authed(
            &env.platform_admin_token(),
            pb::ListServicesRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A token for a tenant that does not exist is refused like a suspended one.
    let ghost = env.token(TenantId::new(), &[Role::TenantAdmin], &[]);
    let status = catalog
        .list_services(authed(&ghost, pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn lists_page_with_tokens_bound_to_tenant_and_filter() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "pages").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    for code in ["A1", "A2", "A3", "A4", "A5"] {
        create_service(&node, &admin, service(code)).await.unwrap();
    }
    let mut catalog = node.catalog.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = catalog
            .list_services(authed(
                &admin,
                pb::ListServicesRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.services.into_iter().map(|s| s.code));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["A1", "A2", "A3", "A4", "A5"]);
    assert_eq!(pages, 3);

    let first = catalog
        .list_services(authed(
            &admin,
            pb::ListServicesRequest {
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let other_filter = pb::ListServicesRequest {
        page_size: 2,
        page_token: first.next_page_token.clone(),
        query: "A".into(),
        ..Default::default()
    };
    let status = catalog
        .list_services(authed(&admin, other_filter))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    let other = node.create_tenant(&env, "pages-b").await;
    let other_admin = env.token(other, &[Role::TenantAdmin], &[]);
    let replay = pb::ListServicesRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..Default::default()
    };
    let status = catalog
        .list_services(authed(&other_admin, replay))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    let status = catalog
        .list_services(authed(
            &admin,
            pb::ListServicesRequest {
                page_size: -1,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["page_size"]);
}

#[tokio::test]
async fn retired_services_leave_lists_and_deleted_ones_are_gone() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("catalog.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "lifecycle").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let retired = create_service(&node, &admin, service("OLD")).await.unwrap();
    let deleted = create_service(&node, &admin, service("GONE"))
        .await
        .unwrap();
    let mut catalog = node.catalog.clone();
    let after = catalog
        .retire_service(authed(
            &admin,
            pb::RetireServiceRequest {
                id: retired.id.clone(),
                etag: retired.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(after.state, LifecycleState::Retired as i32);
    catalog
        .delete_service(authed(
            &admin,
            pb::DeleteServiceRequest {
                id: deleted.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let listed = catalog
        .list_services(authed(&admin, pb::ListServicesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.services.is_empty());
    let listed = catalog
        .list_services(authed(
            &admin,
            pb::ListServicesRequest {
                include_retired: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.services.len(), 1);
    let status = catalog
        .get_service(authed(
            &admin,
            pb::GetServiceRequest {
                id: deleted.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The code of a deleted service is free again.
    create_service(&node, &admin, service("GONE"))
        .await
        .unwrap();
    events
        .expect("catalog.service_retired.v1", Duration::from_secs(10))
        .await;
    events
        .expect("catalog.service_deleted.v1", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn providers_are_found_by_name_with_typos() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "providers").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut catalog = node.catalog.clone();
    for (name, kind) in [
        ("Ana Diaz", pb::ProviderKind::Staff),
        ("Brightside Legal Aid", pb::ProviderKind::Vendor),
        ("Tomas Reyes", pb::ProviderKind::Staff),
    ] {
        catalog
            .create_provider(authed(
                &admin,
                pb::CreateProviderRequest {
                    request_id: String::new(),
                    provider: Some(pb::Provider {
                        name: name.into(),
                        kind: kind as i32,
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }
    let search = |query: &str| pb::ListProvidersRequest {
        query: query.into(),
        ..Default::default()
    };
    let names =
        |r: pb::ListProvidersResponse| r.providers.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(
            catalog
                .list_providers(authed(&admin, search("Anna Dias")))
                .await
                .unwrap()
                .into_inner()
        ),
        ["Ana Diaz"]
    );
    assert_eq!(
        names(
            catalog
                .list_providers(authed(&admin, search("brightside")))
                .await
                .unwrap()
                .into_inner()
        ),
        ["Brightside Legal Aid"]
    );
    let vendors = catalog
        .list_providers(authed(
            &admin,
            pb::ListProvidersRequest {
                kind: pb::ProviderKind::Vendor as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(vendors), ["Brightside Legal Aid"]);
}

/// GetService answers from the replica's cache of services; `cache-control: no-cache` asks for
/// what is stored now (docs/api.md). A change written past the service (no event) shows the
/// difference: the cached read keeps the name it had, the fresh read finds the new one.
#[tokio::test]
async fn get_service_asked_with_no_cache_reads_what_is_stored() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "fresh-read").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let created = create_service(&node, &admin, service("FR")).await.unwrap();
    let id = Uuid::parse_str(&created.id).unwrap();
    let get = |fresh: bool| {
        let (mut catalog, admin, id) = (node.catalog.clone(), admin.clone(), created.id.clone());
        async move {
            let mut request = authed(&admin, pb::GetServiceRequest { id });
            if fresh {
                request
                    .metadata_mut()
                    .insert("cache-control", "no-cache".parse().unwrap());
            }
            catalog
                .get_service(request)
                .await
                .unwrap()
                .into_inner()
                .service
                .unwrap()
                .name
        }
    };
    let mut owner = env.db.owner().await;
    let rename = |name: &'static str| {
        sqlx::query("UPDATE catalog.services SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
    };
    // Until the cache's queue is bound every read goes to PostgreSQL: undo and try again
    // until a read is answered from the cache.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(get(false).await, "Service FR");
        rename("Renamed unheard").execute(&mut owner).await.unwrap();
        if get(false).await == "Service FR" {
            break;
        }
        rename("Service FR").execute(&mut owner).await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "GetService never answered from its cache"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(true).await, "Renamed unheard");
    assert_eq!(
        get(false).await,
        "Service FR",
        "a fresh read leaves the cache as it was"
    );
}
