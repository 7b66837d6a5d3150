//! What the security section of the README promises, tried as an attacker and as a hosting
//! provider would: who may call what (every cell of the access table), internal methods that
//! take only service identities, tokens that are refused when they should be, revocation felt
//! on every node, and metrics that made-up paths cannot grow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use caseway::Target;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_integration_tests::{TestEnv, authed, call_raw, http_get};
use caseway_platform::access::{Access, HOLD_UNITS, READ_SERVICE_RESTRICTIONS, TABLE};
use caseway_platform::auth::{Claims, Role};
use caseway_platform::error::ROLE_NOT_PERMITTED;
use caseway_platform::revocation;

/// Whether the access table refused the call (not a handler's own refusal).
fn refused_by_table(status: &tonic::Status) -> bool {
    status.code() == Code::PermissionDenied
        && status
            .get_details_error_info()
            .is_some_and(|info| info.reason == ROLE_NOT_PERMITTED)
}

#[tokio::test]
async fn every_cell_of_the_access_table_is_enforced() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "access").await;
    let staff = |role: Role| {
        env.issuer
            .issue("staff", None, &[role], &[], chrono::Duration::hours(1))
            .unwrap()
    };
    // One caller per column, and one with no role at all.
    let users: Vec<(Option<Role>, String)> = vec![
        (
            Some(Role::Caseworker),
            env.token(tenant, &[Role::Caseworker], &[]),
        ),
        (
            Some(Role::Supervisor),
            env.token(tenant, &[Role::Supervisor], &[]),
        ),
        (
            Some(Role::TenantAdmin),
            env.token(tenant, &[Role::TenantAdmin], &[]),
        ),
        (Some(Role::SupportAgent), staff(Role::SupportAgent)),
        (Some(Role::PlatformAdmin), staff(Role::PlatformAdmin)),
        (None, env.token(tenant, &[], &[])),
    ];
    let mut cells = 0;
    for (method, access) in TABLE {
        let path = format!("/{method}");
        if *access == Access::Public {
            if method.ends_with("/Check") {
                call_raw(&node.channel, &path, "", Vec::new())
                    .await
                    .expect("health answers without a token");
                cells += 1;
            }
            continue;
        }
        for (role, token) in &users {
            let allowed = match access {
                Access::Roles(_) => role.is_some_and(|r| access.roles().contains(&r)),
                _ => false,
            };
            let answer = call_raw(&node.channel, &path, token, Vec::new()).await;
            let refused = matches!(&answer, Err(status) if refused_by_table(status));
            assert_eq!(
                refused,
                !allowed,
                "{method} for {}: {answer:?}",
                role.map_or("no role", |r| r.as_str())
            );
            cells += 1;
        }
        // A service identity: only for the internal method whose permission it holds.
        let permission = match access {
            Access::Service(permission) => *permission,
            _ => HOLD_UNITS,
        };
        for (held, allowed) in [
            (permission, matches!(access, Access::Service(_))),
            ("some.other_permission", false),
        ] {
            let token = env.service_token("records", tenant, leak(held));
            let answer = call_raw(&node.channel, &path, &token, Vec::new()).await;
            let refused = matches!(&answer, Err(status) if refused_by_table(status));
            assert_eq!(
                refused, !allowed,
                "{method} for a service holding {held}: {answer:?}"
            );
            cells += 1;
        }
        // No token at all.
        let status = call_raw(&node.channel, &path, "", Vec::new())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{method}");
    }
    println!("{cells} cells of the access table called");
    node.shutdown().await;
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

#[test]
fn the_access_table_lists_every_method_and_only_those() {
    use prost::Message;
    let mut served = HashSet::new();
    for set in [
        caseway_api::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let files = prost_types::FileDescriptorSet::decode(set).unwrap();
        for file in files.file {
            for service in &file.service {
                for method in &service.method {
                    served.insert(format!(
                        "{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    let listed: HashSet<String> = TABLE
        .iter()
        .map(|(method, _)| method.to_string())
        .filter(|m| !m.starts_with("grpc.reflection."))
        .collect();
    let missing: Vec<_> = served.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "methods with no access rule: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "rules for methods nobody serves: {extra:?}"
    );
}

#[tokio::test]
async fn internal_methods_refuse_users_and_public_ones_refuse_services() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "internal").await;
    // Even a tenant administrator holding the permission's name as a claim is a user.
    let admin = env.token_with_permissions(tenant, &[Role::TenantAdmin], &[], &[HOLD_UNITS]);
    let status = node
        .authorizations_internal
        .clone()
        .reserve_units(authed(
            &admin,
            caseway_api::authorizations::v1::ReserveUnitsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert!(refused_by_table(&status), "{status:?}");
    // A service identity reads no public method, whatever it holds.
    let service = env.service_token("records", tenant, READ_SERVICE_RESTRICTIONS);
    let status = node
        .catalog
        .clone()
        .list_services(authed(&service, catalog_pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert!(refused_by_table(&status), "{status:?}");
    // A token that claims to be a service's but is signed with the user key is not one.
    let mut forged = env
        .services
        .bearer("records", tenant, HOLD_UNITS)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    let signed_by_user_key = env
        .issuer
        .sign(claims("records", Some(tenant), &[HOLD_UNITS], 300))
        .unwrap();
    // Keep the service header, put the user key's signature on the same claims.
    let header = forged.split('.').next().unwrap().to_string();
    let rest: Vec<_> = signed_by_user_key.split('.').skip(1).collect();
    forged = format!("{header}.{}", rest.join("."));
    let status = node
        .authorizations_internal
        .clone()
        .reserve_units(authed(
            &forged,
            caseway_api::authorizations::v1::ReserveUnitsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    node.shutdown().await;
}

/// Claims of a token issued now for `lifetime` seconds.
fn claims(
    sub: &str,
    tenant: Option<caseway_platform::TenantId>,
    perms: &[&str],
    lifetime: i64,
) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.into(),
        tenant: tenant.map(|t| t.to_string()),
        roles: vec!["caseworker".into()],
        orgs: Vec::new(),
        perms: perms.iter().map(|p| p.to_string()).collect(),
        iss: "caseway".into(),
        aud: "caseway".into(),
        iat: now,
        exp: now + lifetime,
        nbf: None,
        jti: Some(Uuid::now_v7().to_string()),
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_every_node_within_a_second() {
    let env = TestEnv::new().await;
    let first = env.start(&Target::ALL).await;
    let second = env.start(&[Target::Catalog]).await;
    let tenant = first.create_tenant(&env, "revoke").await;
    let mut ana = claims("ana", Some(tenant), &[], 3600);
    let ana_id = ana.jti.clone().unwrap();
    let ana_token = env.issuer.sign(ana.clone()).unwrap();
    let bob_token = env
        .issuer
        .sign(claims("bob", Some(tenant), &[], 3600))
        .unwrap();
    let list = |node: &caseway_integration_tests::TestNode, token: &str| {
        let mut catalog = node.catalog.clone();
        let request = authed(token, catalog_pb::ListServicesRequest::default());
        async move { catalog.list_services(request).await.map(|_| ()) }
    };
    for node in [&first, &second] {
        list(node, &ana_token).await.unwrap();
    }
    let redis = caseway_platform::testing::redis();

    // One token, by its id.
    revocation::revoke_token(&redis, &ana_id, ana.exp)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    for (name, node) in [("first", &first), ("second", &second)] {
        loop {
            match list(node, &ana_token).await {
                Err(status) if status.code() == Code::Unauthenticated => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "the {name} node still accepts a token revoked a second ago"
            );
        }
        println!(
            "{name} node refused the revoked token after {:?}",
            revoked_at.elapsed()
        );
    }
    list(&first, &bob_token)
        .await
        .expect("another token still works");

    // Every token of a user issued until now; one issued after still works.
    ana.jti = Some(Uuid::now_v7().to_string());
    let ana_again = env.issuer.sign(ana.clone()).unwrap();
    list(&second, &ana_again).await.unwrap();
    revocation::revoke_user(
        &redis,
        Some(tenant),
        "ana",
        chrono::Utc::now().timestamp(),
        12 * 3600,
    )
    .await
    .unwrap();
    let revoked_at = Instant::now();
    loop {
        match list(&second, &ana_again).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1));
    }
    let mut later = claims("ana", Some(tenant), &[], 3600);
    later.iat += 2;
    let later = env.issuer.sign(later).unwrap();
    list(&second, &later)
        .await
        .expect("a token issued after the revocation works");
    list(&second, &bob_token).await.expect("bob is not revoked");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_thousand_made_up_paths_add_no_metric_series() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "metrics").await;
    let token = env.token(tenant, &[Role::Caseworker], &[]);
    let series = || async {
        let (status, body) = http_get(node.metrics_addr(), "/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .filter(|l| l.starts_with("caseway_grpc_server"))
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l, |(series, _)| series)
                    .to_string()
            })
            .collect::<HashSet<_>>()
    };
    // The one series of unknown methods exists after the first.
    let status = call_raw(&node.channel, "/nowhere.Service/Method", "", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let before = series().await;
    assert!(
        before.iter().any(|s| s.contains(r#"method="unknown""#)),
        "{before:?}"
    );
    for n in 0..1000 {
        let path = match n % 4 {
            0 => format!("/caseway.catalog.v1.CatalogService/Nope{n}"),
            1 => format!("/x{}.Service/Method", Uuid::new_v4().simple()),
            2 => format!("/caseway.records.v1.RecordsService/{}", Uuid::new_v4()),
            _ => format!("/{}", Uuid::new_v4()),
        };
        let caller = if n % 2 == 0 { token.as_str() } else { "" };
        let status = call_raw(&node.channel, &path, caller, Vec::new())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
    }
    let after = series().await;
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    node.shutdown().await;
}
