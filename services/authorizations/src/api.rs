//! The authorizations gRPC API: decode, authorize, validate against the catalog and the client
//! (the domain's rules over looked-up facts), store, publish.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_internal_service_server::AuthorizationsInternalService;
use caseway_api::authorizations::v1::authorizations_service_server::AuthorizationsService;
use caseway_api::catalog::v1::CodeList;
use caseway_api::events::v1::AuthorizationChanged;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Authorization, Principal, Role, authorization_of, principal};
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::{self, check_version};
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event};
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};
use caseway_platform::{Scoped, TenantId};
use caseway_records::domain::{
    GrantFacts, Kind, ServiceFacts, check_service, check_units, unit_value,
};
use caseway_records::lookups::Lookups;

use crate::SOURCE;
use crate::domain::*;
use crate::records::Records;
use crate::recurrence::{Rule, RuleError, check_period};
use crate::store::{self, AuthorizationRow, ListFilter};

pub struct AuthorizationsApi {
    platform: Arc<Platform>,
    lookups: Arc<Lookups>,
    records: Arc<Records>,
}

/// Who is asking, and with which credentials the other services are asked.
struct Caller {
    principal: Arc<Principal>,
    tenant: TenantId,
    authorization: Option<Authorization>,
}

impl Caller {
    /// The verified caller of `request` (the access table decided its roles may call).
    fn of<T>(request: &Request<T>) -> Result<Caller> {
        let principal = principal(request)?;
        let tenant = principal.tenant()?;
        Ok(Caller {
            authorization: authorization_of(request),
            principal,
            tenant,
        })
    }
}

/// A stored authorization the caller may see: one of a service hidden from it is NOT_FOUND,
/// as the service itself is.
fn visible(row: Option<AuthorizationRow>, hidden: &[Uuid], id: Uuid) -> Result<AuthorizationRow> {
    row.filter(|row| !hidden.contains(&row.service_id))
        .ok_or_else(|| Error::not_found("authorization", id))
}

/// What the caller wrote of an authorization's plan, parsed.
#[derive(Clone, Debug, Default)]
struct Plan {
    grant_id: Option<Uuid>,
    begin_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    units_per_occurrence: Option<Decimal>,
    unit_value: Option<Decimal>,
    recurrence: Option<Rule>,
    reason_id: Option<Uuid>,
    goal_id: Option<Uuid>,
    reason: String,
    goals: String,
}

fn parse_plan(p: &pb::Authorization, v: &mut Violations) -> Plan {
    let recurrence = if p.recurrence.trim().is_empty() {
        v.add("authorization.recurrence", "is required");
        None
    } else {
        match Rule::parse(&p.recurrence) {
            Ok(rule) => Some(rule),
            Err(error) => {
                v.add("authorization.recurrence", error.0);
                None
            }
        }
    };
    let units_per_occurrence = if p.units_per_occurrence.is_empty() {
        v.add("authorization.units_per_occurrence", "is required");
        None
    } else {
        v.decimal(
            "authorization.units_per_occurrence",
            &p.units_per_occurrence,
            2,
        )
    };
    let unit_value = if p.unit_value.is_empty() {
        None
    } else {
        v.decimal("authorization.unit_value", &p.unit_value, 2)
    };
    v.text("authorization.reason", &p.reason, 0, 2000);
    v.text("authorization.goals", &p.goals, 0, 2000);
    Plan {
        grant_id: v.id("authorization.grant_id", &p.grant_id),
        begin_date: validate::date(v, "authorization.begin_date", p.begin_date.as_ref(), true),
        end_date: validate::date(v, "authorization.end_date", p.end_date.as_ref(), true),
        units_per_occurrence,
        unit_value,
        recurrence,
        reason_id: v.optional_id("authorization.reason_id", &p.reason_id),
        goal_id: v.optional_id("authorization.goal_id", &p.goal_id),
        reason: p.reason.clone(),
        goals: p.goals.clone(),
    }
}

/// A rule's occurrences over a period; the walk of a period longer than a year runs off the
/// async runtime, so it holds up no other call.
async fn expand(
    rule: &Rule,
    begin: NaiveDate,
    end: NaiveDate,
) -> Result<std::result::Result<Vec<NaiveDate>, RuleError>> {
    if (end - begin).num_days() <= 366 {
        return Ok(rule.occurrences(begin, end));
    }
    let rule = rule.clone();
    tokio::task::spawn_blocking(move || rule.occurrences(begin, end))
        .await
        .map_err(Error::internal)
}

/// The fund pays for the service over the whole period.
fn check_fund(
    grant: &GrantFacts,
    service: &ServiceFacts,
    begin: NaiveDate,
    end: NaiveDate,
    v: &mut Violations,
) {
    let field = "authorization.grant_id";
    if !service.grant_ids.contains(&grant.id) {
        v.add(field, "is not a grant of this service");
    } else if !grant.active {
        v.add(field, "is retired");
    } else if begin < grant.start_date || grant.end_date.is_some_and(|e| end > e) {
        v.add(field, "does not cover the authorization's period");
    }
}

fn status_of(row: &AuthorizationRow) -> AuthorizationStatus {
    AuthorizationStatus::from_code(i32::from(row.status)).unwrap_or(AuthorizationStatus::Pending)
}

fn text(d: Decimal) -> String {
    d.normalize().to_string()
}

pub fn authorization_to_proto(r: &AuthorizationRow, with_occurrences: bool) -> pb::Authorization {
    pb::Authorization {
        id: r.id.to_string(),
        client_id: r.client_id.to_string(),
        service_id: r.service_id.to_string(),
        grant_id: r.grant_id.to_string(),
        begin_date: Some(date(r.begin_date)),
        end_date: Some(date(r.end_date)),
        unit_of_measure: r.unit_of_measure.clone(),
        units_per_occurrence: text(r.units_per_occurrence),
        unit_value: text(r.unit_value),
        recurrence: r.recurrence.clone(),
        reason_id: r.reason_id.map(|i| i.to_string()).unwrap_or_default(),
        goal_id: r.goal_id.map(|i| i.to_string()).unwrap_or_default(),
        reason: r.reason.clone(),
        goals: r.goals.clone(),
        status: i32::from(r.status),
        requested_by: r.requested_by.clone(),
        decided_by: r.decided_by.clone().unwrap_or_default(),
        decision_reason: r.decision_reason.clone().unwrap_or_default(),
        decide_time: r.decided_at.map(timestamp),
        occurrence_count: r.occurrences.len() as i32,
        authorized_units: text(r.authorized_units),
        authorized_value: text(r.authorized_value),
        occurrences: if with_occurrences {
            r.occurrences.iter().copied().map(date).collect()
        } else {
            Vec::new()
        },
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

/// Audits a change and publishes `authorizations.authorization_<verb>.v1`.
pub(crate) async fn record_change(
    tx: &mut impl Scoped,
    actor: &Principal,
    verb: &str,
    row: &AuthorizationRow,
    changed_fields: Vec<String>,
) -> Result<()> {
    audit::record(
        tx,
        actor,
        AuditEntry {
            action: &format!("authorizations.authorization.{verb}"),
            resource_type: "authorization",
            resource_id: row.id,
            changed_fields: &changed_fields,
        },
    )
    .await?;
    outbox::enqueue(
        tx,
        Event {
            event_type: &format!("authorizations.authorization_{verb}.v1"),
            source: SOURCE,
            subject: row.id.to_string(),
            payload: &AuthorizationChanged {
                authorization: Some(authorization_to_proto(row, false)),
                changed_fields,
            },
        },
    )
    .await?;
    Ok(())
}

/// Which units held for a record are given back.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Held {
    /// The current hold, for `version`, if `attempt` made it (any attempt's when None).
    Current { version: i64, attempt: Option<Uuid> },
    /// Earlier units counted up to `version`.
    Earlier { version: i64 },
}

/// Gives back units held for a record, if they are still held; false when there was nothing
/// to give back. Errs NOT_FOUND when the authorization is not the tenant's.
pub(crate) async fn give_back(
    platform: &Platform,
    tenant: TenantId,
    authorization_id: Uuid,
    record_id: Uuid,
    held: Held,
) -> Result<bool> {
    let mut tx = platform.db.tenant_tx(tenant).await?;
    if store::load(tx.conn(), authorization_id, true)
        .await?
        .is_none()
    {
        return Err(Error::not_found("authorization", authorization_id));
    }
    let before = store::draw(tx.conn(), authorization_id, record_id).await?;
    let after = match held {
        Held::Current { version, attempt } => release(&before, version, attempt),
        Held::Earlier { version } => release_earlier(&before, version),
    };
    let Some(after) = after else {
        return Ok(false);
    };
    store::save_draw(
        tx.conn(),
        tenant,
        authorization_id,
        record_id,
        None,
        &before,
        &after,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The units held for `version` of a record on an authorization, if any (NOT_FOUND when the
/// authorization is not the tenant's).
async fn held(
    platform: &Platform,
    tenant: TenantId,
    authorization_id: Uuid,
    record_id: Uuid,
    version: i64,
    attempt: Uuid,
) -> Result<bool> {
    let mut tx = platform.db.tenant_tx(tenant).await?;
    if store::load(tx.conn(), authorization_id, false)
        .await?
        .is_none()
    {
        return Err(Error::not_found("authorization", authorization_id));
    }
    let draw = store::draw_unlocked(tx.conn(), authorization_id, record_id).await?;
    tx.commit().await?;
    Ok(release(&draw, version, Some(attempt)).is_some())
}

impl AuthorizationsApi {
    pub fn new(platform: Arc<Platform>, lookups: Arc<Lookups>, records: Arc<Records>) -> Self {
        AuthorizationsApi {
            platform,
            lookups,
            records,
        }
    }

    /// Checks `plan` for `client_id` and `service_id` against the catalog and the client, and
    /// gives the row it makes (id, status and requester to be set by the caller).
    async fn checked_row(
        &self,
        caller: &Caller,
        client_id: Uuid,
        service_id: Uuid,
        plan: &Plan,
        v: &mut Violations,
    ) -> Result<Option<AuthorizationRow>> {
        let auth = caller.authorization.as_ref();
        let tenant = caller.tenant;
        if !self.lookups.client_exists(auth, tenant, client_id).await? {
            v.add(
                "authorization.client_id",
                "does not name a client of this tenant",
            );
        }
        let service = match self.lookups.service(auth, tenant, service_id).await? {
            Some(service) => {
                check_service(
                    &service,
                    Kind::Delivered,
                    "authorization.service_id",
                    &caller.principal.organization_ids,
                    caller.principal.has_role(Role::TenantAdmin),
                    v,
                );
                Some(service)
            }
            None => {
                v.add(
                    "authorization.service_id",
                    "does not name a service of this tenant",
                );
                None
            }
        };
        let (Some(begin), Some(end)) = (plan.begin_date, plan.end_date) else {
            return Ok(None);
        };
        if end < begin {
            v.add("authorization.end_date", "must not be before begin_date");
        } else if let Err(error) = check_period(begin, end) {
            v.add("authorization.end_date", error.0);
        }
        if let (Some(service), Some(grant_id)) = (&service, plan.grant_id) {
            match self.lookups.grant(auth, tenant, grant_id).await? {
                Some(grant) => check_fund(&grant, service, begin, end, v),
                None => v.add(
                    "authorization.grant_id",
                    "does not name a grant of this tenant",
                ),
            }
        }
        for (field, id, list, name) in [
            (
                "authorization.reason_id",
                plan.reason_id,
                CodeList::Reason,
                "REASON",
            ),
            (
                "authorization.goal_id",
                plan.goal_id,
                CodeList::Goal,
                "GOAL",
            ),
        ] {
            let Some(id) = id else { continue };
            match self.lookups.code_value(auth, tenant, id).await? {
                None => v.add(field, "does not name a code value of this tenant"),
                Some(value) if value.code_list != list => {
                    v.add(field, format!("is not a code of the {name} list"))
                }
                Some(value) if !value.active => v.add(field, "is retired"),
                Some(_) => {}
            }
        }
        let Some(service) = service else {
            return Ok(None);
        };
        if let Some(units) = plan.units_per_occurrence {
            check_units(
                units,
                service.unit_of_measure,
                "authorization.units_per_occurrence",
                v,
            );
        }
        let value = unit_value(plan.unit_value, &service, "authorization.unit_value", v);
        let (Some(units_per_occurrence), Some(rule), Some(grant_id)) =
            (plan.units_per_occurrence, &plan.recurrence, plan.grant_id)
        else {
            return Ok(None);
        };
        // The rule is expanded last, once every cheap check has passed.
        if !v.is_empty() {
            return Ok(None);
        }
        let occurrences = match expand(rule, begin, end).await? {
            Ok(dates) => dates,
            Err(error) => {
                v.add("authorization.recurrence", error.0);
                return Ok(None);
            }
        };
        let (authorized_units, authorized_value) =
            authorized(occurrences.len(), units_per_occurrence, value);
        if !validate::storable(authorized_units) || !validate::storable(authorized_value) {
            v.add(
                "authorization.units_per_occurrence",
                format!(
                    "over {} occurrences authorizes more than can be stored (under 10^14 units \
                     and under 10^14 in value)",
                    occurrences.len()
                ),
            );
            return Ok(None);
        }
        let now = chrono::Utc::now();
        Ok(Some(AuthorizationRow {
            id: Uuid::now_v7(),
            client_id,
            service_id,
            grant_id,
            begin_date: begin,
            end_date: end,
            unit_of_measure: service.unit_of_measure.code().to_string(),
            units_per_occurrence,
            unit_value: value,
            recurrence: rule.to_text(),
            occurrences,
            authorized_units,
            authorized_value,
            reason_id: plan.reason_id,
            goal_id: plan.goal_id,
            reason: plan.reason.clone(),
            goals: plan.goals.clone(),
            status: AuthorizationStatus::Pending as i16,
            requested_by: caller.principal.user_id.clone(),
            decided_by: None,
            decision_reason: None,
            decided_at: None,
            committed_units: Decimal::ZERO,
            delivered_units: Decimal::ZERO,
            delivered_value: Decimal::ZERO,
            version: 1,
            created_at: now,
            updated_at: now,
        }))
    }

    /// The services hidden from the caller (restricted to security organizations it is not
    /// in): asked before a transaction opens, since it may ask the catalog.
    async fn hidden_services(&self, caller: &Caller) -> Result<Vec<Uuid>> {
        self.lookups
            .restrictions
            .hidden_from(caller.tenant, &caller.principal)
            .await
    }

    /// Approve, deny, cancel or close.
    async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        etag: &str,
        reason: Option<&str>,
        transition: Transition,
    ) -> Result<pb::Authorization> {
        let id = parse_id("id", id)?;
        let expected = etag::parse("etag", etag)?;
        if let Some(reason) = reason {
            let mut v = Violations::new();
            v.text("reason", reason, 1, 2000);
            v.finish()?;
        }
        let hidden = self.hidden_services(caller).await?;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let row = visible(store::load(tx.conn(), id, true).await?, &hidden, id)?;
        check_version(expected, row.version)?;
        let subject = format!("authorizations/{id}");
        let next = transition
            .apply(status_of(&row))
            .map_err(|e| Error::precondition("authorization_status", subject.clone(), e))?;
        if transition.needs_second_person() {
            // Everyone who had a hand in the plan, from the audit trail written with each
            // change (the requester is there too).
            let mut planners = audit::actors(
                &mut tx,
                "authorization",
                id,
                &[
                    "authorizations.authorization.requested",
                    "authorizations.authorization.updated",
                ],
            )
            .await?;
            if !planners.contains(&row.requested_by) {
                planners.push(row.requested_by.clone());
            }
            check_second_person(&planners, &caller.principal.user_id)
                .map_err(|e| Error::precondition("separation_of_duties", subject.clone(), e))?;
        }
        let stored = store::set_status(
            tx.conn(),
            id,
            next as i16,
            &caller.principal.user_id,
            reason,
        )
        .await?;
        record_change(
            &mut tx,
            &caller.principal,
            transition.verb(),
            &stored,
            vec!["status".into()],
        )
        .await?;
        tx.commit().await?;
        Ok(authorization_to_proto(&stored, false))
    }
}

/// The units a draw call names, with the record they are for.
struct DrawRequest {
    authorization_id: Uuid,
    record_id: Uuid,
    version: i64,
    hold_id: Uuid,
}

fn parse_draw(
    authorization_id: &str,
    record_id: &str,
    version: i64,
    hold_id: &str,
    v: &mut Violations,
) -> Option<DrawRequest> {
    let authorization_id = v.id("authorization_id", authorization_id);
    let record_id = v.id("service_record_id", record_id);
    if version < 1 {
        v.add("service_record_version", "must be 1 or more");
    }
    let hold_id = v.id("hold_id", hold_id);
    Some(DrawRequest {
        authorization_id: authorization_id?,
        record_id: record_id?,
        version,
        hold_id: hold_id?,
    })
}

#[tonic::async_trait]
impl AuthorizationsService for AuthorizationsApi {
    async fn create_authorization(
        &self,
        request: Request<pb::CreateAuthorizationRequest>,
    ) -> Result<Response<pb::CreateAuthorizationResponse>, Status> {
        const METHOD: &str = "authorizations.authorization.create";
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let input = message
            .authorization
            .as_ref()
            .ok_or_else(|| Error::invalid("authorization", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let client_id = v.id("authorization.client_id", &input.client_id);
        let service_id = v.id("authorization.service_id", &input.service_id);
        let plan = parse_plan(input, &mut v);
        v.finish()?;
        let (client_id, service_id) = (
            client_id.expect("validated"),
            service_id.expect("validated"),
        );
        let mut v = Violations::new();
        let row = self
            .checked_row(&caller, client_id, service_id, &plan, &mut v)
            .await?;
        v.finish()?;
        let row = row.expect("a row when nothing is violated");
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim::<_, pb::CreateAuthorizationResponse>(
            &mut tx,
            METHOD,
            &message.request_id,
            &message,
        )
        .await?
        {
            return Ok(Response::new(previous));
        }
        let stored = store::insert(tx.conn(), caller.tenant, &row).await?;
        record_change(&mut tx, &caller.principal, "requested", &stored, Vec::new()).await?;
        let reply = pb::CreateAuthorizationResponse {
            authorization: Some(authorization_to_proto(&stored, true)),
        };
        idempotency::complete(&mut tx, METHOD, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn get_authorization(
        &self,
        request: Request<pb::GetAuthorizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let hidden = self.hidden_services(&caller).await?;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let row = visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        tx.commit().await?;
        Ok(Response::new(pb::GetAuthorizationResponse {
            authorization: Some(authorization_to_proto(&row, true)),
        }))
    }

    async fn update_authorization(
        &self,
        request: Request<pb::UpdateAuthorizationRequest>,
    ) -> Result<Response<pb::UpdateAuthorizationResponse>, Status> {
        const MUTABLE: &[&str] = &[
            "grant_id",
            "begin_date",
            "end_date",
            "units_per_occurrence",
            "unit_value",
            "recurrence",
            "reason_id",
            "goal_id",
            "reason",
            "goals",
        ];
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let input = message
            .authorization
            .ok_or_else(|| Error::invalid("authorization", "is required"))?;
        let id = parse_id("authorization.id", &input.id)?;
        let expected = etag::parse("authorization.etag", &input.etag)?;
        let mask = validate::update_mask(message.update_mask.as_ref(), MUTABLE)?;
        let hidden = self.hidden_services(&caller).await?;
        let current = {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            visible(store::load(tx.conn(), id, false).await?, &hidden, id)?
        };
        check_version(expected, current.version)?;
        let subject = format!("authorizations/{id}");
        check_editable(status_of(&current))
            .map_err(|e| Error::precondition("authorization_pending", subject.clone(), e))?;
        // The request's fields over the stored ones, then every check of a new authorization.
        let mut v = Violations::new();
        let given = parse_plan(&input, &mut v);
        v.retain_masked("authorization", &mask);
        v.finish()?;
        let mut plan = Plan {
            grant_id: Some(current.grant_id),
            begin_date: Some(current.begin_date),
            end_date: Some(current.end_date),
            units_per_occurrence: Some(current.units_per_occurrence),
            unit_value: Some(current.unit_value),
            recurrence: Rule::parse(&current.recurrence).ok(),
            reason_id: current.reason_id,
            goal_id: current.goal_id,
            reason: current.reason.clone(),
            goals: current.goals.clone(),
        };
        macro_rules! take {
            ($($field:ident),+) => {$(
                if mask.contains(&stringify!($field)) {
                    plan.$field = given.$field.clone();
                }
            )+};
        }
        take!(
            grant_id,
            begin_date,
            end_date,
            units_per_occurrence,
            unit_value,
            recurrence,
            reason_id,
            goal_id,
            reason,
            goals
        );
        let mut v = Violations::new();
        let next = self
            .checked_row(
                &caller,
                current.client_id,
                current.service_id,
                &plan,
                &mut v,
            )
            .await?;
        v.finish()?;
        let mut next = next.expect("a row when nothing is violated");
        next.id = current.id;
        let mut changed = Vec::new();
        macro_rules! compare {
            ($($field:ident),+) => {$(
                if next.$field != current.$field {
                    changed.push(stringify!($field).to_string());
                }
            )+};
        }
        compare!(
            grant_id,
            begin_date,
            end_date,
            units_per_occurrence,
            unit_value,
            recurrence,
            reason_id,
            goal_id,
            reason,
            goals
        );
        if changed.is_empty() {
            return Ok(Response::new(pb::UpdateAuthorizationResponse {
                authorization: Some(authorization_to_proto(&current, true)),
            }));
        }
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let locked = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("authorization", id))?;
        check_version(Some(current.version), locked.version)?;
        let stored = store::update_plan(tx.conn(), &next).await?;
        record_change(&mut tx, &caller.principal, "updated", &stored, changed).await?;
        tx.commit().await?;
        Ok(Response::new(pb::UpdateAuthorizationResponse {
            authorization: Some(authorization_to_proto(&stored, true)),
        }))
    }

    async fn approve_authorization(
        &self,
        request: Request<pb::ApproveAuthorizationRequest>,
    ) -> Result<Response<pb::ApproveAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let authorization = self
            .transition(&caller, &m.id, &m.etag, None, Transition::Approve)
            .await?;
        Ok(Response::new(pb::ApproveAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn deny_authorization(
        &self,
        request: Request<pb::DenyAuthorizationRequest>,
    ) -> Result<Response<pb::DenyAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let authorization = self
            .transition(&caller, &m.id, &m.etag, Some(&m.reason), Transition::Deny)
            .await?;
        Ok(Response::new(pb::DenyAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn cancel_authorization(
        &self,
        request: Request<pb::CancelAuthorizationRequest>,
    ) -> Result<Response<pb::CancelAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let authorization = self
            .transition(&caller, &m.id, &m.etag, Some(&m.reason), Transition::Cancel)
            .await?;
        Ok(Response::new(pb::CancelAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn close_authorization(
        &self,
        request: Request<pb::CloseAuthorizationRequest>,
    ) -> Result<Response<pb::CloseAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let authorization = self
            .transition(&caller, &m.id, &m.etag, None, Transition::Close)
            .await?;
        Ok(Response::new(pb::CloseAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn list_client_authorizations(
        &self,
        request: Request<pb::ListClientAuthorizationsRequest>,
    ) -> Result<Response<pb::ListClientAuthorizationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let client_id = v.id("client_id", &message.client_id);
        let service_id = v.optional_id("service_id", &message.service_id);
        let active_on = validate::date(&mut v, "active_on", message.active_on.as_ref(), false);
        let mut statuses = Vec::new();
        for (index, &code) in message.statuses.iter().enumerate() {
            match AuthorizationStatus::from_code(code) {
                Some(status) => statuses.push(status as i16),
                None => v.add(
                    format!("statuses[{index}]"),
                    "must be PENDING, APPROVED, DENIED, CANCELLED or CLOSED",
                ),
            }
        }
        v.finish()?;
        let client_id = client_id.expect("validated");
        let limit = validate::page_size(message.page_size)?;
        let mut fingerprint = message.clone();
        fingerprint.page_size = 0;
        fingerprint.page_token = String::new();
        let filter_key = prost::Message::encode_to_vec(&fingerprint);
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&message.page_token, caller.tenant, &filter_key)?;
        if !self
            .lookups
            .client_exists(caller.authorization.as_ref(), caller.tenant, client_id)
            .await?
        {
            return Err(Error::not_found("client", client_id).into());
        }
        let filter = ListFilter {
            statuses,
            service_id,
            active_on,
        };
        let hidden = self.hidden_services(&caller).await?;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let mut rows =
            store::list_for_client(tx.conn(), client_id, &filter, &hidden, after, limit + 1)
                .await?;
        tx.commit().await?;
        let next_page_token =
            tokens.finish_page(&mut rows, limit, caller.tenant, &filter_key, |r| {
                (r.created_at, r.id)
            });
        Ok(Response::new(pb::ListClientAuthorizationsResponse {
            authorizations: rows
                .iter()
                .map(|r| authorization_to_proto(r, false))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_authorization_utilization(
        &self,
        request: Request<pb::GetAuthorizationUtilizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationUtilizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("authorization_id", &request.get_ref().authorization_id)?;
        let hidden = self.hidden_services(&caller).await?;
        // The totals and the per-occurrence deliveries from one snapshot: a drawdown committed
        // between the two reads would otherwise show in one and not the other.
        let mut tx = self.platform.db.tenant_snapshot(caller.tenant).await?;
        let row = visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        let (deliveries, records) = store::deliveries(tx.conn(), id).await?;
        tx.commit().await?;
        let remaining = (row.authorized_units - row.committed_units).max(Decimal::ZERO);
        let occurrences = per_occurrence(&row.occurrences, row.units_per_occurrence, &deliveries)
            .into_iter()
            .map(|u| pb::OccurrenceUtilization {
                date: Some(date(u.date)),
                planned_units: text(u.planned),
                delivered_units: text(u.delivered),
                variance_units: text(u.delivered - u.planned),
            })
            .collect();
        Ok(Response::new(pb::GetAuthorizationUtilizationResponse {
            utilization: Some(pb::Utilization {
                authorization_id: id.to_string(),
                status: i32::from(row.status),
                authorized_units: text(row.authorized_units),
                authorized_value: text(row.authorized_value),
                delivered_units: text(row.delivered_units),
                delivered_value: text(row.delivered_value),
                remaining_units: text(remaining),
                remaining_value: text(remaining * row.unit_value),
                held_units: text(row.committed_units - row.delivered_units),
                service_record_count: records as i32,
                occurrences,
            }),
        }))
    }

    async fn list_authorization_history(
        &self,
        request: Request<pb::ListAuthorizationHistoryRequest>,
    ) -> Result<Response<pb::ListAuthorizationHistoryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let id = parse_id("authorization_id", &message.authorization_id)?;
        let hidden = self.hidden_services(&caller).await?;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        let (entries, next_page_token) = audit::history_page(
            &mut tx,
            &self.platform.page_tokens,
            "authorization",
            id,
            &message.page_token,
            message.page_size,
        )
        .await?;
        tx.commit().await?;
        Ok(Response::new(pb::ListAuthorizationHistoryResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::AuthorizationHistoryEntry {
                    action: e.action,
                    actor: e.actor,
                    changed_fields: e.changed_fields,
                    time: Some(timestamp(e.occurred_at)),
                })
                .collect(),
            next_page_token,
        }))
    }
}

/// The internal methods the records service holds and gives back units with.
#[tonic::async_trait]
impl AuthorizationsInternalService for AuthorizationsApi {
    async fn reserve_units(
        &self,
        request: Request<pb::ReserveUnitsRequest>,
    ) -> Result<Response<pb::ReserveUnitsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let mut v = Violations::new();
        let draw = parse_draw(
            &m.authorization_id,
            &m.service_record_id,
            m.service_record_version,
            &m.hold_id,
            &mut v,
        );
        let client_id = v.id("client_id", &m.client_id);
        let service_id = v.id("service_id", &m.service_id);
        let service_date = validate::date(&mut v, "service_date", m.service_date.as_ref(), true);
        let units = if m.units.is_empty() {
            v.add("units", "is required");
            None
        } else {
            v.decimal("units", &m.units, 4)
        };
        if units.is_some_and(|u| u <= Decimal::ZERO) {
            v.add("units", "must be positive");
        }
        v.finish()?;
        let (draw, client_id, service_id, service_date, units) = (
            draw.expect("validated"),
            client_id.expect("validated"),
            service_id.expect("validated"),
            service_date.expect("validated"),
            units.expect("validated"),
        );
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        // The authorization's row lock serialises every draw on it.
        let row = store::load(tx.conn(), draw.authorization_id, true)
            .await?
            .ok_or_else(|| Error::not_found("authorization", draw.authorization_id))?;
        let subject = format!("authorizations/{}", draw.authorization_id);
        let coverage = Coverage {
            status: status_of(&row),
            client_id: row.client_id,
            service_id: row.service_id,
            begin_date: row.begin_date,
            end_date: row.end_date,
        };
        let before = store::draw(tx.conn(), draw.authorization_id, draw.record_id).await?;
        let takes_more = units > before.counted();
        check_covers(&coverage, client_id, service_id, service_date, takes_more)
            .map_err(|(rule, message)| Error::precondition(rule, subject.clone(), message))?;
        let mut counted = row.committed_units;
        let request = HoldRequest {
            units,
            version: draw.version,
            attempt: draw.hold_id,
        };
        let now = chrono::Utc::now();
        match hold(
            &before,
            request,
            row.committed_units,
            row.authorized_units,
            now,
        ) {
            Err(Refusal::Busy) => {
                return Err(Error::stale(format!(
                    "service record {} is being stored at version {} by another request; \
                     read it again and retry",
                    draw.record_id, draw.version
                ))
                .into());
            }
            Err(Refusal::Shortfall { remaining }) => {
                return Err(Error::precondition(
                    "authorization_units_remaining",
                    subject,
                    format!(
                        "the authorization has {} units remaining; {} were asked",
                        text(remaining),
                        text(units)
                    ),
                )
                .into());
            }
            Ok(None) => {}
            Ok(Some(after)) => {
                store::save_draw(
                    tx.conn(),
                    caller.tenant,
                    draw.authorization_id,
                    draw.record_id,
                    Some(service_date),
                    &before,
                    &after,
                )
                .await?;
                counted += after.counted() - before.counted();
            }
        }
        tx.commit().await?;
        Ok(Response::new(pb::ReserveUnitsResponse {
            remaining_units: text((row.authorized_units - counted).max(Decimal::ZERO)),
        }))
    }

    async fn release_units(
        &self,
        request: Request<pb::ReleaseUnitsRequest>,
    ) -> Result<Response<pb::ReleaseUnitsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let mut v = Violations::new();
        let draw = parse_draw(
            &m.authorization_id,
            &m.service_record_id,
            m.service_record_version,
            &m.hold_id,
            &mut v,
        );
        v.finish()?;
        let draw = draw.expect("validated");
        let tenant = caller.tenant;
        if !held(
            &self.platform,
            tenant,
            draw.authorization_id,
            draw.record_id,
            draw.version,
            draw.hold_id,
        )
        .await?
        {
            return Ok(Response::new(pb::ReleaseUnitsResponse {}));
        }
        // Only units no stored record draws go back: a write whose commit failed may yet
        // have committed, and a caller may name a hold that is not theirs.
        if !self
            .records
            .hold_unused(tenant, draw.record_id, draw.authorization_id, draw.version)
            .await?
        {
            return Err(Error::precondition(
                "service_record_stored",
                format!("authorizations/{}", draw.authorization_id),
                format!(
                    "service record {} is stored at version {} or later drawing on this \
                     authorization; its event settles the units held for it",
                    draw.record_id, draw.version
                ),
            )
            .into());
        }
        give_back(
            &self.platform,
            tenant,
            draw.authorization_id,
            draw.record_id,
            Held::Current {
                version: draw.version,
                attempt: Some(draw.hold_id),
            },
        )
        .await?;
        Ok(Response::new(pb::ReleaseUnitsResponse {}))
    }
}
