//! The store room of assessments: their SQL, inside tenant transactions that row-level
//! security scopes, and rows read into domain types (a stored state this service does not know
//! is INTERNAL, never a guess).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::error::{Error, Result};

use super::domain::{Answer, Assessment, AssessmentType, AssessmentTypeFields, FieldDefinition};

#[derive(sqlx::FromRow)]
struct TypeRow {
    id: Uuid,
    code: String,
    name: String,
    description: String,
    fields: Json<Vec<FieldDefinition>>,
    state: i16,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Stored lifecycle states, as in the catalog.
const ACTIVE: i16 = 1;
const RETIRED: i16 = 2;

impl TryFrom<TypeRow> for AssessmentType {
    type Error = Error;

    fn try_from(r: TypeRow) -> Result<Self> {
        let retired = match r.state {
            ACTIVE => false,
            RETIRED => true,
            state => {
                return Err(Error::internal(anyhow::anyhow!(
                    "clients.assessment_types.state holds {state}, which is not one of its codes"
                )));
            }
        };
        Ok(AssessmentType {
            id: r.id,
            fields: AssessmentTypeFields {
                code: r.code,
                name: r.name,
                description: r.description,
                fields: r.fields.0,
                retired,
            },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const TYPE_COLUMNS: &str =
    "id, code, name, description, fields, state, version, created_at, updated_at";

pub async fn insert_type(
    conn: &mut PgConnection,
    tenant: TenantId,
    fields: &AssessmentTypeFields,
) -> Result<AssessmentType> {
    let row: TypeRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO clients.assessment_types (tenant_id, id, code, name, description, fields, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TYPE_COLUMNS}"
    )))
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(&fields.code)
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(Json(&fields.fields))
    .bind(if fields.retired { RETIRED } else { ACTIVE })
    .fetch_one(conn)
    .await?;
    row.try_into()
}

pub async fn load_type(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<AssessmentType>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row: Option<TypeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TYPE_COLUMNS} FROM clients.assessment_types WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

pub async fn update_type(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &AssessmentTypeFields,
) -> Result<AssessmentType> {
    let row: TypeRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE clients.assessment_types SET name = $2, description = $3, fields = $4, state = $5, \
         version = version + 1, updated_at = now() WHERE id = $1 RETURNING {TYPE_COLUMNS}"
    )))
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(Json(&fields.fields))
    .bind(if fields.retired { RETIRED } else { ACTIVE })
    .fetch_one(conn)
    .await?;
    row.try_into()
}

/// Types by code, after the `code` of the previous page.
pub async fn list_types(
    conn: &mut PgConnection,
    include_retired: bool,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<AssessmentType>> {
    let rows: Vec<TypeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TYPE_COLUMNS} FROM clients.assessment_types \
         WHERE ($1 OR state = {ACTIVE}) AND ($2::text IS NULL OR code > $2) ORDER BY code LIMIT $3"
    )))
    .bind(include_retired)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

#[derive(sqlx::FromRow)]
struct AssessmentRow {
    id: Uuid,
    client_id: Uuid,
    assessment_type_id: Uuid,
    assessment_type_code: String,
    assessment_type_version: i64,
    assessment_date: NaiveDate,
    answers: Json<Vec<Answer>>,
    recorded_by: String,
    created_at: DateTime<Utc>,
}

impl From<AssessmentRow> for Assessment {
    fn from(r: AssessmentRow) -> Self {
        Assessment {
            id: r.id,
            client_id: r.client_id,
            assessment_type_id: r.assessment_type_id,
            assessment_type_code: r.assessment_type_code,
            assessment_type_version: r.assessment_type_version,
            assessment_date: r.assessment_date,
            answers: r.answers.0,
            recorded_by: r.recorded_by,
            created_at: r.created_at,
        }
    }
}

const ASSESSMENT_COLUMNS: &str = "a.id, a.client_id, a.assessment_type_id, \
    t.code AS assessment_type_code, a.assessment_type_version, a.assessment_date, a.answers, \
    a.recorded_by, a.created_at";

pub struct NewAssessment<'a> {
    pub client_id: Uuid,
    pub assessment_type: &'a AssessmentType,
    pub assessment_date: NaiveDate,
    pub answers: &'a [Answer],
    pub recorded_by: &'a str,
}

pub async fn insert_assessment(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: NewAssessment<'_>,
) -> Result<Assessment> {
    let row: AssessmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH a AS ( \
           INSERT INTO clients.assessments (tenant_id, id, client_id, assessment_type_id, \
           assessment_type_version, assessment_date, answers, recorded_by) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING * \
         ) SELECT {ASSESSMENT_COLUMNS} FROM a JOIN clients.assessment_types t ON t.id = a.assessment_type_id"
    )))
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(new.client_id)
    .bind(new.assessment_type.id)
    .bind(new.assessment_type.version)
    .bind(new.assessment_date)
    .bind(Json(new.answers))
    .bind(new.recorded_by)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn load_assessment(conn: &mut PgConnection, id: Uuid) -> Result<Option<Assessment>> {
    let row: Option<AssessmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM clients.assessments a \
         JOIN clients.assessment_types t ON t.id = a.assessment_type_id WHERE a.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// A client's assessments, latest assessment date first (the later recorded first on the same
/// day), after `(assessment_date, id)` of the previous page; of one type if given.
pub async fn list_assessments(
    conn: &mut PgConnection,
    client_id: Uuid,
    assessment_type_id: Option<Uuid>,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<Assessment>> {
    let (after_date, after_id) = after.unzip();
    let rows: Vec<AssessmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM clients.assessments a \
         JOIN clients.assessment_types t ON t.id = a.assessment_type_id \
         WHERE a.client_id = $1 AND ($2::uuid IS NULL OR a.assessment_type_id = $2) \
         AND ($3::date IS NULL OR (a.assessment_date, a.id) < ($3, $4)) \
         ORDER BY a.assessment_date DESC, a.id DESC LIMIT $5"
    )))
    .bind(client_id)
    .bind(assessment_type_id)
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The latest assessment of each type for a client, by type code.
pub async fn latest_assessments(
    conn: &mut PgConnection,
    client_id: Uuid,
) -> Result<Vec<Assessment>> {
    let rows: Vec<AssessmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ( \
           SELECT DISTINCT ON (a.assessment_type_id) {ASSESSMENT_COLUMNS} \
           FROM clients.assessments a JOIN clients.assessment_types t ON t.id = a.assessment_type_id \
           WHERE a.client_id = $1 \
           ORDER BY a.assessment_type_id, a.assessment_date DESC, a.id DESC \
         ) latest ORDER BY assessment_type_code"
    )))
    .bind(client_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
