//! Client search at scale: loads one tenant with a million clients (names, dates of birth and
//! sealed SSNs, as the service stores them), then times typical searches through SearchClients
//! over real gRPC and prints p50/p99 against the target (p99 under 50 ms).
//!
//!     cargo bench -p caseway-integration-tests --bench client_search
//!
//! CASEWAY_BENCH_CLIENTS (default 1000000) and CASEWAY_BENCH_QUERIES (default 200 per kind).

use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_clients::tenant_keys::TenantKey;
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;
use caseway_test_support::env_or;

const FIRST: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "christopher",
    "nancy",
    "daniel",
    "lisa",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "maria",
    "jose",
    "juan",
    "ana",
    "luis",
    "carmen",
    "carlos",
    "rosa",
    "miguel",
    "elena",
    "ahmed",
    "fatima",
    "mohamed",
    "aisha",
    "wei",
    "li",
    "mei",
    "hiroshi",
    "yuki",
    "olga",
    "ivan",
    "dmitri",
];

fn last_name(rng: &mut impl Rng) -> String {
    const STEMS: &[&str] = &[
        "smith",
        "johnson",
        "williams",
        "brown",
        "jones",
        "garcia",
        "miller",
        "davis",
        "rodriguez",
        "martinez",
        "hernandez",
        "lopez",
        "gonzalez",
        "wilson",
        "anderson",
        "thomas",
        "taylor",
        "moore",
        "jackson",
        "martin",
        "lee",
        "perez",
        "thompson",
        "white",
        "harris",
        "sanchez",
        "clark",
        "ramirez",
        "lewis",
        "robinson",
        "walker",
        "young",
        "allen",
        "king",
        "wright",
        "scott",
        "torres",
        "nguyen",
        "hill",
        "flores",
        "green",
        "adams",
        "nelson",
        "baker",
        "hall",
        "rivera",
        "campbell",
        "mitchell",
        "carter",
        "roberts",
        "hassan",
        "okafor",
        "kowalski",
        "novak",
        "tanaka",
        "kim",
        "park",
        "chen",
    ];
    const TAILS: &[&str] = &[
        "", "", "", "son", "er", "man", "ez", "ski", "ova", "berg", "ley", "ton",
    ];
    // Most people share a few hundred common surnames; the rest spread over tens of thousands.
    if rng.random_bool(0.6) {
        format!(
            "{}{}",
            STEMS.choose(rng).unwrap(),
            TAILS.choose(rng).unwrap()
        )
    } else {
        coined(rng, 3)
    }
}

fn first_name(rng: &mut impl Rng) -> String {
    if rng.random_bool(0.85) {
        FIRST.choose(rng).unwrap().to_string()
    } else {
        let syllables = rng.random_range(2..=3);
        coined(rng, syllables)
    }
}

/// A name made of syllables, for the long tail of a real population's vocabulary.
fn coined(rng: &mut impl Rng, syllables: usize) -> String {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ra", "ten", "bor", "vi", "an", "del", "su", "ny", "ga", "ro", "shi",
        "ma", "ter", "ok", "wen", "zu", "be", "la", "dor", "fi", "ha", "jo", "ke", "ni", "pa",
        "qui", "sten",
    ];
    (0..syllables)
        .map(|_| *SYLLABLES.choose(rng).unwrap())
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let total: usize = env_or("CASEWAY_BENCH_CLIENTS", 1_000_000);
    let queries: usize = env_or("CASEWAY_BENCH_QUERIES", 200);
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.tenant_rate_limit = 0;
    let node = env.start_with(config.clone(), &caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "search-bench").await;
    // The tenant's own PII key, which the node reads from the same store.
    let cipher = caseway::offboard::tenant_keys(&config)
        .unwrap()
        .key(tenant)
        .await
        .unwrap();

    let started = Instant::now();
    let samples = load(&env, tenant, &cipher, total).await;
    println!(
        "loaded {total} clients in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // A whole-SSN search takes the permission (and writes an audit row, which it measures).
    let token = env.token_with_permissions(tenant, &[Role::Caseworker], &[], &["clients.read_ssn"]);
    let mut clients = node.clients.clone();
    let mut rng = rand::rng();
    let kinds: [(&str, SearchOf); 6] = [
        (
            "name with a typo",
            Box::new(
                |s: &Sample, rng: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    name: typo(&format!("{} {}", s.first, s.last), rng),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
        (
            "last name only",
            Box::new(
                |s: &Sample, _: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    name: s.last.clone(),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
        (
            "first name only",
            Box::new(
                |s: &Sample, _: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    name: s.first.clone(),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
        (
            "name + date of birth",
            Box::new(
                |s: &Sample, _: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    name: format!("{} {}", s.first, s.last),
                    birth_date: Some(s.birth_date),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
        (
            "last four + date of birth",
            Box::new(
                |s: &Sample, _: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    ssn: s.ssn[5..].to_string(),
                    birth_date: Some(s.birth_date),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
        (
            "whole SSN",
            Box::new(
                |s: &Sample, _: &mut rand::rngs::ThreadRng| pb::SearchClientsRequest {
                    ssn: s.ssn.clone(),
                    page_size: 20,
                    ..Default::default()
                },
            ),
        ),
    ];
    println!("{queries} searches of each kind through SearchClients, one at a time, page size 20:");
    let mut worst_p99 = Duration::ZERO;
    for (name, make) in &kinds {
        let mut timings = Vec::with_capacity(queries);
        for _ in 0..queries {
            let sample = samples.choose(&mut rng).unwrap();
            let request = make(sample, &mut rng);
            let begun = Instant::now();
            clients
                .search_clients(authed(&token, request))
                .await
                .expect("search succeeds");
            timings.push(begun.elapsed());
        }
        timings.sort();
        let p50 = timings[timings.len() / 2];
        let p99 = timings[(timings.len() * 99 / 100).min(timings.len() - 1)];
        worst_p99 = worst_p99.max(p99);
        println!(
            "  {name:<28} p50 {:>7.2} ms   p99 {:>7.2} ms",
            ms(p50),
            ms(p99)
        );
    }
    println!(
        "worst p99 {:.2} ms (target < 50 ms: {})",
        ms(worst_p99),
        if worst_p99 < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    node.shutdown().await;
}

/// Builds one kind of search from a known client.
type SearchOf = Box<dyn Fn(&Sample, &mut rand::rngs::ThreadRng) -> pb::SearchClientsRequest>;

struct Sample {
    first: String,
    last: String,
    ssn: String,
    birth_date: caseway_api::google::r#type::Date,
}

/// Inserts `total` clients as the owner, in batches, with the search indexes and the name
/// vocabulary built after.
async fn load(env: &TestEnv, tenant: TenantId, cipher: &TenantKey, total: usize) -> Vec<Sample> {
    let mut owner = env.db.owner().await;
    for statement in [
        "ALTER TABLE clients.clients DISABLE TRIGGER keep_name_terms",
        "DROP INDEX clients.clients_last_first",
        "DROP INDEX clients.clients_first",
        "DROP INDEX clients.clients_preferred_last",
        "DROP INDEX clients.clients_ssn_hash",
        "DROP INDEX clients.clients_ssn_last4",
        "DROP INDEX clients.clients_birth_date",
    ] {
        sqlx::query(statement).execute(&mut owner).await.unwrap();
    }
    let mut rng = rand::rng();
    let mut samples = Vec::new();
    let batch = 20_000;
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        let (mut ids, mut firsts, mut lasts, mut births) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut sealed, mut hashes, mut last4s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let id = Uuid::now_v7();
            let first = first_name(&mut rng);
            let last = last_name(&mut rng);
            let birth = chrono::NaiveDate::from_ymd_opt(
                rng.random_range(1940..2010),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            )
            .unwrap();
            let ssn = format!(
                "{:03}{:02}{:04}",
                rng.random_range(1..900),
                rng.random_range(1..100),
                rng.random_range(1..10000)
            );
            let context = [tenant.as_uuid().as_bytes().as_slice(), id.as_bytes()].concat();
            sealed.push(cipher.seal(&ssn, &context).bytes);
            hashes.push(cipher.blind_index(&ssn));
            last4s.push(ssn[5..].to_string());
            if samples.len() < 10_000 && rng.random_bool(0.02) {
                samples.push(Sample {
                    first: first.clone(),
                    last: last.clone(),
                    ssn: ssn.clone(),
                    birth_date: caseway_platform::convert::date(birth),
                });
            }
            ids.push(id);
            firsts.push(first);
            lasts.push(last);
            births.push(birth);
        }
        sqlx::query(
            "INSERT INTO clients.clients (tenant_id, id, first_name, last_name, birth_date, birth_date_quality, \
             ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status) \
             SELECT $1, id, first_name, last_name, birth_date, 1, sealed, 'tenant', hash, last4, 1, 1 \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::date[], $6::bytea[], $7::bytea[], $8::text[]) \
             AS t(id, first_name, last_name, birth_date, sealed, hash, last4)",
        )
        .bind(tenant.as_uuid())
        .bind(&ids)
        .bind(&firsts)
        .bind(&lasts)
        .bind(&births)
        .bind(&sealed)
        .bind(&hashes)
        .bind(&last4s)
        .execute(&mut owner)
        .await
        .unwrap();
        done += n;
    }
    for statement in [
        "SET maintenance_work_mem = '512MB'",
        "ALTER TABLE clients.clients ENABLE TRIGGER keep_name_terms",
        "SELECT clients.add_name_terms(tenant_id, array_agg(DISTINCT k)) \
         FROM clients.clients, unnest(ARRAY[first_key, last_key, preferred_key]) AS k GROUP BY tenant_id",
        "CREATE INDEX clients_last_first ON clients.clients (tenant_id, last_key, first_key, id) \
         WHERE deleted_at IS NULL",
        "CREATE INDEX clients_first ON clients.clients (tenant_id, first_key, id) WHERE deleted_at IS NULL",
        "CREATE INDEX clients_preferred_last ON clients.clients (tenant_id, preferred_key, last_key, id) \
         WHERE deleted_at IS NULL AND preferred_key <> ''",
        "CREATE INDEX clients_ssn_hash ON clients.clients (tenant_id, ssn_hash) WHERE ssn_hash IS NOT NULL",
        "CREATE INDEX clients_ssn_last4 ON clients.clients (tenant_id, ssn_last4) WHERE ssn_last4 IS NOT NULL",
        "CREATE INDEX clients_birth_date ON clients.clients (tenant_id, birth_date)",
        "VACUUM ANALYZE clients.clients",
        "VACUUM ANALYZE clients.name_term_grams",
        "VACUUM ANALYZE clients.name_term_variants",
    ] {
        sqlx::query(statement).execute(&mut owner).await.unwrap();
    }
    samples
}

/// A one-letter slip: a letter dropped, doubled or swapped with its neighbour.
fn typo(text: &str, rng: &mut impl Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at]),
        _ => chars.swap(at, at + 1),
    }
    chars.into_iter().collect()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
