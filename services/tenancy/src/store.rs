//! Tenancy SQL: the queries over tenants (through the caseway_system role's functions) and
//! organizations, and their rows read into domain types. Every function runs inside a
//! transaction that row-level security scopes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::{Error, Result};

use crate::domain::{
    NewTenant, Organization, OrganizationFields, Tenant, TenantFields, TenantStatus,
};

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    slug: String,
    display_name: String,
    status: String,
    calls_per_second: Option<i32>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    purged_at: Option<DateTime<Utc>>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;

    /// INTERNAL for a status the domain does not know.
    fn try_from(row: TenantRow) -> Result<Self> {
        let status = TenantStatus::parse(&row.status).ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "tenant {} has an unknown status {:?}",
                row.id,
                row.status
            ))
        })?;
        Ok(Tenant {
            id: TenantId(row.id),
            slug: row.slug,
            display_name: row.display_name,
            status,
            // The column's check keeps it positive.
            calls_per_second: row.calls_per_second.and_then(|c| u32::try_from(c).ok()),
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            purged_at: row.purged_at,
        })
    }
}

// Tenants are the platform's: reads and writes across them go through the functions of the
// caseway_system role (see the tenancy system migration); a tenant's transaction sees its own
// row only ([`own_tenant`]).

const TENANT_COLUMNS: &str =
    "id, slug, display_name, status, calls_per_second, version, created_at, updated_at, purged_at";

pub async fn insert_tenant(
    conn: &mut PgConnection,
    id: TenantId,
    new: &NewTenant,
) -> Result<Tenant> {
    let row: TenantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.create_tenant($1, $2, $3)"
    )))
    .bind(id.as_uuid())
    .bind(&new.slug)
    .bind(&new.display_name)
    .fetch_one(conn)
    .await?;
    row.try_into()
}

/// Any tenant, by id or by slug (exactly one of them), locked for the transaction if asked.
async fn find_tenant(
    conn: &mut PgConnection,
    id: Option<TenantId>,
    slug: Option<&str>,
    lock: bool,
) -> Result<Option<Tenant>> {
    let row: Option<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.find_tenant($1, $2, $3)"
    )))
    .bind(id.map(|i| i.as_uuid()))
    .bind(slug)
    .bind(lock)
    .fetch_optional(conn)
    .await?;
    row.map(Tenant::try_from).transpose()
}

pub async fn tenant(conn: &mut PgConnection, id: TenantId) -> Result<Option<Tenant>> {
    find_tenant(conn, Some(id), None, false).await
}

pub async fn tenant_for_update(conn: &mut PgConnection, id: TenantId) -> Result<Option<Tenant>> {
    find_tenant(conn, Some(id), None, true).await
}

pub async fn tenant_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Option<Tenant>> {
    find_tenant(conn, None, Some(slug), false).await
}

/// The tenant of the transaction, as row-level security shows it (none but its own).
pub async fn own_tenant(conn: &mut PgConnection, id: TenantId) -> Result<Option<Tenant>> {
    let row: Option<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.tenants WHERE id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.map(Tenant::try_from).transpose()
}

pub async fn list_tenants(
    conn: &mut PgConnection,
    status: Option<TenantStatus>,
    after_slug: Option<&str>,
    limit: i64,
) -> Result<Vec<Tenant>> {
    let rows: Vec<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.list_tenants($1, $2, $3)"
    )))
    .bind(status.map(|s| s.as_str()))
    .bind(after_slug)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Tenant::try_from).collect()
}

pub async fn update_tenant(
    conn: &mut PgConnection,
    id: TenantId,
    fields: &TenantFields,
) -> Result<Tenant> {
    let row: TenantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.update_tenant($1, $2, $3)"
    )))
    .bind(id.as_uuid())
    .bind(&fields.display_name)
    .bind(fields.calls_per_second.and_then(|c| i32::try_from(c).ok()))
    .fetch_one(conn)
    .await?;
    row.try_into()
}

pub async fn set_tenant_status(
    conn: &mut PgConnection,
    id: TenantId,
    status: TenantStatus,
) -> Result<Tenant> {
    let row: TenantRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TENANT_COLUMNS} FROM tenancy.set_tenant_status($1, $2)"
    )))
    .bind(id.as_uuid())
    .bind(status.as_str())
    .fetch_one(conn)
    .await?;
    row.try_into()
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: Uuid,
    code: String,
    name: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<OrganizationRow> for Organization {
    fn from(row: OrganizationRow) -> Self {
        Organization {
            id: row.id,
            code: row.code,
            name: row.name,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub async fn insert_organization(
    conn: &mut PgConnection,
    tenant: TenantId,
    fields: &OrganizationFields,
) -> Result<Organization> {
    let row: OrganizationRow = sqlx::query_as(
        "INSERT INTO tenancy.organizations (tenant_id, id, code, name) VALUES ($1, $2, $3, $4) \
         RETURNING id, code, name, version, created_at, updated_at",
    )
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(&fields.code)
    .bind(&fields.name)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn organization(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Organization>> {
    let sql = if for_update {
        "SELECT id, code, name, version, created_at, updated_at FROM tenancy.organizations \
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    } else {
        "SELECT id, code, name, version, created_at, updated_at FROM tenancy.organizations \
         WHERE id = $1 AND deleted_at IS NULL"
    };
    let row: Option<OrganizationRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(Into::into))
}

pub async fn organization_by_code(conn: &mut PgConnection, code: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM tenancy.organizations WHERE code = $1 AND deleted_at IS NULL",
    )
    .bind(code)
    .fetch_optional(conn)
    .await?)
}

pub async fn update_organization(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &OrganizationFields,
) -> Result<Organization> {
    let row: OrganizationRow = sqlx::query_as(
        "UPDATE tenancy.organizations SET code = $2, name = $3, version = version + 1, \
         updated_at = now() WHERE id = $1 AND deleted_at IS NULL \
         RETURNING id, code, name, version, created_at, updated_at",
    )
    .bind(id)
    .bind(&fields.code)
    .bind(&fields.name)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn delete_organization(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE tenancy.organizations SET deleted_at = now(), version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_organizations(
    conn: &mut PgConnection,
    after_code: Option<&str>,
    limit: i64,
) -> Result<Vec<Organization>> {
    let rows: Vec<OrganizationRow> = sqlx::query_as(
        "SELECT id, code, name, version, created_at, updated_at FROM tenancy.organizations \
         WHERE deleted_at IS NULL AND ($1::text IS NULL OR code > $1) ORDER BY code LIMIT $2",
    )
    .bind(after_code)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
