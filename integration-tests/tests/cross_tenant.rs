//! Tenant B can never read, list, change or infer tenant A's rows, through any catalog or
//! tenancy RPC.

use tonic::Code;

use caseway_api::catalog::v1 as pb;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{TestEnv, authed, date, violated_fields};
use caseway_platform::auth::Role;

fn not_found<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
}

#[tokio::test]
async fn tenant_b_cannot_reach_tenant_a_through_any_rpc() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let a = node.create_tenant(&env, "tenant-a").await;
    let b = node.create_tenant(&env, "tenant-b").await;
    let a_admin = env.token(a, &[Role::TenantAdmin], &[]);
    let b_admin = env.token(b, &[Role::TenantAdmin, Role::Caseworker], &[]);
    let mut c = node.catalog.clone();
    let mut t = node.tenancy.clone();

    // Tenant A's catalog, one of each.
    let org = node
        .create_organization(&a_admin, "NORTH")
        .await
        .to_string();
    let group = c
        .create_service_group(authed(
            &a_admin,
            pb::CreateServiceGroupRequest {
                request_id: String::new(),
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
    let grant = c
        .create_grant(authed(
            &a_admin,
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
    let program = c
        .create_program(authed(
            &a_admin,
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
        .unwrap()
        .into_inner()
        .program
        .unwrap();
    let provider = c
        .create_provider(authed(
            &a_admin,
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
        .unwrap()
        .into_inner()
        .provider
        .unwrap();
    let code_value = c
        .create_code_value(authed(
            &a_admin,
            pb::CreateCodeValueRequest {
                request_id: String::new(),
                code_value: Some(pb::CodeValue {
                    code_list: pb::CodeList::TurnAwayReason as i32,
                    code: "NO-FUNDS".into(),
                    label: "No funds".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .code_value
        .unwrap();
    let service_of = |code: &str| pb::Service {
        code: code.into(),
        name: "Financial Assistance".into(),
        unit_of_measure: pb::UnitOfMeasure::Dollars as i32,
        default_unit_value: "1.00".into(),
        delivery_mode: pb::DeliveryMode::Direct as i32,
        ..Default::default()
    };
    let mut linked = service_of("FA");
    linked.service_group_id = group.id.clone();
    linked.grant_ids = vec![grant.id.clone()];
    linked.program_ids = vec![program.id.clone()];
    linked.organization_ids = vec![org.clone()];
    let service = c
        .create_service(authed(
            &a_admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(linked.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();

    // Get.
    not_found(
        c.get_service_group(authed(
            &b_admin,
            pb::GetServiceGroupRequest {
                id: group.id.clone(),
            },
        ))
        .await,
        "GetServiceGroup",
    );
    not_found(
        c.get_service(authed(
            &b_admin,
            pb::GetServiceRequest {
                id: service.id.clone(),
            },
        ))
        .await,
        "GetService",
    );
    not_found(
        c.get_grant(authed(
            &b_admin,
            pb::GetGrantRequest {
                id: grant.id.clone(),
            },
        ))
        .await,
        "GetGrant",
    );
    not_found(
        c.get_program(authed(
            &b_admin,
            pb::GetProgramRequest {
                id: program.id.clone(),
            },
        ))
        .await,
        "GetProgram",
    );
    not_found(
        c.get_provider(authed(
            &b_admin,
            pb::GetProviderRequest {
                id: provider.id.clone(),
            },
        ))
        .await,
        "GetProvider",
    );
    not_found(
        c.get_code_value(authed(
            &b_admin,
            pb::GetCodeValueRequest {
                id: code_value.id.clone(),
            },
        ))
        .await,
        "GetCodeValue",
    );
    not_found(
        t.get_organization(authed(
            &b_admin,
            tpb::GetOrganizationRequest { id: org.clone() },
        ))
        .await,
        "GetOrganization",
    );
    not_found(
        t.get_tenant(authed(
            &b_admin,
            tpb::GetTenantRequest { id: a.to_string() },
        ))
        .await,
        "GetTenant",
    );

    // Update, with A's own etags.
    let mask = |field: &str| {
        Some(prost_types::FieldMask {
            paths: vec![field.into()],
        })
    };
    not_found(
        c.update_service_group(authed(
            &b_admin,
            pb::UpdateServiceGroupRequest {
                service_group: Some(pb::ServiceGroup {
                    id: group.id.clone(),
                    etag: group.etag.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateServiceGroup",
    );
    not_found(
        c.update_service(authed(
            &b_admin,
            pb::UpdateServiceRequest {
                service: Some(pb::Service {
                    id: service.id.clone(),
                    etag: service.etag.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateService",
    );
    not_found(
        c.update_grant(authed(
            &b_admin,
            pb::UpdateGrantRequest {
                grant: Some(pb::Grant {
                    id: grant.id.clone(),
                    etag: grant.etag.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateGrant",
    );
    not_found(
        c.update_program(authed(
            &b_admin,
            pb::UpdateProgramRequest {
                program: Some(pb::Program {
                    id: program.id.clone(),
                    etag: program.etag.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateProgram",
    );
    not_found(
        c.update_provider(authed(
            &b_admin,
            pb::UpdateProviderRequest {
                provider: Some(pb::Provider {
                    id: provider.id.clone(),
                    etag: provider.etag.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateProvider",
    );
    not_found(
        c.update_code_value(authed(
            &b_admin,
            pb::UpdateCodeValueRequest {
                code_value: Some(pb::CodeValue {
                    id: code_value.id.clone(),
                    etag: code_value.etag.clone(),
                    label: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("label"),
            },
        ))
        .await,
        "UpdateCodeValue",
    );
    not_found(
        t.update_organization(authed(
            &b_admin,
            tpb::UpdateOrganizationRequest {
                organization: Some(tpb::Organization {
                    id: org.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
            },
        ))
        .await,
        "UpdateOrganization",
    );

    // Retire and delete.
    not_found(
        c.retire_service(authed(
            &b_admin,
            pb::RetireServiceRequest {
                id: service.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await,
        "RetireService",
    );
    not_found(
        c.retire_grant(authed(
            &b_admin,
            pb::RetireGrantRequest {
                id: grant.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await,
        "RetireGrant",
    );
    not_found(
        c.retire_program(authed(
            &b_admin,
            pb::RetireProgramRequest {
                id: program.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await,
        "RetireProgram",
    );
    not_found(
        c.retire_provider(authed(
            &b_admin,
            pb::RetireProviderRequest {
                id: provider.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await,
        "RetireProvider",
    );
    not_found(
        c.retire_code_value(authed(
            &b_admin,
            pb::RetireCodeValueRequest {
                id: code_value.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await,
        "RetireCodeValue",
    );
    not_found(
        c.delete_service(authed(
            &b_admin,
            pb::DeleteServiceRequest {
                id: service.id.clone(),
                etag: String::new(),
            },
        ))
        .await,
        "DeleteService",
    );
    not_found(
        c.delete_service_group(authed(
            &b_admin,
            pb::DeleteServiceGroupRequest {
                id: group.id.clone(),
                etag: String::new(),
            },
        ))
        .await,
        "DeleteServiceGroup",
    );
    not_found(
        t.delete_organization(authed(
            &b_admin,
            tpb::DeleteOrganizationRequest {
                id: org.clone(),
                etag: String::new(),
            },
        ))
        .await,
        "DeleteOrganization",
    );

    // List: nothing of A's, whatever the filter.
    assert!(
        c.list_service_groups(authed(&b_admin, pb::ListServiceGroupsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .service_groups
            .is_empty()
    );
    assert!(
        c.list_services(authed(
            &b_admin,
            pb::ListServicesRequest {
                include_retired: true,
                grant_id: grant.id.clone(),
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .services
        .is_empty()
    );
    assert!(
        c.list_services(authed(
            &b_admin,
            pb::ListServicesRequest {
                include_retired: true,
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .services
        .is_empty()
    );
    assert!(
        c.list_grants(authed(
            &b_admin,
            pb::ListGrantsRequest {
                include_retired: true,
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .grants
        .is_empty()
    );
    assert!(
        c.list_programs(authed(
            &b_admin,
            pb::ListProgramsRequest {
                include_retired: true,
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .programs
        .is_empty()
    );
    assert!(
        c.list_providers(authed(
            &b_admin,
            pb::ListProvidersRequest {
                query: "Ana".into(),
                include_retired: true,
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .providers
        .is_empty()
    );
    assert!(
        c.list_code_values(authed(
            &b_admin,
            pb::ListCodeValuesRequest {
                code_list: pb::CodeList::TurnAwayReason as i32,
                include_retired: true,
                ..Default::default()
            }
        ))
        .await
        .unwrap()
        .into_inner()
        .code_values
        .is_empty()
    );
    assert!(
        t.list_organizations(authed(&b_admin, tpb::ListOrganizationsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .organizations
            .is_empty()
    );
    let status = t
        .list_tenants(authed(&b_admin, tpb::ListTenantsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = t
        .suspend_tenant(authed(
            &b_admin,
            tpb::SuspendTenantRequest {
                id: a.to_string(),
                reason: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = t
        .resume_tenant(authed(
            &b_admin,
            tpb::ResumeTenantRequest {
                id: a.to_string(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = t
        .create_tenant(authed(&b_admin, tpb::CreateTenantRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Create: A's entries cannot be referenced, and A's codes are not taken in B (no inference).
    let status = c
        .create_service(authed(
            &b_admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(linked),
            },
        ))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "service.grant_ids[0]",
            "service.organization_ids[0]",
            "service.program_ids[0]",
            "service.service_group_id"
        ]
    );
    c.create_service(authed(
        &b_admin,
        pb::CreateServiceRequest {
            request_id: String::new(),
            service: Some(service_of("FA")),
        },
    ))
    .await
    .expect("B may use a code A uses");
    node.create_organization(&b_admin, "NORTH").await;

    // A's entries are untouched.
    let still = c
        .get_service(authed(
            &a_admin,
            pb::GetServiceRequest {
                id: service.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(still, service);
    let group_now = c
        .get_service_group(authed(
            &a_admin,
            pb::GetServiceGroupRequest {
                id: group.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service_group
        .unwrap();
    assert_eq!(group_now, group);
    let grant_now = c
        .get_grant(authed(
            &a_admin,
            pb::GetGrantRequest {
                id: grant.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap();
    assert_eq!(grant_now, grant);
    let org_now = t
        .get_organization(authed(
            &a_admin,
            tpb::GetOrganizationRequest { id: org.clone() },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(org_now.name, "Organization NORTH");

    // The catalog's internal method answers for the tenant of the service identity only.
    use caseway_api::catalog::v1::catalog_internal_service_client::CatalogInternalServiceClient;
    use caseway_platform::access::READ_SERVICE_RESTRICTIONS;
    let internal = CatalogInternalServiceClient::new(node.channel.clone());
    let restrictions = |tenant| {
        let token = env.service_token("records", tenant, READ_SERVICE_RESTRICTIONS);
        let mut internal = internal.clone();
        async move {
            internal
                .list_service_restrictions(authed(&token, pb::ListServiceRestrictionsRequest {}))
                .await
                .unwrap()
                .into_inner()
                .restrictions
                .into_iter()
                .map(|r| r.service_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(restrictions(a).await, std::slice::from_ref(&service.id));
    assert!(restrictions(b).await.is_empty());
}
