//! Made-up requests to every method of the API, as a caller the access table lets through (so
//! they reach the handlers): messages generated from each method's input descriptor, random
//! bytes and mangled encodings (see `caseway_faults::fuzz`), sent to a node running in a
//! process of its own. No answer may be INTERNAL, UNKNOWN or DATA_LOSS (a handler's panic is
//! one of those to its caller), no call may take longer than 10 s, the node's resident memory
//! may not grow by more than 64 MiB, nothing may panic, and the node still serves after.
//!
//! `CASEWAY_FUZZ_CALLS` sets the calls per method (30 in CI; thousands on demand) and
//! `CASEWAY_FUZZ_SEED` replays a run (each run prints its seed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use caseway::Target;
use caseway_faults::fuzz::Fuzzer;
use caseway_faults::load;
use caseway_faults::node::{self, ProcessNode};
use caseway_integration_tests::{TestEnv, authed, call_raw};
use caseway_platform::access::{Access, TABLE};
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

/// The longest one call may take.
const CALL_BOUND: Duration = Duration::from_secs(10);
/// The most the node's resident memory may grow over the whole run.
const MEMORY_BOUND_MIB: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_requests_to_every_method_get_no_internal_error_and_no_hang() {
    let calls: usize = std::env::var("CASEWAY_FUZZ_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("CASEWAY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let only = std::env::var("CASEWAY_FUZZ_METHOD").unwrap_or_default();
    println!("fuzz seed {seed} (CASEWAY_FUZZ_SEED={seed} replays this run)");
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    // The tenant is made through a node in the test's process; the requests go to a node in
    // its own, whose memory is its own.
    let seeding = env.start_with(config.clone(), &Target::ALL).await;
    let tenant = load::seed(&env, &seeding, "fuzz", 2).await;
    let node = ProcessNode::start(env!("CARGO_BIN_EXE_fault-node").as_ref(), &config, "all").await;
    let channel = load::connect_to(node.addr).await;
    let mut ids = vec![
        tenant.id.to_string(),
        tenant.service.clone(),
        tenant.grant.clone(),
    ];
    for plan in &tenant.plans {
        ids.push(plan.client.clone());
        ids.push(plan.authorization.clone());
    }
    let mut fuzzer = Fuzzer::new(seed, ids);
    let staff = |role: Role| {
        env.issuer
            .issue("staff", None, &[role], &[], chrono::Duration::hours(1))
            .expect("a token")
    };
    let tenant_roles = [Role::TenantAdmin, Role::Supervisor, Role::Caseworker];
    let caller = |access: &Access| -> String {
        match access {
            Access::Public => String::new(),
            Access::Service(permission) => env.service_token("records", tenant.id, permission),
            Access::Roles(_) => {
                let allowed = access.roles();
                match tenant_roles.iter().find(|r| allowed.contains(r)) {
                    Some(role) => env.token(tenant.id, &[*role], &[]),
                    None => staff(allowed[0]),
                }
            }
        }
    };

    let pool = prost_reflect::DescriptorPool::decode(caseway_api::FILE_DESCRIPTOR_SET)
        .expect("the API's descriptors");
    // Measured once the node's start-up allocations are done: its memory the same a second
    // apart.
    let mut memory_before = node.memory_mib().0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = node.memory_mib().0;
        if now.abs_diff(memory_before) <= 1 {
            break;
        }
        memory_before = now;
    }
    let started = Instant::now();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut methods, mut total, mut slowest) = (0, 0, (Duration::ZERO, String::new()));
    // The tenancy service's methods last: made-up calls by a platform administrator may
    // suspend the tenant, after which every other method would only refuse.
    let mut services: Vec<_> = pool.services().collect();
    services.sort_by_key(|service| service.full_name() == "caseway.tenancy.v1.TenancyService");
    for service in services {
        for method in service.methods() {
            let name = format!("{}/{}", service.full_name(), method.name());
            if !only.is_empty() && !name.contains(&only) {
                continue;
            }
            let access = TABLE
                .iter()
                .find(|(m, _)| *m == name)
                .map(|(_, a)| *a)
                .unwrap_or(Access::Public);
            let token = caller(&access);
            methods += 1;
            for _ in 0..calls {
                let body = fuzzer.request(&method.input());
                let at = Instant::now();
                let answer = tokio::time::timeout(
                    CALL_BOUND,
                    call_raw(&channel, &format!("/{name}"), &token, body.clone()),
                )
                .await;
                let took = at.elapsed();
                if took > slowest.0 {
                    slowest = (took, name.clone());
                }
                total += 1;
                let code = match answer {
                    Err(_) => {
                        failures.push(format!("{name}: no answer within {CALL_BOUND:?}"));
                        continue;
                    }
                    Ok(Ok(_)) => tonic::Code::Ok,
                    Ok(Err(status)) => {
                        if matches!(
                            status.code(),
                            tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
                        ) {
                            failures.push(format!(
                                "{name}: {:?} {:?} for the request {}",
                                status.code(),
                                status.message(),
                                body.iter().map(|b| format!("{b:02x}")).collect::<String>()
                            ));
                        }
                        status.code()
                    }
                };
                *codes.entry(format!("{code:?}")).or_default() += 1;
            }
        }
    }
    let (memory_after, peak) = node.memory_mib();
    println!(
        "{total} made-up calls to {methods} methods in {:.1?}: {codes:?}; slowest {:.1?} ({}); \
         the node's resident memory {memory_before} MiB before, {memory_after} MiB after \
         (peak {peak} MiB)",
        started.elapsed(),
        slowest.0,
        slowest.1
    );
    assert!(
        failures.is_empty(),
        "{} calls failed (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        memory_after <= memory_before + MEMORY_BOUND_MIB,
        "memory grew from {memory_before} MiB to {memory_after} MiB"
    );
    // Still serving, and the tenant's data still there; nothing panicked.
    assert!(
        node::ready(node.metrics_addr).await,
        "the node still serves"
    );
    // The made-up calls may have suspended the tenant (a platform administrator's
    // SuspendTenant with its id); resumed, its authorizations answer.
    seeding
        .tenancy
        .clone()
        .resume_tenant(authed(
            &env.platform_admin_token(),
            caseway_api::tenancy::v1::ResumeTenantRequest {
                id: tenant.id.to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("the tenant resumed");
    eventually(
        "the tenant's authorizations answering",
        Duration::from_secs(10),
        || async { load::utilization(&channel, &tenant).await.map(|_| ()) },
    )
    .await;
    let panicked: Vec<String> = node
        .log()
        .into_iter()
        .filter(|line| line.contains("panicked"))
        .collect();
    assert!(panicked.is_empty(), "the node panicked: {panicked:#?}");
    seeding.shutdown().await;
}
