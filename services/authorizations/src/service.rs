//! The authorizations service's use cases, one function per operation: requesting and
//! changing a plan (checked against what the catalog and the clients service say, asked
//! through `caseway-peers`), the workflow's transitions with separation of duties, the
//! records service's holds and releases, the drawdown its events confirm, and the closing of
//! expired authorizations and unsettled holds. Each owns its transaction: the rows, their
//! audit rows, their events and, where a retry could repeat it, the idempotent reply.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::authorizations::v1 as pb;
use caseway_api::catalog::v1::CodeList;
use caseway_peers::catalog::Catalog;
use caseway_peers::clients::Clients;
use caseway_peers::eligibility::Eligibility;
use caseway_peers::records::Records;
use caseway_peers::rules::{check_grant_over, check_service, check_units, unit_value};
use caseway_platform::audit::{self, AuditEntry, AuditRecord};
use caseway_platform::auth::{Principal, Role};
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::outbox;
use caseway_platform::paging::Page;
use caseway_platform::validate::{self, Violations};
use caseway_platform::{
    AuthorizationId, ClientId, Db, HoldId, RecordId, Scoped, ServiceId, TenantId,
};

use crate::convert::{Creation, Decision, ListQuery, PlanUpdate, authorization_to_proto, text};
use crate::domain::*;
use crate::events;
use crate::recurrence::{Rule, RuleError, check_period};
use crate::store;

/// Who the audit trail names for what the worker does.
pub const WORKER: &str = "caseway/authorizations-worker";

/// The advisory lock key of the closing round (any constant shared by every replica); the
/// sweep of unsettled holds takes the next one.
const LOCK_KEY: i64 = 7_262_005;
/// Authorizations closed per transaction; a round goes on until none is left.
const BATCH: i64 = 500;

pub struct Authorizations {
    db: Db,
    catalog: Arc<Catalog>,
    clients: Arc<Clients>,
    records: Arc<Records>,
    eligibility: Arc<Eligibility>,
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

/// Audits a change and publishes `authorizations.authorization_<verb>.v1`.
async fn record_change(
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
            resource_id: row.id.into(),
            changed_fields: &changed_fields,
        },
    )
    .await?;
    let event_type = events::event_type(verb);
    let payload = events::changed(row, changed_fields);
    outbox::enqueue(tx, events::event(&event_type, row, &payload)).await?;
    Ok(())
}

/// Which units held for a record are given back.
#[derive(Clone, Copy, Debug)]
pub enum Held {
    /// The current hold, for `version`, if `attempt` made it (any attempt's when None).
    Current {
        version: i64,
        attempt: Option<HoldId>,
    },
    /// Earlier units counted up to `version`.
    Earlier { version: i64 },
}

/// Gives back units held for a record, if they are still held; false when there was nothing
/// to give back. Errs NOT_FOUND when the authorization is not the tenant's.
async fn give_back(
    db: &Db,
    tenant: TenantId,
    authorization_id: AuthorizationId,
    record_id: RecordId,
    held: Held,
) -> Result<bool> {
    let mut tx = db.tenant_tx(tenant).await?;
    let Some(before) = store::lock_draw(tx.conn(), authorization_id, record_id).await? else {
        return Err(Error::not_found("authorization", authorization_id));
    };
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
    db: &Db,
    tenant: TenantId,
    authorization_id: AuthorizationId,
    record_id: RecordId,
    version: i64,
    attempt: HoldId,
) -> Result<bool> {
    let mut tx = db.tenant_tx(tenant).await?;
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

impl Authorizations {
    pub fn new(
        db: Db,
        catalog: Arc<Catalog>,
        clients: Arc<Clients>,
        records: Arc<Records>,
        eligibility: Arc<Eligibility>,
    ) -> Self {
        Authorizations {
            db,
            catalog,
            clients,
            records,
            eligibility,
        }
    }

    /// Checks `plan` for `client_id` and `service_id` against the catalog and the client, and
    /// gives the row it makes (id, status and requester to be set by the caller).
    async fn checked_row(
        &self,
        caller: &Caller,
        client_id: ClientId,
        service_id: ServiceId,
        plan: &Plan,
        v: &mut Violations,
    ) -> Result<Option<AuthorizationRow>> {
        if !self.clients.client_exists(caller, client_id).await? {
            v.add(
                "authorization.client_id",
                "does not name a client of this tenant",
            );
        }
        let service = match self.catalog.service(caller, service_id).await? {
            Some(service) => {
                check_service(
                    &service,
                    false,
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
            match self.catalog.grant(caller, grant_id).await? {
                Some(grant) => check_grant_over(
                    &grant,
                    service,
                    (begin, end),
                    "the authorization's period",
                    "authorization.grant_id",
                    v,
                ),
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
            match self.catalog.code_value(caller, id).await? {
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
            id: AuthorizationId::new(),
            client_id,
            service_id,
            grant_id,
            begin_date: begin,
            end_date: end,
            unit_of_measure: service.unit_of_measure,
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
    async fn hidden_services(&self, caller: &Caller) -> Result<Vec<ServiceId>> {
        self.catalog
            .restrictions
            .hidden_from(caller.tenant, &caller.principal)
            .await
    }

    /// Approve, deny, cancel or close.
    async fn transition(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        decision: Decision,
        transition: Transition,
    ) -> Result<pb::Authorization> {
        let Decision {
            id,
            expected_version: expected,
            reason,
        } = decision;
        let reason = reason.as_deref();
        let hidden = self.hidden_services(caller).await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let row = visible(store::load(tx.conn(), id, true).await?, &hidden, id)?;
        check_version(expected, row.version)?;
        let subject = format!("authorizations/{id}");
        let next = transition
            .apply(row.status()?)
            .map_err(|e| Error::precondition(AuthorizationRule::Status, subject.clone(), e))?;
        if transition.needs_second_person() {
            // Everyone who had a hand in the plan, from the audit trail written with each
            // change (the requester is there too).
            let mut planners = audit::actors(
                &mut tx,
                "authorization",
                id.0,
                &[
                    "authorizations.authorization.requested",
                    "authorizations.authorization.updated",
                ],
            )
            .await?;
            if !planners.contains(&row.requested_by) {
                planners.push(row.requested_by.clone());
            }
            check_second_person(&planners, &caller.principal.user_id).map_err(|e| {
                Error::precondition(AuthorizationRule::SeparationOfDuties, subject.clone(), e)
            })?;
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
        let reply = authorization_to_proto(&stored, false);
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    /// Approve, deny, cancel or close, as the workflow allows; a retry under `key` answers
    /// with the first reply.
    pub async fn decide(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        decision: Decision,
        transition: Transition,
    ) -> Result<pb::Authorization> {
        self.transition(caller, key, decision, transition).await
    }

    /// Requests an authorization (Pending); a retry under `key` answers with the first reply.
    pub async fn create(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        creation: Creation,
    ) -> Result<pb::CreateAuthorizationResponse> {
        let Creation {
            client_id,
            service_id,
            plan,
        } = creation;
        let mut v = Violations::new();
        let row = self
            .checked_row(caller, client_id, service_id, &plan, &mut v)
            .await?;
        let row = v.finish_with(row)?;
        // A plan the form allows is refused when the service's REQUIRED rule finds the client
        // not eligible on its first day.
        self.eligibility
            .enforce(caller.tenant, client_id, service_id, row.begin_date)
            .await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let stored = store::insert(tx.conn(), caller.tenant, &row).await?;
        record_change(&mut tx, &caller.principal, "requested", &stored, Vec::new()).await?;
        let reply = pb::CreateAuthorizationResponse {
            authorization: Some(authorization_to_proto(&stored, true)),
        };
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get(&self, caller: &Caller, id: AuthorizationId) -> Result<AuthorizationRow> {
        let hidden = self.hidden_services(caller).await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let row = visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        tx.commit().await?;
        Ok(row)
    }

    /// Changes a Pending authorization's plan: the update's fields over the stored plan, then
    /// every check of a new authorization.
    pub async fn update(&self, caller: &Caller, update: PlanUpdate) -> Result<AuthorizationRow> {
        let PlanUpdate {
            id,
            expected_version,
            mask,
            given,
            violations,
        } = update;
        let hidden = self.hidden_services(caller).await?;
        let current = {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            visible(store::load(tx.conn(), id, false).await?, &hidden, id)?
        };
        check_version(expected_version, current.version)?;
        let subject = format!("authorizations/{id}");
        check_editable(current.status()?)
            .map_err(|e| Error::precondition(AuthorizationRule::Pending, subject.clone(), e))?;
        violations.finish()?;
        let recurrence = Rule::parse(&current.recurrence).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "stored recurrence of authorization {id} does not parse: {}",
                e.0
            ))
        })?;
        let mut plan = Plan {
            grant_id: Some(current.grant_id),
            begin_date: Some(current.begin_date),
            end_date: Some(current.end_date),
            units_per_occurrence: Some(current.units_per_occurrence),
            unit_value: Some(current.unit_value),
            recurrence: Some(recurrence),
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
            .checked_row(caller, current.client_id, current.service_id, &plan, &mut v)
            .await?;
        let mut next = v.finish_with(next)?;
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
            return Ok(current);
        }
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let locked = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("authorization", id))?;
        check_version(Some(current.version), locked.version)?;
        let stored = store::update_plan(tx.conn(), &next).await?;
        record_change(&mut tx, &caller.principal, "updated", &stored, changed).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// A page of a client's authorizations, newest first; a client this caller cannot see has
    /// none to show.
    pub async fn list_for_client(
        &self,
        caller: &Caller,
        query: &ListQuery,
        page: Page<(chrono::DateTime<chrono::Utc>, Uuid)>,
    ) -> Result<(Vec<AuthorizationRow>, String)> {
        if !self.clients.client_exists(caller, query.client_id).await? {
            return Err(Error::not_found("client", query.client_id));
        }
        let hidden = self.hidden_services(caller).await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows = store::list_for_client(
            tx.conn(),
            query.client_id,
            &query.filter,
            &hidden,
            page.after,
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.created_at, r.id.0));
        Ok((rows, next_page_token))
    }

    /// An authorization with what was delivered against it per date, and how many records.
    pub async fn utilization(
        &self,
        caller: &Caller,
        id: AuthorizationId,
    ) -> Result<(AuthorizationRow, Vec<(NaiveDate, Decimal)>, i64)> {
        let hidden = self.hidden_services(caller).await?;
        // The totals and the per-occurrence deliveries from one snapshot, in one statement.
        let mut read = self.db.tenant_statements(caller.tenant).await?;
        let found = store::utilization(&mut read, id).await?;
        read.done();
        let (row, deliveries, records) = match found {
            Some((row, deliveries, records)) => (Some(row), deliveries, records),
            None => (None, Vec::new(), 0),
        };
        Ok((visible(row, &hidden, id)?, deliveries, records))
    }

    /// A page of an authorization's audit history.
    pub async fn history(
        &self,
        caller: &Caller,
        id: AuthorizationId,
        page: Page<i64>,
    ) -> Result<(Vec<AuditRecord>, String)> {
        let hidden = self.hidden_services(caller).await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        let page = audit::history_page(&mut tx, "authorization", id.0, &page).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// Holds units of an authorization for a service record about to be stored (the records
    /// service asks); returns the units that remain.
    pub async fn reserve(&self, caller: &Caller, reservation: Reservation) -> Result<Decimal> {
        let Reservation {
            draw,
            client_id,
            service_id,
            service_date,
            units,
        } = reservation;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        // The authorization's row lock serialises every draw on it.
        let row = store::load(tx.conn(), draw.authorization_id, true)
            .await?
            .ok_or_else(|| Error::not_found("authorization", draw.authorization_id))?;
        let subject = format!("authorizations/{}", draw.authorization_id);
        let coverage = Coverage {
            status: row.status()?,
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
                )));
            }
            Err(Refusal::Shortfall { remaining }) => {
                return Err(Error::precondition(
                    AuthorizationRule::UnitsRemaining,
                    subject,
                    format!(
                        "the authorization has {} units remaining; {} were asked",
                        text(remaining),
                        text(units)
                    ),
                ));
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
        Ok((row.authorized_units - counted).max(Decimal::ZERO))
    }

    /// Gives back a hold whose record was not stored (the records service asks), once the
    /// records service says no stored record draws it.
    pub async fn release(&self, caller: &Caller, draw: DrawRequest) -> Result<()> {
        let tenant = caller.tenant;
        if !held(
            &self.db,
            tenant,
            draw.authorization_id,
            draw.record_id,
            draw.version,
            draw.hold_id,
        )
        .await?
        {
            return Ok(());
        }
        // Only units no stored record draws go back: a write whose commit failed may yet
        // have committed, and a caller may name a hold that is not theirs.
        if !self
            .records
            .hold_unused(tenant, draw.record_id, draw.authorization_id, draw.version)
            .await?
        {
            return Err(Error::precondition(
                AuthorizationRule::ServiceRecordStored,
                format!("authorizations/{}", draw.authorization_id),
                format!(
                    "service record {} is stored at version {} or later drawing on this \
                     authorization; its event settles the units held for it",
                    draw.record_id, draw.version
                ),
            ));
        }
        give_back(
            &self.db,
            tenant,
            draw.authorization_id,
            draw.record_id,
            Held::Current {
                version: draw.version,
                attempt: Some(draw.hold_id),
            },
        )
        .await?;
        Ok(())
    }

    /// Applies one records event to the draws it concerns. It keeps no inbox row: applying an
    /// event again changes nothing, since a draw keeps the record version it counts and an
    /// event of that version or an older one settles nothing more (`domain::settle`), whether
    /// it is the same delivery again or the same change under another event id.
    pub async fn apply_record_event(
        &self,
        tenant: TenantId,
        draw: RecordDraw,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        // A record moving from one authorization to another locks both, always in the order
        // of their ids: another record moving the other way at the same moment waits instead
        // of deadlocking.
        let mut locked: Vec<AuthorizationId> =
            draw.previous.into_iter().chain(draw.current).collect();
        locked.sort();
        locked.dedup();
        // The ones that are there, each with the record's draw on it: the records service
        // checked the authorization when it held the units, so one that is not is not this
        // tenant's (or the tenant is purged), and there is nothing to count.
        let mut found = Vec::with_capacity(locked.len());
        for authorization_id in locked {
            match store::lock_draw(tx.conn(), authorization_id, draw.record_id).await? {
                Some(before) => found.push((authorization_id, before)),
                None => tracing::warn!(
                    %authorization_id,
                    record_id = %draw.record_id,
                    "a service record's event names an authorization that is not there (another \
                     tenant's, or of a purged tenant)"
                ),
            }
        }
        let before = |id: AuthorizationId| found.iter().find(|(f, _)| *f == id).map(|(_, d)| *d);
        // The record moved to another authorization (or to none): the old one gets its units
        // back.
        if let Some(previous) = draw.previous
            && Some(previous) != draw.current
            && let Some(drawn) = before(previous)
        {
            let back = RecordDraw {
                units: Decimal::ZERO,
                value: Decimal::ZERO,
                service_date: None,
                ..draw
            };
            confirm(&mut tx, tenant, previous, &drawn, &back).await?;
        }
        if let Some(current) = draw.current
            && let Some(drawn) = before(current)
        {
            confirm(&mut tx, tenant, current, &drawn, &draw).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives back holds whose record never came, older than `older_than`: the records service
    /// held units and then died before storing the record (or before giving them back), or
    /// someone held units with no record at all. Time alone does not decide: a hold is given
    /// back only when the records service says no stored version of the record from the held
    /// one on draws on the authorization; a stored record's event is on its way through the
    /// outbox, however long the broker is down, and will settle it. Returns how many were
    /// given back, or None when another replica holds the lock.
    pub async fn sweep_unsettled(&self, older_than: chrono::Duration) -> Result<Option<usize>> {
        sweep_unsettled(&self.db, &self.records, older_than).await
    }
}

/// Counts what a record draws on one authorization (`draw`'s units and value), whose row the
/// transaction has locked and read the record's draw on (`before`).
async fn confirm(
    tx: &mut impl Scoped,
    tenant: TenantId,
    authorization_id: AuthorizationId,
    before: &Draw,
    draw: &RecordDraw,
) -> anyhow::Result<()> {
    if let Some(after) = settle(before, draw.units, draw.value, draw.version) {
        store::save_draw(
            tx.conn(),
            tenant,
            authorization_id,
            draw.record_id,
            draw.service_date,
            before,
            &after,
        )
        .await?;
    }
    Ok(())
}

/// One round: closes what ended before `today`. None when another replica holds the lock.
pub async fn close_expired(db: &Db, today: NaiveDate) -> Result<Option<usize>> {
    let mut closed = 0;
    loop {
        let mut tx = db.system_tx().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(tx.conn())
            .await?;
        if !locked {
            return Ok(if closed == 0 { None } else { Some(closed) });
        }
        let expired = store::expired(tx.conn(), today, BATCH).await?;
        for &(tenant, id) in &expired {
            tx.act_for_tenant(tenant).await?;
            let row = store::set_status(
                tx.conn(),
                id,
                AuthorizationStatus::Closed as i16,
                WORKER,
                Some("the end date has passed"),
            )
            .await?;
            let actor = Principal {
                user_id: WORKER.into(),
                tenant_id: Some(tenant),
                organization_ids: Vec::new(),
                roles: Vec::new(),
                permissions: Vec::new(),
                service: None,
            };
            record_change(&mut tx, &actor, "closed", &row, vec!["status".into()]).await?;
        }
        tx.commit().await?;
        closed += expired.len();
        if (expired.len() as i64) < BATCH {
            return Ok(Some(closed));
        }
    }
}

/// See [`Authorizations::sweep_unsettled`].
pub async fn sweep_unsettled(
    db: &Db,
    records: &Records,
    older_than: chrono::Duration,
) -> Result<Option<usize>> {
    let holds = {
        let mut tx = db.system_tx().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(LOCK_KEY + 1)
            .fetch_one(tx.conn())
            .await?;
        if !locked {
            return Ok(None);
        }
        let holds = store::unsettled_holds(tx.conn(), older_than, BATCH).await?;
        tx.commit().await?;
        holds
    };
    let mut released = 0;
    for hold in holds {
        let tenant = hold.tenant_id;
        // The current hold (only if the same attempt still has it) and earlier units.
        let mut slots = Vec::new();
        if hold.held_version > 0 {
            slots.push((
                hold.held_version,
                Held::Current {
                    version: hold.held_version,
                    attempt: hold.held_by,
                },
            ));
        }
        if hold.earlier_version > 0 {
            slots.push((
                hold.earlier_version,
                Held::Earlier {
                    version: hold.earlier_version,
                },
            ));
        }
        for (version, held) in slots {
            let unused = match records
                .hold_unused(
                    tenant,
                    hold.service_record_id,
                    hold.authorization_id,
                    version,
                )
                .await
            {
                Ok(unused) => unused,
                Err(error) => {
                    tracing::warn!(error = %error, "records service unavailable; holds stay");
                    return Ok(Some(released));
                }
            };
            if !unused {
                continue;
            }
            let given_back = give_back(
                db,
                tenant,
                hold.authorization_id,
                hold.service_record_id,
                held,
            )
            .await?;
            if given_back {
                released += 1;
                tracing::info!(
                    authorization_id = %hold.authorization_id,
                    service_record_id = %hold.service_record_id,
                    version,
                    "gave back units held for a record version that was never stored"
                );
            }
        }
    }
    Ok(Some(released))
}
