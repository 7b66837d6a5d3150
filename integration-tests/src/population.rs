//! A tenant's population for the benchmarks that need many clients: names drawn as a real
//! population's are (a few hundred common ones and a long tail), dates of birth and SSNs sealed
//! with the tenant's own key, inserted straight into `clients.clients` in batches with the
//! search indexes built once after.

use chrono::NaiveDate;
use rand::Rng;
use rand::seq::IndexedRandom;
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_clients::tenant_keys::TenantKey;
use caseway_platform::TenantId;

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

pub fn last_name(rng: &mut impl Rng) -> String {
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

pub fn first_name(rng: &mut impl Rng) -> String {
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

/// A client as loaded, kept to search for later.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: Uuid,
    pub first: String,
    pub last: String,
    pub ssn: String,
    pub birth_date: NaiveDate,
}

/// The search indexes of `clients.clients` as the migrations define them (every index but its
/// primary key and unique ones), dropped before a bulk load and built after it.
pub struct SearchIndexes(Vec<String>);

/// Drops the search indexes and stops the name-vocabulary trigger, as the table's owner; gives
/// the indexes' definitions to build them again ([`build_search_indexes`]).
pub async fn drop_search_indexes(owner: &mut PgConnection) -> SearchIndexes {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = 'clients.clients'::regclass AND NOT x.indisunique ORDER BY 1",
    )
    .fetch_all(&mut *owner)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE clients.clients DISABLE TRIGGER keep_name_terms")
        .execute(&mut *owner)
        .await
        .unwrap();
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX clients.{name}")))
            .execute(&mut *owner)
            .await
            .unwrap();
    }
    SearchIndexes(
        indexes
            .into_iter()
            .map(|(_, definition)| definition)
            .collect(),
    )
}

/// Builds the name vocabulary of every client and the search indexes again, and analyzes.
pub async fn build_search_indexes(owner: &mut PgConnection, indexes: SearchIndexes) {
    let mut statements = vec![
        "SET maintenance_work_mem = '512MB'".to_string(),
        "ALTER TABLE clients.clients ENABLE TRIGGER keep_name_terms".to_string(),
        "SELECT clients.add_name_terms(tenant_id, array_agg(DISTINCT k)) \
         FROM clients.clients, unnest(ARRAY[first_key, last_key, preferred_key]) AS k \
         GROUP BY tenant_id"
            .to_string(),
    ];
    statements.extend(indexes.0);
    statements.extend(
        [
            "VACUUM ANALYZE clients.clients",
            "VACUUM ANALYZE clients.name_terms",
            "VACUUM ANALYZE clients.name_term_variants",
        ]
        .map(String::from),
    );
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *owner)
            .await
            .unwrap();
    }
}

/// Inserts `total` clients of `tenant`, their SSNs sealed with its key, in batches; gives every
/// id, and about `keep` of the people (drawn evenly) to search for.
pub async fn insert_clients(
    owner: &mut PgConnection,
    tenant: TenantId,
    cipher: &TenantKey,
    total: usize,
    keep: usize,
) -> (Vec<Uuid>, Vec<Person>) {
    let mut rng = rand::rng();
    let mut all = Vec::with_capacity(total);
    let mut kept = Vec::new();
    let chance = (keep as f64 / total.max(1) as f64).min(1.0);
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
            let birth = NaiveDate::from_ymd_opt(
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
            if kept.len() < keep && rng.random_bool(chance) {
                kept.push(Person {
                    id,
                    first: first.clone(),
                    last: last.clone(),
                    ssn: ssn.clone(),
                    birth_date: birth,
                });
            }
            ids.push(id);
            firsts.push(first);
            lasts.push(last);
            births.push(birth);
        }
        sqlx::query(
            "INSERT INTO clients.clients (tenant_id, id, first_name, last_name, birth_date, \
             birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, \
             veteran_status) \
             SELECT $1, id, first_name, last_name, birth_date, 1, sealed, 'tenant', hash, last4, 1, 1 \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::date[], $6::bytea[], \
                         $7::bytea[], $8::text[]) \
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
        .execute(&mut *owner)
        .await
        .unwrap();
        all.extend(ids);
        done += n;
    }
    (all, kept)
}

/// A one-letter slip: a letter dropped, doubled or swapped with its neighbour.
pub fn typo(text: &str, rng: &mut impl Rng) -> String {
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
