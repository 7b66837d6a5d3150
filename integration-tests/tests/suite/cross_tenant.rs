//! Tenant B can never read, list, change or infer tenant A's rows, through any RPC of any
//! service: tenancy and the catalog first, then one module per service (clients, assessments
//! and barriers, records, authorizations, eligibility, ticketing, hmis), each over the shared
//! tenants of `caseway_integration_tests::tenants`.

use tonic::Code;

use caseway_api::catalog::v1 as pb;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{TestEnv, authed, date, record_update, violated_fields};
use caseway_platform::auth::Role;

/// The call `what` was refused as NOT_FOUND: tenant B reached nothing of tenant A's.
fn not_found<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
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
                ..Default::default()
            },
        ))
        .await,
        "UpdateOrganization",
    );
    // Naming tenant A's id is for platform administrators only: B's administrator is refused
    // outright, on the organizations and on the tenant itself.
    for refused in [
        t.list_organizations(authed(
            &b_admin,
            tpb::ListOrganizationsRequest {
                tenant_id: a.to_string(),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ()),
        t.update_organization(authed(
            &b_admin,
            tpb::UpdateOrganizationRequest {
                organization: Some(tpb::Organization {
                    id: org.clone(),
                    name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("name"),
                tenant_id: a.to_string(),
            },
        ))
        .await
        .map(|_| ()),
        t.update_tenant(authed(
            &b_admin,
            tpb::UpdateTenantRequest {
                tenant: Some(tpb::Tenant {
                    id: a.to_string(),
                    display_name: "Mine".into(),
                    ..Default::default()
                }),
                update_mask: mask("display_name"),
            },
        ))
        .await
        .map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    }

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

mod clients {
    use super::*;
    use caseway_api::clients::v1 as pb;
    use caseway_integration_tests::tenants::{client, clients_tenant};

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_clients_and_support_sees_no_client_data() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let (_, a) = clients_tenant(&env, &node, "clients-a").await;
        let (b_tenant, b) = clients_tenant(&env, &node, "clients-b").await;
        let maria = client("Maria", "Lopez", "123-45-6789", (1980, 3, 1));
        let theirs = node.fixtures(&a).client(maria.clone()).await.unwrap();
        let b_admin = env.token_with_permissions(
            b_tenant,
            &[Role::TenantAdmin, Role::Supervisor],
            &[],
            &["clients.read_ssn"],
        );
        let mut clients = node.clients.clone();
        not_found(
            clients
                .get_client(authed(
                    &b_admin,
                    pb::GetClientRequest {
                        id: theirs.clone(),
                        ssn_view: pb::SsnView::Full as i32,
                    },
                ))
                .await,
            "get_client",
        );
        // B's administrator lists B's clients only: one of its own, none of A's.
        let own = node
            .fixtures(&b)
            .client(client("John", "Smith", "", (1980, 1, 1)))
            .await
            .unwrap();
        let listed = clients
            .list_clients(authed(&b_admin, pb::ListClientsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = listed.clients.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, [own.as_str()]);
        let status = clients
            .list_clients(authed(&b, pb::ListClientsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "administrators only");
        not_found(
            clients
                .update_client(authed(
                    &b_admin,
                    pb::UpdateClientRequest {
                        client: Some(pb::Client {
                            id: theirs.clone(),
                            last_name: "Mine".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["last_name".into()],
                        }),
                    },
                ))
                .await,
            "update_client",
        );
        not_found(
            clients
                .delete_client(authed(
                    &b_admin,
                    pb::DeleteClientRequest {
                        id: theirs.clone(),
                        etag: String::new(),
                        reason: "x".into(),
                    },
                ))
                .await,
            "delete_client",
        );
        not_found(
            clients
                .list_client_history(authed(
                    &b_admin,
                    pb::ListClientHistoryRequest {
                        client_id: theirs.clone(),
                        ..Default::default()
                    },
                ))
                .await,
            "list_client_history",
        );
        for request in [
            pb::SearchClientsRequest {
                name: "Maria Lopez".into(),
                ..Default::default()
            },
            pb::SearchClientsRequest {
                ssn: "123456789".into(),
                ..Default::default()
            },
            pb::SearchClientsRequest {
                ssn: "6789".into(),
                ..Default::default()
            },
            pb::SearchClientsRequest {
                birth_date: Some(date(1980, 3, 1)),
                ..Default::default()
            },
        ] {
            let found = clients
                .search_clients(authed(&b_admin, request))
                .await
                .unwrap()
                .into_inner();
            assert!(found.matches.is_empty(), "tenant B found tenant A's client");
        }
        // B may record the same person independently: nothing about A's record leaks.
        node.fixtures(&b).client(maria).await.unwrap();

        let support = env
            .issuer
            .issue(
                "help",
                None,
                &[Role::SupportAgent],
                &[],
                chrono::Duration::hours(1),
            )
            .unwrap();
        let status = clients
            .get_client(authed(
                &support,
                pb::GetClientRequest {
                    id: theirs.clone(),
                    ssn_view: 0,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
}

mod assessments {
    use super::*;
    use caseway_api::catalog::v1 as catalog_pb;
    use caseway_api::clients::v1 as pb;
    use caseway_integration_tests::tenants::{
        answer, assessment, barrier, client_tenant, code_value, define, income_type,
    };
    use pb::assessment_answer::Value;

    /// Every assessment and barrier RPC, called by another tenant's administrator on this
    /// tenant's records, finds nothing and changes nothing.
    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_assessments_or_barriers() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = client_tenant(&env, &node, "assess-a").await;
        let b = client_tenant(&env, &node, "assess-b").await;
        let b_admin = env.token(b.id, &[Role::TenantAdmin, Role::Supervisor], &[]);
        let income = define(&node, &a.admin, income_type()).await;
        let mut assessments = node.assessments.clone();
        let recorded = assessments
            .record_assessment(authed(
                &a.worker,
                assessment(
                    &a.client_id,
                    &income.id,
                    (2026, 3, 1),
                    vec![
                        answer("monthly_income", Value::DecimalValue("900".into())),
                        answer("household_size", Value::IntegerValue(2)),
                    ],
                ),
            ))
            .await
            .unwrap()
            .into_inner()
            .assessment
            .unwrap();
        let housing = code_value(
            &node,
            &a.admin,
            catalog_pb::CodeList::BarrierType,
            "HOUSING",
        )
        .await;
        let mut barriers = node.barriers.clone();
        let a_barrier = barriers
            .create_barrier(authed(
                &a.worker,
                barrier(&a.client_id, &housing, (2026, 3, 1)),
            ))
            .await
            .unwrap()
            .into_inner()
            .barrier
            .unwrap();

        not_found(
            assessments
                .get_assessment_type(authed(
                    &b_admin,
                    pb::GetAssessmentTypeRequest {
                        id: income.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "GetAssessmentType",
        );
        not_found(
            assessments
                .update_assessment_type(authed(
                    &b_admin,
                    pb::UpdateAssessmentTypeRequest {
                        assessment_type: Some(pb::AssessmentType {
                            id: income.id.clone(),
                            name: "Mine".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["name".into()],
                        }),
                    },
                ))
                .await
                .map(|_| ()),
            "UpdateAssessmentType",
        );
        not_found(
            assessments
                .get_assessment(authed(
                    &b_admin,
                    pb::GetAssessmentRequest {
                        id: recorded.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "GetAssessment",
        );
        not_found(
            assessments
                .list_assessments(authed(
                    &b_admin,
                    pb::ListAssessmentsRequest {
                        client_id: a.client_id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "ListAssessments",
        );
        not_found(
            assessments
                .list_latest_assessments(authed(
                    &b_admin,
                    pb::ListLatestAssessmentsRequest {
                        client_id: a.client_id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "ListLatestAssessments",
        );
        not_found(
            barriers
                .get_barrier(authed(
                    &b_admin,
                    pb::GetBarrierRequest {
                        id: a_barrier.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "GetBarrier",
        );
        not_found(
            barriers
                .update_barrier(authed(
                    &b_admin,
                    pb::UpdateBarrierRequest {
                        barrier: Some(pb::Barrier {
                            id: a_barrier.id.clone(),
                            note: "mine".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["note".into()],
                        }),
                    },
                ))
                .await
                .map(|_| ()),
            "UpdateBarrier",
        );
        not_found(
            barriers
                .list_barriers(authed(
                    &b_admin,
                    pb::ListBarriersRequest {
                        client_id: a.client_id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "ListBarriers",
        );
        // Creating with A's type, client or barrier type refers to nothing B can see.
        let status = assessments
            .record_assessment(authed(
                &b_admin,
                assessment(
                    &b.client_id,
                    &income.id,
                    (2026, 3, 1),
                    vec![answer("household_size", Value::IntegerValue(2))],
                ),
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["assessment.assessment_type_id"]);
        let b_income = define(&node, &b.admin, income_type()).await;
        let status = assessments
            .record_assessment(authed(
                &b_admin,
                assessment(
                    &a.client_id,
                    &b_income.id,
                    (2026, 3, 1),
                    vec![
                        answer("monthly_income", Value::DecimalValue("900".into())),
                        answer("household_size", Value::IntegerValue(2)),
                    ],
                ),
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["assessment.client_id"]);
        let status = barriers
            .create_barrier(authed(
                &b_admin,
                barrier(&b.client_id, &housing, (2026, 3, 1)),
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["barrier.barrier_type_id"]);
        let b_types = assessments
            .list_assessment_types(authed(
                &b_admin,
                pb::ListAssessmentTypesRequest {
                    include_retired: true,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .assessment_types;
        assert_eq!(
            b_types.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            [b_income.id.as_str()]
        );

        // A's records are as they were.
        let still = node
            .assessments
            .clone()
            .get_assessment_type(authed(
                &a.worker,
                pb::GetAssessmentTypeRequest {
                    id: income.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .assessment_type
            .unwrap();
        assert_eq!(still, income);
        let still = node
            .barriers
            .clone()
            .get_barrier(authed(
                &a.worker,
                pb::GetBarrierRequest {
                    id: a_barrier.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .barrier
            .unwrap();
        assert_eq!(still, a_barrier);
    }
}

mod records {
    use super::*;
    use caseway_api::records::v1 as pb;
    use caseway_integration_tests::tenants::records_tenant;

    /// Every records RPC, called by another tenant's administrator on this tenant's records and
    /// with its ids, finds nothing and changes nothing.
    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_service_records() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = records_tenant(&env, &node, "records-a").await;
        let b = records_tenant(&env, &node, "records-b").await;
        let theirs = node
            .fixtures(&a.worker)
            .record(a.delivery(&a.assistance, "10", (2026, 3, 2)))
            .await
            .unwrap();
        let b_admin = env.token(b.tenant, &[Role::TenantAdmin, Role::Supervisor], &[]);
        let mut records = node.records.clone();
        not_found(
            records
                .get_service_record(authed(
                    &b_admin,
                    pb::GetServiceRecordRequest {
                        id: theirs.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "GetServiceRecord",
        );
        not_found(
            records
                .update_service_record(authed(
                    &b_admin,
                    record_update(
                        pb::ServiceRecord {
                            id: theirs.id.clone(),
                            comments: "mine".into(),
                            ..Default::default()
                        },
                        &["comments"],
                    ),
                ))
                .await
                .map(|_| ()),
            "UpdateServiceRecord",
        );
        not_found(
            records
                .delete_service_record(authed(
                    &b_admin,
                    pb::DeleteServiceRecordRequest {
                        id: theirs.id.clone(),
                        etag: String::new(),
                        reason: "mine".into(),
                    },
                ))
                .await
                .map(|_| ()),
            "DeleteServiceRecord",
        );
        not_found(
            records
                .list_service_record_history(authed(
                    &b_admin,
                    pb::ListServiceRecordHistoryRequest {
                        id: theirs.id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "ListServiceRecordHistory",
        );
        not_found(
            records
                .list_client_service_records(authed(
                    &b_admin,
                    pb::ListClientServiceRecordsRequest {
                        client_id: a.maria.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "ListClientServiceRecords",
        );
        // Recording with A's client, service, enrollment or grant refers to nothing B can see.
        let mut with_their_client = b.delivery(&b.assistance, "1", (2026, 3, 2));
        with_their_client.client_id = a.maria.clone();
        with_their_client.enrollment_id = String::new();
        let mut with_their_service = b.delivery(&a.assistance, "1", (2026, 3, 2));
        with_their_service.grant_id = String::new();
        let mut with_their_grant = b.delivery(&b.assistance, "1", (2026, 3, 2));
        with_their_grant.grant_id = a.grant.clone();
        let mut with_their_enrollment = b.delivery(&b.assistance, "1", (2026, 3, 2));
        with_their_enrollment.enrollment_id = a.maria_enrollment.clone();
        for (what, bad, field) in [
            ("client", with_their_client, "record.client_id"),
            ("service", with_their_service, "record.service_id"),
            ("grant", with_their_grant, "record.grant_id"),
            ("enrollment", with_their_enrollment, "record.enrollment_id"),
        ] {
            let status = node.fixtures(&b_admin).record(bad).await.unwrap_err();
            assert_eq!(violated_fields(&status), [field], "A's {what}");
        }
        let status = records
            .record_quick_services(authed(
                &b_admin,
                pb::RecordQuickServicesRequest {
                    request_id: String::new(),
                    client_id: a.maria.clone(),
                    service_date: Some(date(2026, 3, 2)),
                    grant_id: String::new(),
                    enrollment_id: String::new(),
                    provider_id: String::new(),
                    lines: vec![pb::QuickServiceLine {
                        service_id: b.assistance.clone(),
                        units: "1".into(),
                        ..Default::default()
                    }],
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["client_id"]);
        let bulk = records
            .record_bulk_service(authed(
                &b_admin,
                pb::RecordBulkServiceRequest {
                    request_id: String::new(),
                    template: Some(pb::ServiceRecord {
                        service_id: b.assistance.clone(),
                        service_date: Some(date(2026, 3, 2)),
                        units: "1".into(),
                        ..Default::default()
                    }),
                    attendees: vec![pb::BulkAttendee {
                        client_id: a.maria.clone(),
                        ..Default::default()
                    }],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((bulk.recorded, bulk.refused), (0, 1));
        let status = records
            .record_indirect_service(authed(
                &b_admin,
                pb::RecordIndirectServiceRequest {
                    request_id: String::new(),
                    service_id: a.outreach.clone(),
                    service_date: Some(date(2026, 3, 2)),
                    people_reached: 5,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["record.service_id"]);
        let totals = records
            .get_service_totals(authed(
                &b_admin,
                pb::GetServiceTotalsRequest {
                    start_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 12, 31)),
                    group_by: vec![],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .totals;
        assert!(totals.is_empty(), "B sees none of A's records: {totals:?}");
        let still = records
            .get_service_record(authed(
                &a.worker,
                pb::GetServiceRecordRequest {
                    id: theirs.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert_eq!(still, theirs);
        // The internal question about a record answers for the service identity's tenant only:
        // tenant B's authorizations service finds A's record not stored.
        use caseway_api::records::v1::records_internal_service_client::RecordsInternalServiceClient;
        use caseway_platform::access::READ_RECORD_DRAWS;
        let internal = RecordsInternalServiceClient::new(node.channel.clone());
        let draw = |tenant| {
            let token = env.service_token("authorizations", tenant, READ_RECORD_DRAWS);
            let mut internal = internal.clone();
            let id = theirs.id.clone();
            async move {
                internal
                    .get_record_draw(authed(
                        &token,
                        pb::GetRecordDrawRequest {
                            service_record_id: id,
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        assert!(!draw(b.tenant).await.stored);
        let own = draw(a.tenant).await;
        assert!(own.stored && own.version == 1);
        let _ = (&b.admin, &b.john, &b.south_worker);
    }
}

mod authorizations {
    use super::*;
    use caseway_api::authorizations::v1 as pb;
    use caseway_integration_tests::tenants::{authorizations_tenant, utilization};
    use caseway_platform::access::HOLD_UNITS;
    use uuid::Uuid;

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_authorizations() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = authorizations_tenant(&env, &node, "auth-a").await;
        let b = authorizations_tenant(&env, &node, "auth-b").await;
        let authorization = a.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
        let pending = node
            .fixtures(&a.worker)
            .authorization(a.plan("FREQ=WEEKLY", "1"))
            .await
            .unwrap();
        let mut api = node.authorizations.clone();
        let id = authorization.id.clone();
        not_found(
            api.get_authorization(authed(
                &b.worker,
                pb::GetAuthorizationRequest { id: id.clone() },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "get",
        );
        not_found(
            api.get_authorization_utilization(authed(
                &b.worker,
                pb::GetAuthorizationUtilizationRequest {
                    authorization_id: id.clone(),
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "utilization",
        );
        not_found(
            api.list_authorization_history(authed(
                &b.worker,
                pb::ListAuthorizationHistoryRequest {
                    authorization_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "history",
        );
        not_found(
            api.update_authorization(authed(
                &b.worker,
                pb::UpdateAuthorizationRequest {
                    authorization: Some(pb::Authorization {
                        id: pending.id.clone(),
                        reason: "mine now".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["reason".into()],
                    }),
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "update",
        );
        not_found(
            api.approve_authorization(authed(
                &b.bo,
                pb::ApproveAuthorizationRequest {
                    id: pending.id.clone(),
                    etag: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "approve",
        );
        not_found(
            api.deny_authorization(authed(
                &b.bo,
                pb::DenyAuthorizationRequest {
                    id: pending.id.clone(),
                    etag: String::new(),
                    reason: "no".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "deny",
        );
        not_found(
            api.cancel_authorization(authed(
                &b.bo,
                pb::CancelAuthorizationRequest {
                    id: id.clone(),
                    etag: String::new(),
                    reason: "no".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "cancel",
        );
        not_found(
            api.close_authorization(authed(
                &b.bo,
                pb::CloseAuthorizationRequest {
                    id: id.clone(),
                    etag: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "close",
        );
        not_found(
            api.list_client_authorizations(authed(
                &b.worker,
                pb::ListClientAuthorizationsRequest {
                    client_id: a.maria.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.map(|_| ())),
            "list",
        );
        // The records service of B's tenant, asking for A's authorization.
        let b_records = env.service_token("records", b.tenant, HOLD_UNITS);
        let mut internal = node.authorizations_internal.clone();
        not_found(
            internal
                .reserve_units(authed(
                    &b_records,
                    pb::ReserveUnitsRequest {
                        authorization_id: id.clone(),
                        service_record_id: Uuid::now_v7().to_string(),
                        service_record_version: 1,
                        client_id: a.maria.clone(),
                        service_id: a.sessions.clone(),
                        service_date: Some(date(2026, 3, 2)),
                        units: "10".into(),
                        hold_id: Uuid::now_v7().to_string(),
                    },
                ))
                .await
                .map(|r| r.map(|_| ())),
            "reserve",
        );
        not_found(
            internal
                .release_units(authed(
                    &b_records,
                    pb::ReleaseUnitsRequest {
                        authorization_id: id.clone(),
                        service_record_id: Uuid::now_v7().to_string(),
                        service_record_version: 1,
                        hold_id: Uuid::now_v7().to_string(),
                    },
                ))
                .await
                .map(|r| r.map(|_| ())),
            "release",
        );
        // Creating in B for A's client and service: they do not exist there.
        let status = node
            .fixtures(&b.worker)
            .authorization(a.plan("FREQ=WEEKLY", "1"))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            [
                "authorization.client_id",
                "authorization.service_id",
                "authorization.reason_id",
                "authorization.goal_id"
            ]
        );
        // A record in B naming A's authorization.
        let mut session = b.session(&id, "1", 2);
        session.client_id = b.maria.clone();
        let status = node.fixtures(&b.worker).record(session).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["record.authorization_id"]);
        // A's authorization is untouched.
        let u = utilization(&node, &a.worker, &id).await;
        assert_eq!(u.remaining_units, "10");
        assert_eq!(
            utilization(&node, &a.worker, &pending.id).await.status,
            pb::AuthorizationStatus::Pending as i32
        );
        node.shutdown().await;
    }
}

mod eligibility {
    use super::*;
    use caseway_api::eligibility::v1 as pb;
    use caseway_api::eligibility::v1::eligibility_internal_service_client::EligibilityInternalServiceClient;
    use caseway_integration_tests::criterion;
    use caseway_integration_tests::tenants::{define, eligibility_tenant, income_type};
    use caseway_platform::access::ENFORCE_ELIGIBILITY;

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_rules_decisions_or_facts() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = eligibility_tenant(&env, &node, "elig-a").await;
        let b = eligibility_tenant(&env, &node, "elig-b").await;
        let rule = a
            .publish(
                &node,
                &a.assistance,
                pb::EnforcementMode::Required,
                vec![criterion("adult", "age >= 18", "")],
            )
            .await;
        let mut only_a = income_type();
        only_a.code = "A_ONLY".into();
        define(&node, &a.admin, only_a).await;
        a.wait_for_schema(&node, "A_ONLY").await;
        let mut api = node.eligibility.clone();
        let decision = api
            .check_eligibility(authed(
                &a.worker,
                pb::CheckEligibilityRequest {
                    client_id: a.maria.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .decisions
            .remove(0);

        // B's administrator and case worker reach none of A's rules.
        not_found(
            api.get_rule(authed(
                &b.admin,
                pb::GetRuleRequest {
                    id: rule.id.clone(),
                },
            ))
            .await,
            "get rule",
        );
        not_found(
            api.update_rule(authed(
                &b.admin,
                pb::UpdateRuleRequest {
                    rule: Some(pb::Rule {
                        id: rule.id.clone(),
                        mode: pb::EnforcementMode::Advisory as i32,
                        ..Default::default()
                    }),
                    update_mask: None,
                },
            ))
            .await,
            "update rule",
        );
        not_found(
            api.publish_rule(authed(
                &b.admin,
                pb::PublishRuleRequest {
                    id: rule.id.clone(),
                    ..Default::default()
                },
            ))
            .await,
            "publish rule",
        );
        not_found(
            api.get_rule_version(authed(
                &b.worker,
                pb::GetRuleVersionRequest {
                    rule_id: rule.id.clone(),
                    version: 1,
                },
            ))
            .await,
            "get rule version",
        );
        not_found(
            api.test_rule(authed(
                &b.admin,
                pb::TestRuleRequest {
                    rule_id: rule.id.clone(),
                    client_id: b.maria.clone(),
                    ..Default::default()
                },
            ))
            .await,
            "test A's rule on B's client",
        );
        let listed = api
            .list_rules(authed(&b.admin, pb::ListRulesRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.rules.is_empty(), "{listed:?}");
        // A's services and client are no facts of B's: a rule for A's service is refused,
        // and A's client is no client of B's.
        let status = api
            .create_rule(authed(
                &b.admin,
                pb::CreateRuleRequest {
                    request_id: String::new(),
                    rule: Some(pb::Rule {
                        service_id: a.assistance.clone(),
                        criteria: vec![criterion("adult", "age >= 18", "")],
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["rule.service_id"]);
        let status = api
            .check_eligibility(authed(
                &b.worker,
                pb::CheckEligibilityRequest {
                    client_id: b.maria.clone(),
                    service_ids: vec![a.assistance.clone()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["service_ids[0]"]);
        for (what, result) in [
            (
                "check A's client",
                api.check_eligibility(authed(
                    &b.worker,
                    pb::CheckEligibilityRequest {
                        client_id: a.maria.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            ),
            (
                "list eligible services of A's client",
                api.list_eligible_services(authed(
                    &b.worker,
                    pb::ListEligibleServicesRequest {
                        client_id: a.maria.clone(),
                        view: pb::DecisionView::Basic as i32,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            ),
            (
                "get decision",
                api.get_decision(authed(
                    &b.worker,
                    pb::GetDecisionRequest {
                        id: decision.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            ),
            (
                "replay decision",
                api.replay_decision(authed(
                    &b.worker,
                    pb::ReplayDecisionRequest {
                        id: decision.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            ),
        ] {
            not_found(result, what);
        }
        // B's checks decide nothing of A's rule; B's schema names B's own codes only.
        let mine = api
            .check_eligibility(authed(
                &b.worker,
                pb::CheckEligibilityRequest {
                    client_id: b.maria.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(mine.decisions.is_empty(), "{mine:?}");
        let schema = api
            .get_fact_schema(authed(&b.worker, pb::GetFactSchemaRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !format!("{schema:?}").contains("A_ONLY"),
            "B's schema names A's assessment type: {schema:?}"
        );
        // The internal check, asked for B by B's records service about A's client and
        // service, finds no rule: nothing of A's is decided or told.
        let b_records = env.service_token("records", b.tenant, ENFORCE_ELIGIBILITY);
        let answer = EligibilityInternalServiceClient::new(node.channel.clone())
            .enforce_eligibility(authed(
                &b_records,
                pb::EnforceEligibilityRequest {
                    client_id: a.maria.clone(),
                    service_id: a.assistance.clone(),
                    as_of: Some(date(2026, 3, 15)),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.required && answer.decision.is_none(), "{answer:?}");
        // A's rule and decision are untouched.
        let still = api
            .get_rule(authed(
                &a.worker,
                pb::GetRuleRequest {
                    id: rule.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .rule
            .unwrap();
        assert_eq!((still.mode, still.published_version), (rule.mode, 1));
    }
}

mod ticketing {
    use super::*;
    use caseway_api::ticketing::v1 as pb;

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_tickets_and_support_only_escalated_ones() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = node.create_tenant(&env, "desk-a").await;
        let b = node.create_tenant(&env, "desk-b").await;
        let a_worker = env.token_for("ana", a, &[Role::Caseworker], &[]);
        let a_admin = env.token_for("lisa", a, &[Role::TenantAdmin], &[]);
        // The same subject in tenant B: a user id is no key across tenants.
        let b_worker = env.token_for("ana", b, &[Role::Caseworker], &[]);
        let b_admin = env.token_for("lisa", b, &[Role::TenantAdmin, Role::Caseworker], &[]);
        let support = env.support_token("sam");
        let mut api = node.ticketing.clone();
        let ticket = api
            .submit_ticket(authed(
                &a_worker,
                pb::SubmitTicketRequest {
                    request_id: "same-key".into(),
                    ..caseway_integration_tests::ticket_submission("A's ticket")
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        let id = ticket.id.clone();

        for token in [&b_worker, &b_admin] {
            not_found(
                api.get_ticket(authed(token, pb::GetTicketRequest { id: id.clone() }))
                    .await,
                "GetTicket",
            );
            let listed = api
                .list_tickets(authed(token, pb::ListTicketsRequest::default()))
                .await
                .unwrap()
                .into_inner();
            assert!(listed.tickets.is_empty());
            not_found(
                api.add_ticket_note(authed(
                    token,
                    pb::AddTicketNoteRequest {
                        ticket_id: id.clone(),
                        body: "from B".into(),
                        ..Default::default()
                    },
                ))
                .await,
                "AddTicketNote",
            );
            not_found(
                api.list_ticket_notes(authed(
                    token,
                    pb::ListTicketNotesRequest {
                        ticket_id: id.clone(),
                        ..Default::default()
                    },
                ))
                .await,
                "ListTicketNotes",
            );
            not_found(
                api.reopen_ticket(authed(
                    token,
                    pb::ReopenTicketRequest {
                        id: id.clone(),
                        reason: "from B".into(),
                        ..Default::default()
                    },
                ))
                .await,
                "ReopenTicket",
            );
        }
        not_found(
            api.ask_submitter(authed(
                &b_admin,
                pb::AskSubmitterRequest {
                    id: id.clone(),
                    question: "from B".into(),
                    ..Default::default()
                },
            ))
            .await,
            "AskSubmitter",
        );
        not_found(
            api.escalate_ticket(authed(
                &b_admin,
                pb::EscalateTicketRequest {
                    id: id.clone(),
                    severity: pb::Severity::High as i32,
                    ..Default::default()
                },
            ))
            .await,
            "EscalateTicket",
        );
        not_found(
            api.resolve_ticket(authed(
                &b_admin,
                pb::ResolveTicketRequest {
                    id: id.clone(),
                    resolution: "from B".into(),
                    ..Default::default()
                },
            ))
            .await,
            "ResolveTicket",
        );
        // B's submission under the same request_id is its own ticket.
        let own = api
            .submit_ticket(authed(
                &b_worker,
                pb::SubmitTicketRequest {
                    request_id: "same-key".into(),
                    ..caseway_integration_tests::ticket_submission("B's ticket")
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        assert_ne!(own.id, id);

        // Support reaches none of it while it stays inside A.
        not_found(
            api.get_ticket(authed(&support, pb::GetTicketRequest { id: id.clone() }))
                .await,
            "GetTicket by support",
        );
        not_found(
            api.triage_ticket(authed(
                &support,
                pb::TriageTicketRequest {
                    id: id.clone(),
                    complexity: pb::Complexity::Low as i32,
                    priority: pb::Priority::Low as i32,
                    ..Default::default()
                },
            ))
            .await,
            "TriageTicket",
        );
        not_found(
            api.start_ticket_work(authed(
                &support,
                pb::StartTicketWorkRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            ))
            .await,
            "StartTicketWork",
        );
        not_found(
            api.ask_customer(authed(
                &support,
                pb::AskCustomerRequest {
                    id: id.clone(),
                    question: "?".into(),
                    ..Default::default()
                },
            ))
            .await,
            "AskCustomer",
        );
        let queue = api
            .list_support_tickets(authed(&support, pb::ListSupportTicketsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(queue.tickets.is_empty(), "ListSupportTickets");
        // Escalated, it is support's to see; still none of B's people's.
        api.escalate_ticket(authed(
            &a_admin,
            pb::EscalateTicketRequest {
                id: id.clone(),
                severity: pb::Severity::Low as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
        assert_eq!(
            api.get_ticket(authed(&support, pb::GetTicketRequest { id: id.clone() }))
                .await
                .unwrap()
                .into_inner()
                .ticket
                .unwrap()
                .tenant_id,
            a.to_string()
        );
        not_found(
            api.get_ticket(authed(&b_admin, pb::GetTicketRequest { id: id.clone() }))
                .await,
            "GetTicket of an escalated ticket by B",
        );
    }

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_attachments_and_support_only_released_ones() {
        use caseway_integration_tests::{download_attachment, upload_attachment};
        use caseway_test_support::images::picture;
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = node.create_tenant(&env, "shots-a").await;
        let b = node.create_tenant(&env, "shots-b").await;
        let a_admin = env.token_for("lisa", a, &[Role::TenantAdmin], &[]);
        // The same subject in B, an administrator there.
        let b_admin = env.token_for("lisa", b, &[Role::TenantAdmin], &[]);
        let support = env.support_token("sam");
        let mut api = node.ticketing.clone();
        let ticket = api
            .submit_ticket(authed(
                &a_admin,
                caseway_integration_tests::ticket_submission("A's screen"),
            ))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        let png = picture(image::ImageFormat::Png);
        let attachment = upload_attachment(&node, &a_admin, &ticket.id, "a.png", &png, 4096)
            .await
            .unwrap();
        let list = |token: &str| {
            let mut api = node.ticketing.clone();
            let request = authed(
                token,
                pb::ListTicketAttachmentsRequest {
                    ticket_id: ticket.id.clone(),
                },
            );
            async move { api.list_ticket_attachments(request).await }
        };
        let release = |token: &str| {
            let mut api = node.ticketing.clone();
            let request = authed(
                token,
                pb::ReleaseTicketAttachmentRequest {
                    id: attachment.id.clone(),
                    redact: Vec::new(),
                },
            );
            async move { api.release_ticket_attachment(request).await }
        };

        // B's administrator: nothing of A's, by any of the four.
        not_found(
            upload_attachment(&node, &b_admin, &ticket.id, "b.png", &png, 4096).await,
            "UploadTicketAttachment to A's ticket by B",
        );
        not_found(
            list(&b_admin).await,
            "ListTicketAttachments of A's ticket by B",
        );
        not_found(
            download_attachment(&node, &b_admin, &attachment.id).await,
            "DownloadTicketAttachment of A's by B",
        );
        not_found(
            release(&b_admin).await,
            "ReleaseTicketAttachment of A's by B",
        );

        // Support before the escalation: not the ticket, so not its attachments.
        not_found(
            list(&support).await,
            "ListTicketAttachments before escalation",
        );
        not_found(
            download_attachment(&node, &support, &attachment.id).await,
            "DownloadTicketAttachment before escalation",
        );
        api.escalate_ticket(authed(
            &a_admin,
            pb::EscalateTicketRequest {
                id: ticket.id.clone(),
                severity: pb::Severity::Low as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
        // Escalated, unreleased: listed as nothing, read as nothing.
        assert!(
            list(&support)
                .await
                .unwrap()
                .into_inner()
                .attachments
                .is_empty()
        );
        not_found(
            download_attachment(&node, &support, &attachment.id).await,
            "DownloadTicketAttachment of an unreleased attachment by support",
        );
        // Released by A: support reads it; B still reads nothing, and its list of A's ticket
        // shows no read of support's either.
        release(&a_admin).await.unwrap();
        download_attachment(&node, &support, &attachment.id)
            .await
            .unwrap();
        not_found(
            list(&b_admin).await,
            "ListTicketAttachments by B after a release",
        );
        not_found(
            download_attachment(&node, &b_admin, &attachment.id).await,
            "DownloadTicketAttachment by B after a release",
        );
    }
}

mod hmis {
    use super::*;
    use std::time::Duration;

    use caseway_api::hmis::v1 as pb;

    /// An export of `token`'s tenant, once it has ended.
    async fn exported(node: &caseway_integration_tests::TestNode, token: &str) -> pb::Export {
        let mut api = node.fixtures(token).hmis();
        let started = api
            .start_export(authed(
                token,
                pb::StartExportRequest {
                    start_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 12, 31)),
                    include_ssn: false,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let id = started.export.unwrap().id;
        caseway_test_support::eventually("the export to end", Duration::from_secs(10), || {
            let (mut api, id) = (api.clone(), id.clone());
            async move {
                let export = api
                    .get_export(authed(token, pb::GetExportRequest { id }))
                    .await
                    .unwrap()
                    .into_inner()
                    .export
                    .unwrap();
                match export.state() {
                    pb::ExportState::Succeeded => Ok(export),
                    state => Err(state),
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn tenant_b_cannot_reach_tenant_a_hmis_mappings_settings_or_exports() {
        let env = TestEnv::new().await;
        let node = env.start(&caseway::Target::ALL).await;
        let a = node.create_tenant(&env, "hmis-a").await;
        let b = node.create_tenant(&env, "hmis-b").await;
        let a_admin = env.token_for("lisa", a, &[Role::TenantAdmin, Role::Supervisor], &[]);
        let b_admin = env.token_for("lisa", b, &[Role::TenantAdmin, Role::Supervisor], &[]);
        let a_fixtures = node.fixtures(&a_admin);
        a_fixtures.hmis_settings("AA-100").await.unwrap();
        a_fixtures
            .hmis_mapping(pb::Subject::ExitDestination, "RENTAL", 435, 0)
            .await
            .unwrap();
        let export = exported(&node, &a_admin).await;
        let mut api = node.fixtures(&b_admin).hmis();

        let listed = api
            .list_mappings(authed(&b_admin, pb::ListMappingsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.mappings.is_empty());
        not_found(
            api.delete_mapping(authed(
                &b_admin,
                pb::DeleteMappingRequest {
                    subject: pb::Subject::ExitDestination as i32,
                    code: "RENTAL".into(),
                },
            ))
            .await,
            "DeleteMapping",
        );
        not_found(
            api.get_settings(authed(&b_admin, pb::GetSettingsRequest {}))
                .await,
            "GetSettings",
        );
        not_found(
            api.get_export(authed(
                &b_admin,
                pb::GetExportRequest {
                    id: export.id.clone(),
                },
            ))
            .await,
            "GetExport",
        );
        for file in &export.files {
            not_found(
                api.download_export_file(authed(
                    &b_admin,
                    pb::DownloadExportFileRequest {
                        id: export.id.clone(),
                        name: file.name.clone(),
                    },
                ))
                .await,
                "DownloadExportFile",
            );
        }
        // B without settings is refused whatever A has.
        let refused = api
            .start_export(authed(
                &b_admin,
                pb::StartExportRequest {
                    start_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 12, 31)),
                    include_ssn: false,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        node.fixtures(&b_admin)
            .hmis_settings("BB-200")
            .await
            .unwrap();
        // B's start of the range A's export runs for is B's own, not a join of A's.
        let mut owner = env.db.owner().await;
        let mut lock = sqlx::Connection::begin(&mut owner).await.unwrap();
        sqlx::query("LOCK TABLE records.service_records IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *lock)
            .await
            .unwrap();
        let range = pb::StartExportRequest {
            start_date: Some(date(2025, 1, 1)),
            end_date: Some(date(2025, 12, 31)),
            include_ssn: false,
        };
        let a_running = node
            .fixtures(&a_admin)
            .hmis()
            .start_export(authed(&a_admin, range))
            .await
            .unwrap()
            .into_inner();
        let b_own = api
            .start_export(authed(&b_admin, range))
            .await
            .unwrap()
            .into_inner();
        assert!(!b_own.joined);
        assert_ne!(b_own.export.unwrap().id, a_running.export.unwrap().id);
        lock.rollback().await.unwrap();
        // A's mapping still stands, and B's settings did not touch A's.
        let a_settings = node
            .fixtures(&a_admin)
            .hmis()
            .get_settings(authed(&a_admin, pb::GetSettingsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        assert_eq!(a_settings.coc_code, "AA-100");
        node.shutdown().await;
    }
}
