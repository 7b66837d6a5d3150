//! Authorizations on the wire: a plan parsed from an `Authorization` with its violations
//! named as the caller wrote them, the requests of the other RPCs parsed into checked inputs,
//! and stored authorizations, utilization and history encoded as replies. No I/O here.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use caseway_api::authorizations::v1 as pb;
use caseway_platform::audit::AuditRecord;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::validate::{self, Violations};
use caseway_platform::{AuthorizationId, ClientId, ServiceId};

use crate::domain::*;
use crate::recurrence::Rule;

pub fn parse_plan(p: &pb::Authorization, v: &mut Violations) -> Plan {
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

pub fn text(d: Decimal) -> String {
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
        unit_of_measure: r.unit_of_measure.to_proto() as i32,
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

/// A new authorization: who it is for, for which service, and its plan.
pub struct Creation {
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub plan: Plan,
}

pub fn create_request(message: &pb::CreateAuthorizationRequest) -> Result<Creation> {
    let input = message
        .authorization
        .as_ref()
        .ok_or_else(|| Error::invalid("authorization", "is required"))?;
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let client_id = v.id("authorization.client_id", &input.client_id);
    let service_id = v.id("authorization.service_id", &input.service_id);
    let plan = parse_plan(input, &mut v);
    v.finish_with((|| {
        Some(Creation {
            client_id: client_id?,
            service_id: service_id?,
            plan,
        })
    })())
}

/// The mutable fields of a plan an update sets (not at their default): what an empty update
/// mask changes.
pub fn fields_set(a: &pb::Authorization) -> Vec<&'static str> {
    [
        ("grant_id", !a.grant_id.is_empty()),
        ("begin_date", a.begin_date.is_some()),
        ("end_date", a.end_date.is_some()),
        ("units_per_occurrence", !a.units_per_occurrence.is_empty()),
        ("unit_value", !a.unit_value.is_empty()),
        ("recurrence", !a.recurrence.is_empty()),
        ("reason_id", !a.reason_id.is_empty()),
        ("goal_id", !a.goal_id.is_empty()),
        ("reason", !a.reason.is_empty()),
        ("goals", !a.goals.is_empty()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect()
}

/// An update of a plan: the authorization, the etag it was read at, the fields it changes
/// and their values, and what is wrong with them (violations of fields outside the mask
/// dropped), told after the authorization is known to be editable.
pub struct PlanUpdate {
    pub id: AuthorizationId,
    pub expected_version: Option<i64>,
    pub mask: Vec<&'static str>,
    pub given: Plan,
    pub violations: Violations,
}

pub fn update_request(message: pb::UpdateAuthorizationRequest) -> Result<PlanUpdate> {
    let input = message
        .authorization
        .ok_or_else(|| Error::invalid("authorization", "is required"))?;
    let id = validate::parse_id("authorization.id", &input.id)?;
    let expected_version = etag::parse("authorization.etag", &input.etag)?;
    let mask = validate::update_mask(message.update_mask.as_ref(), MUTABLE, &fields_set(&input))?;
    let mut violations = Violations::new();
    let given = parse_plan(&input, &mut violations);
    violations.retain_masked("authorization", &mask);
    Ok(PlanUpdate {
        id,
        expected_version,
        mask,
        given,
        violations,
    })
}

/// A transition's request: the authorization, its etag, and the reason where one is asked.
pub struct Decision {
    pub id: AuthorizationId,
    pub expected_version: Option<i64>,
    pub reason: Option<String>,
}

pub fn decision(
    id: &str,
    etag_text: &str,
    reason: Option<&str>,
    request_id: &str,
) -> Result<Decision> {
    let id = validate::parse_id("id", id)?;
    let expected_version = etag::parse("etag", etag_text)?;
    let mut v = Violations::new();
    v.request_id(request_id);
    if let Some(reason) = reason {
        v.text("reason", reason, 1, 2000);
    }
    v.finish()?;
    Ok(Decision {
        id,
        expected_version,
        reason: reason.map(str::to_string),
    })
}

/// A client's list query: the client, the filter, and the bytes a page token is bound to
/// (the request without its page size and token).
pub struct ListQuery {
    pub client_id: ClientId,
    pub filter: ListFilter,
    pub filter_key: Vec<u8>,
}

pub fn list_query(message: &pb::ListClientAuthorizationsRequest) -> Result<ListQuery> {
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
    let mut bound = message.clone();
    bound.page_size = 0;
    bound.page_token = String::new();
    let filter_key = prost::Message::encode_to_vec(&bound);
    v.finish_with((|| {
        Some(ListQuery {
            client_id: client_id?,
            filter: ListFilter {
                statuses,
                service_id,
                active_on,
            },
            filter_key,
        })
    })())
}

/// What an authorization has delivered and has left, per planned occurrence too.
pub fn utilization(
    row: &AuthorizationRow,
    deliveries: &[(NaiveDate, Decimal)],
    records: i64,
) -> pb::Utilization {
    let remaining = (row.authorized_units - row.committed_units).max(Decimal::ZERO);
    let occurrences = per_occurrence(&row.occurrences, row.units_per_occurrence, deliveries)
        .into_iter()
        .map(|u| pb::OccurrenceUtilization {
            date: Some(date(u.date)),
            planned_units: text(u.planned),
            delivered_units: text(u.delivered),
            variance_units: text(u.delivered - u.planned),
        })
        .collect();
    pb::Utilization {
        authorization_id: row.id.to_string(),
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
    }
}

pub fn history_entry(entry: AuditRecord) -> pb::AuthorizationHistoryEntry {
    pb::AuthorizationHistoryEntry {
        action: entry.action,
        actor: entry.actor,
        changed_fields: entry.changed_fields,
        time: Some(timestamp(entry.occurred_at)),
    }
}

pub fn parse_draw(
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

pub fn reservation(m: &pb::ReserveUnitsRequest) -> Result<Reservation> {
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
    v.finish_with((|| {
        Some(Reservation {
            draw: draw?,
            client_id: client_id?,
            service_id: service_id?,
            service_date: service_date?,
            units: units?,
        })
    })())
}

pub fn release_request(m: &pb::ReleaseUnitsRequest) -> Result<DrawRequest> {
    let mut v = Violations::new();
    let draw = parse_draw(
        &m.authorization_id,
        &m.service_record_id,
        m.service_record_version,
        &m.hold_id,
        &mut v,
    );
    v.finish_with(draw)
}
