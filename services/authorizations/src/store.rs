//! SQL of the authorizations service: authorizations and the draws of service records on them.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::error::Result;
use caseway_platform::{
    AuthorizationId, ClientId, HoldId, RecordId, ServiceId, TenantId, TenantStatements,
};

use crate::domain::{AuthorizationRow, Draw, ListFilter};

const COLUMNS: &str = "id, client_id, service_id, grant_id, begin_date, end_date, \
    unit_of_measure, units_per_occurrence, unit_value, recurrence, occurrences, \
    authorized_units, authorized_value, reason_id, goal_id, reason, goals, status, requested_by, \
    decided_by, decision_reason, decided_at, committed_units, delivered_units, delivered_value, \
    version, created_at, updated_at";

pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    row: &AuthorizationRow,
) -> Result<AuthorizationRow> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO authorizations.authorizations (tenant_id, id, client_id, service_id, \
         grant_id, begin_date, end_date, unit_of_measure, units_per_occurrence, unit_value, \
         recurrence, occurrences, authorized_units, authorized_value, reason_id, goal_id, reason, \
         goals, status, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20) RETURNING {COLUMNS}"
    )))
    .bind(tenant.as_uuid())
    .bind(row.id)
    .bind(row.client_id)
    .bind(row.service_id)
    .bind(row.grant_id)
    .bind(row.begin_date)
    .bind(row.end_date)
    .bind(row.unit_of_measure.code())
    .bind(row.units_per_occurrence)
    .bind(row.unit_value)
    .bind(&row.recurrence)
    .bind(&row.occurrences)
    .bind(row.authorized_units)
    .bind(row.authorized_value)
    .bind(row.reason_id)
    .bind(row.goal_id)
    .bind(&row.reason)
    .bind(&row.goals)
    .bind(row.status)
    .bind(&row.requested_by)
    .fetch_one(conn)
    .await?)
}

pub async fn load(
    conn: &mut PgConnection,
    id: AuthorizationId,
    for_update: bool,
) -> Result<Option<AuthorizationRow>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM authorizations.authorizations WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Writes the plan (what a Pending authorization may change).
pub async fn update_plan(
    conn: &mut PgConnection,
    row: &AuthorizationRow,
) -> Result<AuthorizationRow> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE authorizations.authorizations SET grant_id = $2, begin_date = $3, end_date = $4, \
         units_per_occurrence = $5, unit_value = $6, recurrence = $7, occurrences = $8, \
         authorized_units = $9, authorized_value = $10, reason_id = $11, goal_id = $12, \
         reason = $13, goals = $14, version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(row.id)
    .bind(row.grant_id)
    .bind(row.begin_date)
    .bind(row.end_date)
    .bind(row.units_per_occurrence)
    .bind(row.unit_value)
    .bind(&row.recurrence)
    .bind(&row.occurrences)
    .bind(row.authorized_units)
    .bind(row.authorized_value)
    .bind(row.reason_id)
    .bind(row.goal_id)
    .bind(&row.reason)
    .bind(&row.goals)
    .fetch_one(conn)
    .await?)
}

/// Moves to `status`; `decided_by` and `reason` are kept with it.
pub async fn set_status(
    conn: &mut PgConnection,
    id: AuthorizationId,
    status: i16,
    decided_by: &str,
    reason: Option<&str>,
) -> Result<AuthorizationRow> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE authorizations.authorizations SET status = $2, decided_by = $3, \
         decision_reason = $4, decided_at = now(), version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .bind(decided_by)
    .bind(reason)
    .fetch_one(conn)
    .await?)
}

/// A client's authorizations, newest first, after the (created_at, id) cursor.
pub async fn list_for_client(
    conn: &mut PgConnection,
    client_id: ClientId,
    filter: &ListFilter,
    hidden_services: &[ServiceId],
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<AuthorizationRow>> {
    let (after_time, after_id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM authorizations.authorizations WHERE client_id = $1 \
         AND (cardinality($2::smallint[]) = 0 OR status = ANY($2)) \
         AND ($3::uuid IS NULL OR service_id = $3) \
         AND ($4::date IS NULL OR $4 BETWEEN begin_date AND end_date) \
         AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6)) \
         AND NOT (service_id = ANY($8)) \
         ORDER BY created_at DESC, id DESC LIMIT $7"
    )))
    .bind(client_id)
    .bind(&filter.statuses)
    .bind(filter.service_id)
    .bind(filter.active_on)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .bind(hidden_services)
    .fetch_all(conn)
    .await?)
}

#[derive(sqlx::FromRow)]
struct DrawRow {
    held_units: Decimal,
    held_version: i64,
    held_by: Option<HoldId>,
    held_at: Option<chrono::DateTime<chrono::Utc>>,
    earlier_units: Decimal,
    earlier_version: i64,
    delivered_units: Decimal,
    delivered_value: Decimal,
    record_version: i64,
}

/// Locks an authorization's row, then reads a record's draw on it: None when the authorization
/// is not there (not the tenant's), or its tenant is purged (an event that arrives while the
/// purge deletes, or after, must bring no draw back, as a consumer's inbox counts such an event
/// handled). Every change to an authorization's draws takes that lock first, so the draw read
/// under it stands until the transaction ends. Two statements, not one: a statement that waited
/// for the lock still reads other rows as they were when it began, so it would miss the draw
/// the transaction it waited for wrote; the second statement reads after the lock is held.
pub async fn lock_draw(
    conn: &mut PgConnection,
    authorization_id: AuthorizationId,
    record_id: RecordId,
) -> Result<Option<Draw>> {
    let locked: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM authorizations.authorizations a WHERE a.id = $1 AND NOT EXISTS \
         (SELECT 1 FROM tenancy.tenants t WHERE t.id = a.tenant_id AND t.purged_at IS NOT NULL) \
         FOR UPDATE OF a",
    )
    .bind(authorization_id)
    .fetch_optional(&mut *conn)
    .await?;
    match locked {
        Some(_) => Ok(Some(draw(conn, authorization_id, record_id).await?)),
        None => Ok(None),
    }
}

/// The draw of a record on an authorization, locked (the authorization's row must be locked
/// first: every change to its draws goes through that lock).
pub async fn draw(
    conn: &mut PgConnection,
    authorization_id: AuthorizationId,
    record_id: RecordId,
) -> Result<Draw> {
    read_draw(conn, authorization_id, record_id, " FOR UPDATE").await
}

/// The draw of a record on an authorization as it stands, to look at only.
pub async fn draw_unlocked(
    conn: &mut PgConnection,
    authorization_id: AuthorizationId,
    record_id: RecordId,
) -> Result<Draw> {
    read_draw(conn, authorization_id, record_id, "").await
}

async fn read_draw(
    conn: &mut PgConnection,
    authorization_id: AuthorizationId,
    record_id: RecordId,
    lock: &str,
) -> Result<Draw> {
    let row: Option<DrawRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT held_units, held_version, held_by, held_at, earlier_units, earlier_version, \
         delivered_units, delivered_value, record_version FROM authorizations.draws \
         WHERE authorization_id = $1 AND service_record_id = $2{lock}"
    )))
    .bind(authorization_id)
    .bind(record_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Draw::from).unwrap_or_default())
}

impl From<DrawRow> for Draw {
    fn from(r: DrawRow) -> Self {
        Draw {
            held_units: r.held_units,
            held_version: r.held_version,
            held_by: r.held_by,
            held_at: r.held_at,
            earlier_units: r.earlier_units,
            earlier_version: r.earlier_version,
            delivered_units: r.delivered_units,
            delivered_value: r.delivered_value,
            record_version: r.record_version,
        }
    }
}

/// Writes a record's draw, and the authorization's sums moved by the difference from
/// `before`, in one statement.
pub async fn save_draw(
    conn: &mut PgConnection,
    tenant: TenantId,
    authorization_id: AuthorizationId,
    record_id: RecordId,
    service_date: Option<NaiveDate>,
    before: &Draw,
    after: &Draw,
) -> Result<()> {
    sqlx::query(
        "WITH draw AS (INSERT INTO authorizations.draws (tenant_id, authorization_id, \
         service_record_id, service_date, held_units, held_version, delivered_units, \
         delivered_value, record_version, held_by, held_at, earlier_units, earlier_version) \
         VALUES ($1, $2, $3, coalesce($4, CURRENT_DATE), $5, $6, $7, $8, $9, $13, $14, $15, \
         $16) ON CONFLICT (tenant_id, authorization_id, service_record_id) DO UPDATE \
         SET service_date = coalesce($4, draws.service_date), held_units = $5, \
         held_version = $6, delivered_units = $7, delivered_value = $8, record_version = $9, \
         held_by = $13, held_at = $14, earlier_units = $15, earlier_version = $16, \
         updated_at = now() RETURNING 1) \
         UPDATE authorizations.authorizations SET committed_units = committed_units + $10, \
         delivered_units = delivered_units + $11, delivered_value = delivered_value + $12 \
         WHERE id = $2 AND EXISTS (SELECT 1 FROM draw)",
    )
    .bind(tenant.as_uuid())
    .bind(authorization_id)
    .bind(record_id)
    .bind(service_date)
    .bind(after.held_units)
    .bind(after.held_version)
    .bind(after.delivered_units)
    .bind(after.delivered_value)
    .bind(after.record_version)
    .bind(after.counted() - before.counted())
    .bind(after.delivered_units - before.delivered_units)
    .bind(after.delivered_value - before.delivered_value)
    .bind(after.held_by)
    .bind(after.held_at)
    .bind(after.earlier_units)
    .bind(after.earlier_version)
    .execute(conn)
    .await?;
    Ok(())
}

/// An authorization with what was delivered against it per service date (by date) and how
/// many records, read in one statement: one snapshot, so a drawdown committed meanwhile shows
/// in both or in neither (`authorizations.read_authorization`, `read_deliveries`).
pub async fn utilization(
    read: &mut TenantStatements,
    id: AuthorizationId,
) -> Result<Option<(AuthorizationRow, Vec<(NaiveDate, Decimal)>, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Utilization {
        #[sqlx(flatten)]
        row: AuthorizationRow,
        delivery_dates: Vec<NaiveDate>,
        delivery_units: Vec<Decimal>,
        delivery_records: i64,
    }
    let tenant = read.tenant_id();
    let found: Option<Utilization> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, delivery_dates, delivery_units, delivery_records \
         FROM authorizations.read_authorization($1, $2), authorizations.read_deliveries($1, $2)"
    )))
    .bind(tenant.as_uuid())
    .bind(id)
    .fetch_optional(read.conn())
    .await?;
    Ok(found.map(|u| {
        let deliveries = u.delivery_dates.into_iter().zip(u.delivery_units).collect();
        (u.row, deliveries, u.delivery_records)
    }))
}

/// Approved authorizations of every tenant whose end date is before `today`, locked for this
/// transaction (read across tenants through the platform role's function).
pub async fn expired(
    conn: &mut PgConnection,
    today: NaiveDate,
    limit: i64,
) -> Result<Vec<(TenantId, AuthorizationId)>> {
    // Across tenants, through the platform role's function (locked for this transaction).
    Ok(
        sqlx::query_as("SELECT tenant_id, id FROM authorizations.ended_approved($1, $2)")
            .bind(today)
            .bind(limit)
            .fetch_all(conn)
            .await?,
    )
}

/// A hold not yet settled by its record's event: the current one (`held_version`, made by
/// `held_by`), or earlier units (`earlier_version`), or both (0 for the one that is not).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UnsettledHold {
    pub tenant_id: TenantId,
    pub authorization_id: AuthorizationId,
    pub service_record_id: RecordId,
    pub held_version: i64,
    pub held_by: Option<HoldId>,
    pub earlier_version: i64,
}

/// Holds of every tenant older than `older_than` whose record's event has not settled them
/// (read across tenants through the platform role's function).
pub async fn unsettled_holds(
    conn: &mut PgConnection,
    older_than: chrono::Duration,
    limit: i64,
) -> Result<Vec<UnsettledHold>> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, authorization_id, service_record_id, held_version, held_by, \
         earlier_version FROM authorizations.unsettled_holds($1, $2)",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
