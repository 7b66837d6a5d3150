//! A leaving tenant's data. [`export`] writes every row the tenant has in every schema, as
//! JSON Lines per table, with its attachments and a manifest of row counts and checksums, to a
//! folder or an object store; SSNs leave sealed with a key the tenant supplies. [`purge`] then
//! deletes those rows in batches (resumable, under a lock) and drops the tenant's parked
//! events, leaving a report of what it deleted per table.
//!
//! Both run as the schema owner (the migration's credentials: the services' role may not
//! delete audit rows), in transactions that set the tenant as every other transaction does, so
//! row-level security still scopes them to the one tenant. Which tables hold a tenant's data
//! is read from the database ([`tables`]), never listed by hand: a new table is exported and
//! purged with the rest, and a table without `tenant_id` stops both until it is placed.

pub mod destination;
pub mod export;
pub mod purge;
pub mod tables;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

use caseway_platform::TenantId;

pub use export::{ExportKey, Manifest, SsnOpener, export};
pub use purge::{PurgeOptions, PurgeReport, drop_parked_events, purge};

/// A pool of the schema owner's connections (the migration URL), small: offboarding runs one
/// statement at a time.
pub fn owner_pool(owner_url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(owner_url)
        .context("the schema owner's database URL")
}

/// The tenant being offboarded, as its row in `tenancy.tenants` says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub status: String,
    /// When the tenant's rows were purged (or began to be); None while it still has data.
    pub purged_at: Option<Time>,
    /// When the tenant last changed (its suspension, say), by the database's clock.
    pub changed_at: Time,
}

/// Finds a tenant by id or slug, through the platform's own function (the owner, like the
/// services, reads only the tenant it acts for).
pub async fn find_tenant(pool: &PgPool, key: &str) -> anyhow::Result<Tenant> {
    let id = key.parse::<uuid::Uuid>().ok();
    let mut conn = pool.acquire().await?;
    let row: Option<TenantRow> = sqlx::query_as(
        "SELECT id, slug, display_name, status, purged_at, updated_at \
           FROM tenancy.find_tenant($1, $2, false)",
    )
    .bind(id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.with_context(|| format!("no tenant {key}"))?.into())
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Tenant {
        Tenant {
            id: TenantId::from(row.id),
            slug: row.slug,
            display_name: row.display_name,
            status: row.status,
            purged_at: row.purged_at,
            changed_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: uuid::Uuid,
    slug: String,
    display_name: String,
    status: String,
    purged_at: Option<Time>,
    updated_at: Time,
}

/// An instant as PostgreSQL's `timestamptz` reads.
pub(crate) type Time = chrono::DateTime<chrono::Utc>;

/// Every tenant, purged or not.
pub async fn all_tenants(pool: &PgPool) -> anyhow::Result<Vec<Tenant>> {
    let mut conn = pool.acquire().await?;
    let mut tenants = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Vec<TenantRow> = sqlx::query_as(
            "SELECT id, slug, display_name, status, purged_at, updated_at \
               FROM tenancy.list_tenants(NULL, $1, 500)",
        )
        .bind(&after)
        .fetch_all(&mut *conn)
        .await?;
        let full = page.len() == 500;
        after = page.last().map(|t| t.slug.clone());
        tenants.extend(page.into_iter().map(Tenant::from));
        if !full {
            return Ok(tenants);
        }
    }
}

/// Sets the tenant of the transaction `conn` is in, as the services' transactions do.
async fn act_for(conn: &mut PgConnection, tenant: TenantId) -> anyhow::Result<()> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// `schema.table` quoted as an identifier.
fn quoted(schema: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}
