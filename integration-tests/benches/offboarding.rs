//! A tenant of 100,000 service records: its HUD HMIS CSV export, then, leaving, its full
//! export and its purge, timed, with the memory each takes. The demo tenant is seeded through
//! the API, then its service records are copied (with new ids, and an audit row each, as
//! recording writes) until it holds CASEWAY_BENCH_RECORDS of them (default 100,000). An HMIS
//! export of 2026 runs as the hmis service runs it (started over gRPC, polled until it
//! succeeds). Then the tenant is suspended, exported to a folder and purged (batches of 5,000). Memory is the process's resident set sampled every
//! 10 ms during each step, against what it was at the step's start: streaming keeps it flat
//! whatever the tenant's size. The node in the same process is idle meanwhile.
//!
//!     cargo bench -p caseway-integration-tests --bench offboarding

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caseway::offboard;
use caseway_api::hmis::v1 as hpb;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{TestEnv, authed};
use caseway_offboarding::{ExportKey, PurgeOptions};
use caseway_test_support::resident_kib;

#[tokio::main]
async fn main() {
    run().await;
}

/// Runs `step`, sampling the resident set meanwhile: its time, and the most the resident set
/// grew over its start, in MiB.
async fn measured<T>(step: impl std::future::Future<Output = T>) -> (T, Duration, f64) {
    let start = resident_kib(None);
    let (peak, done) = (
        Arc::new(AtomicU64::new(start)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_kib(None), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let out = step.await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(start) as f64 / 1024.0;
    (out, took, grew)
}

async fn run() {
    let target: i64 = std::env::var("CASEWAY_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let config = env.config();
    let demo = caseway_fixtures::demo::seed(node.channel.clone(), &env.issuer)
        .await
        .unwrap();
    let tenant = demo.tenant_id;

    // Copies of the demo's records with new ids, each with its audit row, until there are
    // `target`.
    let mut owner = env.db.owner().await;
    let seeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM records.service_records WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    let started = Instant::now();
    let copies = (target - seeded).max(0);
    sqlx::query(
        "WITH source AS (SELECT to_jsonb(r) AS row, row_number() OVER () - 1 AS n \
                           FROM records.service_records r WHERE r.tenant_id = $1), \
              made AS (INSERT INTO records.service_records \
                       SELECT (jsonb_populate_record(NULL::records.service_records, \
                                 s.row || jsonb_build_object('id', gen_random_uuid()))).* \
                         FROM generate_series(0, $2 - 1) AS i \
                         JOIN source s ON s.n = i % (SELECT count(*) FROM source) \
                       RETURNING tenant_id, id) \
         INSERT INTO platform.audit_log (tenant_id, actor, action, resource_type, resource_id) \
         SELECT tenant_id, 'bench', 'records.service_record.create', 'service_record', id FROM made",
    )
    .bind(tenant.as_uuid())
    .bind(copies)
    .execute(&mut owner)
    .await
    .unwrap();
    println!(
        "offboarding: the demo tenant with {} service records ({copies} copied in {:.1} s)",
        seeded + copies,
        started.elapsed().as_secs_f64()
    );

    let (hmis, took, grew) = measured(async {
        let mut api = node.fixtures(&demo.token).hmis();
        let id = api
            .start_export(authed(
                &demo.token,
                hpb::StartExportRequest {
                    start_date: Some(caseway_fixtures::date(2026, 1, 1)),
                    end_date: Some(caseway_fixtures::date(2026, 12, 31)),
                    include_ssn: false,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .export
            .unwrap()
            .id;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let export = api
                .get_export(authed(
                    &demo.token,
                    hpb::GetExportRequest { id: id.clone() },
                ))
                .await
                .unwrap()
                .into_inner()
                .export
                .unwrap();
            if export.state() != hpb::ExportState::Running {
                break export;
            }
        }
    })
    .await;
    assert_eq!(hmis.state(), hpb::ExportState::Succeeded, "{}", hmis.error);
    let rows: i64 = hmis.files.iter().map(|f| f.rows).sum();
    let bytes: i64 = hmis.files.iter().map(|f| f.bytes).sum();
    let services = hmis
        .files
        .iter()
        .find(|f| f.name == "Services.csv")
        .unwrap();
    println!(
        "hmis export: {rows} rows ({} in Services.csv) in 8 files, {:.1} MiB written, in {:.2} s \
         ({:.0} rows/s) from start to succeeded; resident set grew at most {grew:.1} MiB",
        services.rows,
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );

    node.tenancy
        .clone()
        .suspend_tenant(authed(
            &env.platform_admin_token(),
            tpb::SuspendTenantRequest {
                id: tenant.to_string(),
                reason: "offboarding bench".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("caseway-bench-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("ssn.key");
    std::fs::write(&key_file, ExportKey::generate()).unwrap();
    let out = dir.join("export");

    let (exported, took, grew) = measured(offboard::export(
        &config,
        "demo",
        out.to_str().unwrap(),
        &key_file,
    ))
    .await;
    let exported = exported.unwrap();
    let bytes: u64 = exported.manifest.tables.iter().map(|t| t.bytes).sum();
    let records = exported
        .manifest
        .tables
        .iter()
        .find(|t| t.table == "records.service_records")
        .map(|t| t.rows)
        .unwrap_or(0);
    println!(
        "export: {} rows ({records} service records) of {} tables, {:.1} MiB written, in {:.2} s \
         ({:.0} rows/s); resident set grew at most {grew:.1} MiB",
        exported.manifest.rows(),
        exported.manifest.tables.len(),
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        exported.manifest.rows() as f64 / took.as_secs_f64()
    );

    let options = PurgeOptions {
        batch: 5_000,
        grace: Duration::ZERO,
        settle: Duration::ZERO,
    };
    let (report, took, grew) = measured(offboard::purge(&config, "demo", &options)).await;
    let report = report.unwrap();
    println!(
        "purge: {} rows deleted in {:.2} s ({:.0} rows/s, batches of {}); resident set grew at \
         most {grew:.1} MiB; tenant key destroyed: {}",
        report.rows(),
        took.as_secs_f64(),
        report.rows() as f64 / took.as_secs_f64(),
        options.batch,
        report.tenant_key_destroyed
    );
    assert_eq!(records as i64, target.max(seeded));
    let _ = std::fs::remove_dir_all(&dir);
}
