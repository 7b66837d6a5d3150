//! The audit trail: one row for every mutation, written in the transaction of the change.

use crate::auth::Principal;
use crate::db::Scoped;
use crate::error::Result;
use crate::paging::Page;
use sqlx::PgConnection;
use uuid::Uuid;

/// One audited change.
pub struct AuditEntry<'a> {
    /// What was done, `<service>.<resource>.<verb>`: `catalog.service.update`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Uuid,
    /// The fields that changed (empty for a create or delete).
    pub changed_fields: &'a [String],
}

pub async fn record(tx: &mut impl Scoped, actor: &Principal, entry: AuditEntry<'_>) -> Result<()> {
    let tenant = tx.tenant_id().as_uuid();
    insert(tx.conn(), tenant, &actor.user_id, entry).await
}

async fn insert(
    conn: &mut PgConnection,
    tenant: Uuid,
    actor: &str,
    entry: AuditEntry<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO platform.audit_log \
         (tenant_id, actor, action, resource_type, resource_id, changed_fields) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(actor)
    .bind(entry.action)
    .bind(entry.resource_type)
    .bind(entry.resource_id)
    .bind(entry.changed_fields)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audited change, as history shows it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub changed_fields: Vec<String>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

/// The page of a resource's audit trail a history RPC asks for, opened as every list's page
/// is: its token bound to the tenant and to the resource (whose id is the list's filter).
pub fn history_page_of(
    tokens: &crate::paging::PageTokens,
    tenant: crate::TenantId,
    resource_id: Uuid,
    page_size: i32,
    page_token: &str,
) -> Result<Page<i64>> {
    tokens.page(tenant, resource_id.as_bytes(), page_size, page_token)
}

/// One page of a resource's audit trail for a history RPC, newest first: the entries and the
/// next page's token (empty on the last page).
pub async fn history_page(
    tx: &mut impl Scoped,
    resource_type: &str,
    resource_id: Uuid,
    page: &Page<i64>,
) -> Result<(Vec<AuditRecord>, String)> {
    let mut entries = history(tx, resource_type, resource_id, page.after, page.limit + 1).await?;
    let next = page.finish(&mut entries, |e| e.id);
    Ok((entries, next))
}

/// A resource's audit trail, newest first, after the entry `before` (a page cursor).
pub async fn history(
    tx: &mut impl Scoped,
    resource_type: &str,
    resource_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    Ok(sqlx::query_as(
        "SELECT id, actor, action, changed_fields, occurred_at FROM platform.audit_log \
         WHERE resource_type = $1 AND resource_id = $2 AND ($3::bigint IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(resource_type)
    .bind(resource_id)
    .bind(before)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// Who did any of `actions` to a resource (each person once): separation of duties asks who
/// had a hand in what is about to be decided.
pub async fn actors(
    tx: &mut impl Scoped,
    resource_type: &str,
    resource_id: Uuid,
    actions: &[&str],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT actor FROM platform.audit_log \
         WHERE resource_type = $1 AND resource_id = $2 AND action = ANY($3) ORDER BY actor",
    )
    .bind(resource_type)
    .bind(resource_id)
    .bind(actions)
    .fetch_all(tx.conn())
    .await?)
}
