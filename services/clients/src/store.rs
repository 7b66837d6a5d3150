//! The store room of the clients service: client and enrollment SQL, inside tenant
//! transactions that row-level security scopes, and rows read into domain types (a stored code
//! this service does not know is INTERNAL, never a guess).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use caseway_platform::error::{Error, Result};
use caseway_platform::{TenantId, TenantStatements};

use crate::domain::{Client, Contact, DataQuality, Demographic, Enrollment, Search, VeteranStatus};
use crate::pii::Sealed;

/// A stored client. The SSN is only here sealed, hashed and (in the client) as its last four
/// digits.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub client: Client,
    pub ssn_sealed: Option<Sealed>,
    pub ssn_hash: Option<Vec<u8>>,
}

/// The columns a [`Row`] reads, in its order.
macro_rules! client_columns {
    () => {
        "id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
         birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, \
         veteran_status, demographics, contact, organization_id, version, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    first_name: String,
    middle_name: String,
    last_name: String,
    suffix: String,
    preferred_name: String,
    birth_date: Option<NaiveDate>,
    birth_date_quality: i16,
    ssn_sealed: Option<Vec<u8>>,
    ssn_key_id: Option<String>,
    ssn_hash: Option<Vec<u8>>,
    ssn_last4: Option<String>,
    ssn_quality: i16,
    veteran_status: i16,
    demographics: Json<Vec<Demographic>>,
    contact: Json<Contact>,
    organization_id: Option<Uuid>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A stored code no release of this service wrote.
fn unknown(column: &str, value: i16) -> Error {
    Error::internal(anyhow::anyhow!(
        "clients.{column} holds {value}, which is not one of its codes"
    ))
}

fn data_quality(column: &str, value: i16) -> Result<DataQuality> {
    DataQuality::from_code(value.into()).ok_or_else(|| unknown(column, value))
}

impl TryFrom<Row> for ClientRecord {
    type Error = Error;

    fn try_from(r: Row) -> Result<Self> {
        Ok(ClientRecord {
            client: Client {
                id: r.id,
                first_name: r.first_name,
                middle_name: r.middle_name,
                last_name: r.last_name,
                suffix: r.suffix,
                preferred_name: r.preferred_name,
                birth_date: r.birth_date,
                birth_date_quality: data_quality(
                    "clients.birth_date_quality",
                    r.birth_date_quality,
                )?,
                ssn_last4: r.ssn_last4,
                ssn_quality: data_quality("clients.ssn_quality", r.ssn_quality)?,
                veteran_status: VeteranStatus::from_code(r.veteran_status.into())
                    .ok_or_else(|| unknown("clients.veteran_status", r.veteran_status))?,
                demographics: r.demographics.0,
                contact: r.contact.0,
                organization_id: r.organization_id,
                version: r.version,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            ssn_sealed: r
                .ssn_sealed
                .zip(r.ssn_key_id)
                .map(|(bytes, key_id)| Sealed { key_id, bytes }),
            ssn_hash: r.ssn_hash,
        })
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    record: &ClientRecord,
) -> Result<ClientRecord> {
    let c = &record.client;
    let row: Row = sqlx::query_as(concat!(
        "INSERT INTO clients.clients (tenant_id, id, first_name, middle_name, last_name, suffix, \
         preferred_name, birth_date, birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, \
         ssn_last4, ssn_quality, veteran_status, demographics, contact, organization_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING ",
        client_columns!()
    ))
    .bind(tenant.as_uuid())
    .bind(c.id)
    .bind(&c.first_name)
    .bind(&c.middle_name)
    .bind(&c.last_name)
    .bind(&c.suffix)
    .bind(&c.preferred_name)
    .bind(c.birth_date)
    .bind(c.birth_date_quality as i16)
    .bind(record.ssn_sealed.as_ref().map(|s| s.bytes.clone()))
    .bind(record.ssn_sealed.as_ref().map(|s| s.key_id.clone()))
    .bind(&record.ssn_hash)
    .bind(&c.ssn_last4)
    .bind(c.ssn_quality as i16)
    .bind(c.veteran_status as i16)
    .bind(Json(&c.demographics))
    .bind(Json(&c.contact))
    .bind(c.organization_id)
    .fetch_one(conn)
    .await?;
    row.try_into()
}

pub async fn load(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ClientRecord>> {
    let sql = if for_update {
        concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients.clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients.clients WHERE id = $1 AND deleted_at IS NULL"
        )
    };
    let row: Option<Row> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    row.map(TryInto::try_into).transpose()
}

/// A live client by id, read in one statement (`clients.read_client`).
pub async fn read(read: &mut TenantStatements, id: Uuid) -> Result<Option<ClientRecord>> {
    let tenant = read.tenant_id();
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        client_columns!(),
        " FROM clients.read_client($1, $2)"
    ))
    .bind(tenant.as_uuid())
    .bind(id)
    .fetch_optional(read.conn())
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// A page of the tenant's live clients by id, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ClientRecord>> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        client_columns!(),
        " FROM clients.clients WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

pub async fn update(conn: &mut PgConnection, record: &ClientRecord) -> Result<ClientRecord> {
    let c = &record.client;
    let row: Row = sqlx::query_as(concat!(
        "UPDATE clients.clients SET first_name = $2, middle_name = $3, last_name = $4, \
         suffix = $5, preferred_name = $6, birth_date = $7, birth_date_quality = $8, \
         ssn_sealed = $9, ssn_key_id = $10, ssn_hash = $11, ssn_last4 = $12, ssn_quality = $13, \
         veteran_status = $14, demographics = $15, contact = $16, version = version + 1, \
         updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING ",
        client_columns!()
    ))
    .bind(c.id)
    .bind(&c.first_name)
    .bind(&c.middle_name)
    .bind(&c.last_name)
    .bind(&c.suffix)
    .bind(&c.preferred_name)
    .bind(c.birth_date)
    .bind(c.birth_date_quality as i16)
    .bind(record.ssn_sealed.as_ref().map(|s| s.bytes.clone()))
    .bind(record.ssn_sealed.as_ref().map(|s| s.key_id.clone()))
    .bind(&record.ssn_hash)
    .bind(&c.ssn_last4)
    .bind(c.ssn_quality as i16)
    .bind(c.veteran_status as i16)
    .bind(Json(&c.demographics))
    .bind(Json(&c.contact))
    .fetch_one(conn)
    .await?;
    row.try_into()
}

/// Up to `limit` of the tenant's SSNs sealed with a deployment key (before tenants had keys of
/// their own), locked: client id, key id and sealed bytes.
pub async fn legacy_sealed_ssns(
    conn: &mut PgConnection,
    tenant_key_id: &str,
    limit: i64,
) -> Result<Vec<(Uuid, Sealed)>> {
    let rows: Vec<(Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, ssn_key_id, ssn_sealed FROM clients.clients \
          WHERE tenant_id = platform.current_tenant() AND ssn_sealed IS NOT NULL \
            AND ssn_key_id <> $1 \
          LIMIT $2 FOR UPDATE",
    )
    .bind(tenant_key_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, key_id, bytes)| (id, Sealed { key_id, bytes }))
        .collect())
}

/// Replaces a client's sealed SSN and its blind index (the SSN itself is unchanged: no version
/// change, no event).
pub async fn reseal_ssn(
    conn: &mut PgConnection,
    id: Uuid,
    sealed: &Sealed,
    hash: &[u8],
) -> Result<()> {
    sqlx::query(
        "UPDATE clients.clients SET ssn_sealed = $2, ssn_key_id = $3, ssn_hash = $4 \
          WHERE tenant_id = platform.current_tenant() AND id = $1",
    )
    .bind(id)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE clients.clients SET deleted_at = now(), deleted_reason = $2, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Matches, best first, after `(score, id)` of the previous page. A search by name runs in a
/// transaction of the tenant; one without a name is one statement that enters the tenant
/// itself (`clients.read_clients_by`), in a transaction or on a [`TenantStatements`].
pub async fn search(
    conn: &mut PgConnection,
    tenant: TenantId,
    search: &Search,
    after: Option<(f64, Uuid)>,
    limit: i64,
) -> Result<Vec<(ClientRecord, f64)>> {
    let (after_score, after_id) = after.unzip();
    #[derive(sqlx::FromRow)]
    struct Scored {
        #[sqlx(flatten)]
        row: Row,
        score: f64,
    }
    let rows: Vec<Scored> = match &search.name {
        Some(name) => {
            // Every arm of the search is driven by a name key's index whatever the values, so
            // the plan made once for the connection serves every search; planned afresh for
            // each, the statement spent about 3 ms planning (PostgreSQL would plan it five
            // times before it judged a generic plan good enough).
            sqlx::query("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
                .execute(&mut *conn)
                .await?;
            sqlx::query_as(NAME_SEARCH)
                .bind(&name.first)
                .bind(&name.last)
                .bind(&name.single)
                .bind(&name.single_least)
                .bind(search.birth_date)
                .bind(&search.ssn_hash)
                .bind(&search.ssn_last4)
                .bind(after_score)
                .bind(after_id)
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
        None => {
            // Every match scores 1: the page is cut by id alone.
            sqlx::query_as(concat!(
                "SELECT ",
                client_columns!(),
                ", 1.0::float8 AS score FROM clients.read_clients_by($1, $2, $3, $4, $5, $6)"
            ))
            .bind(tenant.as_uuid())
            .bind(search.birth_date)
            .bind(&search.ssn_hash)
            .bind(&search.ssn_last4)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.into_iter()
        .map(|s| Ok((s.row.try_into()?, s.score)))
        .collect()
}

/// What every arm of the name search asks of a client besides its name: not deleted, and the
/// birth date and SSN when the search names them.
macro_rules! client_filters {
    () => {
        "c.deleted_at IS NULL AND ($5::date IS NULL OR c.birth_date = $5) \
         AND ($6::bytea IS NULL OR c.ssn_hash = $6) AND ($7::text IS NULL OR c.ssn_last4 = $7)"
    };
}

/// The clients of each matched pair with `$first` (a first or preferred name's key) and the
/// last name: all of them, at the pair's score, unless a single name of theirs scores better.
macro_rules! pair_arm {
    ($first:literal) => {
        concat!(
            "SELECT c.id, p.score FROM pair p CROSS JOIN best b JOIN clients.clients c \
               ON c.",
            $first,
            " = p.first AND c.last_key = p.last AND c.",
            $first,
            " <> '' AND ",
            client_filters!(),
            " WHERE b.singles = '{}' OR clients.name_score(c.first_key, c.last_key, \
               c.preferred_key, b.singles, b.pairs) <= p.score + 1e-9"
        )
    };
}

/// The clients of each term matched as the name `$key`: in id order, those whose best reading
/// it is, after the page token, a page at most.
macro_rules! single_arm {
    ($key:literal) => {
        concat!(
            "SELECT c.id, s.score FROM single s CROSS JOIN best b CROSS JOIN LATERAL ( \
               SELECT c.id FROM clients.clients c WHERE c.",
            $key,
            " = s.term AND c.",
            $key,
            " <> '' AND ",
            client_filters!(),
            " AND c.id < CASE WHEN s.score = $8 THEN $9 \
                 ELSE 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid END \
               AND clients.name_score(c.first_key, c.last_key, c.preferred_key, b.singles, \
                 b.pairs) <= s.score + 1e-9 \
               ORDER BY c.id DESC LIMIT $10) c \
             WHERE $8::float8 IS NULL OR s.score <= $8"
        )
    };
}

/// Name search in two steps (see the name search migrations): each phrase of the query finds
/// up to ten similar terms of the tenant's vocabulary, by trigram similarity (pg_trgm's, through
/// the vocabulary's trigram index in `clients.similar_name_terms`; not for a whole phrase that
/// must nearly equal a name) or by one edit (shared deletion variants, scored 1 - 1/length);
/// then clients are found by exact name keys. A client scores the best of its readings: the
/// mean of first and last name similarity for a pair, the similarity of a single name
/// otherwise. Only equality reaches the clients, so every step is an index scan under
/// row-level security.
///
/// A term matched as any one name can name tens of thousands of clients (a common first name),
/// so each is read in id order, keeping only the clients whose best reading it is
/// (`clients.name_score`), at most a page of them after the page token: the page, ordered by
/// score and id, can use no more. Pairs name few clients, and are read whole (a pair's client
/// is read at its best pair when it is on the page; the check that no single name beats the
/// pair is skipped when no single name matched, as for most two-word searches).
///
/// Ten, the terms kept of each phrase, is written twice: asked of `similar_name_terms` (its best
/// ten suffice, since the best ten of both ways of matching are among each way's best ten) and
/// as the cut of `matched`.
const NAME_SEARCH: &str = concat!(
    "\
WITH phrase AS MATERIALIZED ( \
    SELECT DISTINCT clients.name_key(p) AS p FROM unnest($1::text[] || $2::text[] || $3::text[]) AS p \
), similar_term AS MATERIALIZED ( \
    SELECT phrase AS p, term, score FROM clients.similar_name_terms(ARRAY( \
        SELECT clients.name_key(x) FROM unnest($1::text[] || $2::text[]) AS x \
        UNION \
        SELECT clients.name_key(x) FROM unnest($3::text[], $4::float8[]) AS s(x, least) \
         WHERE least < 0.8), 10) \
), variant AS MATERIALIZED ( \
    SELECT p, x FROM phrase, unnest(clients.name_variants(p)) AS x \
), scored_term AS ( \
    SELECT p, term, score FROM similar_term \
    UNION ALL \
    SELECT DISTINCT q.p, v.term, CASE WHEN v.term = q.p THEN 1.0::float8 \
                             ELSE 1.0 - 1.0 / greatest(length(v.term), length(q.p)) END \
      FROM variant q JOIN clients.name_term_variants v ON v.variant = q.x \
), matched AS MATERIALIZED ( \
    SELECT p, term, score FROM ( \
        SELECT p, term, max(score) AS score, \
               row_number() OVER (PARTITION BY p ORDER BY max(score) DESC, term) AS rank \
          FROM scored_term GROUP BY p, term HAVING max(score) >= 0.3 \
    ) ranked WHERE rank <= 10 \
), reading AS ( \
    SELECT clients.name_key(first) AS first, clients.name_key(last) AS last \
      FROM unnest($1::text[], $2::text[]) AS r(first, last) \
), single AS MATERIALIZED ( \
    SELECT m.term, max(m.score) AS score FROM unnest($3::text[], $4::float8[]) AS s(p, least) \
      JOIN matched m ON m.p = clients.name_key(s.p) AND m.score >= s.least GROUP BY m.term \
), pair AS MATERIALIZED ( \
    SELECT f.term AS first, l.term AS last, max((f.score + l.score) / 2) AS score \
      FROM reading r JOIN matched f ON f.p = r.first JOIN matched l ON l.p = r.last GROUP BY 1, 2 \
), best AS MATERIALIZED ( \
    SELECT (SELECT coalesce(jsonb_object_agg(term, score), '{}') FROM single) AS singles, \
           (SELECT coalesce(jsonb_object_agg(first || '|' || last, score), '{}') FROM pair) AS pairs \
), hit AS (",
    pair_arm!("first_key"),
    " UNION ALL ",
    pair_arm!("preferred_key"),
    " UNION ALL ",
    single_arm!("last_key"),
    " UNION ALL ",
    single_arm!("first_key"),
    " UNION ALL ",
    single_arm!("preferred_key"),
    " \
), page AS ( \
    SELECT id, max(score)::float8 AS score FROM hit GROUP BY id \
    HAVING ($8::float8 IS NULL OR (max(score)::float8, id) < ($8, $9)) \
    ORDER BY 2 DESC, id DESC LIMIT $10 \
) \
SELECT c.id, c.first_name, c.middle_name, c.last_name, c.suffix, c.preferred_name, c.birth_date, \
       c.birth_date_quality, c.ssn_sealed, c.ssn_key_id, c.ssn_hash, c.ssn_last4, c.ssn_quality, \
       c.veteran_status, c.demographics, c.contact, c.organization_id, c.version, c.created_at, \
       c.updated_at, p.score \
  FROM page p JOIN clients.clients c ON c.id = p.id \
 ORDER BY p.score DESC, p.id DESC"
);

#[derive(sqlx::FromRow)]
struct EnrollmentRow {
    id: Uuid,
    client_id: Uuid,
    program_id: Uuid,
    entry_date: NaiveDate,
    exit_date: Option<NaiveDate>,
    exit_destination: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EnrollmentRow> for Enrollment {
    fn from(r: EnrollmentRow) -> Self {
        Enrollment {
            id: r.id,
            client_id: r.client_id,
            program_id: r.program_id,
            entry_date: r.entry_date,
            exit_date: r.exit_date,
            exit_destination: r.exit_destination,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn open_enrollment(
    conn: &mut PgConnection,
    client_id: Uuid,
    program_id: Uuid,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM clients.enrollments WHERE client_id = $1 AND program_id = $2 AND exit_date IS NULL",
    )
    .bind(client_id)
    .bind(program_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn insert_enrollment(
    conn: &mut PgConnection,
    tenant: TenantId,
    client_id: Uuid,
    program_id: Uuid,
    entry_date: NaiveDate,
) -> Result<Enrollment> {
    let row: EnrollmentRow = sqlx::query_as(
        "INSERT INTO clients.enrollments (tenant_id, id, client_id, program_id, entry_date) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id, client_id, program_id, entry_date, exit_date, \
         exit_destination, version, created_at, updated_at",
    )
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(client_id)
    .bind(program_id)
    .bind(entry_date)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn load_enrollment(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Enrollment>> {
    let sql = if for_update {
        "SELECT id, client_id, program_id, entry_date, exit_date, exit_destination, version, \
         created_at, updated_at FROM clients.enrollments WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, client_id, program_id, entry_date, exit_date, exit_destination, version, \
         created_at, updated_at FROM clients.enrollments WHERE id = $1"
    };
    let row: Option<EnrollmentRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(Into::into))
}

pub async fn exit_enrollment(
    conn: &mut PgConnection,
    id: Uuid,
    exit_date: NaiveDate,
    destination: &str,
) -> Result<Enrollment> {
    let row: EnrollmentRow = sqlx::query_as(
        "UPDATE clients.enrollments SET exit_date = $2, exit_destination = $3, version = version + 1, \
         updated_at = now() WHERE id = $1 RETURNING id, client_id, program_id, entry_date, exit_date, \
         exit_destination, version, created_at, updated_at",
    )
    .bind(id)
    .bind(exit_date)
    .bind(destination)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// A client's enrollments, latest entry first, after `(entry_date, id)` of the previous page.
pub async fn list_enrollments(
    conn: &mut PgConnection,
    client_id: Uuid,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<Enrollment>> {
    let (after_date, after_id) = after.unzip();
    let rows: Vec<EnrollmentRow> = sqlx::query_as(
        "SELECT id, client_id, program_id, entry_date, exit_date, exit_destination, version, \
         created_at, updated_at FROM clients.enrollments WHERE client_id = $1 \
         AND ($2::date IS NULL OR (entry_date, id) < ($2, $3)) \
         ORDER BY entry_date DESC, id DESC LIMIT $4",
    )
    .bind(client_id)
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
