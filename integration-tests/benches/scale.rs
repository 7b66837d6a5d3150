//! The read paths at a hosting provider's scale (issue 21): one deployment of 1,000 tenants
//! skewed as a provider's are (one tenant holds 30% of the clients and service records, nine
//! hold 3% each, the rest share what is left: a few thousand records each), first at 100,000
//! service records and 10,000 clients, then grown to 10 million records and a million
//! clients. At each size, against the largest tenant, one call at a time over real gRPC:
//! GetClient, ListClientServiceRecords (a page of 50), SearchClients by the SSN's last four and
//! the birth date and by name, and GetServiceTotals over a year. Targets: each of the first
//! three at most 1.5x its p99 at the small size, and GetServiceTotals over a year of the
//! largest tenant under 100 ms at p99.
//!
//! Tenants are made through the API; their clients (SSNs sealed with each tenant's key) and
//! service records are loaded in bulk as the table owner, with the indexes and the records'
//! day totals built after, as a migration from another product would leave them.
//!
//!     cargo bench -p caseway-integration-tests --bench scale
//!
//! CASEWAY_BENCH_RECORDS (default 10000000; the small size is a hundredth of it),
//! CASEWAY_BENCH_TENANTS (default 1000), CASEWAY_BENCH_CALLS (default 1000 of each call at each
//! size; GetServiceTotals a tenth of it).

use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::clients::v1 as cpb;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::records::v1 as rpb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_fixtures::date;
use caseway_integration_tests::population::{self, Person};
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::TenantId;
use caseway_test_support::env_or;

/// Each call's p99 at full size against the small size, at most.
const GROWTH_TARGET: f64 = 1.5;
/// GetServiceTotals over a year of the largest tenant, p99 under.
const TOTALS_TARGET: Duration = Duration::from_millis(100);
/// Service records per client, in every tenant.
const RECORDS_PER_CLIENT: usize = 10;

#[tokio::main]
async fn main() {
    run().await;
}

/// The share of a deployment's records (and clients) tenant `i` of `tenants` holds.
fn share(i: usize, tenants: usize) -> f64 {
    match i {
        0 => 0.30,
        1..=9 => 0.03,
        _ => 0.43 / (tenants.saturating_sub(10).max(1)) as f64,
    }
}

/// What a delivery names: its service, service group, grant and program.
type Shape = (Uuid, Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// A tenant of the deployment, as loaded so far.
struct Tenant {
    id: TenantId,
    cipher: std::sync::Arc<caseway_clients::tenant_keys::TenantKey>,
    clients: usize,
}

/// The p50 and p99 of `timings`.
fn percentiles(mut timings: Vec<Duration>) -> (Duration, Duration) {
    timings.sort();
    let at = |q: usize| timings[(timings.len() * q / 100).min(timings.len() - 1)];
    (at(50), at(99))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run() {
    let records: usize = env_or("CASEWAY_BENCH_RECORDS", 10_000_000);
    let tenants: usize = env_or("CASEWAY_BENCH_TENANTS", 1000).max(11);
    let calls: usize = env_or("CASEWAY_BENCH_CALLS", 1000).max(10);
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    let node = env.start_with(config.clone(), &caseway::Target::ALL).await;

    // The largest tenant is the demo tenant, seeded through the API: its services, grant and
    // program are what its records name. The others are made through the API too.
    let demo = caseway_fixtures::demo::seed(node.channel.clone(), &env.issuer)
        .await
        .unwrap();
    let started = Instant::now();
    let keys = caseway::offboard::tenant_keys(&config).unwrap();
    let mut deployment = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let id = if i == 0 {
            demo.tenant_id
        } else {
            node.create_tenant(&env, &format!("scale-{i}")).await
        };
        deployment.push(Tenant {
            id,
            cipher: keys.key(id).await.unwrap(),
            clients: 0,
        });
    }
    println!(
        "{tenants} tenants made through the API in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut owner = env.db.owner().await;
    // What a delivery of the demo tenant names: its services with their groups, its grant and
    // program, and a turn-away reason.
    let shapes: Vec<Shape> = sqlx::query_as(
        "SELECT DISTINCT service_id, service_group_id, grant_id, program_id \
         FROM records.service_records WHERE tenant_id = $1 AND kind = 1",
    )
    .bind(demo.tenant_id.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let turn_away_reason: Uuid = sqlx::query_scalar(
        "SELECT turn_away_reason_id FROM records.service_records \
         WHERE tenant_id = $1 AND kind = 2 LIMIT 1",
    )
    .bind(demo.tenant_id.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();

    // An administrator and case worker of both the demo's organizations.
    let token = demo.token.clone();
    let mut people = Vec::new();
    let mut figures = Vec::new();
    for size in [records / 100, records] {
        let started = Instant::now();
        grow(
            &mut owner,
            &mut deployment,
            size,
            &shapes,
            turn_away_reason,
            &mut people,
        )
        .await;
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records.service_records")
            .fetch_one(&mut owner)
            .await
            .unwrap();
        let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM clients.clients")
            .fetch_one(&mut owner)
            .await
            .unwrap();
        println!(
            "{stored} service records and {clients} clients over {tenants} tenants \
             (the largest: {} clients), loaded and indexed in {:.0} s",
            deployment[0].clients,
            started.elapsed().as_secs_f64()
        );
        figures.push(measure(node.channel.clone(), &token, &people, calls).await);
    }
    // What the answer cost before the day totals: a scan of the largest tenant's records of
    // the year, as GetServiceTotals ran it, for context.
    let mut scans = Vec::new();
    for _ in 0..5 {
        let begun = Instant::now();
        sqlx::query(
            "SELECT count(*) FILTER (WHERE kind <> 2), sum(units) FILTER (WHERE kind <> 2), \
                    count(DISTINCT client_id) FILTER (WHERE kind = 1), \
                    count(DISTINCT client_id) FILTER (WHERE kind = 2) \
               FROM records.service_records \
              WHERE tenant_id = $1 AND deleted_at IS NULL \
                AND service_date BETWEEN '2025-01-01' AND '2025-12-31'",
        )
        .bind(demo.tenant_id.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
        scans.push(begun.elapsed());
    }
    let (scan_p50, _) = percentiles(scans);
    println!(
        "the same year scanned from the records, as GetServiceTotals did before day totals: \
         {:.0} ms (median of 5)",
        ms(scan_p50)
    );
    drop(owner);

    let (small, large) = (&figures[0], &figures[1]);
    println!(
        "p99 at {} records against {} records:",
        records,
        records / 100
    );
    for ((name, (_, before)), (_, (_, after))) in small.iter().zip(large) {
        if name.starts_with("GetServiceTotals") {
            continue;
        }
        let ratio = after.as_secs_f64() / before.as_secs_f64();
        println!(
            "{name}: p99 {:.2} ms against {:.2} ms, {ratio:.2}x (target <= {GROWTH_TARGET}x: {})",
            ms(*after),
            ms(*before),
            if ratio <= GROWTH_TARGET {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    for (name, (p50, p99)) in large {
        if name.starts_with("GetServiceTotals") {
            println!(
                "{name}, the largest tenant at {records} records: p50 {:.1} ms, p99 {:.1} ms \
                 (target p99 < {} ms: {})",
                ms(*p50),
                ms(*p99),
                TOTALS_TARGET.as_millis(),
                if *p99 < TOTALS_TARGET {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    node.shutdown().await;
}

/// Loads clients and service records until the deployment holds `records` records and a
/// tenth as many clients, each tenant its share; keeps some of the largest tenant's clients
/// in `people` to ask for.
async fn grow(
    owner: &mut sqlx::PgConnection,
    deployment: &mut [Tenant],
    records: usize,
    shapes: &[Shape],
    turn_away_reason: Uuid,
    people: &mut Vec<Person>,
) {
    let tenants = deployment.len();
    let indexes = population::drop_search_indexes(owner).await;
    for statement in [
        // The day totals are built once after the load, not change by change.
        "ALTER TABLE records.service_records DISABLE TRIGGER keep_totals",
        "ALTER TABLE records.service_records DROP CONSTRAINT service_records_pkey",
        "DROP INDEX records.service_records_client",
        "DROP INDEX records.service_records_date",
    ] {
        sqlx::query(statement).execute(&mut *owner).await.unwrap();
    }
    for (i, tenant) in deployment.iter_mut().enumerate() {
        let clients = ((records / RECORDS_PER_CLIENT) as f64 * share(i, tenants)).round() as usize;
        let more = clients
            .saturating_sub(tenant.clients)
            .max(usize::from(tenant.clients == 0));
        let keep = if i == 0 { 5_000 } else { 0 };
        let (new, kept) =
            population::insert_clients(owner, tenant.id, &tenant.cipher, more, keep).await;
        people.extend(kept);
        tenant.clients += more;
        // Each new client's records, dated over three years, one in twenty a turn-away.
        sqlx::query(
            "INSERT INTO records.service_records (tenant_id, id, kind, client_id, service_id, \
               service_group_id, service_date, grant_id, program_id, units, unit_value, value, \
               turn_away_reason_id, recorded_by) \
             SELECT $1, gen_random_uuid(), r.kind, c.id, s.service_id, s.service_group_id, \
                    date '2024-01-01' + (random() * 1095)::int, s.grant_id, s.program_id, \
                    CASE WHEN r.kind = 1 THEN r.units END, CASE WHEN r.kind = 1 THEN 25 END, \
                    CASE WHEN r.kind = 1 THEN r.units * 25 END, \
                    CASE WHEN r.kind = 2 THEN $7::uuid END, 'bench' \
             FROM unnest($2::uuid[]) AS c(id) \
             CROSS JOIN generate_series(1, $8) AS g \
             CROSS JOIN LATERAL (SELECT CASE WHEN random() < 0.05 THEN 2 ELSE 1 END AS kind, \
                                        1 + floor(random() * 4) AS units, \
                                        1 + floor(random() * array_length($3::uuid[], 1))::int \
                                          + 0 * g AS shape) AS r \
             CROSS JOIN LATERAL (SELECT ($3::uuid[])[r.shape] AS service_id, \
                                        ($4::uuid[])[r.shape] AS service_group_id, \
                                        ($5::uuid[])[r.shape] AS grant_id, \
                                        ($6::uuid[])[r.shape] AS program_id) AS s",
        )
        .bind(tenant.id.as_uuid())
        .bind(&new)
        .bind(shapes.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(shapes.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(shapes.iter().map(|s| s.2).collect::<Vec<_>>())
        .bind(shapes.iter().map(|s| s.3).collect::<Vec<_>>())
        .bind(turn_away_reason)
        .bind(RECORDS_PER_CLIENT as i32)
        .execute(&mut *owner)
        .await
        .unwrap();
    }
    population::build_search_indexes(owner, indexes).await;
    for statement in [
        "SET maintenance_work_mem = '512MB'",
        "ALTER TABLE records.service_records ADD PRIMARY KEY (tenant_id, id)",
        "CREATE INDEX service_records_client ON records.service_records \
         (tenant_id, client_id, service_date DESC, id DESC) WHERE deleted_at IS NULL",
        "CREATE INDEX service_records_date ON records.service_records (tenant_id, service_date) \
         WHERE deleted_at IS NULL",
        "VACUUM ANALYZE records.service_records",
        "ALTER TABLE records.service_records ENABLE TRIGGER keep_totals",
        "SELECT records.rebuild_totals()",
        "VACUUM ANALYZE records.daily_totals",
    ] {
        sqlx::query(statement).execute(&mut *owner).await.unwrap();
    }
}

/// Times each call, one at a time, on the largest tenant's clients: (name, (p50, p99)).
async fn measure(
    channel: Channel,
    token: &str,
    people: &[Person],
    calls: usize,
) -> Vec<(&'static str, (Duration, Duration))> {
    let mut clients = ClientsServiceClient::new(channel.clone());
    let mut records = RecordsServiceClient::new(channel);
    let mut rng = rand::rng();
    let mut figures = Vec::new();
    let kinds = [
        "GetClient",
        "ListClientServiceRecords (page of 50)",
        "SearchClients (last four + birth date)",
        "SearchClients (first and last name)",
        "GetServiceTotals, a year, one row",
        "GetServiceTotals, a year, by service and month",
    ];
    for name in kinds {
        let totals = name.starts_with("GetServiceTotals");
        let n = if totals { (calls / 10).max(10) } else { calls };
        let mut timings = Vec::with_capacity(n);
        // A tenth as many again first, untimed, to warm what each call reads.
        for i in 0..n + n / 10 {
            let person = people.choose(&mut rng).expect("people kept");
            let begun = Instant::now();
            let answered = match name {
                "GetClient" => {
                    let request = cpb::GetClientRequest {
                        id: person.id.to_string(),
                        ..Default::default()
                    };
                    let reply = clients.get_client(authed(token, request)).await;
                    reply.map(|r| usize::from(r.into_inner().client.is_some()))
                }
                "ListClientServiceRecords (page of 50)" => {
                    let request = rpb::ListClientServiceRecordsRequest {
                        client_id: person.id.to_string(),
                        page_size: 50,
                        ..Default::default()
                    };
                    let reply = records
                        .list_client_service_records(authed(token, request))
                        .await;
                    reply.map(|r| r.into_inner().records.len())
                }
                "SearchClients (last four + birth date)" => {
                    let request = cpb::SearchClientsRequest {
                        ssn: person.ssn[5..].to_string(),
                        birth_date: Some(caseway_platform::convert::date(person.birth_date)),
                        page_size: 20,
                        ..Default::default()
                    };
                    let reply = clients.search_clients(authed(token, request)).await;
                    reply.map(|r| r.into_inner().matches.len())
                }
                "SearchClients (first and last name)" => {
                    let request = cpb::SearchClientsRequest {
                        name: format!("{} {}", person.first, person.last),
                        page_size: 20,
                        ..Default::default()
                    };
                    let reply = clients.search_clients(authed(token, request)).await;
                    reply.map(|r| r.into_inner().matches.len())
                }
                _ => {
                    let group_by = if name.ends_with("one row") {
                        vec![]
                    } else {
                        vec![
                            rpb::TotalsGrouping::Service as i32,
                            rpb::TotalsGrouping::Month as i32,
                        ]
                    };
                    let request = rpb::GetServiceTotalsRequest {
                        start_date: Some(date(2025, 1, 1)),
                        end_date: Some(date(2025, 12, 31)),
                        group_by,
                    };
                    let reply = records.get_service_totals(authed(token, request)).await;
                    reply.map(|r| r.into_inner().totals.len())
                }
            };
            let took = begun.elapsed();
            let answered = answered.unwrap_or_else(|status| panic!("{name}: {status}"));
            assert!(answered > 0, "{name} answered nothing");
            if i >= n / 10 {
                timings.push(took);
            }
        }
        let (p50, p99) = percentiles(timings);
        println!(
            "  {name:<48} p50 {:>8.2} ms   p99 {:>8.2} ms   ({n} calls)",
            ms(p50),
            ms(p99)
        );
        figures.push((name, (p50, p99)));
    }
    figures
}
