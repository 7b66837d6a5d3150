//! Client SQL, inside tenant transactions that row-level security scopes.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::Result;
use caseway_platform::pii::Sealed;

use crate::domain::{Contact, DataQuality, Demographic, VeteranStatus};

/// A stored client. The SSN is only here sealed, hashed and as its last four digits.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub id: Uuid,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub preferred_name: String,
    pub birth_date: Option<NaiveDate>,
    pub birth_date_quality: DataQuality,
    pub ssn_sealed: Option<Sealed>,
    pub ssn_hash: Option<Vec<u8>>,
    pub ssn_last4: Option<String>,
    pub ssn_quality: DataQuality,
    pub veteran_status: VeteranStatus,
    pub demographics: Vec<Demographic>,
    pub contact: Contact,
    pub organization_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

impl From<Row> for ClientRecord {
    fn from(r: Row) -> Self {
        ClientRecord {
            id: r.id,
            first_name: r.first_name,
            middle_name: r.middle_name,
            last_name: r.last_name,
            suffix: r.suffix,
            preferred_name: r.preferred_name,
            birth_date: r.birth_date,
            birth_date_quality: DataQuality::from_code(r.birth_date_quality.into())
                .unwrap_or(DataQuality::NotCollected),
            ssn_sealed: r
                .ssn_sealed
                .zip(r.ssn_key_id)
                .map(|(bytes, key_id)| Sealed { key_id, bytes }),
            ssn_hash: r.ssn_hash,
            ssn_last4: r.ssn_last4,
            ssn_quality: DataQuality::from_code(r.ssn_quality.into())
                .unwrap_or(DataQuality::NotCollected),
            veteran_status: VeteranStatus::from_code(r.veteran_status.into())
                .unwrap_or(VeteranStatus::NotCollected),
            demographics: r.demographics.0,
            contact: r.contact.0,
            organization_id: r.organization_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    c: &ClientRecord,
) -> Result<ClientRecord> {
    let row: Row = sqlx::query_as(
        "INSERT INTO clients.clients (tenant_id, id, first_name, middle_name, last_name, suffix, \
         preferred_name, birth_date, birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, \
         ssn_quality, veteran_status, demographics, contact, organization_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
         birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status, \
         demographics, contact, organization_id, version, created_at, updated_at",
    )
    .bind(tenant.as_uuid())
    .bind(c.id)
    .bind(&c.first_name)
    .bind(&c.middle_name)
    .bind(&c.last_name)
    .bind(&c.suffix)
    .bind(&c.preferred_name)
    .bind(c.birth_date)
    .bind(c.birth_date_quality as i16)
    .bind(c.ssn_sealed.as_ref().map(|s| s.bytes.clone()))
    .bind(c.ssn_sealed.as_ref().map(|s| s.key_id.clone()))
    .bind(&c.ssn_hash)
    .bind(&c.ssn_last4)
    .bind(c.ssn_quality as i16)
    .bind(c.veteran_status as i16)
    .bind(Json(&c.demographics))
    .bind(Json(&c.contact))
    .bind(c.organization_id)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn load(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<ClientRecord>> {
    let sql = if for_update {
        "SELECT id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
         birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status, \
         demographics, contact, organization_id, version, created_at, updated_at \
         FROM clients.clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    } else {
        "SELECT id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
         birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status, \
         demographics, contact, organization_id, version, created_at, updated_at \
         FROM clients.clients WHERE id = $1 AND deleted_at IS NULL"
    };
    let row: Option<Row> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(Into::into))
}

pub async fn update(conn: &mut PgConnection, c: &ClientRecord) -> Result<ClientRecord> {
    let row: Row = sqlx::query_as(
        "UPDATE clients.clients SET first_name = $2, middle_name = $3, last_name = $4, suffix = $5, \
         preferred_name = $6, birth_date = $7, birth_date_quality = $8, ssn_sealed = $9, ssn_key_id = $10, \
         ssn_hash = $11, ssn_last4 = $12, ssn_quality = $13, veteran_status = $14, demographics = $15, \
         contact = $16, version = version + 1, updated_at = now() WHERE id = $1 AND deleted_at IS NULL \
         RETURNING id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
         birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status, \
         demographics, contact, organization_id, version, created_at, updated_at",
    )
    .bind(c.id)
    .bind(&c.first_name)
    .bind(&c.middle_name)
    .bind(&c.last_name)
    .bind(&c.suffix)
    .bind(&c.preferred_name)
    .bind(c.birth_date)
    .bind(c.birth_date_quality as i16)
    .bind(c.ssn_sealed.as_ref().map(|s| s.bytes.clone()))
    .bind(c.ssn_sealed.as_ref().map(|s| s.key_id.clone()))
    .bind(&c.ssn_hash)
    .bind(&c.ssn_last4)
    .bind(c.ssn_quality as i16)
    .bind(c.veteran_status as i16)
    .bind(Json(&c.demographics))
    .bind(Json(&c.contact))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
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

/// What a search looks for; every given part must match.
pub struct Search {
    pub name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub ssn_hash: Option<Vec<u8>>,
    pub ssn_last4: Option<String>,
}

/// Matches, best first, after `(score, id)` of the previous page.
pub async fn search(
    conn: &mut PgConnection,
    search: &Search,
    after: Option<(f64, Uuid)>,
    limit: i64,
) -> Result<Vec<(ClientRecord, f64)>> {
    let (after_score, after_id) = after.unzip();
    // The optional filters (`$1 IS NULL OR ...`) would make a cached generic plan scan every
    // row; planned for the actual values, the trigram index does the work.
    sqlx::query("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
        .execute(&mut *conn)
        .await?;
    #[derive(sqlx::FromRow)]
    struct Scored {
        #[sqlx(flatten)]
        row: Row,
        score: f64,
    }
    let rows: Vec<Scored> = sqlx::query_as(
        "SELECT * FROM ( \
           SELECT id, first_name, middle_name, last_name, suffix, preferred_name, birth_date, \
           birth_date_quality, ssn_sealed, ssn_key_id, ssn_hash, ssn_last4, ssn_quality, veteran_status, \
           demographics, contact, organization_id, version, created_at, updated_at, \
           (CASE WHEN $1::text IS NULL THEN 1.0 \
                 ELSE greatest(similarity(search_name, $1), word_similarity($1, search_name)) END)::float8 AS score \
           FROM clients.clients WHERE deleted_at IS NULL \
           AND ($1::text IS NULL OR search_name % $1 OR $1 <% search_name) \
           AND ($2::date IS NULL OR birth_date = $2) \
           AND ($3::bytea IS NULL OR ssn_hash = $3) \
           AND ($4::text IS NULL OR ssn_last4 = $4) \
         ) matches \
         WHERE ($5::float8 IS NULL OR (score, id) < ($5, $6)) \
         ORDER BY score DESC, id DESC LIMIT $7",
    )
    .bind(search.name.as_deref())
    .bind(search.birth_date)
    .bind(&search.ssn_hash)
    .bind(&search.ssn_last4)
    .bind(after_score)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|s| (s.row.into(), s.score)).collect())
}

/// A stored enrollment.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EnrollmentRecord {
    pub id: Uuid,
    pub client_id: Uuid,
    pub program_id: Uuid,
    pub entry_date: NaiveDate,
    pub exit_date: Option<NaiveDate>,
    pub exit_destination: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
) -> Result<EnrollmentRecord> {
    Ok(sqlx::query_as(
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
    .await?)
}

pub async fn load_enrollment(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<EnrollmentRecord>> {
    let sql = if for_update {
        "SELECT id, client_id, program_id, entry_date, exit_date, exit_destination, version, \
         created_at, updated_at FROM clients.enrollments WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, client_id, program_id, entry_date, exit_date, exit_destination, version, \
         created_at, updated_at FROM clients.enrollments WHERE id = $1"
    };
    Ok(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?)
}

pub async fn exit_enrollment(
    conn: &mut PgConnection,
    id: Uuid,
    exit_date: NaiveDate,
    destination: &str,
) -> Result<EnrollmentRecord> {
    Ok(sqlx::query_as(
        "UPDATE clients.enrollments SET exit_date = $2, exit_destination = $3, version = version + 1, \
         updated_at = now() WHERE id = $1 RETURNING id, client_id, program_id, entry_date, exit_date, \
         exit_destination, version, created_at, updated_at",
    )
    .bind(id)
    .bind(exit_date)
    .bind(destination)
    .fetch_one(conn)
    .await?)
}

/// A client's enrollments, latest entry first, after `(entry_date, id)` of the previous page.
pub async fn list_enrollments(
    conn: &mut PgConnection,
    client_id: Uuid,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<EnrollmentRecord>> {
    let (after_date, after_id) = after.unzip();
    Ok(sqlx::query_as(
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
    .await?)
}
