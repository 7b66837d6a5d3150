//! Memory of `caseway serve` as deployed: the real binary, its resident set read from
//! `/proc/<pid>/status` every second. First `serve --target all` under recording load (32
//! callers recording services for a thousand clients of the demo tenant, in turn, as a tenant's
//! case workers do; all for one client would make that client's history, which the
//! eligibility service reads for its rules' `delivered` windows, grow without end), then the
//! records target alone
//! (its peers served by the first process) under the same load. Issue 21's targets: all
//! targets at most 150 MB resident, one target at most 60 MB, and no growth over a soak (the
//! slope of the resident set after the first quarter of the run, by least squares).
//!
//!     cargo bench -p caseway --bench memory
//!
//! CASEWAY_BENCH_SECONDS (default 60; 600 for the 10-minute soak), CASEWAY_BENCH_CONCURRENCY
//! (default 32), CASEWAY_BENCH_CLIENTS (default 1000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caseway_api::records::v1 as rpb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_test_support::{authed, env_or, resident_kib};

#[path = "../tests/support/mod.rs"]
mod support;

use support::{Fixture, Server};

const ALL_TARGET_MB: f64 = 150.0;
const ONE_TARGET_MB: f64 = 60.0;

#[tokio::main]
async fn main() {
    run().await;
}

/// The resident set of process `pid`, in MB (10^6 bytes).
fn resident_mb(pid: u32) -> f64 {
    resident_kib(Some(pid)) as f64 * 1024.0 / 1e6
}

/// Least-squares slope of `samples` (seconds, MB), in MB a minute.
fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

async fn run() {
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 60);
    let concurrency: usize = env_or("CASEWAY_BENCH_CONCURRENCY", 32);
    let clients: usize = env_or("CASEWAY_BENCH_CLIENTS", 1000).max(1);
    let fixture = Fixture::new().await;
    let all = fixture.serve("all", &[]).await;
    // The demo's rules need the eligibility service to have heard of the services: wait for
    // the child's consumers before making them.
    let consumers = [
        caseway_authorizations::events::CONSUMER,
        caseway_eligibility::events::CONSUMER,
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for consumer in consumers {
        while !fixture.bus.consumed(consumer).await {
            assert!(Instant::now() < deadline, "{consumer} consumes nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let demo = caseway_fixtures::demo::seed(all.channel().await, &fixture.issuer)
        .await
        .unwrap();
    // What each recording copies: one of the demo client's deliveries, dated anew.
    let sample = RecordsServiceClient::new(all.channel().await)
        .list_client_service_records(authed(
            &demo.token,
            rpb::ListClientServiceRecordsRequest {
                client_id: demo.client_id.clone(),
                kind: rpb::ServiceRecordKind::Delivered as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .find(|r| r.service_id == demo.service_id)
        .expect("a delivery of the demo's first service");
    let record = rpb::ServiceRecord {
        client_id: sample.client_id,
        service_id: sample.service_id,
        service_date: sample.service_date,
        grant_id: sample.grant_id,
        units: "10".into(),
        ..Default::default()
    };
    // The clients recorded for, made through the API.
    let make = caseway_fixtures::Fixtures::new(all.channel().await, &demo.token).unwrap();
    let mut clients = Vec::with_capacity(clients);
    for i in 0..clients.capacity() {
        let client = caseway_api::clients::v1::Client {
            first_name: format!("Soak{i}"),
            last_name: "Client".into(),
            ..Default::default()
        };
        clients.push(make.client(client).await.unwrap());
    }
    let clients = Arc::new(clients);
    println!(
        "memory of caseway serve under recording load: {concurrency} callers, {seconds} s a process"
    );
    let all_figures = measure(
        "all",
        &all,
        &demo.token,
        (&record, &clients),
        concurrency,
        seconds,
    )
    .await;

    // The records target alone, its peers in the first process.
    let peers = format!("http://{}", all.address);
    let endpoints: Vec<(&str, String)> = [
        "CASEWAY_TENANCY_ENDPOINT",
        "CASEWAY_CATALOG_ENDPOINT",
        "CASEWAY_CLIENTS_ENDPOINT",
        "CASEWAY_AUTHORIZATIONS_ENDPOINT",
        "CASEWAY_ELIGIBILITY_ENDPOINT",
    ]
    .into_iter()
    .map(|name| (name, peers.clone()))
    .collect();
    let records = fixture.serve("records", &endpoints).await;
    let one_figures = measure(
        "records",
        &records,
        &demo.token,
        (&record, &clients),
        concurrency,
        seconds,
    )
    .await;
    records.stop().await;
    all.stop().await;
    for (what, (peak, growth), target) in [
        ("serve --target all", all_figures, ALL_TARGET_MB),
        ("serve --target records", one_figures, ONE_TARGET_MB),
    ] {
        println!(
            "{what}: peak resident {peak:.1} MB (target <= {target:.0} MB: {})",
            if peak <= target { "met" } else { "NOT met" }
        );
        println!(
            "{what}: resident growth {growth:+.2} MB/min after warm-up (target no growth, \
             at most +0.5 MB/min: {})",
            if growth <= 0.5 { "met" } else { "NOT met" }
        );
    }
}

/// Drives recordings at `server` for `seconds`, sampling its resident set every second: its
/// peak and its slope after the first quarter (MB, MB a minute).
async fn measure(
    name: &str,
    server: &Server,
    token: &str,
    (record, clients): (&rpb::ServiceRecord, &Arc<Vec<String>>),
    concurrency: usize,
    seconds: u64,
) -> (f64, f64) {
    let pid = server.child.id().expect("running");
    let at_start = resident_mb(pid);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let channel = server.channel().await;
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let mut records = RecordsServiceClient::new(channel.clone());
        let (done, stop, token, record, clients) = (
            done.clone(),
            stop.clone(),
            token.to_string(),
            record.clone(),
            clients.clone(),
        );
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let next = done.load(Ordering::Relaxed) as usize;
                let request = rpb::RecordServiceRequest {
                    record: Some(rpb::ServiceRecord {
                        client_id: clients[next % clients.len()].clone(),
                        ..record.clone()
                    }),
                    ..Default::default()
                };
                records
                    .record_service(authed(&token, request))
                    .await
                    .expect("a recording");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed().as_secs_f64(), resident_mb(pid)));
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let peak = samples.iter().map(|(_, mb)| *mb).fold(at_start, f64::max);
    let settled = &samples[samples.len() / 4..];
    let growth = slope(settled);
    println!(
        "{name:<8} resident at start {at_start:.1} MB, peak {peak:.1} MB, at end {:.1} MB; \
         {:.0} recordings/s",
        samples.last().map_or(0.0, |s| s.1),
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    );
    (peak, growth)
}
