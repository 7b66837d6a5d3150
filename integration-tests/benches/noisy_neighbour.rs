//! A noisy neighbour: tenant B's latency while tenant A floods the node (issue 21). B calls
//! ListClientServiceRecords (a page of 10 of its client's records: a read of PostgreSQL, where
//! GetClient now answers from a cache) at a steady rate throughout; its latency is taken from
//! when each call was due, so a call that waits behind A's counts its wait.
//!
//! 1. B alone.
//! 2. A calls the same at its rate limit, then at 10 times its rate limit. Target: B's p99 within 1.2 times its p99
//!    alone, and every call of A's past its limit refused RESOURCE_EXHAUSTED with RetryInfo.
//! 3. A, with no rate limit, keeps 32 calls of a year of service totals (read from the day
//!    totals of its 100,000 service records) running at once: once with the cap on one
//!    tenant's database connections (8 of the pool's 16), once without. A call holding a
//!    connection for long would leave B waiting for one without the cap; with it B finds one,
//!    and shares only the CPU.
//!
//!     cargo bench -p caseway-integration-tests --bench noisy_neighbour
//!
//! CASEWAY_BENCH_SECONDS (default 10 per phase), CASEWAY_BENCH_RATE (B's calls a second,
//! default 100), CASEWAY_BENCH_LIMIT (the tenants' rate limit, default 300).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use caseway_api::clients::v1 as cpb;
use caseway_api::records::v1 as rpb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_fixtures::date;
use caseway_integration_tests::{TestEnv, TestNode, authed, reason};
use caseway_platform::auth::Role;
use caseway_platform::config::Config;
use caseway_platform::convert;
use caseway_test_support::env_or;

const TARGET: f64 = 1.2;
/// A's service records, for its year of totals to be slow.
const RECORDS: i64 = 100_000;
/// A's year-long totals running at once in phase 3.
const SLOW_CALLERS: usize = 32;

#[tokio::main]
async fn main() {
    run().await;
}

/// Who calls, with what.
#[derive(Clone)]
struct Caller {
    token: String,
    client: String,
}

/// What a phase's calls of one tenant came to.
#[derive(Default)]
struct Outcome {
    /// Seconds from when each served call was due to its answer.
    latencies: Vec<f64>,
    served: u64,
    /// RESOURCE_EXHAUSTED with RetryInfo, by reason.
    refused: Vec<String>,
    /// Anything else, with the first one's status.
    failed: u64,
    first_failure: Option<String>,
}

impl Outcome {
    fn add(&mut self, result: Result<f64, tonic::Status>) {
        match result {
            Ok(latency) => {
                self.served += 1;
                self.latencies.push(latency);
            }
            Err(status)
                if status.code() == Code::ResourceExhausted
                    && status.get_details_retry_info().is_some() =>
            {
                self.refused.push(reason(&status));
            }
            Err(status) => {
                self.failed += 1;
                self.first_failure
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }

    /// The `q` quantile of the served calls' latencies, in ms.
    fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_by(f64::total_cmp);
        let index =
            ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[index - 1] * 1000.0
    }

    fn refused_by(&self, reason: &str) -> usize {
        self.refused.iter().filter(|r| *r == reason).count()
    }
}

async fn run() {
    let seconds: u64 = env_or("CASEWAY_BENCH_SECONDS", 10);
    let rate: u32 = env_or("CASEWAY_BENCH_RATE", 100);
    let limit: u32 = env_or("CASEWAY_BENCH_LIMIT", 300);
    let length = Duration::from_secs(seconds);
    let env = TestEnv::new().await;

    // Tenant A is the demo tenant, with its records copied to RECORDS; tenant B has one
    // client. Both made with no rate limit, which the seeding would pass.
    let seeding = env
        .start_with(node_config(&env, 0, 8), &caseway::Target::ALL)
        .await;
    let demo = caseway_fixtures::demo::seed(seeding.channel.clone(), &env.issuer)
        .await
        .unwrap();
    let quiet = seeding.test_tenant(&env, "quiet").await;
    let b_token = env.token(quiet.id, &[Role::Caseworker], &[quiet.north]);
    let quiet_client = quiet
        .make
        .acting_as(&b_token)
        .unwrap()
        .client(cpb::Client {
            first_name: "Quinn".into(),
            last_name: "Quiet".into(),
            birth_date: Some(date(1975, 6, 1)),
            birth_date_quality: cpb::DataQuality::Full as i32,
            organization_id: quiet.north.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    seeding.shutdown().await;
    let (first, last) = copy_records(&env, &demo.tenant_id).await;
    let a = Caller {
        token: demo.token.clone(),
        client: demo.client_id.clone(),
    };
    let b = Caller {
        token: b_token,
        client: quiet_client,
    };
    println!(
        "noisy neighbour: tenant B calls ListClientServiceRecords {rate} a second, {seconds} s a phase; \
         tenant A has {RECORDS} service records from {first} to {last}"
    );

    // Phases 1 and 2: the rate limit.
    let node = env
        .start_with(node_config(&env, limit, 8), &caseway::Target::ALL)
        .await;
    // Each tenant's calls come over connections of their own, as from two callers.
    let (a_channels, b_channels) = (connect(&node).await, connect(&node).await);
    warm_up(&a_channels, &a).await;
    warm_up(&b_channels, &b).await;
    let mut alone = steady(b_channels.clone(), b.clone(), rate, length).await;
    // A at its limit: what its allowed calls alone cost B, beside what the flood costs.
    let a_at_limit = tokio::spawn(steady(a_channels.clone(), a.clone(), limit, length));
    let mut b_beside_limit = steady(b_channels.clone(), b.clone(), rate, length).await;
    let a_at_limit = a_at_limit.await.unwrap();
    let flood = limit * 10;
    let a_flood = tokio::spawn(steady(a_channels.clone(), a.clone(), flood, length));
    let b_beside = tokio::spawn(steady(b_channels.clone(), b.clone(), rate, length));
    let (mut b_outcome, a_outcome) = (b_beside.await.unwrap(), a_flood.await.unwrap());
    node.shutdown().await;
    let alone_p99 = alone.quantile_ms(0.99);
    println!(
        "B alone: p50 {:.2} ms, p99 {alone_p99:.2} ms ({} calls)",
        alone.quantile_ms(0.5),
        alone.served
    );
    assert_eq!(alone.failed, 0, "B alone: {:?}", alone.first_failure);
    println!(
        "B while A calls at its limit of {limit}/s (A served {}, refused {}): p50 {:.2} ms, \
         p99 {:.2} ms, {:.2}x its p99 alone",
        a_at_limit.served,
        a_at_limit.refused.len(),
        b_beside_limit.quantile_ms(0.5),
        b_beside_limit.quantile_ms(0.99),
        b_beside_limit.quantile_ms(0.99) / alone_p99
    );
    let flood_p99 = b_outcome.quantile_ms(0.99);
    let ratio = flood_p99 / alone_p99;
    println!(
        "A at {flood} calls/s, 10x its limit of {limit}: served {} ({:.0}/s), refused \
         RESOURCE_EXHAUSTED with RetryInfo {} (RATE_LIMITED {}), other failures {}",
        a_outcome.served,
        a_outcome.served as f64 / seconds as f64,
        a_outcome.refused.len(),
        a_outcome.refused_by("RATE_LIMITED"),
        a_outcome.failed
    );
    assert_eq!(a_outcome.failed, 0, "A: {:?}", a_outcome.first_failure);
    assert!(
        a_outcome.refused_by("RATE_LIMITED") > 0,
        "A past its limit must be refused"
    );
    assert_eq!(b_outcome.failed, 0, "B: {:?}", b_outcome.first_failure);
    assert!(b_outcome.refused.is_empty(), "B is within its limit");
    println!(
        "B while A floods: p50 {:.2} ms, p99 {flood_p99:.2} ms, {ratio:.2}x its p99 alone \
         (target <= {TARGET:.1}x: {})",
        b_outcome.quantile_ms(0.5),
        if ratio <= TARGET { "met" } else { "NOT met" }
    );

    // Phase 3: slow work within no rate limit, with and without the cap on connections.
    let (from, to) = (convert::date(first), convert::date(last));
    for cap in [8, 0] {
        let node = env
            .start_with(node_config(&env, 0, cap), &caseway::Target::ALL)
            .await;
        let (a_channels, b_channels) = (connect(&node).await, connect(&node).await);
        warm_up(&a_channels, &a).await;
        warm_up(&b_channels, &b).await;
        let stop = Instant::now() + length + Duration::from_secs(1);
        let mut slow = JoinSet::new();
        for worker in 0..SLOW_CALLERS {
            let mut records =
                RecordsServiceClient::new(a_channels[worker % a_channels.len()].clone());
            let token = a.token.clone();
            slow.spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < stop {
                    let started = Instant::now();
                    let request = rpb::GetServiceTotalsRequest {
                        start_date: Some(from),
                        end_date: Some(to),
                        group_by: vec![rpb::TotalsGrouping::Service as i32],
                    };
                    let result = records
                        .get_service_totals(authed(&token, request))
                        .await
                        .map(|_| started.elapsed().as_secs_f64());
                    outcome.add(result);
                }
                outcome
            });
        }
        // A's callers fill the pool first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut b_outcome = steady(b_channels.clone(), b.clone(), rate, length).await;
        let mut a_outcome = Outcome::default();
        while let Some(done) = slow.join_next().await {
            let done = done.unwrap();
            a_outcome.served += done.served;
            a_outcome.failed += done.failed;
            a_outcome.refused.extend(done.refused);
            a_outcome.latencies.extend(done.latencies);
            if a_outcome.first_failure.is_none() {
                a_outcome.first_failure = done.first_failure;
            }
        }
        node.shutdown().await;
        let p99 = b_outcome.quantile_ms(0.99);
        let described = if cap == 0 {
            "no cap".to_string()
        } else {
            format!("cap {cap} of 16")
        };
        println!(
            "B while A keeps {SLOW_CALLERS} year-long totals running, {described}: p50 {:.2} ms, \
             p99 {p99:.2} ms ({:.1}x alone), B's failures {} ({}); A: {:.1} totals/s, p50 \
             {:.0} ms, refused TENANT_BUSY {}, other failures {}",
            b_outcome.quantile_ms(0.5),
            p99 / alone_p99,
            b_outcome.failed + b_outcome.refused.len() as u64,
            b_outcome.first_failure.as_deref().unwrap_or("none"),
            a_outcome.served as f64 / (seconds + 1) as f64,
            a_outcome.quantile_ms(0.5),
            a_outcome.refused_by("TENANT_BUSY"),
            a_outcome.failed,
        );
    }
}

/// A node of the bench: all targets, a pool of 16, `limit` calls a second per tenant and
/// `cap` connections per tenant.
fn node_config(env: &TestEnv, limit: u32, cap: u32) -> Config {
    let mut config = env.config();
    config.database_max_connections = 16;
    config.tenant_max_connections = cap;
    config.tenant_rate_limit = limit;
    config
}

async fn connect(node: &TestNode) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Channel::from_shared(format!("http://{}", node.addr()))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    channels
}

async fn warm_up(channels: &[Channel], caller: &Caller) {
    for channel in channels {
        list_records(channel.clone(), caller).await.unwrap();
    }
}

async fn list_records(channel: Channel, caller: &Caller) -> Result<(), tonic::Status> {
    let request = rpb::ListClientServiceRecordsRequest {
        client_id: caller.client.clone(),
        page_size: 10,
        ..Default::default()
    };
    RecordsServiceClient::new(channel)
        .list_client_service_records(authed(&caller.token, request))
        .await?;
    Ok(())
}

/// `caller`'s ListClientServiceRecords at `rate` a second for `length`, each call started when due (every
/// 10 ms, a hundredth of the rate) whatever the earlier ones are doing.
async fn steady(channels: Vec<Channel>, caller: Caller, rate: u32, length: Duration) -> Outcome {
    let per_tick = rate.div_ceil(100).max(1);
    let tick = Duration::from_secs_f64(f64::from(per_tick) / f64::from(rate));
    let caller = Arc::new(caller);
    let started = Instant::now();
    let mut calls = JoinSet::new();
    let mut due = started;
    let mut n = 0usize;
    while due < started + length {
        tokio::time::sleep_until(due.into()).await;
        for _ in 0..per_tick {
            let (channel, caller) = (channels[n % channels.len()].clone(), caller.clone());
            n += 1;
            calls.spawn(async move {
                list_records(channel, &caller)
                    .await
                    .map(|()| due.elapsed().as_secs_f64())
            });
        }
        due += tick;
    }
    let mut outcome = Outcome::default();
    while let Some(result) = calls.join_next().await {
        outcome.add(result.unwrap());
    }
    outcome
}

/// The demo's service records copied (new ids) until A has [`RECORDS`]; their first and last
/// dates.
async fn copy_records(
    env: &TestEnv,
    tenant: &caseway_platform::TenantId,
) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let mut owner = env.db.owner().await;
    let have: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM records.service_records WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let copies = ((RECORDS - have).max(0) + have - 1) / have.max(1);
    sqlx::query(
        "INSERT INTO records.service_records \
         SELECT (jsonb_populate_record(NULL::records.service_records, \
                 to_jsonb(r) || jsonb_build_object('id', gen_random_uuid()))).* \
         FROM records.service_records r, generate_series(1, $2) \
         WHERE r.tenant_id = $1 AND r.deleted_at IS NULL",
    )
    .bind(tenant.as_uuid())
    .bind(copies)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("ANALYZE records.service_records")
        .execute(&mut owner)
        .await
        .unwrap();
    let span = sqlx::query_as(
        "SELECT min(service_date), max(service_date) FROM records.service_records \
         WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    sqlx::Connection::close(owner).await.ok();
    span
}
