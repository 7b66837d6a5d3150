//! The SQL of HMIS exports: the `hmis` schema's mappings, settings and exports, and the reads
//! an export makes of the tenant's clients, enrollments, programs, grants and service records.
//! Those reads go to the other services' schemas directly, read-only, in one repeatable-read
//! snapshot under the tenant's row-level security: an export is a consistent picture of the
//! tenant at one instant, which paging four services' APIs could not give.

use chrono::{DateTime, NaiveDate, Utc};
use futures::Stream;
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use caseway_platform::error::Result;

use crate::domain::{
    ExportRow, ExportState, Mapping, Settings, SkippedRows, Subject, UnmappedCode, WrittenFile,
};

/// A running export silent this long has died with its node.
pub const STALE_AFTER_SECONDS: i64 = 60;

fn mapping_of(row: &PgRow) -> Mapping {
    Mapping {
        subject: Subject::from_code(i32::from(row.get::<i16, _>("subject")))
            .expect("the subject column's check"),
        code: row.get("code"),
        value: row.get("value"),
        record_type: row.get("record_type"),
        continuum_project: row.get("continuum_project"),
        updated_at: row.get("updated_at"),
    }
}

pub async fn set_mapping(conn: &mut PgConnection, tenant: Uuid, m: &Mapping) -> Result<Mapping> {
    let row = sqlx::query(
        "INSERT INTO hmis.mappings \
         (tenant_id, subject, code, value, record_type, continuum_project, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now()) \
         ON CONFLICT (tenant_id, subject, code) DO UPDATE SET value = $4, record_type = $5, \
         continuum_project = $6, updated_at = now() \
         RETURNING subject, code, value, record_type, continuum_project, updated_at",
    )
    .bind(tenant)
    .bind(m.subject as i16)
    .bind(&m.code)
    .bind(m.value)
    .bind(m.record_type)
    .bind(m.continuum_project)
    .fetch_one(conn)
    .await?;
    Ok(mapping_of(&row))
}

/// A page of mappings after `after` (subject, code), one more than `limit` when another
/// page follows.
pub async fn list_mappings(
    conn: &mut PgConnection,
    subject: Option<Subject>,
    after: Option<&(i16, String)>,
    limit: i64,
) -> Result<Vec<Mapping>> {
    let rows = sqlx::query(
        "SELECT subject, code, value, record_type, continuum_project, updated_at \
         FROM hmis.mappings \
         WHERE ($1::smallint IS NULL OR subject = $1) \
           AND ($2::smallint IS NULL OR (subject, code) > ($2, $3)) \
         ORDER BY subject, code LIMIT $4",
    )
    .bind(subject.map(|s| s as i16))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1.clone()))
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(mapping_of).collect())
}

pub async fn all_mappings(conn: &mut PgConnection) -> Result<Vec<Mapping>> {
    let rows = sqlx::query(
        "SELECT subject, code, value, record_type, continuum_project, updated_at \
         FROM hmis.mappings",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(mapping_of).collect())
}

/// Whether a mapping was removed.
pub async fn delete_mapping(conn: &mut PgConnection, subject: Subject, code: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM hmis.mappings WHERE subject = $1 AND code = $2")
        .bind(subject as i16)
        .bind(code)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the tenant has the code a mapping names: a code value of the subject's list, a
/// service (deleted ones too), a program or a grant. Exit destinations are codes the clients
/// service checks as recorded: any.
pub async fn code_exists(conn: &mut PgConnection, subject: Subject, code: &str) -> Result<bool> {
    let sql = match subject {
        Subject::Gender | Subject::Race | Subject::Ethnicity => {
            "SELECT EXISTS (SELECT 1 FROM catalog.code_values WHERE code_list = $1 AND code = $2)"
        }
        Subject::Service => {
            // A deleted service's records stay in the ranges they were delivered in.
            "SELECT EXISTS (SELECT 1 FROM catalog.services WHERE $1::text IS NULL AND code = $2)"
        }
        Subject::Program => {
            "SELECT EXISTS (SELECT 1 FROM catalog.programs WHERE $1::text IS NULL AND code = $2)"
        }
        Subject::Grant => {
            "SELECT EXISTS (SELECT 1 FROM catalog.grants WHERE $1::text IS NULL AND code = $2)"
        }
        Subject::ExitDestination => return Ok(true),
    };
    Ok(sqlx::query_scalar(sql)
        .bind(subject.code_list())
        .bind(code)
        .fetch_one(conn)
        .await?)
}

pub async fn settings(conn: &mut PgConnection) -> Result<Option<Settings>> {
    let row = sqlx::query(
        "SELECT coc_code, victim_service_provider, source_name, updated_at FROM hmis.settings",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Settings {
        coc_code: row.get("coc_code"),
        victim_service_provider: row.get("victim_service_provider"),
        source_name: row.get("source_name"),
        updated_at: row.get("updated_at"),
    }))
}

pub async fn set_settings(
    conn: &mut PgConnection,
    tenant: Uuid,
    s: &Settings,
) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO hmis.settings \
         (tenant_id, coc_code, victim_service_provider, source_name, updated_at) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (tenant_id) DO UPDATE SET coc_code = $2, victim_service_provider = $3, \
         source_name = $4, updated_at = now() RETURNING updated_at",
    )
    .bind(tenant)
    .bind(&s.coc_code)
    .bind(s.victim_service_provider)
    .bind(&s.source_name)
    .fetch_one(conn)
    .await?)
}

const EXPORT_COLUMNS: &str = "id, start_date, end_date, include_ssn, state, files_written, \
     rows_written, files, unmapped, skipped, error, started_by, started_at, finished_at";

fn export_of(row: &PgRow) -> ExportRow {
    let json = |column: &str| row.get::<serde_json::Value, _>(column);
    ExportRow {
        id: row.get("id"),
        start_date: row.get("start_date"),
        end_date: row.get("end_date"),
        include_ssn: row.get("include_ssn"),
        state: ExportState::parse(row.get("state")).expect("the state column's check"),
        files_written: row.get("files_written"),
        rows_written: row.get("rows_written"),
        files: serde_json::from_value::<Vec<WrittenFile>>(json("files")).unwrap_or_default(),
        unmapped: serde_json::from_value::<Vec<UnmappedCode>>(json("unmapped")).unwrap_or_default(),
        skipped: serde_json::from_value::<Vec<SkippedRows>>(json("skipped")).unwrap_or_default(),
        error: row.get("error"),
        started_by: row.get("started_by"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    }
}

/// Marks failed the tenant's running exports whose node has not written for
/// [`STALE_AFTER_SECONDS`].
pub async fn fail_stale(conn: &mut PgConnection) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE hmis.exports SET state = 'failed', finished_at = now(), \
         error = 'the node running it stopped' \
         WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(STALE_AFTER_SECONDS as f64)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The export running for the range, if any.
pub async fn running_for(
    conn: &mut PgConnection,
    (start, end, include_ssn): (NaiveDate, NaiveDate, bool),
) -> Result<Option<ExportRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLUMNS} FROM hmis.exports \
         WHERE state = 'running' AND start_date = $1 AND end_date = $2 AND include_ssn = $3"
    )))
    .bind(start)
    .bind(end)
    .bind(include_ssn)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(export_of))
}

/// How many of the tenant's exports run.
pub async fn running(conn: &mut PgConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM hmis.exports WHERE state = 'running'")
            .fetch_one(conn)
            .await?,
    )
}

/// Starts an export of the range: the export, or None when one of the same range started
/// meanwhile (the caller joins that one).
pub async fn start_export(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    (start, end, include_ssn): (NaiveDate, NaiveDate, bool),
    started_by: &str,
) -> Result<Option<ExportRow>> {
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO hmis.exports \
         (tenant_id, id, start_date, end_date, include_ssn, state, started_by) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6) \
         ON CONFLICT (tenant_id, start_date, end_date, include_ssn) WHERE state = 'running' \
         DO NOTHING RETURNING {EXPORT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(id)
    .bind(start)
    .bind(end)
    .bind(include_ssn)
    .bind(started_by)
    .fetch_optional(conn)
    .await?;
    Ok(inserted.as_ref().map(export_of))
}

pub async fn export(conn: &mut PgConnection, id: Uuid) -> Result<Option<ExportRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLUMNS} FROM hmis.exports WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(export_of))
}

/// Records a running export's progress; false when it no longer runs (marked failed).
pub async fn progress(
    conn: &mut PgConnection,
    id: Uuid,
    files_written: i32,
    rows_written: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE hmis.exports SET files_written = $2, rows_written = $3, heartbeat_at = now() \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(files_written)
    .bind(rows_written)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Shows a running export alive: the tenant's status, or None when the export no longer runs.
pub async fn heartbeat(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE hmis.exports SET heartbeat_at = now() WHERE id = $1 AND state = 'running' \
         RETURNING (SELECT status FROM tenancy.tenants WHERE id = platform.current_tenant())",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Ends an export: succeeded with its files and reports, or failed with the error; false when
/// it had ended already (marked failed while it ran).
pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: std::result::Result<&Report, &str>,
) -> Result<bool> {
    let (state, report, error) = match outcome {
        Ok(report) => (ExportState::Succeeded, Some(report), ""),
        Err(error) => (ExportState::Failed, None, error),
    };
    let json = |value: serde_json::Value| value;
    let done = sqlx::query(
        "UPDATE hmis.exports SET state = $2, files = $3, unmapped = $4, skipped = $5, \
         error = $6, finished_at = now(), heartbeat_at = now(), \
         files_written = CASE WHEN $2 = 'succeeded' THEN 8 ELSE files_written END, \
         rows_written = COALESCE($7, rows_written) \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(json(
        serde_json::to_value(report.map(|r| &r.files)).unwrap_or_default(),
    ))
    .bind(json(
        serde_json::to_value(report.map(|r| &r.unmapped)).unwrap_or_default(),
    ))
    .bind(json(
        serde_json::to_value(report.map(|r| &r.skipped)).unwrap_or_default(),
    ))
    .bind(error)
    .bind(report.map(|r| r.files.iter().map(|f| f.rows).sum::<i64>()))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a succeeded export wrote and left out.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub files: Vec<WrittenFile>,
    pub unmapped: Vec<UnmappedCode>,
    pub skipped: Vec<SkippedRows>,
}

// The snapshot's reads.

/// The tenant: its name and when it was created and changed.
pub struct TenantRow {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn tenant(conn: &mut PgConnection) -> Result<TenantRow> {
    let row = sqlx::query(
        "SELECT id, slug, display_name, created_at, updated_at FROM tenancy.tenants \
         WHERE id = platform.current_tenant()",
    )
    .fetch_one(conn)
    .await?;
    Ok(TenantRow {
        id: row.get("id"),
        slug: row.get("slug"),
        display_name: row.get("display_name"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// A program that operated in the range.
pub struct ProgramRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The programs that operated in the range, or that an exported enrollment is in.
pub async fn programs(
    conn: &mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<ProgramRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, code, name, start_date, end_date, created_at, updated_at \
         FROM catalog.programs p \
         WHERE (p.start_date <= $2 AND (p.end_date IS NULL OR p.end_date >= $1)) \
            OR EXISTS (SELECT 1 FROM clients.enrollments e \
                       WHERE e.tenant_id = p.tenant_id AND e.program_id = p.id AND {ENROLLED}) \
         ORDER BY id"
    )))
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ProgramRow {
            id: row.get("id"),
            code: row.get("code"),
            name: row.get("name"),
            start_date: row.get("start_date"),
            end_date: row.get("end_date"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        })
        .collect())
}

/// A grant that funded services of a program in the range.
pub struct FunderRow {
    pub program_id: Uuid,
    pub grant_id: Uuid,
    pub code: String,
    pub funder: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Each (program, grant) pair of the range's deliveries, with the grant.
pub async fn funders(
    conn: &mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<FunderRow>> {
    let rows = sqlx::query(
        "SELECT pairs.program_id, g.id AS grant_id, g.code, g.funder, g.start_date, g.end_date, \
                g.created_at, g.updated_at \
         FROM (SELECT DISTINCT program_id, grant_id FROM records.service_records \
               WHERE service_date BETWEEN $1 AND $2 AND deleted_at IS NULL AND kind = 1 \
                 AND program_id IS NOT NULL AND grant_id IS NOT NULL) pairs \
         JOIN catalog.grants g ON g.id = pairs.grant_id \
         ORDER BY pairs.program_id, g.id",
    )
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| FunderRow {
            program_id: row.get("program_id"),
            grant_id: row.get("grant_id"),
            code: row.get("code"),
            funder: row.get("funder"),
            start_date: row.get("start_date"),
            end_date: row.get("end_date"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        })
        .collect())
}

/// Which enrollments an export holds (as `e`): those open at some time in the range (`$1` to
/// `$2`). A service exported lies within its enrollment, so its enrollment is one of them.
const ENROLLED: &str = "(e.entry_date <= $2 AND (e.exit_date IS NULL OR e.exit_date >= $1))";

/// The clients of the export's enrollments, not deleted, streamed in id order.
pub fn clients<'c>(
    conn: &'c mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
) -> impl Stream<Item = sqlx::Result<PgRow>> + Send + 'c {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.id, c.first_name, c.middle_name, c.last_name, c.suffix, c.birth_date, \
                c.birth_date_quality, c.ssn_sealed, c.ssn_key_id, c.ssn_last4, c.ssn_quality, \
                c.veteran_status, c.demographics, c.created_at, c.updated_at \
         FROM clients.clients c \
         WHERE c.deleted_at IS NULL \
           AND c.id IN (SELECT e.client_id FROM clients.enrollments e WHERE {ENROLLED}) \
         ORDER BY c.id"
    )))
    .bind(start)
    .bind(end)
    .fetch(conn)
}

/// The export's enrollments of clients not deleted, streamed in id order.
pub fn enrollments<'c>(
    conn: &'c mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
) -> impl Stream<Item = sqlx::Result<PgRow>> + Send + 'c {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.id, e.client_id, e.program_id, e.entry_date, e.exit_date, \
                e.exit_destination, e.created_at, e.updated_at \
         FROM clients.enrollments e \
         JOIN clients.clients c ON c.tenant_id = e.tenant_id AND c.id = e.client_id \
         WHERE c.deleted_at IS NULL AND {ENROLLED} \
         ORDER BY e.id"
    )))
    .bind(start)
    .bind(end)
    .fetch(conn)
}

/// A service record of the range, to export or to count as left out, in id order; whether
/// its client stands and whether it lies within the enrollment it names.
pub fn service_records<'c>(
    conn: &'c mut PgConnection,
    start: NaiveDate,
    end: NaiveDate,
) -> impl Stream<Item = sqlx::Result<PgRow>> + Send + 'c {
    sqlx::query(
        "SELECT r.id, r.kind, r.client_id, r.enrollment_id, r.service_date, r.value, \
                r.recorded_by, r.created_at, r.updated_at, s.code AS service_code, \
                EXISTS (SELECT 1 FROM clients.clients c WHERE c.tenant_id = r.tenant_id \
                        AND c.id = r.client_id AND c.deleted_at IS NULL) AS client_live, \
                (e.id IS NOT NULL AND e.client_id = r.client_id \
                 AND r.service_date BETWEEN e.entry_date AND COALESCE(e.exit_date, 'infinity')) \
                    AS within_enrollment \
         FROM records.service_records r \
         JOIN catalog.services s ON s.tenant_id = r.tenant_id AND s.id = r.service_id \
         LEFT JOIN clients.enrollments e \
                ON e.tenant_id = r.tenant_id AND e.id = r.enrollment_id \
         WHERE r.service_date BETWEEN $1 AND $2 AND r.deleted_at IS NULL \
         ORDER BY r.id",
    )
    .bind(start)
    .bind(end)
    .fetch(conn)
}

/// The value of a row's optional decimal column.
pub fn decimal(row: &PgRow, column: &str) -> Option<Decimal> {
    row.get(column)
}
