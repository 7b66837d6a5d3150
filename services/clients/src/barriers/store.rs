//! Barrier SQL, inside tenant transactions that row-level security scopes.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::Result;

use super::domain::{BarrierFields, BarrierStatus};

#[derive(Clone, Debug)]
pub struct BarrierRecord {
    pub id: Uuid,
    pub client_id: Uuid,
    pub barrier_type_id: Uuid,
    pub barrier_type_code: String,
    pub fields: BarrierFields,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    client_id: Uuid,
    barrier_type_id: Uuid,
    barrier_type_code: String,
    identified_date: NaiveDate,
    status: i16,
    resolved_date: Option<NaiveDate>,
    note: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for BarrierRecord {
    fn from(r: Row) -> Self {
        BarrierRecord {
            id: r.id,
            client_id: r.client_id,
            barrier_type_id: r.barrier_type_id,
            barrier_type_code: r.barrier_type_code,
            fields: BarrierFields {
                identified_date: r.identified_date,
                status: BarrierStatus::from_code(r.status.into())
                    .unwrap_or(BarrierStatus::Identified),
                resolved_date: r.resolved_date,
                note: r.note,
            },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "id, client_id, barrier_type_id, barrier_type_code, identified_date, status, \
    resolved_date, note, version, created_at, updated_at";

pub struct NewBarrier<'a> {
    pub client_id: Uuid,
    pub barrier_type_id: Uuid,
    pub barrier_type_code: &'a str,
    pub fields: &'a BarrierFields,
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: NewBarrier<'_>,
) -> Result<BarrierRecord> {
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO clients.barriers (tenant_id, id, client_id, barrier_type_id, barrier_type_code, \
         identified_date, status, resolved_date, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING {COLUMNS}"
    )))
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(new.client_id)
    .bind(new.barrier_type_id)
    .bind(new.barrier_type_code)
    .bind(new.fields.identified_date)
    .bind(new.fields.status as i16)
    .bind(new.fields.resolved_date)
    .bind(&new.fields.note)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn load(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<BarrierRecord>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients.barriers WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &BarrierFields,
) -> Result<BarrierRecord> {
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE clients.barriers SET identified_date = $2, status = $3, resolved_date = $4, note = $5, \
         version = version + 1, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(fields.identified_date)
    .bind(fields.status as i16)
    .bind(fields.resolved_date)
    .bind(&fields.note)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// A client's barriers, latest identified first, after `(identified_date, id)` of the previous
/// page; of one status if given.
pub async fn list(
    conn: &mut PgConnection,
    client_id: Uuid,
    status: Option<BarrierStatus>,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<BarrierRecord>> {
    let (after_date, after_id) = after.unzip();
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients.barriers WHERE client_id = $1 \
         AND ($2::smallint IS NULL OR status = $2) \
         AND ($3::date IS NULL OR (identified_date, id) < ($3, $4)) \
         ORDER BY identified_date DESC, id DESC LIMIT $5"
    )))
    .bind(client_id)
    .bind(status.map(|s| s as i16))
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
