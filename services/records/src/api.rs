//! The records gRPC API: decode, authorize, validate, check against the catalog and the client
//! (the domain's rules over looked-up facts), store, publish.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::catalog::v1::CodeList;
use caseway_api::events::v1::ServiceRecordChanged;
use caseway_api::records::v1 as pb;
use caseway_api::records::v1::records_internal_service_server::RecordsInternalService;
use caseway_api::records::v1::records_service_server::RecordsService;
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

use crate::domain::*;
use crate::holds::{Authorizations, Hold};
use crate::lookups::Lookups;
use crate::store::{self, Grouping, HistoryFilter, RecordRow};

const SOURCE: &str = "caseway/records";

pub struct RecordsApi {
    platform: Arc<Platform>,
    lookups: Arc<Lookups>,
    authorizations: Authorizations,
}

/// Who is recording, and with which credentials the other services are asked.
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

/// A stored record the caller may see: a record of a service hidden from it is NOT_FOUND, as
/// the service itself is.
fn visible(row: Option<RecordRow>, hidden: &[Uuid], id: Uuid) -> Result<RecordRow> {
    row.filter(|row| !hidden.contains(&row.service_id))
        .ok_or_else(|| Error::not_found("service record", id))
}

/// A record as the caller wrote it, its ids and numbers parsed.
#[derive(Clone, Debug)]
struct Draft {
    kind: Kind,
    client_id: Option<Uuid>,
    service_id: Option<Uuid>,
    service_date: Option<NaiveDate>,
    grant_id: Option<Uuid>,
    enrollment_id: Option<Uuid>,
    provider_id: Option<Uuid>,
    units: Option<Decimal>,
    unit_value: Option<Decimal>,
    reason_id: Option<Uuid>,
    goal_id: Option<Uuid>,
    referral_plan_id: Option<Uuid>,
    barrier_id: Option<Uuid>,
    comments: String,
    turn_away_reason_id: Option<Uuid>,
    people_reached: Option<i32>,
    authorization_id: Option<Uuid>,
}

/// A decimal that may be empty; negative and malformed numbers are named.
fn optional_decimal(v: &mut Violations, field: &str, text: &str) -> Option<Decimal> {
    if text.is_empty() {
        None
    } else {
        v.decimal(field, text, 4)
    }
}

fn parse_draft(p: &pb::ServiceRecord, prefix: &str, indirect: bool, v: &mut Violations) -> Draft {
    let mut f = Fields::new(prefix);
    let turn_away_reason_id = v.optional_id(f.at("turn_away_reason_id"), &p.turn_away_reason_id);
    let kind = if indirect {
        Kind::Indirect
    } else if !p.turn_away_reason_id.is_empty() {
        Kind::TurnAway
    } else {
        Kind::Delivered
    };
    let client_id = if indirect {
        None
    } else {
        v.id(f.at("client_id"), &p.client_id)
    };
    let draft = Draft {
        kind,
        client_id,
        service_id: v.id(f.at("service_id"), &p.service_id),
        service_date: validate::date(v, f.at("service_date"), p.service_date.as_ref(), true),
        grant_id: v.optional_id(f.at("grant_id"), &p.grant_id),
        enrollment_id: v.optional_id(f.at("enrollment_id"), &p.enrollment_id),
        provider_id: v.optional_id(f.at("provider_id"), &p.provider_id),
        units: optional_decimal(v, f.at("units"), &p.units),
        unit_value: if p.unit_value.is_empty() {
            None
        } else {
            v.decimal(f.at("unit_value"), &p.unit_value, 2)
        },
        reason_id: v.optional_id(f.at("reason_id"), &p.reason_id),
        goal_id: v.optional_id(f.at("goal_id"), &p.goal_id),
        referral_plan_id: v.optional_id(f.at("referral_plan_id"), &p.referral_plan_id),
        barrier_id: v.optional_id(f.at("barrier_id"), &p.barrier_id),
        comments: p.comments.clone(),
        turn_away_reason_id,
        people_reached: (p.people_reached != 0).then_some(p.people_reached),
        authorization_id: v.optional_id(f.at("authorization_id"), &p.authorization_id),
    };
    v.text(f.at("comments"), &draft.comments, 0, 4000);
    draft
}

fn draft_of(row: &RecordRow) -> Draft {
    Draft {
        kind: Kind::from_code(row.kind).unwrap_or(Kind::Delivered),
        client_id: row.client_id,
        service_id: Some(row.service_id),
        service_date: Some(row.service_date),
        grant_id: row.grant_id,
        enrollment_id: row.enrollment_id,
        provider_id: row.provider_id,
        units: row.units,
        unit_value: row.unit_value,
        reason_id: row.reason_id,
        goal_id: row.goal_id,
        referral_plan_id: row.referral_plan_id,
        barrier_id: row.barrier_id,
        comments: row.comments.clone(),
        turn_away_reason_id: row.turn_away_reason_id,
        people_reached: row.people_reached,
        authorization_id: row.authorization_id,
    }
}

fn id_text(id: Option<Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

fn decimal_text(d: Option<Decimal>) -> String {
    d.map(|d| d.normalize().to_string()).unwrap_or_default()
}

pub fn record_to_proto(r: &RecordRow) -> pb::ServiceRecord {
    pb::ServiceRecord {
        id: r.id.to_string(),
        kind: match Kind::from_code(r.kind) {
            Some(Kind::Delivered) => pb::ServiceRecordKind::Delivered,
            Some(Kind::TurnAway) => pb::ServiceRecordKind::TurnAway,
            Some(Kind::Indirect) => pb::ServiceRecordKind::Indirect,
            None => pb::ServiceRecordKind::Unspecified,
        } as i32,
        client_id: id_text(r.client_id),
        service_id: r.service_id.to_string(),
        service_date: Some(date(r.service_date)),
        grant_id: id_text(r.grant_id),
        enrollment_id: id_text(r.enrollment_id),
        program_id: id_text(r.program_id),
        provider_id: id_text(r.provider_id),
        units: decimal_text(r.units),
        unit_value: decimal_text(r.unit_value),
        value: decimal_text(r.value),
        reason_id: id_text(r.reason_id),
        goal_id: id_text(r.goal_id),
        referral_plan_id: id_text(r.referral_plan_id),
        barrier_id: id_text(r.barrier_id),
        comments: r.comments.clone(),
        turn_away_reason_id: id_text(r.turn_away_reason_id),
        people_reached: r.people_reached.unwrap_or(0),
        authorization_id: id_text(r.authorization_id),
        service_group_id: id_text(r.service_group_id),
        recorded_by: r.recorded_by.clone(),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

impl RecordsApi {
    pub fn new(
        platform: Arc<Platform>,
        lookups: Arc<Lookups>,
        authorizations_endpoint: &str,
    ) -> anyhow::Result<Self> {
        Ok(RecordsApi {
            platform: platform.clone(),
            lookups,
            authorizations: Authorizations::new(&platform, authorizations_endpoint)?,
        })
    }

    /// The services hidden from `principal` (restricted to security organizations it is not
    /// in): asked before a transaction opens, since it may ask the catalog.
    async fn hidden_services(&self, tenant: TenantId, principal: &Principal) -> Result<Vec<Uuid>> {
        self.lookups
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
            let field = format!("{}authorization_id", prefix(index));
            match self
                .authorizations
                .hold(caller.tenant, row, row.version, &field)
                .await
            {
                Ok(hold) => holds.extend(hold),
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
        let auth = caller.authorization.as_ref();
        let tenant = caller.tenant;
        let admin = caller.principal.has_role(Role::TenantAdmin);
        let today = Utc::now().date_naive();
        let (Some(service_id), Some(service_date)) = (draft.service_id, draft.service_date) else {
            return Ok(None);
        };
        check_date(service_date, today, f.at("service_date"), v);
        // Periods are checked only for a date that can stand, for a client that exists: one
        // mistake, one violation.
        let date_ok = service_date <= today;
        let service = match self.lookups.service(auth, tenant, service_id).await? {
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
            && !self.lookups.client_exists(auth, tenant, client_id).await?
        {
            v.add(f.at("client_id"), "does not name a client of this tenant");
            client_ok = false;
        }
        let mut program_id = None;
        if let Some(enrollment_id) = draft.enrollment_id {
            match (
                draft.client_id,
                self.lookups.enrollment(auth, tenant, enrollment_id).await?,
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
            match self.lookups.grant(auth, tenant, grant_id).await? {
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
            && !self
                .lookups
                .provider_exists(auth, tenant, provider_id)
                .await?
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
            match self.lookups.code_value(auth, tenant, id).await? {
                None => v.add(f.at(field), "does not name a code value of this tenant"),
                Some(value) if value.code_list != list => {
                    v.add(f.at(field), format!("is not a code of the {name} list"))
                }
                Some(value) if !value.active => v.add(f.at(field), "is retired"),
                Some(_) => {}
            }
        }
        if let Some(barrier_id) = draft.barrier_id {
            match self
                .lookups
                .barrier_client(auth, tenant, barrier_id)
                .await?
            {
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
        let now = Utc::now();
        Ok(Some(RecordRow {
            id: Uuid::now_v7(),
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

    /// Stores new records with their audit rows and `service_recorded` events; returns them as
    /// the API shows them (each converted once, for its event and the reply alike).
    async fn store_new(
        tx: &mut impl Scoped,
        caller: &Caller,
        rows: &[RecordRow],
    ) -> Result<Vec<pb::ServiceRecord>> {
        // Every row and its audit row in one statement, the events in another.
        let stored = store::insert(
            tx.conn(),
            caller.tenant,
            rows,
            "records.service_record.create",
        )
        .await?;
        let payloads: Vec<ServiceRecordChanged> = stored
            .iter()
            .map(|row| ServiceRecordChanged {
                record: Some(record_to_proto(row)),
                ..Default::default()
            })
            .collect();
        let events: Vec<Event<'_, ServiceRecordChanged>> = stored
            .iter()
            .zip(&payloads)
            .map(|(row, payload)| Event {
                event_type: "records.service_recorded.v1",
                source: SOURCE,
                subject: row.id.to_string(),
                payload,
            })
            .collect();
        outbox::enqueue_all(tx, &events).await?;
        drop(events);
        Ok(payloads.into_iter().filter_map(|p| p.record).collect())
    }

    /// One record (a delivery, turn-away or indirect service) from a form.
    async fn record_one<M: prost::Message>(
        &self,
        caller: &Caller,
        method: &str,
        request_id: &str,
        message: &M,
        draft: Draft,
        mut v: Violations,
    ) -> Result<pb::ServiceRecord> {
        v.request_id(request_id);
        let row = self.prepare(caller, &draft, "record.", &mut v).await?;
        v.finish()?;
        let row = row.expect("a row when nothing is violated");
        // A retry of a call that drew on an authorization answers before holding again.
        if row.authorization_id.is_some() {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Some(previous) = idempotency::previous::<_, pb::RecordServiceResponse>(
                &mut tx, method, request_id, message,
            )
            .await?
            {
                return Ok(previous.record.unwrap_or_default());
            }
        }
        let holds = self
            .hold_all(caller, std::slice::from_ref(&row), |_| "record.".into())
            .await?;
        let stored = async {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Claim::Replay(previous) = idempotency::claim::<_, pb::RecordServiceResponse>(
                &mut tx, method, request_id, message,
            )
            .await?
            {
                return Ok((previous.record.unwrap_or_default(), true));
            }
            let stored = Self::store_new(&mut tx, caller, std::slice::from_ref(&row)).await?;
            let reply = pb::RecordServiceResponse {
                record: stored.into_iter().next(),
            };
            idempotency::complete(&mut tx, method, request_id, &reply).await?;
            tx.commit().await?;
            Ok((reply.record.unwrap_or_default(), false))
        }
        .await;
        self.settle_holds(caller, holds, &stored).await;
        stored.map(|(record, _)| record)
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
}

async fn publish(
    tx: &mut impl Scoped,
    verb: &str,
    row: &RecordRow,
    changed_fields: Vec<String>,
    previous: Option<&RecordRow>,
) -> Result<()> {
    outbox::enqueue(
        tx,
        Event {
            event_type: &format!("records.service_{verb}.v1"),
            source: SOURCE,
            subject: row.id.to_string(),
            payload: &ServiceRecordChanged {
                record: Some(record_to_proto(row)),
                changed_fields,
                previous_units: previous.map(|p| decimal_text(p.units)).unwrap_or_default(),
                previous_authorization_id: previous
                    .map(|p| id_text(p.authorization_id))
                    .unwrap_or_default(),
            },
        },
    )
    .await?;
    Ok(())
}

/// Refusals of one bulk row: its code, message and field violations.
fn row_error(error: &Error) -> pb::RowError {
    let field_violations = match error {
        Error::InvalidArgument(violations) => violations
            .iter()
            .map(|f| pb::FieldViolation {
                field: f.field.clone(),
                description: f.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    pb::RowError {
        code: format!("{:?}", error.code()),
        message: error.to_string(),
        field_violations,
    }
}

#[tonic::async_trait]
impl RecordsService for RecordsApi {
    async fn record_service(
        &self,
        request: Request<pb::RecordServiceRequest>,
    ) -> Result<Response<pb::RecordServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let input = message
            .record
            .as_ref()
            .ok_or_else(|| Error::invalid("record", "is required"))?;
        let mut v = Violations::new();
        let draft = parse_draft(input, "record.", false, &mut v);
        let record = self
            .record_one(
                &caller,
                "records.service_record.create",
                &message.request_id,
                &message,
                draft,
                v,
            )
            .await?;
        Ok(Response::new(pb::RecordServiceResponse {
            record: Some(record),
        }))
    }

    async fn record_indirect_service(
        &self,
        request: Request<pb::RecordIndirectServiceRequest>,
    ) -> Result<Response<pb::RecordIndirectServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let form = pb::ServiceRecord {
            service_id: message.service_id.clone(),
            service_date: message.service_date,
            people_reached: message.people_reached,
            grant_id: message.grant_id.clone(),
            provider_id: message.provider_id.clone(),
            comments: message.comments.clone(),
            ..Default::default()
        };
        let mut v = Violations::new();
        let draft = parse_draft(&form, "record.", true, &mut v);
        let record = self
            .record_one(
                &caller,
                "records.service_record.indirect",
                &message.request_id,
                &message,
                draft,
                v,
            )
            .await?;
        Ok(Response::new(pb::RecordIndirectServiceResponse {
            record: Some(record),
        }))
    }

    async fn record_quick_services(
        &self,
        request: Request<pb::RecordQuickServicesRequest>,
    ) -> Result<Response<pb::RecordQuickServicesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        if message.lines.is_empty() {
            v.add("lines", "must have at least one service");
        }
        // The cheap checks decide before any line is prepared (the edge already refused more
        // lines than the proto allows): a form that fails them costs no lookup.
        std::mem::take(&mut v).finish()?;
        let mut rows = Vec::with_capacity(message.lines.len());
        for (index, line) in message.lines.iter().enumerate() {
            let form = pb::ServiceRecord {
                client_id: message.client_id.clone(),
                service_date: message.service_date,
                grant_id: message.grant_id.clone(),
                enrollment_id: message.enrollment_id.clone(),
                provider_id: message.provider_id.clone(),
                service_id: line.service_id.clone(),
                units: line.units.clone(),
                unit_value: line.unit_value.clone(),
                comments: line.comments.clone(),
                authorization_id: line.authorization_id.clone(),
                ..Default::default()
            };
            // The shared fields are named once, the lines by position.
            let mut line_v = Violations::new();
            let draft = parse_draft(&form, &format!("lines[{index}]."), false, &mut line_v);
            let row = self
                .prepare(&caller, &draft, &format!("lines[{index}]."), &mut line_v)
                .await?;
            for violation in line_v.into_inner() {
                let shared = [
                    "client_id",
                    "service_date",
                    "grant_id",
                    "enrollment_id",
                    "provider_id",
                ]
                .iter()
                .find(|name| violation.field == format!("lines[{index}].{name}"));
                match shared {
                    Some(name) if !v.mentions(name) => v.add(*name, violation.description),
                    Some(_) => {}
                    None => v.add(violation.field, violation.description),
                }
            }
            rows.extend(row);
        }
        v.finish()?;
        let method = "records.service_record.quick";
        if rows.iter().any(|r| r.authorization_id.is_some()) {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Some(previous) =
                idempotency::previous(&mut tx, method, &message.request_id, &message).await?
            {
                return Ok(Response::new(previous));
            }
        }
        let holds = self
            .hold_all(&caller, &rows, |index| format!("lines[{index}]."))
            .await?;
        let outcome = async {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Claim::Replay(previous) =
                idempotency::claim(&mut tx, method, &message.request_id, &message).await?
            {
                return Ok((previous, true));
            }
            let records = Self::store_new(&mut tx, &caller, &rows).await?;
            let reply = pb::RecordQuickServicesResponse { records };
            idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
            tx.commit().await?;
            Ok((reply, false))
        }
        .await;
        self.settle_holds(&caller, holds, &outcome).await;
        Ok(Response::new(outcome?.0))
    }

    async fn record_bulk_service(
        &self,
        request: Request<pb::RecordBulkServiceRequest>,
    ) -> Result<Response<pb::RecordBulkServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let template = message
            .template
            .clone()
            .ok_or_else(|| Error::invalid("template", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        if message.attendees.is_empty() {
            v.add("attendees", "must have at least one client");
        }
        if !template.authorization_id.is_empty() {
            v.add(
                "template.authorization_id",
                "authorizations are a client's own; name them per attendee",
            );
        }
        if !template.client_id.is_empty() || !template.turn_away_reason_id.is_empty() {
            v.add(
                "template",
                "names the service for every attendee; clients go in attendees",
            );
        }
        v.finish()?;
        let method = "records.service_record.bulk";
        // A retry answers from the first result before checking anything again.
        {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Claim::Replay(previous) =
                idempotency::claim(&mut tx, method, &message.request_id, &message).await?
            {
                return Ok(Response::new(previous));
            }
        }
        let mut results = Vec::with_capacity(message.attendees.len());
        let mut holds = Vec::new();
        let mut rows = Vec::new();
        let mut seen = Vec::new();
        for (index, attendee) in message.attendees.iter().enumerate() {
            let form = pb::ServiceRecord {
                client_id: attendee.client_id.clone(),
                enrollment_id: attendee.enrollment_id.clone(),
                units: if attendee.units.is_empty() {
                    template.units.clone()
                } else {
                    attendee.units.clone()
                },
                authorization_id: attendee.authorization_id.clone(),
                ..template.clone()
            };
            let prefix = format!("attendees[{index}].");
            let mut row_v = Violations::new();
            let draft = parse_draft(&form, &prefix, false, &mut row_v);
            if let Some(client) = draft.client_id {
                if seen.contains(&client) {
                    row_v.add(format!("{prefix}client_id"), "is listed twice");
                }
                seen.push(client);
            }
            let outcome = match self.prepare(&caller, &draft, &prefix, &mut row_v).await {
                Ok(row) => row_v.finish().map(|()| row),
                Err(e) => Err(e),
            };
            // A row whose authorization refuses it is refused alone.
            let outcome = match outcome {
                Ok(Some(row)) => self
                    .authorizations
                    .hold(
                        caller.tenant,
                        &row,
                        row.version,
                        &format!("{prefix}authorization_id"),
                    )
                    .await
                    .map(|hold| {
                        holds.extend(hold);
                        Some(row)
                    }),
                other => other,
            };
            match outcome {
                Ok(Some(row)) => {
                    rows.push((index, row));
                }
                Ok(None) => {}
                Err(Error::Unavailable(reason)) => {
                    self.authorizations.release(caller.tenant, &holds).await;
                    return Err(Error::Unavailable(reason).into());
                }
                Err(error) => results.push(pb::BulkResult {
                    index: index as i32,
                    record: None,
                    error: Some(row_error(&error)),
                }),
            }
        }
        let outcome = async {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            if let Claim::Replay(previous) =
                idempotency::claim(&mut tx, method, &message.request_id, &message).await?
            {
                return Ok((previous, true));
            }
            let to_store: Vec<RecordRow> = rows.iter().map(|(_, r)| r.clone()).collect();
            let stored = Self::store_new(&mut tx, &caller, &to_store).await?;
            let (recorded, refused) = (stored.len(), results.len());
            for ((index, _), record) in rows.iter().zip(stored) {
                results.push(pb::BulkResult {
                    index: *index as i32,
                    record: Some(record),
                    error: None,
                });
            }
            results.sort_by_key(|r| r.index);
            let reply = pb::RecordBulkServiceResponse {
                recorded: recorded as i32,
                refused: refused as i32,
                results,
            };
            idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
            tx.commit().await?;
            Ok((reply, false))
        }
        .await;
        self.settle_holds(&caller, holds, &outcome).await;
        Ok(Response::new(outcome?.0))
    }

    async fn get_service_record(
        &self,
        request: Request<pb::GetServiceRecordRequest>,
    ) -> Result<Response<pb::GetServiceRecordResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = principal.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let hidden = self.hidden_services(tenant, &principal).await?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let row = visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        tx.commit().await?;
        Ok(Response::new(pb::GetServiceRecordResponse {
            record: Some(record_to_proto(&row)),
        }))
    }

    async fn update_service_record(
        &self,
        request: Request<pb::UpdateServiceRecordRequest>,
    ) -> Result<Response<pb::UpdateServiceRecordResponse>, Status> {
        const MUTABLE: &[&str] = &[
            "service_date",
            "grant_id",
            "enrollment_id",
            "provider_id",
            "units",
            "unit_value",
            "reason_id",
            "goal_id",
            "referral_plan_id",
            "barrier_id",
            "comments",
            "people_reached",
            "authorization_id",
        ];
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let input = message
            .record
            .ok_or_else(|| Error::invalid("record", "is required"))?;
        let id = parse_id("record.id", &input.id)?;
        let expected = etag::parse("record.etag", &input.etag)?;
        let mask = validate::update_mask(message.update_mask.as_ref(), MUTABLE)?;
        let hidden = self
            .hidden_services(caller.tenant, &caller.principal)
            .await?;
        let current = {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            visible(store::load(tx.conn(), id, false).await?, &hidden, id)?
        };
        check_version(expected, current.version)?;
        // The request's fields over the stored ones, then every check of a new record.
        let mut v = Violations::new();
        let kind = Kind::from_code(current.kind).unwrap_or(Kind::Delivered);
        let given = parse_draft(
            &pb::ServiceRecord {
                client_id: id_text(current.client_id),
                service_id: current.service_id.to_string(),
                turn_away_reason_id: id_text(current.turn_away_reason_id),
                ..input
            },
            "record.",
            kind == Kind::Indirect,
            &mut v,
        );
        v.retain_masked("record", &mask);
        v.finish()?;
        let mut draft = draft_of(&current);
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
        let next = self.prepare(&caller, &draft, "record.", &mut v).await?;
        v.finish()?;
        let mut next = next.expect("a row when nothing is violated");
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
            return Ok(Response::new(pb::UpdateServiceRecordResponse {
                record: Some(record_to_proto(&current)),
            }));
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
            self.hold_all(&caller, std::slice::from_ref(&held), |_| "record.".into())
                .await?
        } else {
            Vec::new()
        };
        let outcome = async {
            let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
            let locked = store::load(tx.conn(), id, true)
                .await?
                .ok_or_else(|| Error::not_found("service record", id))?;
            check_version(Some(current.version), locked.version)?;
            let stored = store::update(tx.conn(), &next).await?;
            audit::record(
                &mut tx,
                &caller.principal,
                AuditEntry {
                    action: "records.service_record.update",
                    resource_type: "service_record",
                    resource_id: id,
                    changed_fields: &changed,
                },
            )
            .await?;
            publish(&mut tx, "updated", &stored, changed, Some(&current)).await?;
            tx.commit().await?;
            Ok((stored, false))
        }
        .await;
        self.settle_holds(&caller, holds, &outcome).await;
        Ok(Response::new(pb::UpdateServiceRecordResponse {
            record: Some(record_to_proto(&outcome?.0)),
        }))
    }

    async fn delete_service_record(
        &self,
        request: Request<pb::DeleteServiceRecordRequest>,
    ) -> Result<Response<pb::DeleteServiceRecordResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = principal.tenant()?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id)?;
        let expected = etag::parse("etag", &message.etag)?;
        let mut v = Violations::new();
        v.text("reason", &message.reason, 1, 1000);
        v.finish()?;
        let hidden = self.hidden_services(tenant, &principal).await?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut row = visible(store::load(tx.conn(), id, true).await?, &hidden, id)?;
        check_version(expected, row.version)?;
        store::delete(tx.conn(), id, &message.reason).await?;
        // The event carries the version the delete made, so a consumer can tell it from
        // (and put it after) the record's earlier events.
        row.version += 1;
        audit::record(
            &mut tx,
            &principal,
            AuditEntry {
                action: "records.service_record.delete",
                resource_type: "service_record",
                resource_id: id,
                changed_fields: &[],
            },
        )
        .await?;
        publish(&mut tx, "deleted", &row, vec![], None).await?;
        tx.commit().await?;
        Ok(Response::new(pb::DeleteServiceRecordResponse {}))
    }

    async fn list_service_record_history(
        &self,
        request: Request<pb::ListServiceRecordHistoryRequest>,
    ) -> Result<Response<pb::ListServiceRecordHistoryResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = principal.tenant()?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id)?;
        let hidden = self.hidden_services(tenant, &principal).await?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        visible(store::load(tx.conn(), id, false).await?, &hidden, id)?;
        let (entries, next_page_token) = audit::history_page(
            &mut tx,
            &self.platform.page_tokens,
            "service_record",
            id,
            &message.page_token,
            message.page_size,
        )
        .await?;
        tx.commit().await?;
        Ok(Response::new(pb::ListServiceRecordHistoryResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::ServiceRecordHistoryEntry {
                    action: e.action,
                    actor: e.actor,
                    changed_fields: e.changed_fields,
                    time: Some(timestamp(e.occurred_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn list_client_service_records(
        &self,
        request: Request<pb::ListClientServiceRecordsRequest>,
    ) -> Result<Response<pb::ListClientServiceRecordsResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = principal.tenant()?;
        let authorization = authorization_of(&request);
        let message = request.into_inner();
        let mut v = Violations::new();
        let client_id = v.id("client_id", &message.client_id);
        let filter = HistoryFilter {
            start_date: validate::date(&mut v, "start_date", message.start_date.as_ref(), false),
            end_date: validate::date(&mut v, "end_date", message.end_date.as_ref(), false),
            service_id: v.optional_id("service_id", &message.service_id),
            service_group_id: v.optional_id("service_group_id", &message.service_group_id),
            grant_id: v.optional_id("grant_id", &message.grant_id),
            program_id: v.optional_id("program_id", &message.program_id),
            enrollment_id: v.optional_id("enrollment_id", &message.enrollment_id),
            kind: match pb::ServiceRecordKind::try_from(message.kind) {
                Ok(pb::ServiceRecordKind::Unspecified) => None,
                Ok(pb::ServiceRecordKind::Delivered) => Some(Kind::Delivered as i16),
                Ok(pb::ServiceRecordKind::TurnAway) => Some(Kind::TurnAway as i16),
                _ => {
                    v.add(
                        "kind",
                        "must be DELIVERED or TURN_AWAY for a client's history",
                    );
                    None
                }
            },
        };
        v.finish()?;
        let client_id = client_id.expect("validated");
        let limit = validate::page_size(message.page_size)?;
        let mut fingerprint = message.clone();
        fingerprint.page_size = 0;
        fingerprint.page_token = String::new();
        let filter_key = prost::Message::encode_to_vec(&fingerprint);
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&message.page_token, tenant, &filter_key)?;
        // A client this caller cannot see has no history to show.
        if !self
            .lookups
            .client_exists(authorization.as_ref(), tenant, client_id)
            .await?
        {
            return Err(Error::not_found("client", client_id).into());
        }
        let hidden = self.hidden_services(tenant, &principal).await?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut rows =
            store::client_history(tx.conn(), client_id, &filter, &hidden, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter_key, |r| {
            (r.service_date, r.id)
        });
        Ok(Response::new(pb::ListClientServiceRecordsResponse {
            records: rows.iter().map(record_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_service_totals(
        &self,
        request: Request<pb::GetServiceTotalsRequest>,
    ) -> Result<Response<pb::GetServiceTotalsResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = principal.tenant()?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let start = validate::date(&mut v, "start_date", message.start_date.as_ref(), true);
        let end = validate::date(&mut v, "end_date", message.end_date.as_ref(), true);
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            v.add("end_date", "must not be before the start date");
        }
        let mut by = Grouping::default();
        for (index, grouping) in message.group_by.iter().enumerate() {
            match pb::TotalsGrouping::try_from(*grouping) {
                Ok(pb::TotalsGrouping::Grant) => by.grant = true,
                Ok(pb::TotalsGrouping::Program) => by.program = true,
                Ok(pb::TotalsGrouping::Service) => by.service = true,
                Ok(pb::TotalsGrouping::ServiceGroup) => by.service_group = true,
                Ok(pb::TotalsGrouping::Month) => by.month = true,
                _ => v.add(
                    format!("group_by[{index}]"),
                    "must be GRANT, PROGRAM, SERVICE, SERVICE_GROUP or MONTH",
                ),
            }
        }
        v.finish()?;
        let (start, end) = (start.expect("validated"), end.expect("validated"));
        let hidden = self.hidden_services(tenant, &principal).await?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let rows = store::totals(tx.conn(), start, end, by, &hidden).await?;
        tx.commit().await?;
        Ok(Response::new(pb::GetServiceTotalsResponse {
            totals: rows
                .into_iter()
                .map(|r| pb::ServiceTotals {
                    grant_id: id_text(r.grant_id),
                    program_id: id_text(r.program_id),
                    service_id: id_text(r.service_id),
                    service_group_id: id_text(r.service_group_id),
                    month: r.month.map(date),
                    units: r.units.normalize().to_string(),
                    value: r.value.normalize().to_string(),
                    records: r.records,
                    unduplicated_clients: r.unduplicated_clients,
                    people_reached: r.people_reached,
                    turn_aways: r.turn_aways,
                    turned_away_clients: r.turned_away_clients,
                })
                .collect(),
        }))
    }
}

/// The records service's internal methods, for other services of the deployment.
pub struct RecordsInternalApi {
    platform: Arc<Platform>,
}

impl RecordsInternalApi {
    pub fn new(platform: Arc<Platform>) -> Self {
        RecordsInternalApi { platform }
    }
}

#[tonic::async_trait]
impl RecordsInternalService for RecordsInternalApi {
    async fn get_record_draw(
        &self,
        request: Request<pb::GetRecordDrawRequest>,
    ) -> Result<Response<pb::GetRecordDrawResponse>, Status> {
        let tenant = principal(&request)?.tenant()?;
        let id = parse_id("service_record_id", &request.get_ref().service_record_id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let draw = store::draw_of(tx.conn(), id).await?;
        tx.commit().await?;
        Ok(Response::new(match draw {
            Some((version, authorization_id)) => pb::GetRecordDrawResponse {
                stored: true,
                version,
                authorization_id: authorization_id.map(|a| a.to_string()).unwrap_or_default(),
            },
            None => pb::GetRecordDrawResponse::default(),
        }))
    }
}
