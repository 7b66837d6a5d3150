//! The store room of barriers: their SQL, inside tenant transactions that row-level security
//! scopes, and rows read into domain types (a stored status this service does not know is
//! INTERNAL, never a guess).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::{Error, Result};

use super::domain::{Barrier, BarrierFields, BarrierStatus};

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

impl TryFrom<Row> for Barrier {
    type Error = Error;

    fn try_from(r: Row) -> Result<Self> {
        let status = BarrierStatus::from_code(r.status.into()).ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "clients.barriers.status holds {}, which is not one of its codes",
                r.status
            ))
        })?;
        Ok(Barrier {
            id: r.id,
            client_id: r.client_id,
            barrier_type_id: r.barrier_type_id,
            barrier_type_code: r.barrier_type_code,
            fields: BarrierFields {
                identified_date: r.identified_date,
                status,
                resolved_date: r.resolved_date,
                note: r.note,
            },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, client_id, barrier_type_id, barrier_type_code, identified_date, status, \
    resolved_date, note, version, created_at, updated_at";

pub struct BarrierInsert<'a> {
    pub client_id: Uuid,
    pub barrier_type_id: Uuid,
    pub barrier_type_code: &'a str,
    pub fields: &'a BarrierFields,
}

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: BarrierInsert<'_>,
) -> Result<Barrier> {
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
    row.try_into()
}

pub async fn load(conn: &mut PgConnection, id: Uuid, for_update: bool) -> Result<Option<Barrier>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients.barriers WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

pub async fn update(conn: &mut PgConnection, id: Uuid, fields: &BarrierFields) -> Result<Barrier> {
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
    row.try_into()
}

/// A client's barriers, latest identified first, after `(identified_date, id)` of the previous
/// page; of one status if given.
pub async fn list(
    conn: &mut PgConnection,
    client_id: Uuid,
    status: Option<BarrierStatus>,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<Barrier>> {
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
    rows.into_iter().map(TryInto::try_into).collect()
}
