//! The purge of a tenant's rows, after its export and its suspension.
//!
//! One purge of a tenant runs at a time (a session advisory lock). It first marks the tenant
//! purged: from then on the services refuse its calls and their consumers leave its late
//! events alone (an inbox counts them as handled; the drawdown finds no authorization of a
//! purged tenant), so nothing brings rows back. After a grace period for transactions already
//! under way, it deletes the tenant's rows table by table, a table before those it references,
//! in batches of their own transactions; each batch adds what it deleted to the ledger's report
//! in the same transaction, so a purge cut short resumes where it stopped with an exact report.
//! A last pass counts every table again and deletes what a late transaction left. Events of
//! the tenant parked in the consumers' dead-letter queues are dropped too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};

use caseway_platform::TenantId;

use crate::tables::{TenantTable, tenant_tables};
use crate::{Tenant, Time, act_for};

#[derive(Clone, Debug)]
pub struct PurgeOptions {
    /// Rows deleted per transaction.
    pub batch: i64,
    /// How long after marking the tenant purged the deletes begin: transactions that began
    /// before the mark finish in it.
    pub grace: Duration,
    /// How long after its suspension a tenant may still be written to: the nodes' status
    /// caches trust a status this long (`CASEWAY_TENANT_STATUS_TTL_SECONDS`). An export must
    /// have begun at least this long after the suspension to hold every row the purge deletes.
    pub settle: Duration,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            batch: 5_000,
            grace: Duration::from_secs(5),
            settle: Duration::from_secs(30),
        }
    }
}

/// What a purge deleted.
#[derive(Clone, Debug, Serialize)]
pub struct PurgeReport {
    pub tenant: TenantId,
    /// Rows deleted per table (`schema.table`), over every run of this purge.
    pub deleted: BTreeMap<String, i64>,
    pub started_at: Time,
    pub finished_at: Time,
    /// Whether this run carried on a purge cut short.
    pub resumed: bool,
    /// The tenant's events dropped from each consumer's dead-letter queue.
    pub parked_events_dropped: BTreeMap<String, usize>,
    /// Whether this run destroyed the tenant's PII key (a run that resumed may find it gone).
    pub tenant_key_destroyed: bool,
}

impl PurgeReport {
    pub fn rows(&self) -> i64 {
        self.deleted.values().sum()
    }
}

/// An object store that keeps tenants' objects under `<prefix>/tenants/<tenant id>/`: the
/// attachments' store, the HMIS exports' store.
pub struct TenantObjects {
    /// What the purge report calls the objects deleted there.
    pub report_as: &'static str,
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
}

/// Purges `tenant`: it must be suspended and exported since its last change. Its objects go
/// from each of `stores` (the attachments' and the HMIS exports': every store that keeps
/// tenants' objects) after its rows.
pub async fn purge(
    pool: &PgPool,
    tenant: &Tenant,
    options: &PurgeOptions,
    stores: &[TenantObjects],
) -> anyhow::Result<PurgeReport> {
    anyhow::ensure!(options.batch > 0, "the batch size must be positive");
    // The lock is the session's, on a connection taken out of the pool: closed, and the lock
    // with it, however this ends, even when the purge is dropped midway.
    let mut lock = pool.acquire().await?.detach();
    let key = format!("caseway.purge.{}", tenant.id);
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(&key)
        .fetch_one(&mut lock)
        .await?;
    if !locked {
        bail!("a purge of tenant {} is running", tenant.slug);
    }
    let result = purge_locked(pool, tenant, options, stores).await;
    let _ = sqlx::Connection::close(lock).await;
    result
}

async fn purge_locked(
    pool: &PgPool,
    tenant: &Tenant,
    options: &PurgeOptions,
    stores: &[TenantObjects],
) -> anyhow::Result<PurgeReport> {
    let started_at = begin(pool, tenant, options.settle).await?;
    let resumed = started_at.1;
    if !resumed {
        tokio::time::sleep(options.grace).await;
    }
    let tables = {
        let mut conn = pool.acquire().await?;
        tenant_tables(&mut conn).await?
    };
    // Deleting finds what is there; the last passes find what a late transaction left.
    for pass in 0..3 {
        for table in &tables {
            delete_all(pool, tenant.id, table, options.batch).await?;
        }
        let left = remaining(pool, tenant.id, &tables).await?;
        if left.is_empty() {
            break;
        }
        if pass == 2 {
            bail!("rows of the tenant keep coming back: {left:?}");
        }
        tracing::warn!(?left, "rows written during the purge; deleting again");
    }
    for objects in stores {
        delete_objects(pool, tenant.id, objects).await?;
    }
    let mut tx = pool.begin().await?;
    act_for(&mut tx, tenant.id).await?;
    let (deleted, finished_at): (sqlx::types::Json<BTreeMap<String, i64>>, Time) = sqlx::query_as(
        "UPDATE tenancy.offboardings \
                SET purge_finished_at = coalesce(purge_finished_at, now()), updated_at = now() \
              WHERE tenant_id = $1 RETURNING purge_report, purge_finished_at",
    )
    .bind(tenant.id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PurgeReport {
        tenant: tenant.id,
        deleted: deleted.0,
        started_at: started_at.0,
        finished_at,
        resumed,
        parked_events_dropped: BTreeMap::new(),
        tenant_key_destroyed: false,
    })
}

/// Checks the tenant may be purged and marks it purged; the purge's start and whether it had
/// begun before.
async fn begin(pool: &PgPool, tenant: &Tenant, settle: Duration) -> anyhow::Result<(Time, bool)> {
    let mut tx = pool.begin().await?;
    act_for(&mut tx, tenant.id).await?;
    let row: Option<(String, Option<Time>, Time)> = sqlx::query_as(
        "SELECT status, purged_at, updated_at FROM tenancy.find_tenant($1, NULL, true)",
    )
    .bind(tenant.id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let (status, purged_at, changed_at) =
        row.with_context(|| format!("no tenant {}", tenant.slug))?;
    let ledger: Option<(Option<Time>, Option<Time>)> = sqlx::query_as(
        "SELECT exported_at, purge_started_at FROM tenancy.offboardings WHERE tenant_id = $1",
    )
    .bind(tenant.id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((_, Some(started))) = ledger
        && purged_at.is_some()
    {
        tx.commit().await?;
        return Ok((started, true));
    }
    if status != "suspended" {
        bail!(
            "tenant {} is {status}: suspend it first (caseway tenant suspend {})",
            tenant.slug,
            tenant.slug
        );
    }
    let settled = changed_at + chrono::Duration::from_std(settle)?;
    match ledger {
        Some((Some(exported), _)) if exported >= settled => {}
        Some((Some(exported), _)) if exported >= changed_at => bail!(
            "tenant {}'s last export began within {} s of its suspension, while nodes could still \
             write for it: export it again first (caseway tenant export {})",
            tenant.slug,
            settle.as_secs(),
            tenant.slug
        ),
        Some((Some(_), _)) => bail!(
            "tenant {} changed after its last export: export it again first (caseway tenant export {})",
            tenant.slug,
            tenant.slug
        ),
        _ => bail!(
            "tenant {} has not been exported: export it first (caseway tenant export {})",
            tenant.slug,
            tenant.slug
        ),
    }
    sqlx::query("SELECT 1 FROM tenancy.mark_tenant_purged($1)")
        .bind(tenant.id.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .context("marking the tenant purged")?;
    let started: Time = sqlx::query_scalar(
        "UPDATE tenancy.offboardings SET purge_started_at = now(), updated_at = now() \
          WHERE tenant_id = $1 RETURNING purge_started_at",
    )
    .bind(tenant.id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((started, false))
}

/// Deletes every object the tenant has in a store (under `tenants/<id>/`, whether a row names
/// it or not: an upload whose row never committed leaves one), a listing at a time, adding to
/// the report those it listed, so a resumed purge counts each once.
async fn delete_objects(
    pool: &PgPool,
    tenant: TenantId,
    objects: &TenantObjects,
) -> anyhow::Result<()> {
    let store = objects.store.as_ref();
    let prefix = objects
        .prefix
        .clone()
        .child("tenants")
        .child(tenant.to_string());
    loop {
        let listed: Vec<Path> = store
            .list(Some(&prefix))
            .take(1000)
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .with_context(|| format!("listing the tenant's {}", objects.report_as))?;
        if listed.is_empty() {
            return Ok(());
        }
        let mut results = store.delete_stream(Box::pin(futures::stream::iter(
            listed.iter().cloned().map(Ok),
        )));
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!("deleting one of the tenant's {}", objects.report_as)
                    });
                }
            }
        }
        drop(results);
        let mut tx = pool.begin().await?;
        act_for(&mut tx, tenant).await?;
        add_to_report(&mut tx, tenant, objects.report_as, listed.len() as i64).await?;
        tx.commit().await?;
    }
}

/// Adds `deleted` to what the ledger's report says of `name`, in the caller's transaction.
async fn add_to_report(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    name: &str,
    deleted: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE tenancy.offboardings \
            SET purge_report = jsonb_set(purge_report, ARRAY[$2], \
                  to_jsonb(coalesce((purge_report->>$2)::bigint, 0) + $3)), \
                updated_at = now() \
          WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .bind(name)
    .bind(deleted)
    .execute(tx)
    .await?;
    Ok(())
}

/// Deletes every row of the tenant in `table`, `batch` rows a transaction.
async fn delete_all(
    pool: &PgPool,
    tenant: TenantId,
    table: &TenantTable,
    batch: i64,
) -> anyhow::Result<()> {
    let sql = match table.key_list() {
        Some(key) => format!(
            "WITH gone AS (DELETE FROM {t} WHERE ({key}) IN \
               (SELECT {key} FROM {t} WHERE tenant_id = $1 LIMIT $2) RETURNING 1) \
             SELECT count(*) FROM gone",
            t = table.quoted()
        ),
        None => format!(
            "WITH gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY( \
               SELECT ctid FROM {t} WHERE tenant_id = $1 LIMIT $2)) RETURNING 1) \
             SELECT count(*) FROM gone",
            t = table.quoted()
        ),
    };
    let name = table.full_name();
    loop {
        let mut tx = pool.begin().await?;
        act_for(&mut tx, tenant).await?;
        let deleted: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .bind(tenant.as_uuid())
            .bind(batch)
            .fetch_one(&mut *tx)
            .await
            .with_context(|| format!("deleting from {name}"))?;
        if deleted > 0 {
            add_to_report(&mut tx, tenant, &name, deleted).await?;
        }
        tx.commit().await?;
        if deleted < batch {
            return Ok(());
        }
    }
}

/// The tables where rows of the tenant remain, with how many.
pub async fn remaining(
    pool: &PgPool,
    tenant: TenantId,
    tables: &[TenantTable],
) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut left = BTreeMap::new();
    let mut tx = pool.begin().await?;
    act_for(&mut tx, tenant).await?;
    for table in tables {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE tenant_id = $1",
            table.quoted()
        );
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(tenant.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        if count > 0 {
            left.insert(table.full_name(), count);
        }
    }
    tx.commit().await?;
    Ok(left)
}

/// Drops the tenant's events parked in the dead-letter queues of `consumers`; how many per
/// consumer. (Events still waiting in the consumers' own queues need nothing: the consumers
/// leave a purged tenant's events alone.)
pub async fn drop_parked_events(
    bus: &caseway_platform::bus::Bus,
    consumers: &[&str],
    tenant: TenantId,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut dropped = BTreeMap::new();
    for consumer in consumers {
        let n = bus
            .drop_parked_of_tenant(consumer, tenant)
            .await
            .with_context(|| format!("dropping the tenant's events parked for {consumer}"))?;
        dropped.insert(consumer.to_string(), n);
    }
    Ok(dropped)
}
