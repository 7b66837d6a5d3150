//! The contract a gateway relies on: every failure carries a `google.rpc.ErrorInfo` whose
//! reason (`caseway.common.v1.ErrorReason`) tells one kind of failure from another, beside the
//! details its code brings.

use tonic::Code;
use tonic_types::StatusExt;

use caseway::Target;
use caseway_api::catalog::v1 as pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_integration_tests::{TestEnv, authed, call_raw, reason, violated_fields};
use caseway_platform::auth::Role;

fn service(code: &str, name: &str) -> pb::Service {
    pb::Service {
        code: code.into(),
        name: name.into(),
        unit_of_measure: pb::UnitOfMeasure::Count as i32,
        default_unit_value: "0".into(),
        delivery_mode: pb::DeliveryMode::Indirect as i32,
        ..Default::default()
    }
}

fn create(request_id: &str, service: pb::Service) -> pb::CreateServiceRequest {
    pb::CreateServiceRequest {
        request_id: request_id.into(),
        service: Some(service),
    }
}

#[tokio::test]
async fn each_kind_of_failure_has_its_own_reason() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "contract").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();

    // Bad fields, named in BadRequest.
    let status = catalog
        .create_service(authed(&admin, create("", service("", "No code"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "FIELD_INVALID");
    assert_eq!(violated_fields(&status), ["service.code"]);

    // Bytes that are not a request at all are the caller's fault too, not INTERNAL.
    let status = call_raw(
        &node.channel,
        "/caseway.catalog.v1.CatalogService/ListServices",
        &worker,
        vec![0xff, 0xff, 0xff],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "FIELD_INVALID");

    // A request_id reused for another request, told apart from bad fields.
    let created = catalog
        .create_service(authed(
            &admin,
            create("first", service("CNS", "Counseling")),
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let status = catalog
        .create_service(authed(&admin, create("first", service("OTHER", "Other"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(violated_fields(&status), ["request_id"]);

    // The same code again.
    let status = catalog
        .create_service(authed(
            &admin,
            create("", service("CNS", "Counseling again")),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "ALREADY_EXISTS");

    // Nothing by that id, with the resource named.
    let status = catalog
        .get_service(authed(
            &worker,
            pb::GetServiceRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "RESOURCE_NOT_FOUND");
    assert!(
        status
            .get_details_error_info()
            .unwrap()
            .metadata
            .contains_key("resource")
    );

    // A stale etag.
    let update = |etag: &str| pb::UpdateServiceRequest {
        service: Some(pb::Service {
            id: created.id.clone(),
            name: "Counseling, individual".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
    };
    catalog
        .update_service(authed(&admin, update(&created.etag)))
        .await
        .unwrap();
    let status = catalog
        .update_service(authed(&admin, update(&created.etag)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(reason(&status), "ETAG_MISMATCH");

    // No token, a token that is not one, a role the access table does not allow, a permission
    // the token lacks.
    let status = catalog
        .list_services(pb::ListServicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_MISSING");
    let status = catalog
        .list_services(authed("not.a.token", pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_INVALID");
    let status = catalog
        .create_service(authed(&worker, create("", service("NOPE", "Nope"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_NOT_PERMITTED");
    let status = node
        .clients
        .clone()
        .search_clients(authed(
            &worker,
            clients_pb::SearchClientsRequest {
                ssn: "123-45-6789".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PERMISSION_MISSING");

    // A suspended tenant.
    let root = env.platform_admin_token();
    node.tenancy
        .clone()
        .suspend_tenant(authed(
            &root,
            tenancy_pb::SuspendTenantRequest {
                id: tenant.to_string(),
                reason: "contract test".into(),
            },
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match catalog
            .list_services(authed(&worker, pb::ListServicesRequest::default()))
            .await
        {
            Err(status) => break status,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "still served");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "TENANT_SUSPENDED");
    node.shutdown().await;
}

#[tokio::test]
async fn a_peer_out_of_reach_is_dependency_unavailable() {
    let env = TestEnv::new().await;
    let tenancy_node = env.start(&[Target::Tenancy]).await;
    let tenant = tenancy_node.create_tenant(&env, "peerless").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let org = tenancy_node.create_organization(&admin, "NORTH").await;
    // A port nothing listens on.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = env.config();
    config.tenancy_endpoint = Some(format!("http://{unused}"));
    let catalog_node = env.start_with(config, &[Target::Catalog]).await;
    let mut restricted = service("NTH", "North only");
    restricted.organization_ids = vec![org.to_string()];
    let status = catalog_node
        .catalog
        .clone()
        .create_service(authed(&admin, create("", restricted)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "DEPENDENCY_UNAVAILABLE");
    catalog_node.shutdown().await;
    tenancy_node.shutdown().await;
}
