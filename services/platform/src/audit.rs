//! The audit trail: one row for every mutation, written in the transaction of the change.

use crate::auth::Principal;
use crate::db::Scoped;
use crate::error::Result;
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
