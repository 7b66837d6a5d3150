//! Eligibility SQL, inside tenant transactions that row-level security scopes: rules and
//! their versions, decisions, and the read model of clients' facts and the fact schema that
//! the other services' events keep. Every fact write says whether it changed anything: an
//! event older than the row (by its version) or seen before writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use caseway_platform::error::{Error, Result};
use caseway_platform::{ClientId, DecisionId, RuleId, ServiceId, TenantId};

use crate::domain::{
    Answer, AssessmentFact, BarrierFact, ClientFacts, Criterion, CriterionOutcome, DecisionRow,
    DeliveryFact, Digest, EnrollmentFact, Fact, FactSchema, FieldType, Mode, Outcome, RuleRow,
    RuleVersionRow, Snapshot, check_of, new_check_id,
};
use crate::reads::DeliveriesRead;

const RULE_COLUMNS: &str = "r.id, r.service_id, coalesce(s.code, '') AS service_code, r.mode, \
    r.criteria, r.published_version, r.draft_changed, r.version, r.created_at, r.updated_at";

const RULE_FROM: &str = "eligibility.rules r LEFT JOIN eligibility.services s \
    ON s.tenant_id = r.tenant_id AND s.id = r.service_id";

#[derive(sqlx::FromRow)]
struct RuleSql {
    id: RuleId,
    service_id: ServiceId,
    service_code: String,
    mode: i16,
    criteria: Json<Vec<Criterion>>,
    published_version: i32,
    draft_changed: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<RuleSql> for RuleRow {
    fn from(r: RuleSql) -> RuleRow {
        RuleRow {
            id: r.id,
            service_id: r.service_id,
            service_code: r.service_code,
            mode: Mode::from_i16(r.mode),
            criteria: r.criteria.0,
            published_version: r.published_version,
            draft_changed: r.draft_changed,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A rule, locked for the caller's transaction when `lock`.
pub async fn rule(conn: &mut PgConnection, id: RuleId, lock: bool) -> Result<Option<RuleRow>> {
    let lock = if lock { " FOR UPDATE OF r" } else { "" };
    let row: Option<RuleSql> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM {RULE_FROM} WHERE r.id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(RuleRow::from))
}

pub async fn insert_rule(conn: &mut PgConnection, tenant: TenantId, rule: &RuleRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO eligibility.rules (tenant_id, id, service_id, mode, criteria, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(tenant.as_uuid())
    .bind(rule.id)
    .bind(rule.service_id)
    .bind(rule.mode as i16)
    .bind(Json(&rule.criteria))
    .bind(rule.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a rule's draft, mode and published version as `rule` has them, one version on.
pub async fn update_rule(conn: &mut PgConnection, rule: &RuleRow) -> Result<()> {
    sqlx::query(
        "UPDATE eligibility.rules SET mode = $2, criteria = $3, published_version = $4, \
         draft_changed = $5, version = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(rule.id)
    .bind(rule.mode as i16)
    .bind(Json(&rule.criteria))
    .bind(rule.published_version)
    .bind(rule.draft_changed)
    .bind(rule.version)
    .bind(rule.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the tenant's rules by service code, after `after` (code, id).
pub async fn list_rules(
    conn: &mut PgConnection,
    after: Option<&(String, Uuid)>,
    limit: i64,
) -> Result<Vec<RuleRow>> {
    let (code, id) = after
        .map(|(c, i)| (c.as_str(), *i))
        .unwrap_or(("", Uuid::nil()));
    let rows: Vec<RuleSql> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM {RULE_FROM} \
         WHERE (coalesce(s.code, ''), r.id) > ($1, $2) \
         ORDER BY coalesce(s.code, ''), r.id LIMIT $3"
    )))
    .bind(code)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(RuleRow::from).collect())
}

#[derive(sqlx::FromRow)]
struct VersionSql {
    rule_id: RuleId,
    version: i32,
    service_id: ServiceId,
    mode: i16,
    criteria: Json<Vec<Criterion>>,
    fact_schema: Json<FactSchema>,
    published_by: String,
    published_at: DateTime<Utc>,
}

impl From<VersionSql> for RuleVersionRow {
    fn from(v: VersionSql) -> RuleVersionRow {
        RuleVersionRow {
            rule_id: v.rule_id,
            version: v.version,
            service_id: v.service_id,
            mode: Mode::from_i16(v.mode),
            criteria: v.criteria.0,
            fact_schema: v.fact_schema.0,
            published_by: v.published_by,
            published_at: v.published_at,
        }
    }
}

const VERSION_COLUMNS: &str =
    "rule_id, version, service_id, mode, criteria, fact_schema, published_by, published_at";

pub async fn insert_version(
    conn: &mut PgConnection,
    tenant: TenantId,
    v: &RuleVersionRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO eligibility.rule_versions (tenant_id, rule_id, version, service_id, mode, \
         criteria, fact_schema, published_by, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant.as_uuid())
    .bind(v.rule_id)
    .bind(v.version)
    .bind(v.service_id)
    .bind(v.mode as i16)
    .bind(Json(&v.criteria))
    .bind(Json(&v.fact_schema))
    .bind(&v.published_by)
    .bind(v.published_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn version(
    conn: &mut PgConnection,
    rule_id: RuleId,
    version: i32,
) -> Result<Option<RuleVersionRow>> {
    let row: Option<VersionSql> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM eligibility.rule_versions WHERE rule_id = $1 AND version = $2"
    )))
    .bind(rule_id)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(RuleVersionRow::from))
}

/// The published version of every rule of the tenant.
pub async fn published(conn: &mut PgConnection) -> Result<Vec<RuleVersionRow>> {
    let rows: Vec<VersionSql> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM eligibility.rules r JOIN eligibility.rule_versions v \
           ON v.tenant_id = r.tenant_id AND v.rule_id = r.id AND v.version = r.published_version",
        VERSION_COLUMNS
            .split(", ")
            .map(|c| format!("v.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(RuleVersionRow::from).collect())
}

/// The fact schema as the events have kept it: assessment types and live service codes.
pub async fn fact_schema(conn: &mut PgConnection) -> Result<FactSchema> {
    let types: Vec<(String, Json<BTreeMap<String, FieldType>>)> =
        sqlx::query_as("SELECT code, fields FROM eligibility.assessment_types")
            .fetch_all(&mut *conn)
            .await?;
    let codes: Vec<String> =
        sqlx::query_scalar("SELECT code FROM eligibility.services WHERE NOT deleted")
            .fetch_all(conn)
            .await?;
    Ok(FactSchema {
        assessment_types: types.into_iter().map(|(c, f)| (c, f.0)).collect(),
        service_codes: codes.into_iter().collect(),
    })
}

/// A service of the catalog as the events gave it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ServiceFact {
    pub id: ServiceId,
    pub code: String,
    pub organization_ids: Vec<Uuid>,
}

/// Live services by id (of `ids`, or all).
pub async fn services(
    conn: &mut PgConnection,
    ids: Option<&[Uuid]>,
) -> Result<BTreeMap<ServiceId, ServiceFact>> {
    let rows: Vec<ServiceFact> = sqlx::query_as(
        "SELECT id, code, organization_ids FROM eligibility.services \
         WHERE NOT deleted AND ($1::uuid[] IS NULL OR id = ANY($1))",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|s| (s.id, s)).collect())
}

/// Locks a client's facts for the caller's transaction, so two events for one client look at
/// its eligibility one after the other, the second with the first's facts.
pub async fn lock_client(conn: &mut PgConnection, id: ClientId) -> Result<()> {
    sqlx::query("SELECT 1 FROM eligibility.clients WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A client's own facts, as the facts query gives them.
#[derive(serde::Deserialize)]
struct ClientJson {
    birth_date: Option<NaiveDate>,
    veteran: Option<bool>,
    deleted: bool,
}

/// An assessment as the facts query gives it: id, type code, date, answers.
type AssessmentJson = (Uuid, String, NaiveDate, BTreeMap<String, Answer>);
/// A barrier: id, type code, status, identified and resolved dates.
type BarrierJson = (Uuid, String, String, NaiveDate, Option<NaiveDate>);
/// An enrollment: id, program code, entry and exit dates.
type EnrollmentJson = (Uuid, String, NaiveDate, Option<NaiveDate>);
/// A delivery: record id, service code, date, units, value.
type DeliveryJson = (Uuid, String, NaiveDate, Decimal, Decimal);
/// A service: id, code, security organizations.
type ServiceJson = (ServiceId, String, Vec<Uuid>);

#[derive(sqlx::FromRow)]
struct FactsSql {
    client: Option<Json<ClientJson>>,
    assessments: Json<Vec<AssessmentJson>>,
    barriers: Json<Vec<BarrierJson>>,
    enrollments: Json<Vec<EnrollmentJson>>,
    deliveries: Json<Vec<DeliveryJson>>,
    services: Json<Vec<ServiceJson>>,
}

/// What a check reads in its one statement.
pub struct FactsAndServices {
    /// Everything known of the client; None when unknown or deleted.
    pub facts: Option<ClientFacts>,
    /// The live services asked for (all when none were named).
    pub services: BTreeMap<ServiceId, ServiceFact>,
}

/// What is known of a client (of its deliveries, those `deliveries` takes) and the live
/// services of `services` (all when None), in one statement that enters `tenant` itself
/// (`eligibility.read_facts`): a check's one read, in a transaction or on a
/// [`TenantStatements`](caseway_platform::TenantStatements).
pub async fn facts_and_services(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ClientId,
    services: Option<&[Uuid]>,
    deliveries: &DeliveriesRead,
) -> Result<FactsAndServices> {
    let codes: Option<Vec<&str>> = deliveries
        .codes
        .as_ref()
        .map(|codes| codes.iter().map(String::as_str).collect());
    let row: FactsSql = sqlx::query_as(
        "SELECT client_facts AS client, assessments, barriers, enrollments, deliveries, \
         services FROM eligibility.read_facts($1, $2, $3, $4, $5)",
    )
    .bind(tenant.as_uuid())
    .bind(id)
    .bind(services)
    .bind(codes)
    .bind(deliveries.since)
    .fetch_one(conn)
    .await?;
    let services = row
        .services
        .0
        .into_iter()
        .map(|(id, code, organization_ids)| {
            (
                id,
                ServiceFact {
                    id,
                    code,
                    organization_ids,
                },
            )
        })
        .collect();
    let Some(Json(ClientJson {
        birth_date,
        veteran,
        deleted: false,
    })) = row.client
    else {
        return Ok(FactsAndServices {
            facts: None,
            services,
        });
    };
    let facts = ClientFacts {
        client_id: id.0,
        birth_date,
        veteran,
        assessments: row
            .assessments
            .0
            .into_iter()
            .map(|(id, type_code, assessment_date, answers)| AssessmentFact {
                id,
                type_code,
                assessment_date,
                answers,
            })
            .collect(),
        barriers: row
            .barriers
            .0
            .into_iter()
            .map(
                |(id, type_code, status, identified_date, resolved_date)| BarrierFact {
                    id,
                    type_code,
                    status,
                    identified_date,
                    resolved_date,
                },
            )
            .collect(),
        enrollments: row
            .enrollments
            .0
            .into_iter()
            .map(|(id, program_code, entry_date, exit_date)| EnrollmentFact {
                id,
                program_code,
                entry_date,
                exit_date,
            })
            .collect(),
        deliveries: row
            .deliveries
            .0
            .into_iter()
            .map(
                |(id, service_code, service_date, units, value)| DeliveryFact {
                    id,
                    service_code,
                    service_date,
                    units,
                    value,
                },
            )
            .collect(),
    };
    Ok(FactsAndServices {
        facts: Some(facts),
        services,
    })
}

/// Everything known of a client, or None when the client is unknown or deleted.
pub async fn client_facts(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ClientId,
) -> Result<Option<ClientFacts>> {
    Ok(
        facts_and_services(conn, tenant, id, Some(&[]), &DeliveriesRead::ALL)
            .await?
            .facts,
    )
}

#[derive(sqlx::FromRow)]
struct DecisionSql {
    id: DecisionId,
    client_id: ClientId,
    service_id: ServiceId,
    service_code: String,
    rule_id: RuleId,
    rule_version: i32,
    mode: i16,
    criteria: Json<Vec<Criterion>>,
    as_of: NaiveDate,
    outcome: i16,
    results: Json<Vec<CriterionOutcome>>,
    facts: Json<ClientFacts>,
    decided_by: String,
    decided_at: DateTime<Utc>,
}

/// A check as stored: its id, who took it and when (the first to take it). Its decisions are
/// named after it (`domain::decision_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub check_id: Uuid,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

/// A criterion's result as a check stores it: the facts it read are read off the snapshot
/// again. (Decisions stored one to a row before checks were, in `decisions`, also keep those
/// facts, which reading ignores.)
#[derive(Serialize)]
struct StoredOutcome<'a> {
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Stores a check under `digest` in one row, with the snapshot its decisions were taken on
/// (stored once: it is named by its digest): each decision's service, rule version, outcome
/// and criteria outcomes, in order. A check already stored under its digest (the same
/// decisions taken again on the same facts) is not stored again: it answers as first stored.
/// Every decision is of the snapshot's client, as of one date, by one decider.
pub async fn insert_check(
    conn: &mut PgConnection,
    tenant: TenantId,
    snapshot: &Snapshot,
    digest: &Digest,
    decisions: &[DecisionRow],
) -> Result<Stored> {
    let first = decisions
        .first()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a check without decisions")))?;
    let n = decisions.len();
    let (mut services, mut rules, mut versions, mut outcomes, mut results) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for d in decisions {
        debug_assert_eq!(
            (d.client_id.0, d.as_of),
            (snapshot.facts.client_id, first.as_of)
        );
        services.push(d.service_id);
        rules.push(d.rule_id);
        versions.push(d.rule_version);
        outcomes.push(d.outcome.as_i16());
        let found: Vec<StoredOutcome<'_>> = d
            .results
            .iter()
            .map(|r| StoredOutcome {
                outcome: r.outcome,
                reason: r.reason.as_deref(),
            })
            .collect();
        results.push(found);
    }
    let results = serde_json::to_string(&results).map_err(Error::internal)?;
    let (check_id, decided_by, decided_at): (Uuid, String, DateTime<Utc>) = sqlx::query_as(
        "SELECT stored_id, stored_by, stored_at FROM eligibility.store_check($1, $2, $3, $4::jsonb, \
         $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14)",
    )
    .bind(tenant.as_uuid())
    .bind(&snapshot.digest[..])
    .bind(snapshot.facts.client_id)
    .bind(&snapshot.encoded)
    .bind(new_check_id())
    .bind(first.as_of)
    .bind(services)
    .bind(rules)
    .bind(versions)
    .bind(outcomes)
    .bind(results)
    .bind(&first.decided_by)
    .bind(first.decided_at)
    .bind(&digest[..])
    .fetch_one(conn)
    .await?;
    Ok(Stored {
        check_id,
        decided_by,
        decided_at,
    })
}

/// A stored decision, with its criteria's outcomes (its `results` are left empty: the facts
/// each criterion read are read off its snapshot, `facts`, by the rule version's reads).
pub async fn decision(
    conn: &mut PgConnection,
    id: DecisionId,
) -> Result<Option<(DecisionRow, Vec<CriterionOutcome>)>> {
    let mut row: Option<DecisionSql> = None;
    if let Some((check, n)) = check_of(id) {
        row = sqlx::query_as(
            "SELECT $3::uuid AS id, c.client_id, c.service_ids[$2] AS service_id, \
             coalesce(s.code, '') AS service_code, c.rule_ids[$2] AS rule_id, \
             c.rule_versions[$2] AS rule_version, v.mode, v.criteria, c.as_of, \
             c.outcomes[$2] AS outcome, c.results -> ($2 - 1) AS results, f.facts, \
             c.decided_by, c.decided_at \
             FROM eligibility.checks c \
             JOIN eligibility.fact_snapshots f ON f.tenant_id = c.tenant_id \
              AND f.digest = c.facts_digest \
             JOIN eligibility.rule_versions v ON v.tenant_id = c.tenant_id \
              AND v.rule_id = c.rule_ids[$2] AND v.version = c.rule_versions[$2] \
             LEFT JOIN eligibility.services s ON s.tenant_id = c.tenant_id \
              AND s.id = c.service_ids[$2] \
             WHERE c.id = $1 AND $2 <= cardinality(c.service_ids)",
        )
        .bind(check)
        .bind(n as i32)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    }
    if row.is_none() {
        row = sqlx::query_as(
            "SELECT d.id, d.client_id, d.service_id, coalesce(s.code, '') AS service_code, \
             d.rule_id, d.rule_version, v.mode, v.criteria, d.as_of, d.outcome, d.results, \
             d.facts, d.decided_by, d.decided_at \
             FROM eligibility.decisions d \
             JOIN eligibility.rule_versions v ON v.tenant_id = d.tenant_id \
              AND v.rule_id = d.rule_id AND v.version = d.rule_version \
             LEFT JOIN eligibility.services s ON s.tenant_id = d.tenant_id \
              AND s.id = d.service_id \
             WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(conn)
        .await?;
    }
    Ok(row.map(|d| {
        let decision = DecisionRow {
            id: Some(d.id),
            client_id: d.client_id,
            service_id: d.service_id,
            service_code: d.service_code,
            rule_id: d.rule_id,
            rule_version: d.rule_version,
            mode: Mode::from_i16(d.mode),
            as_of: d.as_of,
            outcome: Outcome::from_i16(d.outcome),
            criteria: d.criteria.0.into(),
            results: Vec::new(),
            facts: Arc::new(d.facts.0),
            decided_by: d.decided_by,
            decided_at: d.decided_at,
        };
        (decision, d.results.0)
    }))
}

/// Records a client's latest outcome for a service and the decision that found it.
pub async fn swap_outcome(
    conn: &mut PgConnection,
    tenant: TenantId,
    client: ClientId,
    service: ServiceId,
    outcome: Outcome,
    decision: DecisionId,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO eligibility.outcomes (tenant_id, client_id, service_id, outcome, \
         decision_id) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, client_id, service_id) DO UPDATE \
         SET outcome = EXCLUDED.outcome, decision_id = EXCLUDED.decision_id, updated_at = now()",
    )
    .bind(tenant.as_uuid())
    .bind(client)
    .bind(service)
    .bind(outcome.as_i16())
    .bind(decision)
    .execute(conn)
    .await?;
    Ok(())
}

/// A client's latest outcome for each service decided.
pub async fn outcomes(
    conn: &mut PgConnection,
    client: ClientId,
) -> Result<BTreeMap<ServiceId, Outcome>> {
    let rows: Vec<(ServiceId, i16)> =
        sqlx::query_as("SELECT service_id, outcome FROM eligibility.outcomes WHERE client_id = $1")
            .bind(client)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(service, outcome)| (service, Outcome::from_i16(outcome)))
        .collect())
}

/// Writes a fact unless the stored row is as new or newer (a deleted client stays deleted);
/// whether it wrote. Adds to `changed` whose facts it changed (the client's id, or the
/// tenant's own for the facts every client's decisions read), for [`announce`].
pub async fn apply(
    conn: &mut PgConnection,
    tenant: TenantId,
    fact: &Fact,
    changed: &mut BTreeSet<Uuid>,
) -> Result<bool> {
    let t = tenant.as_uuid();
    let written = match fact {
        Fact::Client {
            id,
            birth_date,
            veteran,
            deleted,
            version,
        } => {
            sqlx::query(
                "INSERT INTO eligibility.clients AS c (tenant_id, id, birth_date, veteran, deleted, \
                 version) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, id) DO UPDATE \
                 SET birth_date = EXCLUDED.birth_date, veteran = EXCLUDED.veteran, \
                 deleted = c.deleted OR EXCLUDED.deleted, version = greatest(c.version, EXCLUDED.version) \
                 WHERE NOT c.deleted AND (EXCLUDED.deleted OR EXCLUDED.version > c.version)",
            )
            .bind(t)
            .bind(id)
            .bind(birth_date)
            .bind(veteran)
            .bind(deleted)
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Fact::Assessment { client_id, fact } => {
            sqlx::query(
                "INSERT INTO eligibility.assessments (tenant_id, id, client_id, type_code, \
                 assessment_date, answers) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, id) DO NOTHING",
            )
            .bind(t)
            .bind(fact.id)
            .bind(client_id)
            .bind(&fact.type_code)
            .bind(fact.assessment_date)
            .bind(Json(&fact.answers))
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Fact::Barrier {
            client_id,
            fact,
            version,
        } => {
            sqlx::query(
                "INSERT INTO eligibility.barriers AS b (tenant_id, id, client_id, type_code, status, \
                 identified_date, resolved_date, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET type_code = EXCLUDED.type_code, \
                 status = EXCLUDED.status, identified_date = EXCLUDED.identified_date, \
                 resolved_date = EXCLUDED.resolved_date, version = EXCLUDED.version \
                 WHERE EXCLUDED.version > b.version",
            )
            .bind(t)
            .bind(fact.id)
            .bind(client_id)
            .bind(&fact.type_code)
            .bind(&fact.status)
            .bind(fact.identified_date)
            .bind(fact.resolved_date)
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Fact::Enrollment {
            client_id,
            id,
            program_id,
            entry_date,
            exit_date,
            version,
        } => {
            sqlx::query(
                "INSERT INTO eligibility.enrollments AS e (tenant_id, id, client_id, program_id, \
                 entry_date, exit_date, version) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET program_id = EXCLUDED.program_id, \
                 entry_date = EXCLUDED.entry_date, exit_date = EXCLUDED.exit_date, \
                 version = EXCLUDED.version WHERE EXCLUDED.version > e.version",
            )
            .bind(t)
            .bind(id)
            .bind(client_id)
            .bind(program_id)
            .bind(entry_date)
            .bind(exit_date)
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        // One delivery as many are kept, which also marks its clients changed.
        Fact::Delivery { .. } => {
            let written = apply_deliveries(conn, tenant, &[fact], changed).await?;
            return Ok(written > 0);
        }
        Fact::Service {
            id,
            code,
            organization_ids,
            deleted,
            version,
        } => {
            sqlx::query(
                "INSERT INTO eligibility.services AS s (tenant_id, id, code, organization_ids, \
                 deleted, version) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET code = EXCLUDED.code, \
                 organization_ids = EXCLUDED.organization_ids, deleted = EXCLUDED.deleted, \
                 version = EXCLUDED.version \
                 WHERE EXCLUDED.version > s.version OR (EXCLUDED.deleted AND NOT s.deleted)",
            )
            .bind(t)
            .bind(id)
            .bind(code)
            .bind(organization_ids)
            .bind(deleted)
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Fact::Program { id, code, version } => {
            sqlx::query(
                "INSERT INTO eligibility.programs AS p (tenant_id, id, code, version) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, id) DO UPDATE \
                 SET code = EXCLUDED.code, version = EXCLUDED.version \
                 WHERE EXCLUDED.version > p.version",
            )
            .bind(t)
            .bind(id)
            .bind(code)
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
        Fact::AssessmentType {
            id,
            code,
            fields,
            version,
        } => {
            sqlx::query(
                "INSERT INTO eligibility.assessment_types AS a (tenant_id, id, code, fields, version) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, id) DO UPDATE \
                 SET code = EXCLUDED.code, fields = EXCLUDED.fields, version = EXCLUDED.version \
                 WHERE EXCLUDED.version > a.version",
            )
            .bind(t)
            .bind(id)
            .bind(code)
            .bind(Json(fields))
            .bind(version)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        }
    };
    if written {
        changed.insert(fact.client().map_or(t, |c| c.0));
    }
    Ok(written)
}

/// Keeps many deliveries (records' events) in one statement, each only when newer than what is
/// kept, as [`apply`] keeps one; the clients whose facts changed (a delivery's client, and the
/// client it was delivered to before, if another) go into `changed`. Returns how many were
/// written. Rows are written in client order, as the batch's other facts are.
pub async fn apply_deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    deliveries: &[&Fact],
    changed: &mut BTreeSet<Uuid>,
) -> Result<usize> {
    // (client, id, service, date, units, value, deleted, version) of each delivery.
    let mut rows: Vec<_> = deliveries
        .iter()
        .filter_map(|fact| match fact {
            Fact::Delivery {
                client_id,
                id,
                service_id,
                service_date,
                units,
                value,
                deleted,
                version,
            } => Some((
                client_id.0,
                *id,
                service_id.0,
                *service_date,
                *units,
                *value,
                *deleted,
                *version,
            )),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    // The newest of each record's events in the batch (a statement writes a row once), then in
    // client order.
    rows.sort_by_key(|r| (r.1, std::cmp::Reverse(r.7)));
    rows.dedup_by_key(|r| r.1);
    rows.sort_by_key(|r| (r.0, r.1));
    let ids: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    let clients: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let services: Vec<Uuid> = rows.iter().map(|r| r.2).collect();
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.3).collect();
    let units: Vec<Decimal> = rows.iter().map(|r| r.4).collect();
    let values: Vec<Decimal> = rows.iter().map(|r| r.5).collect();
    let deleted: Vec<bool> = rows.iter().map(|r| r.6).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.7).collect();
    let written: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "WITH new AS (            SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::date[], $6::numeric[],              $7::numeric[], $8::bool[], $9::int8[]) WITH ORDINALITY              AS n(id, client_id, service_id, service_date, units, value, deleted, version, at)          ), before AS (            SELECT d.id, d.client_id FROM eligibility.deliveries d            WHERE d.tenant_id = $1 AND d.id = ANY($2::uuid[])          )          INSERT INTO eligibility.deliveries AS d (tenant_id, id, client_id, service_id,            service_date, units, value, deleted, version)          SELECT $1, id, client_id, service_id, service_date, units, value, deleted, version          FROM new ORDER BY at          ON CONFLICT (tenant_id, id) DO UPDATE SET client_id = EXCLUDED.client_id,            service_id = EXCLUDED.service_id, service_date = EXCLUDED.service_date,            units = EXCLUDED.units, value = EXCLUDED.value, deleted = EXCLUDED.deleted,            version = EXCLUDED.version WHERE EXCLUDED.version > d.version          RETURNING d.client_id, (SELECT b.client_id FROM before b WHERE b.id = d.id)",
    )
    .bind(tenant.as_uuid())
    .bind(&ids)
    .bind(&clients)
    .bind(&services)
    .bind(&dates)
    .bind(&units)
    .bind(&values)
    .bind(&deleted)
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await?;
    for (client, before) in &written {
        changed.insert(*client);
        if let Some(before) = before {
            changed.insert(*before);
        }
    }
    Ok(written.len())
}

/// The channel on which a written fact is announced, at its commit, as `<tenant> <scope>`: the
/// scope is the client's id, or the tenant's own for the facts every client's decisions read
/// (services, programs, assessment types).
pub const FACTS_CHANNEL: &str = "eligibility_facts";

/// Announces, when the transaction commits, that the facts of `changed` (clients, or the
/// tenant's own) changed; every transaction that writes facts calls it before its commit.
pub async fn announce(conn: &mut PgConnection, changed: &BTreeSet<Uuid>) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let scopes: Vec<Uuid> = changed.iter().copied().collect();
    sqlx::query(
        "SELECT pg_notify($1, platform.current_tenant()::text || ' ' || scope::text) \
         FROM unnest($2::uuid[]) AS scope",
    )
    .bind(FACTS_CHANNEL)
    .bind(scopes)
    .execute(conn)
    .await?;
    Ok(())
}
