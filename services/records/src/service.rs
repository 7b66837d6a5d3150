//! The records service's use cases, one function per operation: each checks its drafts against
//! what the catalog and the clients service say (asked through `caseway-peers`), holds the units
//! of records that draw on an authorization, and stores in one transaction the records, their
//! audit rows, their events and the idempotent reply. A use case that is idempotent by
//! `request_id` returns the reply it stored, so a retry answers with the same bytes.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use caseway_api::catalog::v1::CodeList;
use caseway_api::events::v1::ServiceRecordChanged;
use caseway_api::records::v1 as pb;
use caseway_peers::authorizations::{Authorizations, Draw, Hold};
use caseway_peers::catalog::Catalog;
use caseway_peers::clients::Clients;
use caseway_peers::eligibility::Eligibility;
use caseway_platform::audit::{self, AuditEntry, AuditRecord};
use caseway_platform::auth::{Principal, Role};
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::outbox::{self, Event};
use caseway_platform::paging::Page;
use caseway_platform::server::Platform;
use caseway_platform::validate::Violations;
use caseway_platform::{AuthorizationId, Db, RecordId, ServiceId, TenantId};

use crate::convert::{self, Deletion, HistoryQuery, Update};
use crate::domain::*;
use crate::events;
use crate::store;

pub struct Records {
    db: Db,
    catalog: Arc<Catalog>,
    clients: Arc<Clients>,
    eligibility: Arc<Eligibility>,
    authorizations: Authorizations,
}

/// The draw of a row that names an authorization, at `version`.
fn draw_of(row: &RecordRow, version: i64) -> Option<Draw> {
    Some(Draw {
        authorization_id: row.authorization_id?,
        record_id: row.id,
        version,
        client_id: row.client_id?,
        service_id: row.service_id,
        service_date: row.service_date,
        units: row.units?,
    })
}

impl Records {
    pub fn new(
        platform: &Platform,
        catalog: Arc<Catalog>,
        clients: Arc<Clients>,
        eligibility: Arc<Eligibility>,
        authorizations_endpoint: &str,
    ) -> anyhow::Result<Self> {
        Ok(Records {
            db: platform.db.clone(),
            catalog,
            clients,
            eligibility,
            authorizations: Authorizations::new(platform, authorizations_endpoint)?,
        })
    }

    /// The services hidden from `principal` (restricted to security organizations it is not
    /// in): asked before a transaction opens, since it may ask the catalog.
    async fn hidden_services(
        &self,
        tenant: TenantId,
        principal: &Principal,
    ) -> Result<Vec<ServiceId>> {
        self.catalog
            .restrictions
            .hidden_from(tenant, principal)
            .await
    }

    /// Holds the units of every row that names an authorization; on a refusal, gives back
    /// what was held and fails. `prefix` names a row's field (`lines[2].`).
    async fn hold_all(
        &self,
        caller: &Caller,
        rows: &[RecordRow],
        prefix: impl Fn(usize) -> String,
    ) -> Result<Vec<Hold>> {
        let mut holds = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let Some(draw) = draw_of(row, row.version) else {
                continue;
            };
            let field = format!("{}authorization_id", prefix(index));
            match self.authorizations.hold(caller.tenant, &draw, &field).await {
                Ok(hold) => holds.push(hold),
                Err(error) => {
                    self.authorizations.release(caller.tenant, &holds).await;
                    return Err(error);
                }
            }
        }
        Ok(holds)
    }

    /// Checks a draft against the catalog and the client and makes the row to store; every
    /// violation is named under `prefix`.
    async fn prepare(
        &self,
        caller: &Caller,
        draft: &Draft,
        prefix: &str,
        v: &mut Violations,
    ) -> Result<Option<RecordRow>> {
        let mut f = Fields::new(prefix);
        let admin = caller.principal.has_role(Role::TenantAdmin);
        let today = Utc::now().date_naive();
        let (Some(service_id), Some(service_date)) = (draft.service_id, draft.service_date) else {
            return Ok(None);
        };
        check_date(service_date, today, f.at("service_date"), v);
        // Periods are checked only for a date that can stand, for a client that exists: one
        // mistake, one violation.
        let date_ok = service_date <= today;
        let service = match self.catalog.service(caller, service_id).await? {
            Some(service) => {
                check_service(
                    &service,
                    draft.kind,
                    f.at("service_id"),
                    &caller.principal.organization_ids,
                    admin,
                    v,
                );
                Some(service)
            }
            None => {
                v.add(f.at("service_id"), "does not name a service of this tenant");
                None
            }
        };
        if draft.authorization_id.is_some() && draft.kind != Kind::Delivered {
            v.add(
                f.at("authorization_id"),
                "only a delivered service draws on an authorization",
            );
        }
        let mut client_ok = true;
        if let Some(client_id) = draft.client_id
            && !self.clients.client_exists(caller, client_id).await?
        {
            v.add(f.at("client_id"), "does not name a client of this tenant");
            client_ok = false;
        }
        let mut program_id = None;
        if let Some(enrollment_id) = draft.enrollment_id {
            match (
                draft.client_id,
                self.clients.enrollment(caller, enrollment_id).await?,
            ) {
                (_, None) => v.add(
                    f.at("enrollment_id"),
                    "does not name an enrollment of this tenant",
                ),
                (None, Some(_)) => v.add(
                    f.at("enrollment_id"),
                    "an indirect service has no enrollment",
                ),
                (Some(client_id), Some(enrollment)) => {
                    if client_ok && date_ok {
                        check_enrollment(
                            &enrollment,
                            client_id,
                            service_date,
                            f.at("enrollment_id"),
                            v,
                        );
                    }
                    program_id = Some(enrollment.program_id);
                }
            }
        }
        if let Some(grant_id) = draft.grant_id {
            match self.catalog.grant(caller, grant_id).await? {
                None => v.add(f.at("grant_id"), "does not name a grant of this tenant"),
                Some(grant) => {
                    if let Some(service) = &service
                        && date_ok
                    {
                        check_grant(&grant, service, service_date, f.at("grant_id"), v);
                    }
                }
            }
        }
        if let Some(provider_id) = draft.provider_id
            && !self.catalog.provider_exists(caller, provider_id).await?
        {
            v.add(
                f.at("provider_id"),
                "does not name a provider of this tenant",
            );
        }
        for (field, id, list, name) in [
            ("reason_id", draft.reason_id, CodeList::Reason, "REASON"),
            ("goal_id", draft.goal_id, CodeList::Goal, "GOAL"),
            (
                "referral_plan_id",
                draft.referral_plan_id,
                CodeList::ReferralPlan,
                "REFERRAL_PLAN",
            ),
            (
                "turn_away_reason_id",
                draft.turn_away_reason_id,
                CodeList::TurnAwayReason,
                "TURN_AWAY_REASON",
            ),
        ] {
            let Some(id) = id else { continue };
            match self.catalog.code_value(caller, id).await? {
                None => v.add(f.at(field), "does not name a code value of this tenant"),
                Some(value) if value.code_list != list => {
                    v.add(f.at(field), format!("is not a code of the {name} list"))
                }
                Some(value) if !value.active => v.add(f.at(field), "is retired"),
                Some(_) => {}
            }
        }
        if let Some(barrier_id) = draft.barrier_id {
            match self.clients.barrier_client(caller, barrier_id).await? {
                Some(client) if Some(client) == draft.client_id => {}
                Some(_) => v.add(f.at("barrier_id"), "is a barrier of another client"),
                None => v.add(f.at("barrier_id"), "does not name a barrier of this tenant"),
            }
        }
        let Some(service) = service else {
            return Ok(None);
        };
        let Quantities {
            units,
            unit_value,
            people_reached,
        } = quantities(
            draft.kind,
            Quantities {
                units: draft.units,
                unit_value: draft.unit_value,
                people_reached: draft.people_reached,
            },
            &service,
            prefix,
            v,
        );
        // A delivery the form allows is refused when the service's REQUIRED rule finds the
        // client not eligible on the service date (a turn-away records the refusal itself).
        if let (Kind::Delivered, Some(client_id), true) =
            (draft.kind, draft.client_id, v.is_empty())
        {
            self.eligibility
                .enforce(caller.tenant, client_id, service_id, service_date)
                .await?;
        }
        let now = Utc::now();
        Ok(Some(RecordRow {
            id: RecordId::new(),
            kind: draft.kind as i16,
            client_id: draft.client_id,
            service_id,
            service_group_id: service.service_group_id,
            service_date,
            grant_id: draft.grant_id,
            enrollment_id: draft.enrollment_id,
            program_id,
            provider_id: draft.provider_id,
            value: units.zip(unit_value).map(|(u, p)| value(u, p)),
            units: units.map(|u| u.normalize()),
            unit_value: unit_value.map(|p| p.normalize()),
            reason_id: draft.reason_id,
            goal_id: draft.goal_id,
            referral_plan_id: draft.referral_plan_id,
            barrier_id: draft.barrier_id,
            comments: draft.comments.clone(),
            turn_away_reason_id: draft.turn_away_reason_id,
            people_reached,
            authorization_id: draft.authorization_id,
            recorded_by: caller.principal.user_id.clone(),
            version: 1,
            created_at: now,
            updated_at: now,
        }))
    }

    /// Stores new records with their audit rows, then the reply `answer` makes of them (as the
    /// API shows them, each converted once for its event and the reply alike) under `key` with
    /// their `service_recorded` events, and commits: one transaction of two statements. The
    /// records are written before the key is claimed, so a retry that finds the key taken rolls
    /// them back and answers the first reply (`true`: replayed).
    async fn store_new<Resp: prost::Message + Default>(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        rows: &[RecordRow],
        answer: impl FnOnce(Vec<pb::ServiceRecord>) -> Resp,
    ) -> Result<(Resp, bool)> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        // Every row and its audit row in one statement; the reply and the events in another.
        let stored = store::insert(
            tx.conn(),
            caller.tenant,
            rows,
            "records.service_record.create",
        )
        .await?;
        let payloads: Vec<ServiceRecordChanged> = stored
            .iter()
            .map(|row| events::changed(row, Vec::new(), None))
            .collect();
        let events: Vec<Event<'_, ServiceRecordChanged>> = stored
            .iter()
            .zip(&payloads)
            .map(|(row, payload)| events::event(events::RECORDED, row, payload))
            .collect();
        let records = payloads.iter().filter_map(|p| p.record.clone()).collect();
        let reply = answer(records);
        match idempotency::settle(&mut tx, key, &reply, &events).await? {
            Claim::New => {
                tx.commit().await?;
                Ok((reply, false))
            }
            Claim::Replay(previous) => Ok((previous, true)),
        }
    }

    /// One record (a delivery, turn-away or indirect service) from a form whose own checks
    /// left `v`; the reply is what a retry under `key` answers.
    pub async fn record(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        draft: Draft,
        mut v: Violations,
    ) -> Result<pb::ServiceRecord> {
        v.request_id(key.request_id);
        let row = self.prepare(caller, &draft, "record.", &mut v).await?;
        let row = v.finish_with(row)?;
        // A retry of a call that drew on an authorization answers before holding again.
        if row.authorization_id.is_some() {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            if let Some(previous) =
                idempotency::previous::<pb::RecordServiceResponse>(&mut tx, key).await?
            {
                return Ok(previous.record.unwrap_or_default());
            }
        }
        let holds = self
            .hold_all(caller, std::slice::from_ref(&row), |_| "record.".into())
            .await?;
        let stored = self
            .store_new(caller, key, std::slice::from_ref(&row), |records| {
                pb::RecordServiceResponse {
                    record: records.into_iter().next(),
                }
            })
            .await;
        self.settle_holds(caller, holds, &stored).await;
        stored.map(|(reply, _)| reply.record.unwrap_or_default())
    }

    /// Gives back the holds of records that were not stored: the write failed, or a retry
    /// answered with the first result (whose own holds stand).
    async fn settle_holds<T>(
        &self,
        caller: &Caller,
        holds: Vec<Hold>,
        outcome: &Result<(T, bool)>,
    ) {
        let stored = matches!(outcome, Ok((_, false)));
        if !stored && !holds.is_empty() {
            self.authorizations.release(caller.tenant, &holds).await;
        }
    }

    /// Several services for one client at once (Quick Services): every line checked, the
    /// shared fields' violations named once; all stored or none.
    pub async fn record_quick(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        lines: Vec<(Draft, Violations)>,
    ) -> Result<pb::RecordQuickServicesResponse> {
        let mut v = Violations::new();
        v.request_id(key.request_id);
        if lines.is_empty() {
            v.add("lines", "must have at least one service");
        }
        // The cheap checks decide before any line is prepared (the edge already refused more
        // lines than the proto allows): a form that fails them costs no lookup.
        std::mem::take(&mut v).finish()?;
        let mut rows = Vec::with_capacity(lines.len());
        for (index, (draft, mut line_v)) in lines.into_iter().enumerate() {
            let prefix = format!("lines[{index}].");
            let row = self.prepare(caller, &draft, &prefix, &mut line_v).await?;
            for violation in line_v.into_inner() {
                let shared = convert::QUICK_SHARED
                    .iter()
                    .find(|name| violation.field == format!("{prefix}{name}"));
                match shared {
                    Some(name) if !v.mentions(name) => v.add(*name, violation.description),
                    Some(_) => {}
                    None => v.add(violation.field, violation.description),
                }
            }
            rows.extend(row);
        }
        v.finish()?;
        if rows.iter().any(|r| r.authorization_id.is_some()) {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            if let Some(previous) = idempotency::previous(&mut tx, key).await? {
                return Ok(previous);
            }
        }
        let holds = self
            .hold_all(caller, &rows, |index| format!("lines[{index}]."))
            .await?;
        let outcome = self
            .store_new(caller, key, &rows, |records| {
                pb::RecordQuickServicesResponse { records }
            })
            .await;
        self.settle_holds(caller, holds, &outcome).await;
        Ok(outcome?.0)
    }

    /// One service for many clients (a group session): each attendee's record is checked and
    /// held on its own, and a refused attendee is reported in its row, not failing the rest.
    pub async fn record_bulk(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        attendees: Vec<(String, Draft, Violations)>,
    ) -> Result<pb::RecordBulkServiceResponse> {
        // A retry answers from the first result before checking anything again.
        {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
                return Ok(previous);
            }
        }
        let mut results = Vec::with_capacity(attendees.len());
        let mut holds = Vec::new();
        let mut rows = Vec::new();
        for (index, (prefix, draft, mut row_v)) in attendees.into_iter().enumerate() {
            let outcome = match self.prepare(caller, &draft, &prefix, &mut row_v).await {
                Ok(row) => row_v.finish().map(|()| row),
                Err(e) => Err(e),
            };
            // A row whose authorization refuses it is refused alone.
            let outcome = match outcome {
                Ok(Some(row)) => match draw_of(&row, row.version) {
                    Some(draw) => self
                        .authorizations
                        .hold(caller.tenant, &draw, &format!("{prefix}authorization_id"))
                        .await
                        .map(|hold| {
                            holds.push(hold);
                            Some(row)
                        }),
                    None => Ok(Some(row)),
                },
                other => other,
            };
            match outcome {
                Ok(Some(row)) => rows.push((index, row)),
                Ok(None) => {}
                Err(Error::Unavailable(reason)) => {
                    self.authorizations.release(caller.tenant, &holds).await;
                    return Err(Error::Unavailable(reason));
                }
                Err(error) => results.push(pb::BulkResult {
                    index: index as i32,
                    record: None,
                    error: Some(convert::row_error(error)),
                }),
            }
        }
        let to_store: Vec<RecordRow> = rows.iter().map(|(_, r)| r.clone()).collect();
        let outcome = self
            .store_new(caller, key, &to_store, |stored| {
                let (recorded, refused) = (stored.len(), results.len());
                for ((index, _), record) in rows.iter().zip(stored) {
                    results.push(pb::BulkResult {
                        index: *index as i32,
                        record: Some(record),
                        error: None,
                    });
                }
                results.sort_by_key(|r| r.index);
                pb::RecordBulkServiceResponse {
                    recorded: recorded as i32,
                    refused: refused as i32,
                    results,
                }
            })
            .await;
        self.settle_holds(caller, holds, &outcome).await;
        Ok(outcome?.0)
    }

    pub async fn get(&self, caller: &Caller, id: RecordId) -> Result<RecordRow> {
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let row = visible_record(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        tx.commit().await?;
        Ok(row)
    }
    /// Changes the fields of `update` over the stored record, checked as a new record is; a
    /// change of what the record draws holds the new units first.
    pub async fn update(&self, caller: &Caller, update: Update) -> Result<RecordRow> {
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let current = {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            visible_record(
                store::load(tx.conn(), update.id, false).await?,
                &hidden,
                update.id,
            )?
        };
        check_version(update.expected_version, current.version)?;
        // The request's fields over the stored ones, then every check of a new record.
        let kind = Kind::of(current.kind)?;
        let given = convert::update_draft(&update, &current, kind)?;
        let mask = &update.mask;
        let mut draft = Draft::of(&current)?;
        macro_rules! take {
            ($($field:ident),+) => {$(
                if mask.contains(&stringify!($field)) {
                    draft.$field = given.$field.clone();
                }
            )+};
        }
        take!(
            service_date,
            grant_id,
            enrollment_id,
            provider_id,
            units,
            unit_value,
            reason_id,
            goal_id,
            referral_plan_id,
            barrier_id,
            comments,
            people_reached,
            authorization_id
        );
        let mut v = Violations::new();
        let next = self.prepare(caller, &draft, "record.", &mut v).await?;
        let mut next = v.finish_with(next)?;
        next.id = current.id;
        next.recorded_by = current.recorded_by.clone();
        next.version = current.version;
        next.created_at = current.created_at;
        let mut changed = Vec::new();
        macro_rules! compare {
            ($($field:ident),+) => {$(
                if next.$field != current.$field {
                    changed.push(stringify!($field).to_string());
                }
            )+};
        }
        compare!(
            service_date,
            grant_id,
            enrollment_id,
            program_id,
            provider_id,
            units,
            unit_value,
            value,
            reason_id,
            goal_id,
            referral_plan_id,
            barrier_id,
            comments,
            people_reached,
            authorization_id
        );
        if changed.is_empty() {
            return Ok(current);
        }
        // What the record draws changes: hold its new units for the version about to be
        // stored (the event of that version settles the hold, and gives the old
        // authorization its units back if it moved). The hold is this attempt's: a second
        // change of the record from the same version is refused while it stands.
        let draws_change = next.authorization_id.is_some()
            && (next.authorization_id != current.authorization_id
                || next.units != current.units
                || next.service_date != current.service_date);
        let holds = if draws_change {
            let mut held = next.clone();
            held.version = current.version + 1;
            self.hold_all(caller, std::slice::from_ref(&held), |_| "record.".into())
                .await?
        } else {
            Vec::new()
        };
        let outcome = async {
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            let locked = store::load(tx.conn(), update.id, true)
                .await?
                .ok_or_else(|| Error::not_found("service record", update.id))?;
            check_version(Some(current.version), locked.version)?;
            let stored = store::update(tx.conn(), &next).await?;
            audit::record(
                &mut tx,
                &caller.principal,
                AuditEntry {
                    action: "records.service_record.update",
                    resource_type: "service_record",
                    resource_id: update.id.into(),
                    changed_fields: &changed,
                },
            )
            .await?;
            let payload = events::changed(&stored, changed, Some(&current));
            outbox::enqueue(&mut tx, events::event(events::UPDATED, &stored, &payload)).await?;
            tx.commit().await?;
            Ok((stored, false))
        }
        .await;
        self.settle_holds(caller, holds, &outcome).await;
        Ok(outcome?.0)
    }

    pub async fn delete(&self, caller: &Caller, deletion: Deletion) -> Result<()> {
        let Deletion {
            id,
            expected_version,
            reason,
        } = deletion;
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut row = visible_record(store::load(tx.conn(), id, true).await?, &hidden, id)?;
        check_version(expected_version, row.version)?;
        store::delete(tx.conn(), id, &reason).await?;
        // The event carries the version the delete made, so a consumer can tell it from
        // (and put it after) the record's earlier events.
        row.version += 1;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "records.service_record.delete",
                resource_type: "service_record",
                resource_id: id.into(),
                changed_fields: &[],
            },
        )
        .await?;
        let payload = events::changed(&row, vec![], None);
        outbox::enqueue(&mut tx, events::event(events::DELETED, &row, &payload)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of a record's audit history.
    pub async fn history(
        &self,
        caller: &Caller,
        id: RecordId,
        page: Page<i64>,
    ) -> Result<(Vec<AuditRecord>, String)> {
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        visible_record(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        let page = audit::history_page(&mut tx, "service_record", id.0, &page).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// A page of a client's records, newest first; a client this caller cannot see has no
    /// history to show.
    pub async fn client_history(
        &self,
        caller: &Caller,
        query: &HistoryQuery,
        page: Page<(NaiveDate, Uuid)>,
    ) -> Result<(Vec<RecordRow>, String)> {
        if !self.clients.client_exists(caller, query.client_id).await? {
            return Err(Error::not_found("client", query.client_id));
        }
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let mut read = self.db.tenant_statements(caller.tenant).await?;
        let mut rows = store::client_history(
            &mut read,
            query.client_id,
            &query.filter,
            &hidden,
            page.after,
            page.limit + 1,
        )
        .await?;
        read.done();
        let next_page_token = page.finish(&mut rows, |r| (r.service_date, r.id.0));
        Ok((rows, next_page_token))
    }

    /// Sums over `[start, end]`, without the services hidden from the caller.
    pub async fn totals(
        &self,
        caller: &Caller,
        start: NaiveDate,
        end: NaiveDate,
        by: Grouping,
    ) -> Result<Vec<TotalsRow>> {
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        // Every change committed before the call is in the day totals read after this.
        fold_totals(&self.db).await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let days = store::daily_totals(tx.conn(), start, end, &hidden).await?;
        tx.commit().await?;
        Ok(sum_totals(&days, by))
    }
}

/// Changes of records folded into the day totals in one transaction, at most.
const FOLD_BATCH: i32 = 10_000;

/// Folds every change of records waiting (of every tenant) into the day totals; how many.
pub async fn fold_totals(db: &Db) -> Result<i64> {
    let mut folded = 0;
    loop {
        let mut tx = db.system_tx().await?;
        let n = store::fold_totals(tx.conn(), FOLD_BATCH).await?;
        tx.commit().await?;
        folded += n;
        if n < i64::from(FOLD_BATCH) {
            return Ok(folded);
        }
    }
}

/// What a record draws, for the authorizations service: asked with a service identity, so
/// nothing is hidden.
pub async fn draw(
    db: &Db,
    tenant: TenantId,
    id: RecordId,
) -> Result<Option<(i64, Option<AuthorizationId>)>> {
    let mut tx = db.tenant_tx(tenant).await?;
    let draw = store::draw_of(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(draw)
}
