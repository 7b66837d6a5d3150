//! Catalog SQL. Every function runs inside a tenant transaction that row-level security
//! scopes; `tenant_id` is written explicitly and checked by the policies. Rows become domain
//! records here; a text column holding a value the domain does not know is INTERNAL, naming
//! it, never a default.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::{Error, Result};

use crate::domain::*;

/// The storage of one kind of catalog entry, used by the shared mechanism in `service.rs`.
pub trait Stored: Resource {
    fn insert(
        conn: &mut PgConnection,
        tenant: TenantId,
        fields: &Self,
    ) -> impl Future<Output = Result<Record<Self>>> + Send;

    /// The entry with `id`, unless deleted; locked when `for_update`.
    fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> impl Future<Output = Result<Option<Record<Self>>>> + Send;

    fn update(
        conn: &mut PgConnection,
        id: Uuid,
        fields: &Self,
    ) -> impl Future<Output = Result<Record<Self>>> + Send;

    /// Describes another live entry holding the same unique key, if any.
    fn conflict(
        conn: &mut PgConnection,
        fields: &Self,
        except: Option<Uuid>,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// Kinds that are retired rather than deleted keep their history.
pub trait Retirable: Stored {
    fn set_state(
        conn: &mut PgConnection,
        id: Uuid,
        state: State,
    ) -> impl Future<Output = Result<Record<Self>>> + Send;
}

/// Kinds that can be (soft) deleted.
pub trait Deletable: Stored {
    fn delete(conn: &mut PgConnection, id: Uuid) -> impl Future<Output = Result<()>> + Send;
}

/// The value a text column names, or INTERNAL naming the column and the text.
fn known<T>(parsed: Option<T>, column: &str, text: &str) -> Result<T> {
    parsed.ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "catalog: {column} {text:?} in the database is not one the catalog knows"
        ))
    })
}

fn state(text: &str) -> Result<State> {
    known(State::parse(text), "state", text)
}

fn records<R, F>(rows: Vec<R>) -> Result<Vec<Record<F>>>
where
    Record<F>: TryFrom<R, Error = Error>,
{
    rows.into_iter().map(Record::try_from).collect()
}

// ---- service groups ----

#[derive(sqlx::FromRow)]
struct ServiceGroupRow {
    id: Uuid,
    name: String,
    description: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ServiceGroupRow> for Record<ServiceGroupFields> {
    type Error = Error;

    fn try_from(r: ServiceGroupRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: State::Active,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: ServiceGroupFields {
                name: r.name,
                description: r.description,
            },
        })
    }
}

impl Deletable for ServiceGroupFields {
    async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE catalog.service_groups SET deleted_at = now(), version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Stored for ServiceGroupFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: ServiceGroupRow = sqlx::query_as(
            "INSERT INTO catalog.service_groups (tenant_id, id, name, description) \
             VALUES ($1, $2, $3, $4) \
             RETURNING id, name, description, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(&f.name)
        .bind(&f.description)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, name, description, version, created_at, updated_at FROM catalog.service_groups \
             WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        } else {
            "SELECT id, name, description, version, created_at, updated_at FROM catalog.service_groups \
             WHERE id = $1 AND deleted_at IS NULL"
        };
        let row: Option<ServiceGroupRow> =
            sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: ServiceGroupRow = sqlx::query_as(
            "UPDATE catalog.service_groups SET name = $2, description = $3, \
             version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, name, description, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.name)
        .bind(&f.description)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        conn: &mut PgConnection,
        f: &Self,
        except: Option<Uuid>,
    ) -> Result<Option<String>> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM catalog.service_groups WHERE name = $1 AND deleted_at IS NULL \
             AND ($2::uuid IS NULL OR id <> $2)",
        )
        .bind(&f.name)
        .bind(except)
        .fetch_optional(conn)
        .await?;
        Ok(found.map(|_| format!("a service group named {} exists", f.name)))
    }
}

pub async fn list_service_groups(
    conn: &mut PgConnection,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<ServiceGroupFields>>> {
    let (after_name, after_id) = after.unzip();
    let rows: Vec<ServiceGroupRow> = sqlx::query_as(
        "SELECT id, name, description, version, created_at, updated_at FROM catalog.service_groups \
         WHERE deleted_at IS NULL AND ($1::text IS NULL OR (name, id) > ($1, $2)) \
         ORDER BY name, id LIMIT $3",
    )
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    records(rows)
}

// ---- services ----

#[derive(sqlx::FromRow)]
struct ServiceRow {
    id: Uuid,
    code: String,
    name: String,
    description: String,
    unit_of_measure: String,
    default_unit_value: Decimal,
    delivery_mode: String,
    service_group_id: Option<Uuid>,
    organization_ids: Vec<Uuid>,
    grant_ids: Vec<Uuid>,
    program_ids: Vec<Uuid>,
    unit_value_fixed: bool,
    state: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ServiceRow> for Record<ServiceFields> {
    type Error = Error;

    fn try_from(r: ServiceRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: state(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: ServiceFields {
                code: r.code,
                name: r.name,
                description: r.description,
                unit_of_measure: known(
                    UnitOfMeasure::parse(&r.unit_of_measure),
                    "unit_of_measure",
                    &r.unit_of_measure,
                )?,
                default_unit_value: r.default_unit_value,
                delivery_mode: known(
                    DeliveryMode::parse(&r.delivery_mode),
                    "delivery_mode",
                    &r.delivery_mode,
                )?,
                service_group_id: r.service_group_id,
                organization_ids: r.organization_ids,
                grant_ids: r.grant_ids,
                program_ids: r.program_ids,
                unit_value_fixed: r.unit_value_fixed,
            },
        })
    }
}

impl Deletable for ServiceFields {
    async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE catalog.services SET deleted_at = now(), version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Retirable for ServiceFields {
    async fn set_state(conn: &mut PgConnection, id: Uuid, state: State) -> Result<Record<Self>> {
        let row: ServiceRow = sqlx::query_as(
            "UPDATE catalog.services SET state = $2, version = version + 1, updated_at = now() \
             WHERE id = $1 \
             RETURNING id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
             service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_one(conn)
        .await?;
        row.try_into()
    }
}

impl Stored for ServiceFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: ServiceRow = sqlx::query_as(
            "INSERT INTO catalog.services (tenant_id, id, code, name, description, unit_of_measure, \
             default_unit_value, delivery_mode, service_group_id, organization_ids, grant_ids, program_ids, \
             unit_value_fixed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             RETURNING id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
             service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.unit_of_measure.as_str())
        .bind(f.default_unit_value)
        .bind(f.delivery_mode.as_str())
        .bind(f.service_group_id)
        .bind(&f.organization_ids)
        .bind(&f.grant_ids)
        .bind(&f.program_ids)
        .bind(f.unit_value_fixed)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
             service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at \
             FROM catalog.services WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        } else {
            "SELECT id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
             service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at \
             FROM catalog.services WHERE id = $1 AND deleted_at IS NULL"
        };
        let row: Option<ServiceRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: ServiceRow = sqlx::query_as(
            "UPDATE catalog.services SET code = $2, name = $3, description = $4, unit_of_measure = $5, \
             default_unit_value = $6, delivery_mode = $7, service_group_id = $8, organization_ids = $9, \
             grant_ids = $10, program_ids = $11, unit_value_fixed = $12, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
             service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.unit_of_measure.as_str())
        .bind(f.default_unit_value)
        .bind(f.delivery_mode.as_str())
        .bind(f.service_group_id)
        .bind(&f.organization_ids)
        .bind(&f.grant_ids)
        .bind(&f.program_ids)
        .bind(f.unit_value_fixed)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        conn: &mut PgConnection,
        f: &Self,
        except: Option<Uuid>,
    ) -> Result<Option<String>> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM catalog.services WHERE code = $1 AND deleted_at IS NULL \
             AND ($2::uuid IS NULL OR id <> $2)",
        )
        .bind(&f.code)
        .bind(except)
        .fetch_optional(conn)
        .await?;
        Ok(found.map(|_| format!("a service with code {} exists", f.code)))
    }
}

pub async fn list_services(
    conn: &mut PgConnection,
    filter: &ServiceFilter,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<ServiceFields>>> {
    let (after_code, after_id) = after.unzip();
    let rows: Vec<ServiceRow> = sqlx::query_as(
        "SELECT id, code, name, description, unit_of_measure, default_unit_value, delivery_mode, \
         service_group_id, organization_ids, grant_ids, program_ids, unit_value_fixed, state, version, created_at, updated_at \
         FROM catalog.services WHERE deleted_at IS NULL \
         AND ($1::uuid IS NULL OR service_group_id = $1) \
         AND ($2::text IS NULL OR delivery_mode = $2) \
         AND ($3::uuid IS NULL OR $3 = ANY(grant_ids)) \
         AND ($4::uuid IS NULL OR $4 = ANY(program_ids)) \
         AND ($5::text IS NULL OR code ILIKE '%' || $5 || '%' OR name ILIKE '%' || $5 || '%') \
         AND ($6 OR state = 'active') \
         AND ($7::uuid[] IS NULL OR cardinality(organization_ids) = 0 OR organization_ids && $7) \
         AND ($8::text IS NULL OR (code, id) > ($8, $9)) \
         ORDER BY code, id LIMIT $10",
    )
    .bind(filter.service_group_id)
    .bind(filter.delivery_mode.map(|m| m.as_str()))
    .bind(filter.grant_id)
    .bind(filter.program_id)
    .bind(filter.query.as_deref().map(escape_like))
    .bind(filter.include_retired)
    .bind(filter.visible_to_organizations.as_deref())
    .bind(after_code)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    records(rows)
}

/// Every service of the tenant restricted to security organizations, with them; deleted
/// services too, since their records stay restricted.
pub async fn service_restrictions(conn: &mut PgConnection) -> Result<Vec<(Uuid, Vec<Uuid>)>> {
    Ok(sqlx::query_as(
        "SELECT id, organization_ids FROM catalog.services \
         WHERE cardinality(organization_ids) > 0 ORDER BY id",
    )
    .fetch_all(conn)
    .await?)
}

/// Which of `ids` name live service groups, grants or programs of the tenant.
pub async fn existing_ids(
    conn: &mut PgConnection,
    table: ReferenceTable,
    ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    let sql = match table {
        ReferenceTable::ServiceGroups => {
            "SELECT id FROM catalog.service_groups WHERE id = ANY($1) AND deleted_at IS NULL"
        }
        ReferenceTable::Grants => "SELECT id FROM catalog.grants WHERE id = ANY($1)",
        ReferenceTable::Programs => "SELECT id FROM catalog.programs WHERE id = ANY($1)",
    };
    Ok(sqlx::query_scalar(sql).bind(ids).fetch_all(conn).await?)
}

#[derive(Clone, Copy)]
pub enum ReferenceTable {
    ServiceGroups,
    Grants,
    Programs,
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

// ---- grants ----

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    code: String,
    name: String,
    funder: String,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    budget: Option<Decimal>,
    state: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<GrantRow> for Record<GrantFields> {
    type Error = Error;

    fn try_from(r: GrantRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: state(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: GrantFields {
                code: r.code,
                name: r.name,
                funder: r.funder,
                start_date: r.start_date,
                end_date: r.end_date,
                budget: r.budget,
            },
        })
    }
}

impl Retirable for GrantFields {
    async fn set_state(conn: &mut PgConnection, id: Uuid, state: State) -> Result<Record<Self>> {
        let row: GrantRow = sqlx::query_as(
            "UPDATE catalog.grants SET state = $2, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_one(conn)
        .await?;
        row.try_into()
    }
}

impl Stored for GrantFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: GrantRow = sqlx::query_as(
            "INSERT INTO catalog.grants (tenant_id, id, code, name, funder, start_date, end_date, budget) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.funder)
        .bind(f.start_date)
        .bind(f.end_date)
        .bind(f.budget)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at \
             FROM catalog.grants WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at \
             FROM catalog.grants WHERE id = $1"
        };
        let row: Option<GrantRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: GrantRow = sqlx::query_as(
            "UPDATE catalog.grants SET code = $2, name = $3, funder = $4, start_date = $5, end_date = $6, \
             budget = $7, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.funder)
        .bind(f.start_date)
        .bind(f.end_date)
        .bind(f.budget)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        conn: &mut PgConnection,
        f: &Self,
        except: Option<Uuid>,
    ) -> Result<Option<String>> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM catalog.grants WHERE code = $1 AND ($2::uuid IS NULL OR id <> $2)",
        )
        .bind(&f.code)
        .bind(except)
        .fetch_optional(conn)
        .await?;
        Ok(found.map(|_| format!("a grant with code {} exists", f.code)))
    }
}

pub async fn list_grants(
    conn: &mut PgConnection,
    query: Option<&str>,
    active_on: Option<NaiveDate>,
    include_retired: bool,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<GrantFields>>> {
    let (after_code, after_id) = after.unzip();
    let rows: Vec<GrantRow> = sqlx::query_as(
        "SELECT id, code, name, funder, start_date, end_date, budget, state, version, created_at, updated_at \
         FROM catalog.grants WHERE \
         ($1::text IS NULL OR code ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%' OR funder ILIKE '%' || $1 || '%') \
         AND ($2::date IS NULL OR (start_date <= $2 AND (end_date IS NULL OR end_date >= $2))) \
         AND ($3 OR state = 'active') \
         AND ($4::text IS NULL OR (code, id) > ($4, $5)) \
         ORDER BY code, id LIMIT $6",
    )
    .bind(query.map(escape_like))
    .bind(active_on)
    .bind(include_retired)
    .bind(after_code)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    records(rows)
}

// ---- programs ----

#[derive(sqlx::FromRow)]
struct ProgramRow {
    id: Uuid,
    code: String,
    name: String,
    description: String,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    state: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ProgramRow> for Record<ProgramFields> {
    type Error = Error;

    fn try_from(r: ProgramRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: state(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: ProgramFields {
                code: r.code,
                name: r.name,
                description: r.description,
                start_date: r.start_date,
                end_date: r.end_date,
            },
        })
    }
}

impl Retirable for ProgramFields {
    async fn set_state(conn: &mut PgConnection, id: Uuid, state: State) -> Result<Record<Self>> {
        let row: ProgramRow = sqlx::query_as(
            "UPDATE catalog.programs SET state = $2, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code, name, description, start_date, end_date, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_one(conn)
        .await?;
        row.try_into()
    }
}

impl Stored for ProgramFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: ProgramRow = sqlx::query_as(
            "INSERT INTO catalog.programs (tenant_id, id, code, name, description, start_date, end_date) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, code, name, description, start_date, end_date, state, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.start_date)
        .bind(f.end_date)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, code, name, description, start_date, end_date, state, version, created_at, updated_at \
             FROM catalog.programs WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT id, code, name, description, start_date, end_date, state, version, created_at, updated_at \
             FROM catalog.programs WHERE id = $1"
        };
        let row: Option<ProgramRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: ProgramRow = sqlx::query_as(
            "UPDATE catalog.programs SET code = $2, name = $3, description = $4, start_date = $5, \
             end_date = $6, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code, name, description, start_date, end_date, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.start_date)
        .bind(f.end_date)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        conn: &mut PgConnection,
        f: &Self,
        except: Option<Uuid>,
    ) -> Result<Option<String>> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM catalog.programs WHERE code = $1 AND ($2::uuid IS NULL OR id <> $2)",
        )
        .bind(&f.code)
        .bind(except)
        .fetch_optional(conn)
        .await?;
        Ok(found.map(|_| format!("a program with code {} exists", f.code)))
    }
}

pub async fn list_programs(
    conn: &mut PgConnection,
    query: Option<&str>,
    active_on: Option<NaiveDate>,
    include_retired: bool,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<ProgramFields>>> {
    let (after_code, after_id) = after.unzip();
    let rows: Vec<ProgramRow> = sqlx::query_as(
        "SELECT id, code, name, description, start_date, end_date, state, version, created_at, updated_at \
         FROM catalog.programs WHERE \
         ($1::text IS NULL OR code ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%') \
         AND ($2::date IS NULL OR (start_date <= $2 AND (end_date IS NULL OR end_date >= $2))) \
         AND ($3 OR state = 'active') \
         AND ($4::text IS NULL OR (code, id) > ($4, $5)) \
         ORDER BY code, id LIMIT $6",
    )
    .bind(query.map(escape_like))
    .bind(active_on)
    .bind(include_retired)
    .bind(after_code)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    records(rows)
}

// ---- providers ----

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: Uuid,
    name: String,
    kind: String,
    email: String,
    phone: String,
    state: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ProviderRow> for Record<ProviderFields> {
    type Error = Error;

    fn try_from(r: ProviderRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: state(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: ProviderFields {
                name: r.name,
                kind: known(ProviderKind::parse(&r.kind), "provider kind", &r.kind)?,
                email: r.email,
                phone: r.phone,
            },
        })
    }
}

impl Retirable for ProviderFields {
    async fn set_state(conn: &mut PgConnection, id: Uuid, state: State) -> Result<Record<Self>> {
        let row: ProviderRow = sqlx::query_as(
            "UPDATE catalog.providers SET state = $2, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, name, kind, email, phone, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_one(conn)
        .await?;
        row.try_into()
    }
}

impl Stored for ProviderFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: ProviderRow = sqlx::query_as(
            "INSERT INTO catalog.providers (tenant_id, id, name, kind, email, phone) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, name, kind, email, phone, state, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(&f.name)
        .bind(f.kind.as_str())
        .bind(&f.email)
        .bind(&f.phone)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, name, kind, email, phone, state, version, created_at, updated_at \
             FROM catalog.providers WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT id, name, kind, email, phone, state, version, created_at, updated_at \
             FROM catalog.providers WHERE id = $1"
        };
        let row: Option<ProviderRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: ProviderRow = sqlx::query_as(
            "UPDATE catalog.providers SET name = $2, kind = $3, email = $4, phone = $5, \
             version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, name, kind, email, phone, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.name)
        .bind(f.kind.as_str())
        .bind(&f.email)
        .bind(&f.phone)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        _conn: &mut PgConnection,
        _f: &Self,
        _except: Option<Uuid>,
    ) -> Result<Option<String>> {
        // Two providers may share a name (two staff members called Ana Diaz).
        Ok(None)
    }
}

pub async fn list_providers(
    conn: &mut PgConnection,
    query: Option<&str>,
    kind: Option<ProviderKind>,
    include_retired: bool,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<ProviderFields>>> {
    let (after_name, after_id) = after.unzip();
    // Typos are tolerated: a trigram match (pg_trgm's word similarity) or a substring.
    let rows: Vec<ProviderRow> = sqlx::query_as(
        "SELECT id, name, kind, email, phone, state, version, created_at, updated_at \
         FROM catalog.providers WHERE \
         ($1::text IS NULL OR name % $1 OR $1 <% name OR name ILIKE '%' || $7 || '%') \
         AND ($2::text IS NULL OR kind = $2) \
         AND ($3 OR state = 'active') \
         AND ($4::text IS NULL OR (name, id) > ($4, $5)) \
         ORDER BY name, id LIMIT $6",
    )
    .bind(query)
    .bind(kind.map(|k| k.as_str()))
    .bind(include_retired)
    .bind(after_name)
    .bind(after_id)
    .bind(limit)
    .bind(query.map(escape_like))
    .fetch_all(conn)
    .await?;
    records(rows)
}

// ---- code values ----

#[derive(sqlx::FromRow)]
struct CodeValueRow {
    id: Uuid,
    code_list: String,
    code: String,
    label: String,
    sort_order: i32,
    state: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<CodeValueRow> for Record<CodeValueFields> {
    type Error = Error;

    fn try_from(r: CodeValueRow) -> Result<Self> {
        Ok(Record {
            id: r.id,
            version: r.version,
            state: state(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            fields: CodeValueFields {
                code_list: known(CodeList::parse(&r.code_list), "code_list", &r.code_list)?,
                code: r.code,
                label: r.label,
                sort_order: r.sort_order,
            },
        })
    }
}

impl Retirable for CodeValueFields {
    async fn set_state(conn: &mut PgConnection, id: Uuid, state: State) -> Result<Record<Self>> {
        let row: CodeValueRow = sqlx::query_as(
            "UPDATE catalog.code_values SET state = $2, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code_list, code, label, sort_order, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_one(conn)
        .await?;
        row.try_into()
    }
}

impl Stored for CodeValueFields {
    async fn insert(conn: &mut PgConnection, tenant: TenantId, f: &Self) -> Result<Record<Self>> {
        let row: CodeValueRow = sqlx::query_as(
            "INSERT INTO catalog.code_values (tenant_id, id, code_list, code, label, sort_order) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, code_list, code, label, sort_order, state, version, created_at, updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(f.code_list.as_str())
        .bind(&f.code)
        .bind(&f.label)
        .bind(f.sort_order)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        for_update: bool,
    ) -> Result<Option<Record<Self>>> {
        let sql = if for_update {
            "SELECT id, code_list, code, label, sort_order, state, version, created_at, updated_at \
             FROM catalog.code_values WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT id, code_list, code, label, sort_order, state, version, created_at, updated_at \
             FROM catalog.code_values WHERE id = $1"
        };
        let row: Option<CodeValueRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update(conn: &mut PgConnection, id: Uuid, f: &Self) -> Result<Record<Self>> {
        let row: CodeValueRow = sqlx::query_as(
            "UPDATE catalog.code_values SET code = $2, label = $3, sort_order = $4, \
             version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING id, code_list, code, label, sort_order, state, version, created_at, updated_at",
        )
        .bind(id)
        .bind(&f.code)
        .bind(&f.label)
        .bind(f.sort_order)
        .fetch_one(conn)
        .await?;
        row.try_into()
    }

    async fn conflict(
        conn: &mut PgConnection,
        f: &Self,
        except: Option<Uuid>,
    ) -> Result<Option<String>> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM catalog.code_values WHERE code_list = $1 AND code = $2 \
             AND ($3::uuid IS NULL OR id <> $3)",
        )
        .bind(f.code_list.as_str())
        .bind(&f.code)
        .bind(except)
        .fetch_optional(conn)
        .await?;
        Ok(found.map(|_| format!("code {} exists in this list", f.code)))
    }
}

pub async fn list_code_values(
    conn: &mut PgConnection,
    code_list: CodeList,
    include_retired: bool,
    after: Option<(i32, String, Uuid)>,
    limit: i64,
) -> Result<Vec<Record<CodeValueFields>>> {
    let (after_sort, after_code, after_id) = match after {
        Some((s, c, i)) => (Some(s), Some(c), Some(i)),
        None => (None, None, None),
    };
    let rows: Vec<CodeValueRow> = sqlx::query_as(
        "SELECT id, code_list, code, label, sort_order, state, version, created_at, updated_at \
         FROM catalog.code_values WHERE code_list = $1 AND ($2 OR state = 'active') \
         AND ($3::int IS NULL OR (sort_order, code, id) > ($3, $4, $5)) \
         ORDER BY sort_order, code, id LIMIT $6",
    )
    .bind(code_list.as_str())
    .bind(include_retired)
    .bind(after_sort)
    .bind(after_code)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    records(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_the_domain_does_not_know_is_internal_not_a_default() {
        assert_eq!(state("retired").unwrap(), State::Retired);
        let Err(Error::Internal(error)) = state("paused") else {
            panic!("an unknown state reads as an error");
        };
        assert!(error.to_string().contains("\"paused\""), "{error}");
    }
}
