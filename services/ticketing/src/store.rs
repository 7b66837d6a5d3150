//! Ticketing SQL, inside transactions that row-level security scopes: a tenant's transaction
//! sees its organization's tickets and their public notes; a support transaction sees
//! escalated tickets of every tenant and all their notes (the ticketing migration's
//! policies), so no query here filters by tenant or by escalation itself.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::{Error, Result};

use crate::domain::*;
use crate::screenshot::Format;
use crate::sla::Clocks;

/// The columns of a ticket, in `TicketSql`'s order.
macro_rules! ticket_columns {
    () => {
        "tenant_id, id, kind, title, description, context, contact, status, submitted_by, \
         severity, complexity, priority, tier, tier_override_reason, resolution, resolved_by, \
         resolved_by_support, escalated_at, resolved_at, first_responded_at, \
         first_response_due, resolution_due, sla_paused_at, sla_paused_micros, \
         first_response_breached_at, resolution_breached_at, closed_at, version, created_at, \
         updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct TicketSql {
    tenant_id: TenantId,
    id: Uuid,
    kind: i16,
    title: String,
    description: String,
    context: Json<Context>,
    contact: Json<Contact>,
    status: i16,
    submitted_by: String,
    severity: Option<i16>,
    complexity: Option<i16>,
    priority: Option<i16>,
    tier: Option<i16>,
    tier_override_reason: Option<String>,
    resolution: Option<String>,
    resolved_by: Option<String>,
    resolved_by_support: bool,
    escalated_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    first_responded_at: Option<DateTime<Utc>>,
    first_response_due: Option<DateTime<Utc>>,
    resolution_due: Option<DateTime<Utc>>,
    sla_paused_at: Option<DateTime<Utc>>,
    sla_paused_micros: i64,
    first_response_breached_at: Option<DateTime<Utc>>,
    resolution_breached_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A stored code the schema's checks allow but this version does not know: an error, never a
/// guess.
fn unknown(what: &str, code: i16) -> Error {
    Error::internal(anyhow::anyhow!(
        "unknown {what} {code} in ticketing.tickets"
    ))
}

fn kind_code(kind: Kind) -> i16 {
    match kind {
        Kind::Issue => 1,
        Kind::Question => 2,
        Kind::Suggestion => 3,
    }
}

pub fn status_code(status: Status) -> i16 {
    match status {
        Status::Submitted => 1,
        Status::WaitingOnUser => 2,
        Status::Escalated => 3,
        Status::InProgress => 4,
        Status::WaitingOnCustomer => 5,
        Status::Resolved => 6,
        Status::Closed => 7,
    }
}

fn status_of(code: i16) -> Result<Status> {
    Ok(match code {
        1 => Status::Submitted,
        2 => Status::WaitingOnUser,
        3 => Status::Escalated,
        4 => Status::InProgress,
        5 => Status::WaitingOnCustomer,
        6 => Status::Resolved,
        7 => Status::Closed,
        other => return Err(unknown("status", other)),
    })
}

fn severity_code(severity: Severity) -> i16 {
    severity as i16 + 1
}

fn complexity_code(complexity: Complexity) -> i16 {
    complexity as i16 + 1
}

pub fn priority_code(priority: Priority) -> i16 {
    priority as i16 + 1
}

impl TryFrom<TicketSql> for TicketRow {
    type Error = Error;

    fn try_from(t: TicketSql) -> Result<TicketRow> {
        let kind = match t.kind {
            1 => Kind::Issue,
            2 => Kind::Question,
            3 => Kind::Suggestion,
            other => return Err(unknown("kind", other)),
        };
        let severity = t
            .severity
            .map(|code| match code {
                1 => Ok(Severity::Low),
                2 => Ok(Severity::Medium),
                3 => Ok(Severity::High),
                4 => Ok(Severity::Critical),
                other => Err(unknown("severity", other)),
            })
            .transpose()?;
        let complexity = t
            .complexity
            .map(|code| match code {
                1 => Ok(Complexity::Low),
                2 => Ok(Complexity::Medium),
                3 => Ok(Complexity::High),
                other => Err(unknown("complexity", other)),
            })
            .transpose()?;
        let priority = t
            .priority
            .map(|code| match code {
                1 => Ok(Priority::Low),
                2 => Ok(Priority::Medium),
                3 => Ok(Priority::High),
                4 => Ok(Priority::Urgent),
                other => Err(unknown("priority", other)),
            })
            .transpose()?;
        let tier = t
            .tier
            .map(|code| Tier::new(i64::from(code)).ok_or_else(|| unknown("tier", code)))
            .transpose()?;
        Ok(TicketRow {
            tenant_id: t.tenant_id,
            id: t.id,
            kind,
            title: t.title,
            description: t.description,
            context: t.context.0,
            contact: t.contact.0,
            status: status_of(t.status)?,
            submitted_by: t.submitted_by,
            severity,
            complexity,
            priority,
            tier,
            tier_override_reason: t.tier_override_reason,
            resolution: t.resolution,
            resolved_by: t.resolved_by,
            resolved_by_support: t.resolved_by_support,
            escalated_at: t.escalated_at,
            resolved_at: t.resolved_at,
            clocks: Clocks {
                first_responded_at: t.first_responded_at,
                first_response_due: t.first_response_due,
                resolution_due: t.resolution_due,
                paused_at: t.sla_paused_at,
                paused_micros: t.sla_paused_micros,
                first_response_breached_at: t.first_response_breached_at,
                resolution_breached_at: t.resolution_breached_at,
            },
            closed_at: t.closed_at,
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        })
    }
}

fn rows(rows: Vec<TicketSql>) -> Result<Vec<TicketRow>> {
    rows.into_iter().map(TicketRow::try_from).collect()
}

pub async fn insert_ticket(conn: &mut PgConnection, t: &TicketRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticketing.tickets (tenant_id, id, kind, title, description, context, \
         contact, status, submitted_by, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(t.tenant_id)
    .bind(t.id)
    .bind(kind_code(t.kind))
    .bind(&t.title)
    .bind(&t.description)
    .bind(Json(&t.context))
    .bind(Json(&t.contact))
    .bind(status_code(t.status))
    .bind(&t.submitted_by)
    .bind(t.version)
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A ticket the transaction sees, locked for a change when `lock`.
pub async fn ticket(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Option<TicketRow>> {
    let statement = if lock {
        concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM ticketing.tickets WHERE id = $1 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM ticketing.tickets WHERE id = $1"
        )
    };
    let row: Option<TicketSql> = sqlx::query_as(statement)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(TicketRow::try_from).transpose()
}

/// Writes what a step changed (status, triage, resolution, clocks, times) and the next
/// version.
pub async fn update_ticket(conn: &mut PgConnection, t: &TicketRow) -> Result<()> {
    let c = &t.clocks;
    sqlx::query(
        "UPDATE ticketing.tickets SET status = $3, severity = $4, complexity = $5, \
         priority = $6, tier = $7, tier_override_reason = $8, resolution = $9, \
         resolved_by = $10, resolved_by_support = $11, escalated_at = $12, resolved_at = $13, \
         version = $14, updated_at = $15, first_responded_at = $16, first_response_due = $17, \
         resolution_due = $18, sla_paused_at = $19, sla_paused_micros = $20, \
         first_response_breached_at = $21, resolution_breached_at = $22, sla_next_due = $23, \
         closed_at = $24 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(t.tenant_id)
    .bind(t.id)
    .bind(status_code(t.status))
    .bind(t.severity.map(severity_code))
    .bind(t.complexity.map(complexity_code))
    .bind(t.priority.map(priority_code))
    .bind(t.tier.map(|tier| i16::from(tier.number())))
    .bind(&t.tier_override_reason)
    .bind(&t.resolution)
    .bind(&t.resolved_by)
    .bind(t.resolved_by_support)
    .bind(t.escalated_at)
    .bind(t.resolved_at)
    .bind(t.version)
    .bind(t.updated_at)
    .bind(c.first_responded_at)
    .bind(c.first_response_due)
    .bind(c.resolution_due)
    .bind(c.paused_at)
    .bind(c.paused_micros)
    .bind(c.first_response_breached_at)
    .bind(c.resolution_breached_at)
    .bind(c.next_due(t.status))
    .bind(t.closed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The organization's tickets (of one submitter when `submitted_by`), newest first, after the
/// keyset cursor (created_at, id), in `statuses` (all when empty).
pub async fn organization_tickets(
    conn: &mut PgConnection,
    submitted_by: Option<&str>,
    statuses: &[Status],
    text: Option<&str>,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TicketRow>> {
    let codes: Vec<i16> = statuses.iter().copied().map(status_code).collect();
    let found: Vec<TicketSql> = sqlx::query_as(concat!(
        "SELECT ",
        ticket_columns!(),
        " FROM ticketing.tickets \
         WHERE ($1::text IS NULL OR submitted_by = $1) \
           AND (cardinality($2::int2[]) = 0 OR status = ANY($2)) \
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
           AND ($6::text IS NULL OR title ILIKE $6 OR description ILIKE $6) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(submitted_by)
    .bind(codes)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .bind(text.map(containing))
    .fetch_all(conn)
    .await?;
    rows(found)
}

/// The ILIKE pattern of text anywhere in a value, its wildcards taken literally.
fn containing(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Where a ticket stands in the support queue: untriaged first, then by tier, the most urgent
/// priority first, what is due soonest (tickets whose clocks stand still last), the longest
/// escalated first.
pub type SupportCursor = (i16, i16, DateTime<Utc>, DateTime<Utc>, Uuid);

/// What the queue orders by when no clock runs: after every due time.
fn never() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The support cursor of a ticket (escalated, so it has an escalation time).
pub fn support_cursor(t: &TicketRow) -> SupportCursor {
    (
        t.tier.map_or(0, |tier| i16::from(tier.number())),
        -t.priority.map_or(0, priority_code),
        t.clocks.next_due(t.status).unwrap_or_else(never),
        t.escalated_at.unwrap_or(t.created_at),
        t.id,
    )
}

/// Escalated tickets of every tenant (a support transaction sees only those), of `tier`
/// (untriaged ones are tier 0) when given, in `statuses`, in queue order after `after`.
pub async fn support_tickets(
    conn: &mut PgConnection,
    tier: Option<i16>,
    statuses: &[Status],
    text: Option<&str>,
    after: Option<&SupportCursor>,
    limit: i64,
) -> Result<Vec<TicketRow>> {
    let codes: Vec<i16> = statuses.iter().copied().map(status_code).collect();
    let found: Vec<TicketSql> = sqlx::query_as(concat!(
        "SELECT ",
        ticket_columns!(),
        " FROM ticketing.tickets \
         WHERE escalated_at IS NOT NULL \
           AND ($1::int2 IS NULL OR coalesce(tier, 0) = $1) \
           AND status = ANY($2) \
           AND ($9::text IS NULL OR title ILIKE $9 OR description ILIKE $9) \
           AND ($3::int2 IS NULL OR (coalesce(tier, 0), -coalesce(priority, 0), \
                coalesce(sla_next_due, '9999-12-31 00:00:00+00'::timestamptz), escalated_at, id) \
                > ($3, $4, $5, $6, $7)) \
         ORDER BY coalesce(tier, 0), -coalesce(priority, 0), \
                  coalesce(sla_next_due, '9999-12-31 00:00:00+00'::timestamptz), escalated_at, id \
         LIMIT $8"
    ))
    .bind(tier)
    .bind(codes)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(after.map(|a| a.2))
    .bind(after.map(|a| a.3))
    .bind(after.map(|a| a.4))
    .bind(limit + 1)
    .bind(text.map(containing))
    .fetch_all(conn)
    .await?;
    rows(found)
}

#[derive(sqlx::FromRow)]
struct NoteSql {
    tenant_id: TenantId,
    id: Uuid,
    ticket_id: Uuid,
    visibility: i16,
    body: String,
    author: String,
    by_support: bool,
    created_at: DateTime<Utc>,
}

fn visibility_code(visibility: Visibility) -> i16 {
    match visibility {
        Visibility::Public => 1,
        Visibility::Internal => 2,
    }
}

impl TryFrom<NoteSql> for NoteRow {
    type Error = Error;

    fn try_from(n: NoteSql) -> Result<NoteRow> {
        let visibility = match n.visibility {
            1 => Visibility::Public,
            2 => Visibility::Internal,
            other => {
                return Err(Error::internal(anyhow::anyhow!(
                    "unknown visibility {other} in ticketing.notes"
                )));
            }
        };
        Ok(NoteRow {
            tenant_id: n.tenant_id,
            id: n.id,
            ticket_id: n.ticket_id,
            visibility,
            body: n.body,
            author: n.author,
            by_support: n.by_support,
            created_at: n.created_at,
        })
    }
}

pub async fn insert_note(conn: &mut PgConnection, n: &NoteRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticketing.notes (tenant_id, id, ticket_id, visibility, body, author, \
         by_support, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(n.tenant_id)
    .bind(n.id)
    .bind(n.ticket_id)
    .bind(visibility_code(n.visibility))
    .bind(&n.body)
    .bind(&n.author)
    .bind(n.by_support)
    .bind(n.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The notes of a ticket the transaction may read (a tenant's transaction reads public notes
/// only), oldest first, after the keyset cursor (created_at, id).
pub async fn notes(
    conn: &mut PgConnection,
    ticket: Uuid,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<NoteRow>> {
    let found: Vec<NoteSql> = sqlx::query_as(
        "SELECT tenant_id, id, ticket_id, visibility, body, author, by_support, created_at \
         FROM ticketing.notes WHERE ticket_id = $1 \
           AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
         ORDER BY created_at, id LIMIT $4",
    )
    .bind(ticket)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    found.into_iter().map(NoteRow::try_from).collect()
}

/// Tickets of every tenant with a clock run out by `now`, locked for this transaction (the
/// system's, through the caseway_system role's function); another sweep's are skipped.
pub async fn sla_run_out(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(TenantId, Uuid)>> {
    Ok(
        sqlx::query_as("SELECT tenant_id, id FROM ticketing.sla_run_out($1, $2)")
            .bind(now)
            .bind(limit)
            .fetch_all(conn)
            .await?,
    )
}

/// Tickets of every tenant resolved before `before` and not reopened, locked likewise.
pub async fn resolved_before(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(TenantId, Uuid)>> {
    Ok(
        sqlx::query_as("SELECT tenant_id, id FROM ticketing.resolved_before($1, $2)")
            .bind(before)
            .bind(limit)
            .fetch_all(conn)
            .await?,
    )
}

#[derive(sqlx::FromRow)]
struct AttachmentSql {
    tenant_id: TenantId,
    id: Uuid,
    ticket_id: Uuid,
    file_name: String,
    format: i16,
    size_bytes: i64,
    width: i32,
    height: i32,
    sha256: Vec<u8>,
    object_key: String,
    uploaded_by: String,
    release: i16,
    released_by: Option<String>,
    released_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

fn format_code(format: Format) -> i16 {
    match format {
        Format::Png => 1,
        Format::Jpeg => 2,
        Format::Webp => 3,
    }
}

fn release_code(release: Release) -> i16 {
    match release {
        Release::Inside => 1,
        Release::Confirmed => 2,
        Release::Redacted => 3,
    }
}

impl TryFrom<AttachmentSql> for AttachmentRow {
    type Error = Error;

    fn try_from(a: AttachmentSql) -> Result<AttachmentRow> {
        let unknown = |what: &str, code: i16| {
            Error::internal(anyhow::anyhow!(
                "unknown {what} {code} in ticketing.attachments"
            ))
        };
        Ok(AttachmentRow {
            tenant_id: a.tenant_id,
            id: a.id,
            ticket_id: a.ticket_id,
            file_name: a.file_name,
            format: match a.format {
                1 => Format::Png,
                2 => Format::Jpeg,
                3 => Format::Webp,
                other => return Err(unknown("format", other)),
            },
            size_bytes: a.size_bytes,
            width: a.width,
            height: a.height,
            sha256: a.sha256,
            object_key: a.object_key,
            uploaded_by: a.uploaded_by,
            release: match a.release {
                1 => Release::Inside,
                2 => Release::Confirmed,
                3 => Release::Redacted,
                other => return Err(unknown("release", other)),
            },
            released_by: a.released_by,
            released_at: a.released_at,
            created_at: a.created_at,
        })
    }
}

const ATTACHMENT_COLUMNS: &str = "tenant_id, id, ticket_id, file_name, format, size_bytes, width, \
     height, sha256, object_key, uploaded_by, release, released_by, released_at, created_at";

pub async fn insert_attachment(conn: &mut PgConnection, a: &AttachmentRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticketing.attachments (tenant_id, id, ticket_id, file_name, format, \
         size_bytes, width, height, sha256, object_key, uploaded_by, release, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(a.tenant_id)
    .bind(a.id)
    .bind(a.ticket_id)
    .bind(&a.file_name)
    .bind(format_code(a.format))
    .bind(a.size_bytes)
    .bind(a.width)
    .bind(a.height)
    .bind(&a.sha256)
    .bind(&a.object_key)
    .bind(&a.uploaded_by)
    .bind(release_code(a.release))
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a release: the release, who and when, and (for a redaction) the new image.
pub async fn update_attachment(conn: &mut PgConnection, a: &AttachmentRow) -> Result<()> {
    sqlx::query(
        "UPDATE ticketing.attachments SET release = $3, released_by = $4, released_at = $5, \
         size_bytes = $6, sha256 = $7, object_key = $8 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(a.tenant_id)
    .bind(a.id)
    .bind(release_code(a.release))
    .bind(&a.released_by)
    .bind(a.released_at)
    .bind(a.size_bytes)
    .bind(&a.sha256)
    .bind(&a.object_key)
    .execute(conn)
    .await?;
    Ok(())
}

/// An attachment the transaction sees (a support transaction: released ones of escalated
/// tickets), locked when `lock`.
pub async fn attachment(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<AttachmentRow>> {
    let statement = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM ticketing.attachments WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<AttachmentSql> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(AttachmentRow::try_from).transpose()
}

/// A ticket's attachments the transaction sees, oldest first.
pub async fn attachments(conn: &mut PgConnection, ticket_id: Uuid) -> Result<Vec<AttachmentRow>> {
    let statement = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM ticketing.attachments WHERE ticket_id = $1 \
         ORDER BY created_at, id"
    );
    let rows: Vec<AttachmentSql> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(ticket_id)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(AttachmentRow::try_from).collect()
}

/// How many attachments a ticket holds (the organization's transaction sees them all).
pub async fn count_attachments(conn: &mut PgConnection, ticket_id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM ticketing.attachments WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Keeps a read of an attachment by support, for the tenant the transaction acts for.
pub async fn insert_read(
    conn: &mut PgConnection,
    tenant: TenantId,
    read: &AttachmentRead,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticketing.attachment_reads (tenant_id, attachment_id, reader, read_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(read.attachment_id)
    .bind(&read.reader)
    .bind(read.read_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Support's reads of a ticket's attachments the transaction sees, oldest first.
pub async fn reads(conn: &mut PgConnection, ticket_id: Uuid) -> Result<Vec<AttachmentRead>> {
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT r.attachment_id, r.reader, r.read_at FROM ticketing.attachment_reads r \
         JOIN ticketing.attachments a ON a.tenant_id = r.tenant_id AND a.id = r.attachment_id \
         WHERE a.ticket_id = $1 ORDER BY r.read_at",
    )
    .bind(ticket_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(attachment_id, reader, read_at)| AttachmentRead {
            attachment_id,
            reader,
            read_at,
        })
        .collect())
}
