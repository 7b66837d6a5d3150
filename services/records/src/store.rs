//! Service record SQL, inside tenant transactions that row-level security scopes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::error::{Error, Result};
use caseway_platform::{
    AuthorizationId, ClientId, RecordId, ServiceId, TenantId, TenantStatements,
};

use crate::domain::{DailyTotals, HistoryFilter, RecordRow};

const COLUMNS: &str = "id, kind, client_id, service_id, service_group_id, service_date, grant_id, \
    enrollment_id, program_id, provider_id, units, unit_value, value, reason_id, goal_id, \
    referral_plan_id, barrier_id, comments, turn_away_reason_id, people_reached, authorization_id, \
    recorded_by, version, created_at, updated_at";

/// What an insert returns: the columns PostgreSQL sets or rescales (the quantities are stored
/// to four places); the rest of a stored row is what was written. A default, trigger or
/// generated column added to `records.service_records` belongs here too.
const WRITTEN: &str = "id, units, unit_value, value, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Written {
    id: RecordId,
    units: Option<Decimal>,
    unit_value: Option<Decimal>,
    value: Option<Decimal>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Written {
    /// The stored row: `row` as written, with what PostgreSQL set.
    fn onto(self, row: &RecordRow) -> RecordRow {
        RecordRow {
            units: self.units,
            unit_value: self.unit_value,
            value: self.value,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            ..row.clone()
        }
    }
}

/// Inserts one record with its audit row, in one statement (a plain VALUES row: cheaper to
/// plan than arrays of one). Audit rows name `recorded_by`, the caller's user id, as the actor.
async fn insert_one(
    conn: &mut PgConnection,
    tenant: TenantId,
    r: &RecordRow,
    action: &str,
) -> Result<RecordRow> {
    let written: Written = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH record AS ( \
           INSERT INTO records.service_records (tenant_id, id, kind, client_id, service_id, \
           service_group_id, service_date, grant_id, enrollment_id, program_id, provider_id, units, \
           unit_value, value, reason_id, goal_id, referral_plan_id, barrier_id, comments, \
           turn_away_reason_id, people_reached, authorization_id, recorded_by) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
           $19, $20, $21, $22, $23) RETURNING {WRITTEN} \
         ), audit AS ( \
           INSERT INTO platform.audit_log \
           (tenant_id, actor, action, resource_type, resource_id, changed_fields) \
           SELECT $1, $23, $24, 'service_record', id, '{{}}' FROM record \
         ) SELECT * FROM record"
    )))
    .bind(tenant.as_uuid())
    .bind(r.id)
    .bind(r.kind)
    .bind(r.client_id)
    .bind(r.service_id)
    .bind(r.service_group_id)
    .bind(r.service_date)
    .bind(r.grant_id)
    .bind(r.enrollment_id)
    .bind(r.program_id)
    .bind(r.provider_id)
    .bind(r.units)
    .bind(r.unit_value)
    .bind(r.value)
    .bind(r.reason_id)
    .bind(r.goal_id)
    .bind(r.referral_plan_id)
    .bind(r.barrier_id)
    .bind(&r.comments)
    .bind(r.turn_away_reason_id)
    .bind(r.people_reached)
    .bind(r.authorization_id)
    .bind(&r.recorded_by)
    .bind(action)
    .fetch_one(conn)
    .await?;
    Ok(written.onto(r))
}

/// Inserts records and their audit rows in one statement; the stored rows come back in the
/// order given.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    rows: &[RecordRow],
    action: &str,
) -> Result<Vec<RecordRow>> {
    match rows {
        [] => return Ok(Vec::new()),
        [row] => return Ok(vec![insert_one(conn, tenant, row, action).await?]),
        _ => {}
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    let written: Vec<Written> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH record AS ( \
           INSERT INTO records.service_records (tenant_id, id, kind, client_id, service_id, \
           service_group_id, service_date, grant_id, enrollment_id, program_id, provider_id, \
           units, unit_value, value, reason_id, goal_id, referral_plan_id, barrier_id, comments, \
           turn_away_reason_id, people_reached, authorization_id, recorded_by) \
           SELECT $1, * FROM UNNEST($2::uuid[], $3::smallint[], $4::uuid[], $5::uuid[], \
           $6::uuid[], $7::date[], $8::uuid[], $9::uuid[], $10::uuid[], $11::uuid[], \
           $12::numeric[], $13::numeric[], $14::numeric[], $15::uuid[], $16::uuid[], $17::uuid[], \
           $18::uuid[], $19::text[], $20::uuid[], $21::int[], $22::uuid[], $23::text[]) \
           RETURNING {WRITTEN}, recorded_by \
         ), audit AS ( \
           INSERT INTO platform.audit_log \
           (tenant_id, actor, action, resource_type, resource_id, changed_fields) \
           SELECT $1, recorded_by, $24, 'service_record', id, '{{}}' FROM record \
         ) SELECT {WRITTEN} FROM record"
    )))
    .bind(tenant.as_uuid())
    .bind(column!(id))
    .bind(column!(kind))
    .bind(column!(client_id))
    .bind(column!(service_id))
    .bind(column!(service_group_id))
    .bind(column!(service_date))
    .bind(column!(grant_id))
    .bind(column!(enrollment_id))
    .bind(column!(program_id))
    .bind(column!(provider_id))
    .bind(column!(units))
    .bind(column!(unit_value))
    .bind(column!(value))
    .bind(column!(reason_id))
    .bind(column!(goal_id))
    .bind(column!(referral_plan_id))
    .bind(column!(barrier_id))
    .bind(column!(comments))
    .bind(column!(turn_away_reason_id))
    .bind(column!(people_reached))
    .bind(column!(authorization_id))
    .bind(column!(recorded_by))
    .bind(action)
    .fetch_all(conn)
    .await?;
    let mut written: HashMap<RecordId, Written> = written.into_iter().map(|w| (w.id, w)).collect();
    rows.iter()
        .map(|r| {
            let w = written.remove(&r.id).ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "record {} was not returned by its insert",
                    r.id
                ))
            })?;
            Ok(w.onto(r))
        })
        .collect()
}

pub async fn load(
    conn: &mut PgConnection,
    id: RecordId,
    for_update: bool,
) -> Result<Option<RecordRow>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM records.service_records WHERE id = $1 AND deleted_at IS NULL{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The latest version of a stored (not deleted) record and the authorization it draws on.
pub async fn draw_of(
    conn: &mut PgConnection,
    id: RecordId,
) -> Result<Option<(i64, Option<AuthorizationId>)>> {
    Ok(sqlx::query_as(
        "SELECT version, authorization_id FROM records.service_records \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Writes every changeable column of `row`.
pub async fn update(conn: &mut PgConnection, row: &RecordRow) -> Result<RecordRow> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE records.service_records SET service_group_id = $2, service_date = $3, grant_id = $4, \
         enrollment_id = $5, program_id = $6, provider_id = $7, units = $8, unit_value = $9, \
         value = $10, reason_id = $11, goal_id = $12, referral_plan_id = $13, barrier_id = $14, \
         comments = $15, people_reached = $16, authorization_id = $17, version = version + 1, \
         updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(row.id)
    .bind(row.service_group_id)
    .bind(row.service_date)
    .bind(row.grant_id)
    .bind(row.enrollment_id)
    .bind(row.program_id)
    .bind(row.provider_id)
    .bind(row.units)
    .bind(row.unit_value)
    .bind(row.value)
    .bind(row.reason_id)
    .bind(row.goal_id)
    .bind(row.referral_plan_id)
    .bind(row.barrier_id)
    .bind(&row.comments)
    .bind(row.people_reached)
    .bind(row.authorization_id)
    .fetch_one(conn)
    .await?)
}

pub async fn delete(conn: &mut PgConnection, id: RecordId, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE records.service_records SET deleted_at = now(), deleted_reason = $2, \
         version = version + 1 WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// A client's records, newest first, after `(service_date, id)` of the previous page, read in
/// one statement (`records.read_client_records`, planned for the filters given).
pub async fn client_history(
    read: &mut TenantStatements,
    client_id: ClientId,
    filter: &HistoryFilter,
    hidden_services: &[ServiceId],
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<RecordRow>> {
    let tenant = read.tenant_id();
    let (after_date, after_id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM records.read_client_records(\
         $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )))
    .bind(tenant.as_uuid())
    .bind(client_id)
    .bind(filter.start_date)
    .bind(filter.end_date)
    .bind(filter.service_id)
    .bind(filter.service_group_id)
    .bind(filter.grant_id)
    .bind(filter.program_id)
    .bind(filter.enrollment_id)
    .bind(filter.kind)
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .bind(hidden_services)
    .fetch_all(read.conn())
    .await?)
}

/// The day totals of `[start, end]`, without the services in `hidden` (the
/// `records.daily_totals` migration says what a row holds).
pub async fn daily_totals(
    conn: &mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
    hidden: &[ServiceId],
) -> Result<Vec<DailyTotals>> {
    Ok(sqlx::query_as(
        "SELECT service_date, kind, service_id, service_group_id, grant_id, program_id, records, \
                units, value, people_reached, client_set \
           FROM records.daily_totals \
          WHERE service_date BETWEEN $1 AND $2 AND NOT (service_id = ANY($3))",
    )
    .bind(start)
    .bind(end)
    .bind(hidden)
    .fetch_all(conn)
    .await?)
}

/// Folds up to `batch` changes of every tenant's records into the day totals, as the
/// platform's own role; how many it folded. One fold runs at a time: a second waits for it.
pub async fn fold_totals(conn: &mut PgConnection, batch: i32) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT records.fold_totals($1)")
        .bind(batch)
        .fetch_one(conn)
        .await?)
}
