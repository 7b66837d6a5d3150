//! RecordService throughput against PostgreSQL's own: in one run, concurrent RecordService
//! calls over real gRPC (each one checked against the catalog and the client, stored with its
//! audit row, outbox event and idempotency record), then pgbench running the same write
//! transaction at the same concurrency with the Caseway node stopped, and the ratio (target at
//! least 0.8). Then Quick Services with 10 lines, in services recorded per second, against
//! single calls (target at least 5x, in the mean and in every round), and against pgbench
//! running the same 10-line transaction (target at least 0.9).
//!
//!     cargo bench -p caseway-integration-tests --bench record_throughput
//!
//! The phases are interleaved in rounds (node up: RecordService, Quick Services; node down:
//! pgbench of one line, then of ten), each after a checkpoint, and the means compared, so drift over the run (tables
//! growing, autovacuum, checkpoints) falls on every phase alike. A Caseway phase lasts until
//! the relay has published its last event, the eligibility service's facts consumer has
//! applied the last one and the day totals count its last record, so its rate includes
//! relaying and what consumers and the totals do for each record. What pgbench leaves behind
//! (outbox rows, changes for the day totals) is cleared or folded between phases, off the
//! clock, so no phase pays for another's records.
//!
//! CASEWAY_BENCH_CONCURRENCY (default 16), CASEWAY_BENCH_SECONDS per phase (default 5) and
//! CASEWAY_BENCH_ROUNDS (default 8). Each round also prints the machine's CPU per call in each
//! phase and, for the Caseway phases, how it splits between PostgreSQL, this process (the bench
//! client and the node) and RabbitMQ: on a machine whose speed drifts from round to round, CPU
//! per call says where the time goes when throughput alone cannot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::records::v1 as pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_integration_tests::{TestEnv, authed, date};
use caseway_platform::auth::Role;
use caseway_test_support::env_or;

const CONNECTIONS: usize = 4;

#[tokio::main]
async fn main() {
    run().await;
}

/// What every recording names.
#[derive(Clone)]
struct Fixture {
    tenant: String,
    token: String,
    client: String,
    enrollment: String,
    program: String,
    grant: String,
    provider: String,
    group: String,
    services: Vec<String>,
}

async fn run() {
    let concurrency: usize = env_or("CASEWAY_BENCH_CONCURRENCY", 16);
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 5);
    let rounds: usize = env_or("CASEWAY_BENCH_ROUNDS", 8);
    let env = TestEnv::new().await;
    // Both sides reach PostgreSQL the same way: plain text by default (the transport is the
    // deployment's cost, not the software's), `require` to measure both over TLS.
    let sslmode = std::env::var("CASEWAY_BENCH_SSLMODE").unwrap_or_else(|_| "disable".into());
    let mut config = env.config();
    let joiner = if config.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    config.database_url = format!("{}{joiner}sslmode={sslmode}", config.database_url);
    config.tenant_rate_limit = 0;
    config.database_max_connections = 16;
    // The services a recording calls, as a records deployment sees them (eligibility is asked
    // once per service whether a REQUIRED rule binds it). The authorizations service, a
    // consumer of every record event, runs elsewhere and is measured by its own benchmark:
    // these records name no authorization, so its endpoint is never called.
    config.authorizations_endpoint = Some("http://127.0.0.1:9".into());
    let targets = [
        caseway::Target::Tenancy,
        caseway::Target::Catalog,
        caseway::Target::Clients,
        caseway::Target::Records,
        caseway::Target::Eligibility,
    ];
    println!(
        "RecordService, Quick Services and pgbench: {concurrency} concurrent callers ({CONNECTIONS} gRPC connections), {rounds} rounds of {seconds} s each, interleaved; PostgreSQL sslmode={sslmode} on both sides"
    );
    let mut fixture = None;
    let (mut singles, mut quicks, mut pgbenches) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pg_quicks, mut speedups) = (Vec::new(), Vec::<f64>::new());
    let mut cpus: Vec<[f64; 3]> = Vec::new();
    for round in 1..=rounds {
        // Each round starts from a checkpointed database, so a checkpoint's writes land in no
        // one phase more than another.
        checkpoint(&env).await;
        let node = env.start_with(config.clone(), &targets).await;
        let f = match &fixture {
            Some(f) => f,
            None => fixture.insert(self::fixture(&env, &node).await),
        };
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            channels.push(
                Channel::from_shared(format!("http://{}", node.addr()))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        // Warm the caches of this node.
        drive(&env, &channels, f, concurrency, Duration::from_secs(1), 1).await;
        let length = Duration::from_secs(seconds);
        let (single, single_cpu) = drive(&env, &channels, f, concurrency, length, 1).await;
        let (quick, quick_cpu) = drive(&env, &channels, f, concurrency, length, 10).await;
        node.shutdown().await;
        checkpoint(&env).await;
        let before = Cpu::now();
        let started = Instant::now();
        let pg = pgbench(&env, f, concurrency, seconds, &sslmode, 1);
        let pg_cpu = Cpu::since(before, pg * started.elapsed().as_secs_f64());
        checkpoint(&env).await;
        let pg_quick = pgbench(&env, f, concurrency, seconds, &sslmode, 10);
        // pgbench's events have no relay (it stands for the service's transaction alone):
        // clear them, so the next round's relay does not publish them.
        let mut owner = env.db.owner().await;
        sqlx::query("DELETE FROM platform.outbox")
            .execute(&mut owner)
            .await
            .unwrap();
        // Nor are its records' changes folded into the day totals: fold them now, so the next
        // round's Caseway phases fold their own records only (pgbench's 20,000 or more would
        // otherwise land in the next RecordService phase).
        fold_totals(&mut owner).await;
        println!(
            "round {round}: RecordService {single:>6.0} calls/s, pgbench {pg:>6.0} tps (ratio {:.2}); Quick Services {quick:>5.0} calls/s = {:.0} services/s ({:.1}x), pgbench 10 lines {pg_quick:>5.0} tps (ratio {:.2})",
            single / pg,
            quick * 10.0,
            quick * 10.0 / single,
            quick / pg_quick
        );
        if let (Some(single_cpu), Some(quick_cpu), Some(pg_cpu)) = (single_cpu, quick_cpu, pg_cpu) {
            cpus.push([single_cpu.total, quick_cpu.total, pg_cpu.total]);
            println!(
                "  CPU per call, ms: RecordService {}; Quick Services {}; pgbench {:.3} per transaction",
                single_cpu.split(),
                quick_cpu.split(),
                pg_cpu.total,
            );
        }
        singles.push(single);
        quicks.push(quick);
        pgbenches.push(pg);
        pg_quicks.push(pg_quick);
        speedups.push(quick * 10.0 / single);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (single, quick_calls, pgbench) = (mean(&singles), mean(&quicks), mean(&pgbenches));
    println!("mean of the rounds:");
    println!("RecordService:                   {single:>8.0} calls/s");
    println!("pgbench, same write transaction: {pgbench:>8.0} transactions/s");
    let ratio = single / pgbench;
    println!(
        "ratio RecordService / pgbench: {ratio:.2} (target >= 0.80: {})",
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );
    let quick_services = quick_calls * 10.0;
    println!(
        "Quick Services, 10 lines: {quick_calls:>8.0} calls/s = {quick_services:.0} services/s"
    );
    let speedup = quick_services / single;
    println!(
        "services/s, Quick Services / single calls: {speedup:.1}x (target >= 5x: {})",
        if speedup >= 5.0 { "met" } else { "NOT met" }
    );
    let lowest = speedups.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "lowest round, Quick Services / single calls: {lowest:.1}x (target >= 5x in every round: {})",
        if lowest >= 5.0 { "met" } else { "NOT met" }
    );
    let pg_quick = mean(&pg_quicks);
    println!("pgbench, same 10-line transaction: {pg_quick:>6.0} transactions/s");
    let quick_ratio = quick_calls / pg_quick;
    println!(
        "ratio Quick Services / pgbench, 10 lines: {quick_ratio:.2} (target >= 0.90: {})",
        if quick_ratio >= 0.9 { "met" } else { "NOT met" }
    );
    if !cpus.is_empty() {
        let mean_of = |i: usize| cpus.iter().map(|c| c[i]).sum::<f64>() / cpus.len() as f64;
        println!(
            "machine CPU per call, mean: RecordService {:.3} ms, pgbench {:.3} ms per transaction, Quick Services {:.3} ms",
            mean_of(0),
            mean_of(2),
            mean_of(1)
        );
    }
}

/// Writes every dirty page now, so the next phase does not pay for the last one's.
async fn checkpoint(env: &TestEnv) {
    let mut owner = env.db.owner().await;
    sqlx::query("CHECKPOINT").execute(&mut owner).await.unwrap();
}

async fn fixture(env: &TestEnv, node: &caseway_integration_tests::TestNode) -> Fixture {
    let tenant = node.create_tenant(env, "records-bench").await;
    let token = env.token(tenant, &[Role::TenantAdmin, Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();
    let grant = catalog
        .create_grant(authed(
            &token,
            catalog_pb::CreateGrantRequest {
                request_id: String::new(),
                grant: Some(catalog_pb::Grant {
                    code: "ESG".into(),
                    name: "Emergency Solutions".into(),
                    funder: "HUD".into(),
                    start_date: Some(date(2026, 1, 1)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap()
        .id;
    let program = catalog
        .create_program(authed(
            &token,
            catalog_pb::CreateProgramRequest {
                request_id: String::new(),
                program: Some(catalog_pb::Program {
                    code: "HP".into(),
                    name: "Homelessness Prevention".into(),
                    start_date: Some(date(2020, 1, 1)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .program
        .unwrap()
        .id;
    let group = catalog
        .create_service_group(authed(
            &token,
            catalog_pb::CreateServiceGroupRequest {
                request_id: String::new(),
                service_group: Some(catalog_pb::ServiceGroup {
                    name: "Financial Services".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service_group
        .unwrap()
        .id;
    let mut services = Vec::new();
    for n in 0..10 {
        services.push(
            catalog
                .create_service(authed(
                    &token,
                    catalog_pb::CreateServiceRequest {
                        request_id: String::new(),
                        service: Some(catalog_pb::Service {
                            code: format!("S{n}"),
                            name: format!("Service {n}"),
                            unit_of_measure: catalog_pb::UnitOfMeasure::Dollars as i32,
                            default_unit_value: "1.00".into(),
                            delivery_mode: catalog_pb::DeliveryMode::Direct as i32,
                            service_group_id: group.clone(),
                            grant_ids: vec![grant.clone()],
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .service
                .unwrap()
                .id,
        );
    }
    let provider = catalog
        .create_provider(authed(
            &token,
            catalog_pb::CreateProviderRequest {
                request_id: String::new(),
                provider: Some(catalog_pb::Provider {
                    name: "Ana Diaz".into(),
                    kind: catalog_pb::ProviderKind::Staff as i32,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .provider
        .unwrap()
        .id;
    let client = node
        .clients
        .clone()
        .create_client(authed(
            &token,
            clients_pb::CreateClientRequest {
                request_id: String::new(),
                client: Some(clients_pb::Client {
                    first_name: "Maria".into(),
                    last_name: "Lopez".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
        .id;
    let enrollment = node
        .clients
        .clone()
        .start_enrollment(authed(
            &token,
            clients_pb::StartEnrollmentRequest {
                request_id: String::new(),
                enrollment: Some(clients_pb::Enrollment {
                    client_id: client.clone(),
                    program_id: program.clone(),
                    entry_date: Some(date(2026, 1, 5)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .enrollment
        .unwrap()
        .id;
    Fixture {
        tenant: tenant.as_uuid().to_string(),
        token,
        client,
        enrollment,
        program,
        grant,
        provider,
        group,
        services,
    }
}

/// Calls per second over `length`, and the machine's CPU per call: RecordService when `lines`
/// is 1, Quick Services with `lines` lines otherwise. Every call has its own request_id.
async fn drive(
    env: &TestEnv,
    channels: &[Channel],
    f: &Fixture,
    concurrency: usize,
    length: Duration,
    lines: usize,
) -> (f64, Option<CpuPerCall>) {
    let cpu = Cpu::now();
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let mut records = RecordsServiceClient::new(channels[worker % channels.len()].clone());
        let (done, errors, f) = (done.clone(), errors.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let request_id = format!("bench-{lines}-{worker}-{n}-{}", uuid::Uuid::now_v7());
                let outcome = if lines == 1 {
                    records
                        .record_service(authed(
                            &f.token,
                            pb::RecordServiceRequest {
                                request_id,
                                record: Some(pb::ServiceRecord {
                                    client_id: f.client.clone(),
                                    service_id: f.services[0].clone(),
                                    service_date: Some(date(2026, 3, 2)),
                                    grant_id: f.grant.clone(),
                                    enrollment_id: f.enrollment.clone(),
                                    provider_id: f.provider.clone(),
                                    units: "10".into(),
                                    ..Default::default()
                                }),
                            },
                        ))
                        .await
                        .map(|_| ())
                } else {
                    records
                        .record_quick_services(authed(
                            &f.token,
                            pb::RecordQuickServicesRequest {
                                request_id,
                                client_id: f.client.clone(),
                                service_date: Some(date(2026, 3, 2)),
                                grant_id: f.grant.clone(),
                                enrollment_id: f.enrollment.clone(),
                                provider_id: f.provider.clone(),
                                lines: f.services[..lines]
                                    .iter()
                                    .map(|s| pb::QuickServiceLine {
                                        service_id: s.clone(),
                                        units: "10".into(),
                                        ..Default::default()
                                    })
                                    .collect(),
                            },
                        ))
                        .await
                        .map(|_| ())
                };
                match outcome {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failure: {status:?}");
                        }
                        0
                    }
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let called = started.elapsed();
    let failed = errors.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  ({failed} calls failed)");
    }
    // A phase ends when its events are relayed too: a relay that lags is not free throughput.
    let mut owner = env.db.owner().await;
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.outbox")
            .fetch_one(&mut owner)
            .await
            .unwrap();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And when the consumers of its events have caught up: the eligibility service's facts
    // consumer works for every record, and a backlog left behind would fall on the next phase.
    let mut handled = -1;
    loop {
        let waiting = env.bus.waiting(caseway_eligibility::events::CONSUMER).await;
        let now: i64 =
            sqlx::query_scalar("SELECT count(*) FROM platform.inbox WHERE consumer = $1")
                .bind(caseway_eligibility::events::CONSUMER)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        if waiting == 0 && now == handled {
            break;
        }
        handled = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The phase ends when the consumer applied its last event (the watch above notices it up
    // to 200 ms later, which is not the node's time)...
    let applied: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT max(processed_at) FROM platform.inbox WHERE consumer = $1 AND processed_at >= $2",
    )
    .bind(caseway_eligibility::events::CONSUMER)
    .bind(started_at)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let applied = applied
        .and_then(|at| (at - started_at).to_std().ok())
        .unwrap_or_default();
    // ...and once the day totals count its records: the node's worker folds each second, and
    // what it had not folded yet is folded here, on the phase's time.
    let folding = Instant::now();
    fold_totals(&mut owner).await;
    let elapsed = called.max(applied) + folding.elapsed();
    let calls = done.load(Ordering::Relaxed) as f64;
    (calls / elapsed.as_secs_f64(), Cpu::since(cpu, calls))
}

/// Folds every change of records waiting into the day totals, as the records worker does.
async fn fold_totals(owner: &mut sqlx::PgConnection) {
    while sqlx::query_scalar::<_, i64>("SELECT records.fold_totals(10000)")
        .fetch_one(&mut *owner)
        .await
        .unwrap()
        == 10_000
    {}
}

/// CPU time used so far on this machine, in seconds: all of it, and by the processes a phase
/// runs on (Linux only; elsewhere the benchmark prints no CPU figures).
struct Cpu {
    busy: f64,
    by_process: HashMap<&'static str, f64>,
}

/// A phase's CPU per call (or per pgbench transaction), in milliseconds.
struct CpuPerCall {
    total: f64,
    by_process: HashMap<&'static str, f64>,
}

/// What `/proc` counts in: clock ticks of 1/100 s on every Linux this runs on.
const TICK: f64 = 0.01;

impl Cpu {
    fn now() -> Option<Cpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<f64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user, nice, system, idle, iowait, irq, softirq: all but idle and iowait were work.
        let busy = [0, 1, 2, 5, 6]
            .iter()
            .map(|&i| fields.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
            * TICK;
        let own = std::process::id().to_string();
        let mut by_process = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let pid = entry.file_name();
            let Some(pid) = pid
                .to_str()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
                continue;
            };
            let name = &text[open + 1..close];
            let group = if pid == own {
                "bench client and node"
            } else if name.starts_with("postgres") {
                "PostgreSQL"
            } else if name.starts_with("beam") {
                "RabbitMQ"
            } else {
                continue;
            };
            // utime and stime: the 14th and 15th fields, the 12th and 13th after the name.
            let times: Vec<f64> = text[close + 1..]
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            *by_process.entry(group).or_insert(0.0) += times.iter().sum::<f64>() * TICK;
        }
        Some(Cpu { busy, by_process })
    }

    /// CPU per call since `before`, over `calls` calls.
    fn since(before: Option<Cpu>, calls: f64) -> Option<CpuPerCall> {
        let (before, after) = (before?, Cpu::now()?);
        if calls == 0.0 {
            return None;
        }
        let per_call = |seconds: f64| seconds * 1000.0 / calls;
        Some(CpuPerCall {
            total: per_call(after.busy - before.busy),
            by_process: after
                .by_process
                .iter()
                .map(|(group, seconds)| {
                    let earlier = before.by_process.get(group).copied().unwrap_or(0.0);
                    (*group, per_call(seconds - earlier))
                })
                .collect(),
        })
    }
}

impl CpuPerCall {
    /// "1.302 (PostgreSQL 0.741, bench client and node 0.470, RabbitMQ 0.060)".
    fn split(&self) -> String {
        let mut parts: Vec<_> = self.by_process.iter().collect();
        parts.sort_by(|a, b| b.1.total_cmp(a.1));
        let parts: Vec<String> = parts
            .iter()
            .map(|(group, ms)| format!("{group} {ms:.3}"))
            .collect();
        format!("{:.3} ({})", self.total, parts.join(", "))
    }
}

/// Transactions per second of pgbench running, as the services' role under row-level
/// security, the write transaction RecordService (`lines` 1) or Quick Services (`lines` 10)
/// commits, statement for statement: the tenant, the records with their audit rows in one
/// statement, then the idempotency key with its stored response, the outbox events and the
/// relay's notification in another (Quick Services' rows come from `generate_series` where the service
/// binds arrays of its lines).
fn pgbench(
    env: &TestEnv,
    f: &Fixture,
    concurrency: usize,
    seconds: u64,
    sslmode: &str,
    lines: usize,
) -> f64 {
    // The service's record and event ids are time-ordered (UUIDv7) and land at the right-hand
    // edge of their indexes; so do these: milliseconds since the epoch, then random digits.
    const V7: &str = "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, \
                      '0') || substr(replace(gen_random_uuid()::text, '-', ''), 13))::uuid";
    let single = lines == 1;
    // One line: a plain VALUES row, as the service writes one; several: one row per line.
    let (rows, method, reply) = if single {
        ("VALUES (", "records.service_record.create", 400)
    } else {
        ("SELECT ", "records.quick_services.record", 400 * lines)
    };
    let from = if single {
        ")".to_string()
    } else {
        format!(" FROM generate_series(1, {lines})")
    };
    let event = if single {
        format!(
            "INSERT INTO platform.outbox (id, tenant_id, event_type, source, \
             subject, occurred_at, payload, traceparent) VALUES ({V7}, :tenant::uuid, \
             'records.service_recorded.v1', 'caseway/records', {V7}::text, now(), \
             decode(repeat('ab', 400), 'hex'), NULL) RETURNING id"
        )
    } else {
        format!(
            "INSERT INTO platform.outbox (id, tenant_id, event_type, source, \
             subject, occurred_at, payload, traceparent) SELECT {V7}, :tenant::uuid, \
             'records.service_recorded.v1', 'caseway/records', {V7}::text, now(), \
             decode(repeat('ab', 400), 'hex'), NULL FROM generate_series(1, {lines}) \
             ORDER BY 1 RETURNING id"
        )
    };
    let script = format!(
        "\\set rid random(1, 9000000000000000)\n\
         BEGIN;\n\
         SELECT set_config('app.tenant_id', :tenant, true);\n\
         WITH record AS (INSERT INTO records.service_records (tenant_id, id, kind, client_id, \
         service_id, service_group_id, service_date, grant_id, enrollment_id, program_id, \
         provider_id, units, unit_value, value, comments, recorded_by) {rows}:tenant::uuid, \
         {V7}, 1, '{client}', '{service}', '{group}', '2026-03-02'::date, '{grant}'::uuid, \
         '{enrollment}'::uuid, '{program}'::uuid, '{provider}'::uuid, 10, 1, 10, '', 'user-1'{from} \
         RETURNING id, units, unit_value, value, version, created_at, updated_at), \
         audit AS (INSERT INTO platform.audit_log (tenant_id, actor, action, resource_type, \
         resource_id, changed_fields) SELECT :tenant::uuid, 'user-1', \
         '{method}', 'service_record', id, '{{}}' FROM record) \
         SELECT * FROM record;\n\
         WITH claim AS (INSERT INTO platform.idempotency_keys (tenant_id, method, request_id, \
         request_hash, response) SELECT :tenant::uuid, '{method}', 'bench-' || :rid, \
         sha256(random()::text::bytea), decode(repeat('cd', {reply}), 'hex') \
         WHERE 'bench-' || :rid <> '' ON CONFLICT DO NOTHING RETURNING 1), events AS ({event}) \
         SELECT EXISTS (SELECT FROM claim), \
         (SELECT pg_notify('caseway_outbox', '') FROM (SELECT 1 FROM events LIMIT 1) AS any_event);\n\
         COMMIT;\n",
        client = f.client,
        service = f.services[0],
        group = f.group,
        grant = f.grant,
        enrollment = f.enrollment,
        program = f.program,
        provider = f.provider,
    );
    let dir = std::env::temp_dir().join(format!("caseway-pgbench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("record.sql");
    std::fs::write(&path, script).unwrap();
    let output = std::process::Command::new("pgbench")
        .env("PGSSLMODE", sslmode)
        .arg("--no-vacuum")
        .arg("--protocol=prepared")
        .arg(format!("--client={concurrency}"))
        .arg("--jobs=2")
        .arg(format!("--time={seconds}"))
        .arg(format!("--define=tenant={}", f.tenant))
        .arg(format!("--file={}", path.display()))
        // pgbench takes a plain libpq URL (sqlx's own options stripped).
        .arg(env.db.app_url.split('?').next().unwrap_or_default())
        .output()
        .expect("pgbench runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {}{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .expect("pgbench prints tps")
}
