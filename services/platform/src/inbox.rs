//! The inbox: a consumer records each event id in the transaction of its effect, so a
//! redelivered event changes nothing. An event of a purged tenant counts as handled: it
//! arrived after the tenant's rows were deleted (or while they were), and applying it would
//! bring some of them back.

use std::collections::HashSet;

use uuid::Uuid;

use crate::db::Scoped;
use crate::error::Result;

/// Records that `consumer` handled `event_id`; false when it already had, or the tenant is
/// purged (skip the effect).
pub async fn first_delivery(tx: &mut impl Scoped, consumer: &str, event_id: Uuid) -> Result<bool> {
    let tenant = tx.tenant_id().as_uuid();
    let inserted = sqlx::query(
        "INSERT INTO platform.inbox (tenant_id, consumer, event_id) \
         SELECT $1, $2, $3 WHERE NOT EXISTS \
         (SELECT 1 FROM tenancy.tenants t WHERE t.id = $1 AND t.purged_at IS NOT NULL) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(consumer)
    .bind(event_id)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Records that `consumer` handled each of `event_ids`, in one statement; the ids it had not
/// handled before (apply the effect of those only; none when the tenant is purged).
pub async fn first_deliveries(
    tx: &mut impl Scoped,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>> {
    let tenant = tx.tenant_id().as_uuid();
    let first: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO platform.inbox (tenant_id, consumer, event_id) \
         SELECT $1, $2, event_id FROM unnest($3::uuid[]) AS event_id \
         WHERE NOT EXISTS \
         (SELECT 1 FROM tenancy.tenants t WHERE t.id = $1 AND t.purged_at IS NOT NULL) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(tenant)
    .bind(consumer)
    .bind(event_ids)
    .fetch_all(tx.conn())
    .await?;
    Ok(first.into_iter().collect())
}
