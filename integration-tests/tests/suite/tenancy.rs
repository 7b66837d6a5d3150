//! The tenancy service: tenant lifecycle by the hosting provider, organizations by the
//! tenant's administrator.

use std::time::Duration;

use tonic::Code;

use caseway_api::catalog::v1 as pb;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{TestEnv, authed, violated_fields};
use caseway_platform::auth::Role;

#[tokio::test]
async fn platform_admin_creates_lists_suspends_and_resumes_tenants() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("tenancy.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let root = env.platform_admin_token();
    let mut t = node.tenancy.clone();
    let create = |slug: &str, request_id: &str| tpb::CreateTenantRequest {
        request_id: request_id.into(),
        tenant: Some(tpb::Tenant {
            slug: slug.into(),
            display_name: format!("Agency {slug}"),
            ..Default::default()
        }),
    };
    let first = t
        .create_tenant(authed(&root, create("agency-one", "r-1")))
        .await
        .unwrap()
        .into_inner();
    let again = t
        .create_tenant(authed(&root, create("agency-one", "r-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again, "the same request id returns the first result");
    let status = t
        .create_tenant(authed(&root, create("agency-one", "r-2")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let status = t
        .create_tenant(authed(&root, create("Not A Slug", "")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["tenant.slug"]);
    for slug in ["agency-two", "agency-three"] {
        t.create_tenant(authed(&root, create(slug, "")))
            .await
            .unwrap();
    }
    let mut slugs = Vec::new();
    let mut token = String::new();
    loop {
        let page = t
            .list_tenants(authed(
                &root,
                tpb::ListTenantsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        slugs.extend(page.tenants.into_iter().map(|t| t.slug));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(slugs, ["agency-one", "agency-three", "agency-two"]);

    let id = first.tenant.unwrap().id;
    let suspended = t
        .suspend_tenant(authed(
            &root,
            tpb::SuspendTenantRequest {
                id: id.clone(),
                reason: "unpaid invoice".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(suspended.status, tpb::TenantStatus::Suspended as i32);
    let listed = t
        .list_tenants(authed(
            &root,
            tpb::ListTenantsRequest {
                status: tpb::TenantStatus::Suspended as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tenants.len(), 1);
    let resumed = t
        .resume_tenant(authed(
            &root,
            tpb::ResumeTenantRequest {
                id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(resumed.status, tpb::TenantStatus::Active as i32);
    let (envelope, _) = events
        .expect("tenancy.tenant_suspended.v1", Duration::from_secs(10))
        .await;
    assert_eq!(envelope.tenant_id.to_string(), id);
    events
        .expect("tenancy.tenant_resumed.v1", Duration::from_secs(10))
        .await;

    let status = t
        .get_tenant(authed(
            &root,
            tpb::GetTenantRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn suspended_tenant_is_refused_on_every_service_until_resumed() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "suspend-me").await;
    let user = env.token(tenant, &[Role::TenantAdmin, Role::Caseworker], &[]);
    let root = env.platform_admin_token();
    let mut c = node.catalog.clone();
    let mut t = node.tenancy.clone();
    assert!(
        c.list_services(authed(&user, pb::ListServicesRequest::default()))
            .await
            .is_ok()
    );
    t.suspend_tenant(authed(
        &root,
        tpb::SuspendTenantRequest {
            id: tenant.to_string(),
            reason: String::new(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let status = c
        .list_services(authed(&user, pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = t
        .list_organizations(authed(&user, tpb::ListOrganizationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    t.resume_tenant(authed(
        &root,
        tpb::ResumeTenantRequest {
            id: tenant.to_string(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    assert!(
        c.list_services(authed(&user, pb::ListServicesRequest::default()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn tenant_admin_manages_organizations_and_others_read_them() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "orgs").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    let mut t = node.tenancy.clone();
    let org = |code: &str| tpb::CreateOrganizationRequest {
        request_id: String::new(),
        organization: Some(tpb::Organization {
            code: code.into(),
            name: format!("Office {code}"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let north = t
        .create_organization(authed(&admin, org("NORTH")))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let status = t
        .create_organization(authed(&worker, org("SOUTH")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = t
        .create_organization(authed(&admin, org("NORTH")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let status = t
        .create_organization(authed(&admin, org("no spaces")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["organization.code"]);

    let listed = t
        .list_organizations(authed(&worker, tpb::ListOrganizationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.organizations.len(), 1);
    let own = t
        .get_tenant(authed(
            &worker,
            tpb::GetTenantRequest {
                id: tenant.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.tenant.unwrap().slug, "orgs");

    let renamed = t
        .update_organization(authed(
            &admin,
            tpb::UpdateOrganizationRequest {
                organization: Some(tpb::Organization {
                    id: north.id.clone(),
                    etag: north.etag.clone(),
                    name: "North Family Center".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(renamed.name, "North Family Center");
    assert_eq!(renamed.code, "NORTH");
    let status = t
        .update_organization(authed(
            &admin,
            tpb::UpdateOrganizationRequest {
                organization: Some(tpb::Organization {
                    id: north.id.clone(),
                    etag: north.etag.clone(),
                    name: "Stale".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let status = t
        .delete_organization(authed(
            &worker,
            tpb::DeleteOrganizationRequest {
                id: north.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    t.delete_organization(authed(
        &admin,
        tpb::DeleteOrganizationRequest {
            id: north.id.clone(),
            etag: renamed.etag,
        },
    ))
    .await
    .unwrap();
    let status = t
        .get_organization(authed(&admin, tpb::GetOrganizationRequest { id: north.id }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// UpdateTenant and the organizations a platform administrator manages by naming the tenant,
/// as the Tenant operator does; nobody else may name a tenant, and a tenant's own limit holds.
#[tokio::test]
async fn platform_admin_updates_a_tenant_and_manages_its_organizations_by_naming_it() {
    let env = TestEnv::new().await;
    let node = env
        .start(&[caseway::Target::Tenancy, caseway::Target::Catalog])
        .await;
    let root = env.platform_admin_token();
    let mut t = node.tenancy.clone();
    let create = |slug: &str| tpb::CreateTenantRequest {
        request_id: String::new(),
        tenant: Some(tpb::Tenant {
            slug: slug.into(),
            display_name: format!("Agency {slug}"),
            ..Default::default()
        }),
    };
    let a = t
        .create_tenant(authed(&root, create("agency-a")))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let b = t
        .create_tenant(authed(&root, create("agency-b")))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let update = |tenant: tpb::Tenant, paths: &[&str]| tpb::UpdateTenantRequest {
        tenant: Some(tenant),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let updated = t
        .update_tenant(authed(
            &root,
            update(
                tpb::Tenant {
                    id: a.id.clone(),
                    etag: a.etag.clone(),
                    display_name: "Agency A, renamed".into(),
                    limits: Some(tpb::TenantLimits {
                        calls_per_second: 3,
                    }),
                    ..Default::default()
                },
                &["display_name", "limits"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(updated.display_name, "Agency A, renamed");
    assert_eq!(updated.limits.as_ref().unwrap().calls_per_second, 3);
    assert_eq!(updated.slug, "agency-a");
    let stale = t
        .update_tenant(authed(
            &root,
            update(
                tpb::Tenant {
                    id: a.id.clone(),
                    etag: a.etag.clone(),
                    display_name: "Stale".into(),
                    ..Default::default()
                },
                &["display_name"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let negative = t
        .update_tenant(authed(
            &root,
            update(
                tpb::Tenant {
                    id: a.id.clone(),
                    limits: Some(tpb::TenantLimits {
                        calls_per_second: -1,
                    }),
                    ..Default::default()
                },
                &["limits"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&negative),
        vec!["tenant.limits.calls_per_second"]
    );
    let slug = t
        .update_tenant(authed(
            &root,
            update(
                tpb::Tenant {
                    id: a.id.clone(),
                    ..Default::default()
                },
                &["slug"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(slug.code(), Code::InvalidArgument);

    // ListTenants by slug: the one tenant, or none.
    let found = t
        .list_tenants(authed(
            &root,
            tpb::ListTenantsRequest {
                slug: "agency-b".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(
        found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec![b.id.as_str()]
    );

    // The platform administrator creates an organization in tenant A by naming it; it is A's
    // alone.
    let a_id: caseway_platform::TenantId = caseway_platform::TenantId(a.id.parse().unwrap());
    let b_id: caseway_platform::TenantId = caseway_platform::TenantId(b.id.parse().unwrap());
    t.create_organization(authed(
        &root,
        tpb::CreateOrganizationRequest {
            organization: Some(tpb::Organization {
                code: "NORTH".into(),
                name: "North".into(),
                ..Default::default()
            }),
            tenant_id: a.id.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let list = |token: &str, tenant_id: &str| {
        authed(
            token,
            tpb::ListOrganizationsRequest {
                tenant_id: tenant_id.into(),
                ..Default::default()
            },
        )
    };
    let of_a = t
        .list_organizations(list(&root, &a.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(of_a.organizations.len(), 1);
    let of_b = t
        .list_organizations(list(&root, &b.id))
        .await
        .unwrap()
        .into_inner();
    assert!(of_b.organizations.is_empty());
    let a_admin = env.token(a_id, &[Role::TenantAdmin], &[]);
    let b_admin = env.token(b_id, &[Role::TenantAdmin], &[]);
    let own = t
        .list_organizations(list(&a_admin, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.organizations.len(), 1);
    // Nobody but a platform administrator names a tenant: not another's, not even their own.
    for (token, tenant) in [(&b_admin, &a.id), (&a_admin, &a.id)] {
        let denied = t.list_organizations(list(token, tenant)).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    let denied = t
        .update_tenant(authed(
            &a_admin,
            update(
                tpb::Tenant {
                    id: a.id.clone(),
                    display_name: "Mine".into(),
                    ..Default::default()
                },
                &["display_name"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unknown = t
        .list_organizations(list(&root, &uuid::Uuid::new_v4().to_string()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let missing = t.list_organizations(list(&root, "")).await.unwrap_err();
    assert_eq!(
        missing.code(),
        Code::PermissionDenied,
        "a platform administrator holds no tenant"
    );

    // Tenant A's own limit (3 calls a second) holds for its users; B keeps the default.
    let a_worker = env.token(a_id, &[Role::Caseworker], &[]);
    let b_worker = env.token(b_id, &[Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();
    let mut refused = 0;
    for _ in 0..10 {
        match catalog
            .list_services(authed(&a_worker, pb::ListServicesRequest::default()))
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == Code::ResourceExhausted => refused += 1,
            Err(status) => panic!("{status:?}"),
        }
    }
    assert!(
        refused >= 4,
        "{refused} of 10 calls refused under a limit of 3 a second"
    );
    for _ in 0..10 {
        catalog
            .list_services(authed(&b_worker, pb::ListServicesRequest::default()))
            .await
            .expect("B is under the deployment's limit");
    }
    let (_, metrics) = caseway_integration_tests::http_get(node.metrics_addr(), "/metrics").await;
    assert!(
        metrics.contains(r#"caseway_rate_limited_total{tenant_class="own"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"caseway_tenant_status_lookups_total{result="hit"}"#));
}
