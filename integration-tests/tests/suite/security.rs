//! What the security section of the README promises, tried as an attacker and as a hosting
//! provider would: who may call what (every cell of the access table, for every role, no role,
//! no token, a service identity and a suspended tenant), internal methods that
//! take only service identities, tokens that are refused when they should be, revocation felt
//! on every node, and metrics that made-up paths cannot grow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use caseway::Target;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_integration_tests::{TestEnv, authed, call_raw, http_get, reason};
use caseway_platform::access::{Access, HOLD_UNITS, READ_SERVICE_RESTRICTIONS, TABLE};
use caseway_platform::auth::{Claims, Role};
use caseway_platform::revocation;

/// Whether the access table refused the call (not a handler's own refusal).
fn refused_by_table(status: &tonic::Status) -> bool {
    status.code() == Code::PermissionDenied
        && status
            .get_details_error_info()
            .is_some_and(|info| info.reason == "ROLE_NOT_PERMITTED")
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
    // A suspended tenant: every method refuses its callers, people of every tenant role and
    // its service identities alike, with TENANT_SUSPENDED wherever the table would let them.
    let suspended = node.create_tenant(&env, "access-suspended").await;
    node.tenancy
        .clone()
        .suspend_tenant(authed(
            &env.platform_admin_token(),
            caseway_api::tenancy::v1::SuspendTenantRequest {
                id: suspended.to_string(),
                reason: "the access table's suspended column".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("suspended");
    let tenant_roles = [Role::Caseworker, Role::Supervisor, Role::TenantAdmin];
    let person = env.token(suspended, &tenant_roles, &[]);
    for (method, access) in TABLE {
        if *access == Access::Public {
            continue;
        }
        let service = match access {
            Access::Service(permission) => {
                Some(env.service_token("records", suspended, permission))
            }
            _ => None,
        };
        let allowed = match access {
            Access::Roles(_) => tenant_roles.iter().any(|r| access.roles().contains(r)),
            _ => service.is_some(),
        };
        let token = service.as_deref().unwrap_or(&person);
        let status = call_raw(&node.channel, &format!("/{method}"), token, Vec::new())
            .await
            .expect_err(&format!("{method} refuses a suspended tenant"));
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{method}: {status:?}"
        );
        if allowed {
            assert_eq!(reason(&status), "TENANT_SUSPENDED", "{method}: {status:?}");
        }
        cells += 1;
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
    let mut config = env.config();
    config.tenancy_endpoint = Some(format!("http://{}", first.addr()));
    let second = env.start_with(config, &[Target::Catalog]).await;
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
    let redis = caseway_test_support::redis();

    // One token, by its id.
    revocation::revoke_token(&redis, &ana_id, ana.exp)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    for (name, node) in [("first", &first), ("second", &second)] {
        loop {
            match list(node, &ana_token).await {
                Err(status) if status.code() == Code::Unauthenticated => {
                    assert_eq!(reason(&status), "TOKEN_REVOKED");
                    break;
                }
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
            .filter(|l| l.starts_with("grpc_server"))
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
    assert_eq!(reason(&status), "METHOD_NOT_FOUND");
    let before = series().await;
    assert!(
        before
            .iter()
            .any(|s| s.contains(r#"grpc_service="unknown",grpc_method="unknown""#)),
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

/// A token that may call `method` according to the access table.
fn caller_of(env: &TestEnv, tenant: caseway_platform::TenantId, access: &Access) -> Option<String> {
    match access {
        Access::Public => None,
        Access::Roles(_) => {
            let role = access.roles()[0];
            Some(match role {
                Role::SupportAgent | Role::PlatformAdmin => env
                    .issuer
                    .issue("staff", None, &[role], &[], chrono::Duration::hours(1))
                    .unwrap(),
                _ => env.token(tenant, &[role], &[]),
            })
        }
        Access::Service(permission) => Some(env.service_token("records", tenant, permission)),
    }
}

/// Every string, bytes and repeated field a request of `message` reaches, with its limit, as
/// a path of field names from the request (nested messages to `depth`).
fn limited_fields(
    message: &prost_reflect::MessageDescriptor,
    limit: &prost_reflect::ExtensionDescriptor,
    depth: usize,
) -> Vec<(Vec<prost_reflect::FieldDescriptor>, u32, u32)> {
    use prost_reflect::{Kind, Value};
    let mut found = Vec::new();
    for field in message.fields() {
        let options = field.options();
        let (length, items) = if options.has_extension(limit) {
            match options.get_extension(limit).as_ref() {
                Value::Message(m) => (
                    m.get_field_by_name("max_length")
                        .and_then(|v| v.as_u32())
                        .unwrap_or(0),
                    m.get_field_by_name("max_items")
                        .and_then(|v| v.as_u32())
                        .unwrap_or(0),
                ),
                _ => (0, 0),
            }
        } else {
            (0, 0)
        };
        if length > 0 || items > 0 {
            found.push((vec![field.clone()], length, items));
        }
        if let Kind::Message(inner) = field.kind()
            && !field.is_list()
            && depth > 0
            && inner.package_name().starts_with("caseway.")
        {
            for (mut path, length, items) in limited_fields(&inner, limit, depth - 1) {
                path.insert(0, field.clone());
                found.push((path, length, items));
            }
        }
    }
    found
}

/// A request with one field over its limit (one item too many, or one character too long).
fn oversize(
    request: &prost_reflect::MessageDescriptor,
    path: &[prost_reflect::FieldDescriptor],
    length: u32,
    items: u32,
) -> (prost_reflect::DynamicMessage, String) {
    use prost_reflect::{DynamicMessage, Kind, Value};
    let field = path.last().unwrap();
    let long = |n: u32| "é".repeat(n as usize + 1);
    let one = |n: u32| match field.kind() {
        Kind::String => Value::String(if n == 0 { "x".into() } else { long(n) }),
        Kind::Bytes => Value::Bytes(vec![0u8; n as usize + 1].into()),
        Kind::Message(inner) => Value::Message(DynamicMessage::new(inner)),
        Kind::Enum(_) => Value::EnumNumber(1),
        _ => Value::I64(1),
    };
    let (value, named) = if field.is_list() && items > 0 {
        (
            Value::List((0..=items).map(|_| one(0)).collect()),
            field.name().to_string(),
        )
    } else if field.is_list() {
        (
            Value::List(vec![one(length)]),
            format!("{}[0]", field.name()),
        )
    } else {
        (one(length), field.name().to_string())
    };
    fn set(
        message: &mut prost_reflect::DynamicMessage,
        path: &[prost_reflect::FieldDescriptor],
        value: Value,
    ) {
        if path.len() == 1 {
            message.set_field(&path[0], value);
            return;
        }
        if let Value::Message(inner) = message.get_field_mut(&path[0]) {
            set(inner, &path[1..], value);
        }
    }
    let mut message = DynamicMessage::new(request.clone());
    set(&mut message, path, value);
    let prefix: Vec<&str> = path[..path.len() - 1].iter().map(|f| f.name()).collect();
    let named = if prefix.is_empty() {
        named
    } else {
        format!("{}.{named}", prefix.join("."))
    };
    (message, named)
}

#[tokio::test]
async fn every_request_field_over_its_limit_is_refused_at_the_edge_naming_it() {
    use prost::Message;
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "limits").await;
    let pool = prost_reflect::DescriptorPool::decode(caseway_api::FILE_DESCRIPTOR_SET).unwrap();
    let limit = pool
        .get_extension_by_name("caseway.common.v1.limit")
        .expect("the limit option");
    let mut checked = 0;
    for service in pool.services() {
        for method in service.methods() {
            let name = format!("{}/{}", service.full_name(), method.name());
            let access = TABLE
                .iter()
                .find(|(m, _)| *m == name)
                .map(|(_, a)| *a)
                .expect("a rule");
            let token = caller_of(&env, tenant, &access).unwrap_or_default();
            for (path, length, items) in limited_fields(&method.input(), &limit, 2) {
                let (request, named) = oversize(&method.input(), &path, length, items);
                let status = call_raw(
                    &node.channel,
                    &format!("/{name}"),
                    &token,
                    request.encode_to_vec(),
                )
                .await
                .unwrap_err();
                assert_eq!(status.code(), Code::InvalidArgument, "{name} {named}");
                assert_eq!(
                    caseway_integration_tests::violated_fields(&status),
                    vec![named.clone()],
                    "{name}: {status:?}"
                );
                checked += 1;
            }
        }
    }
    println!("{checked} request fields refused over their limits");
    assert!(checked > 250);
    node.shutdown().await;
}

/// The peak resident memory of this process (a test runs in a process of its own), in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_200_kb_search_phrase_is_refused_without_work_and_memory_stays_put() {
    use caseway_api::clients::v1 as clients_pb;
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "phrase").await;
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    let mut clients = node.clients.clone();
    let search = |name: String| clients_pb::SearchClientsRequest {
        name,
        ..Default::default()
    };
    // Forty thousand short words: read at every split, the old code kept gigabytes.
    let phrase = "ab cd ".repeat(200 * 1024 / 6);
    // A 200 KB request of another method first: what carrying a message that size costs
    // (buffers that grow once and stay) is then paid, and only the phrase is measured.
    for _ in 0..2 {
        let _ = clients
            .get_client(authed(
                &worker,
                clients_pb::GetClientRequest {
                    id: phrase.clone(),
                    ..Default::default()
                },
            ))
            .await;
    }
    let before = peak_kib();
    let started = Instant::now();
    for _ in 0..5 {
        let status = clients
            .search_clients(authed(&worker, search(phrase.clone())))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            caseway_integration_tests::violated_fields(&status),
            vec!["name"]
        );
    }
    let took = started.elapsed() / 5;
    let grown = peak_kib().saturating_sub(before);
    println!("a 200 KB phrase was refused in {took:?}; peak memory grew {grown} KiB over five");
    // Read at every split, one such phrase took gigabytes; refused at the edge, nothing grows
    // with its words (the margin is for the rest of the node, which runs meanwhile).
    assert!(grown < 32 * 1024, "peak memory grew {grown} KiB");
    // Within the length limit, a name of many words is refused before it is read.
    let status = clients
        .search_clients(authed(&worker, search("a b c d e f g".into())))
        .await
        .unwrap_err();
    assert!(status.message().contains("at most 6 words"), "{status:?}");
    node.shutdown().await;
}

#[tokio::test]
async fn quick_services_over_its_line_cap_is_refused_before_any_lookup() {
    use caseway_api::records::v1 as records_pb;
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "quick-cap").await;
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    let lookups = || async {
        let (_, body) = http_get(node.metrics_addr(), "/metrics").await;
        body.lines()
            .filter(|l| {
                l.starts_with("grpc_server_handled_total")
                    && (l.contains(
                        r#"grpc_service="caseway.catalog.v1.CatalogService",grpc_method="GetService""#,
                    ) || l.contains(
                        r#"grpc_service="caseway.clients.v1.ClientsService",grpc_method="GetClient""#,
                    ))
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, n)| n.parse::<u64>().ok()))
            .sum::<u64>()
    };
    let line = |n: usize| records_pb::QuickServiceLine {
        service_id: Uuid::now_v7().to_string(),
        units: format!("{}", n + 1),
        ..Default::default()
    };
    let before = lookups().await;
    let status = node
        .records
        .clone()
        .record_quick_services(authed(
            &worker,
            records_pb::RecordQuickServicesRequest {
                client_id: Uuid::now_v7().to_string(),
                service_date: Some(caseway_integration_tests::date(2026, 3, 2)),
                lines: (0..101).map(line).collect(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        caseway_integration_tests::violated_fields(&status),
        vec!["lines"]
    );
    // A request id the form cannot be retried under is refused before a line is prepared too.
    let status = node
        .records
        .clone()
        .record_quick_services(authed(
            &worker,
            records_pb::RecordQuickServicesRequest {
                request_id: "not visible\u{7}".into(),
                client_id: Uuid::now_v7().to_string(),
                service_date: Some(caseway_integration_tests::date(2026, 3, 2)),
                lines: (0..3).map(line).collect(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        caseway_integration_tests::violated_fields(&status),
        vec!["request_id"]
    );
    assert_eq!(
        lookups().await,
        before,
        "no catalog or client lookup was made"
    );
    // The count does see lookups: a form within the cap looks its client and services up.
    let _ = node
        .records
        .clone()
        .record_quick_services(authed(
            &worker,
            records_pb::RecordQuickServicesRequest {
                client_id: Uuid::now_v7().to_string(),
                service_date: Some(caseway_integration_tests::date(2026, 3, 2)),
                lines: (0..1).map(line).collect(),
                ..Default::default()
            },
        ))
        .await;
    assert!(
        lookups().await > before,
        "a lookup within the cap is counted"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn the_server_bounds_message_size_and_how_long_a_call_runs() {
    use caseway_api::tenancy::v1 as tenancy_pb;
    use sqlx::Connection;
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.grpc_max_message_bytes = 64 * 1024;
    config.grpc_max_call_duration = Duration::from_secs(1);
    let node = env.start_with(config, &Target::ALL).await;
    let tenant = node.create_tenant(&env, "server-limits").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut tenancy = node.tenancy.clone();
    let status = tenancy
        .create_organization(authed(
            &admin,
            tenancy_pb::CreateOrganizationRequest {
                request_id: String::new(),
                organization: Some(tenancy_pb::Organization {
                    code: "BIG".into(),
                    name: "x".repeat(100 * 1024),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // A call that would wait on a lock for as long as it is held ends at the server's bound.
    let mut owner = env.db.owner().await;
    let mut lock = owner.begin().await.unwrap();
    sqlx::query("LOCK TABLE tenancy.organizations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let started = Instant::now();
    let status = tenancy
        .list_organizations(authed(
            &admin,
            tenancy_pb::ListOrganizationsRequest::default(),
        ))
        .await
        .unwrap_err();
    println!("the held call ended after {:?}", started.elapsed());
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "CALL_TOO_LONG");
    lock.rollback().await.unwrap();
    tenancy
        .list_organizations(authed(
            &admin,
            tenancy_pb::ListOrganizationsRequest::default(),
        ))
        .await
        .expect("the node serves on once the lock is gone");
    node.shutdown().await;
}
