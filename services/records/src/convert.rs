//! Service records on the wire: a form (`ServiceRecord`, an indirect service, a Quick Services
//! line, a bulk attendee) parsed into a [`Draft`] with its violations named as the caller
//! wrote them, and stored records, history, totals and draws encoded as replies. No I/O here.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use caseway_api::records::v1 as pb;
use caseway_platform::audit::AuditRecord;
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::validate::{self, Violations};
use caseway_platform::{AuthorizationId, ClientId, RecordId};

use crate::domain::{Draft, Fields, Grouping, HistoryFilter, Kind, MUTABLE, RecordRow, TotalsRow};

/// A decimal that may be empty; negative and malformed numbers are named.
fn optional_decimal(v: &mut Violations, field: &str, text: &str) -> Option<Decimal> {
    if text.is_empty() {
        None
    } else {
        v.decimal(field, text, 4)
    }
}

pub fn parse_draft(
    p: &pb::ServiceRecord,
    prefix: &str,
    indirect: bool,
    v: &mut Violations,
) -> Draft {
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

pub fn id_text(id: Option<impl std::fmt::Display>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

pub fn decimal_text(d: Option<Decimal>) -> String {
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

/// Why one bulk row was refused, as the status the call would have failed with had the row
/// been recorded alone (code, message, and details: ErrorInfo, BadRequest, PreconditionFailure).
pub fn row_error(error: Error) -> tonic_types::Status {
    let status = tonic::Status::from(error);
    match <tonic_types::Status as prost::Message>::decode(status.details()) {
        Ok(decoded) if decoded.code == status.code() as i32 => decoded,
        _ => tonic_types::Status {
            code: status.code() as i32,
            message: status.message().to_string(),
            details: Vec::new(),
        },
    }
}

/// An indirect service as a form: no client, the people reached.
pub fn indirect_form(message: &pb::RecordIndirectServiceRequest) -> pb::ServiceRecord {
    pb::ServiceRecord {
        service_id: message.service_id.clone(),
        service_date: message.service_date,
        people_reached: message.people_reached,
        grant_id: message.grant_id.clone(),
        provider_id: message.provider_id.clone(),
        comments: message.comments.clone(),
        ..Default::default()
    }
}

/// The fields every line of a Quick Services form shares.
pub const QUICK_SHARED: [&str; 5] = [
    "client_id",
    "service_date",
    "grant_id",
    "enrollment_id",
    "provider_id",
];

/// The lines of a Quick Services form as drafts, each with the violations of its own fields
/// (named `lines[i].`; the shared fields are renamed by the use case, once).
pub fn quick_lines(message: &pb::RecordQuickServicesRequest) -> Vec<(Draft, Violations)> {
    message
        .lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
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
            let mut v = Violations::new();
            let draft = parse_draft(&form, &format!("lines[{index}]."), false, &mut v);
            (draft, v)
        })
        .collect()
}

/// The checks of a bulk form that need nothing looked up.
pub fn check_bulk(message: &pb::RecordBulkServiceRequest) -> Result<pb::ServiceRecord> {
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
    Ok(template)
}

/// Each attendee of a bulk form as a draft of the template, with its own violations (named
/// `attendees[i].`), a client listed twice among them.
pub fn bulk_attendees(
    message: &pb::RecordBulkServiceRequest,
    template: &pb::ServiceRecord,
) -> Vec<(String, Draft, Violations)> {
    let mut seen = Vec::new();
    message
        .attendees
        .iter()
        .enumerate()
        .map(|(index, attendee)| {
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
            let mut v = Violations::new();
            let draft = parse_draft(&form, &prefix, false, &mut v);
            if let Some(client) = draft.client_id {
                if seen.contains(&client) {
                    v.add(format!("{prefix}client_id"), "is listed twice");
                }
                seen.push(client);
            }
            (prefix, draft, v)
        })
        .collect()
}

/// An update: the record's id, the etag it was read at, and the fields it changes over the
/// stored record.
pub struct Update {
    pub id: RecordId,
    pub expected_version: Option<i64>,
    pub record: pb::ServiceRecord,
    pub mask: Vec<&'static str>,
}

/// The mutable fields a record in an update sets (not at their default): what an empty
/// update mask changes.
pub fn fields_set(record: &pb::ServiceRecord) -> Vec<&'static str> {
    let mut set = Vec::new();
    for (field, present) in [
        ("service_date", record.service_date.is_some()),
        ("grant_id", !record.grant_id.is_empty()),
        ("enrollment_id", !record.enrollment_id.is_empty()),
        ("provider_id", !record.provider_id.is_empty()),
        ("units", !record.units.is_empty()),
        ("unit_value", !record.unit_value.is_empty()),
        ("reason_id", !record.reason_id.is_empty()),
        ("goal_id", !record.goal_id.is_empty()),
        ("referral_plan_id", !record.referral_plan_id.is_empty()),
        ("barrier_id", !record.barrier_id.is_empty()),
        ("comments", !record.comments.is_empty()),
        ("people_reached", record.people_reached != 0),
        ("authorization_id", !record.authorization_id.is_empty()),
    ] {
        if present {
            set.push(field);
        }
    }
    set
}

pub fn update_request(message: pb::UpdateServiceRecordRequest) -> Result<Update> {
    let record = message
        .record
        .ok_or_else(|| Error::invalid("record", "is required"))?;
    let id = validate::parse_id("record.id", &record.id)?;
    let expected_version = etag::parse("record.etag", &record.etag)?;
    let mask = validate::update_mask(message.update_mask.as_ref(), MUTABLE, &fields_set(&record))?;
    Ok(Update {
        id,
        expected_version,
        record,
        mask,
    })
}

/// The fields the update gives, parsed as a draft over the stored record's kind, client and
/// service (which an update cannot change); violations of fields outside the mask are dropped.
pub fn update_draft(update: &Update, current: &RecordRow, kind: Kind) -> Result<Draft> {
    let mut v = Violations::new();
    let given = parse_draft(
        &pb::ServiceRecord {
            client_id: id_text(current.client_id),
            service_id: current.service_id.to_string(),
            turn_away_reason_id: id_text(current.turn_away_reason_id),
            ..update.record.clone()
        },
        "record.",
        kind == Kind::Indirect,
        &mut v,
    );
    v.retain_masked("record", &update.mask);
    v.finish()?;
    Ok(given)
}

/// A deletion: the id, the etag it was read at and the reason given.
pub struct Deletion {
    pub id: RecordId,
    pub expected_version: Option<i64>,
    pub reason: String,
}

pub fn delete_request(message: pb::DeleteServiceRecordRequest) -> Result<Deletion> {
    let id = validate::parse_id("id", &message.id)?;
    let expected_version = etag::parse("etag", &message.etag)?;
    let mut v = Violations::new();
    v.text("reason", &message.reason, 1, 1000);
    v.finish()?;
    Ok(Deletion {
        id,
        expected_version,
        reason: message.reason,
    })
}

pub fn history_entry(entry: AuditRecord) -> pb::ServiceRecordHistoryEntry {
    pb::ServiceRecordHistoryEntry {
        action: entry.action,
        actor: entry.actor,
        changed_fields: entry.changed_fields,
        time: Some(timestamp(entry.occurred_at)),
    }
}

/// A client's history query: the client, the filter, and the bytes a page token is bound to
/// (the request without its page size and token).
pub struct HistoryQuery {
    pub client_id: ClientId,
    pub filter: HistoryFilter,
    pub filter_key: Vec<u8>,
}

pub fn history_query(message: &pb::ListClientServiceRecordsRequest) -> Result<HistoryQuery> {
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
    let mut bound = message.clone();
    bound.page_size = 0;
    bound.page_token = String::new();
    let filter_key = prost::Message::encode_to_vec(&bound);
    v.finish_with((|| {
        Some(HistoryQuery {
            client_id: client_id?,
            filter,
            filter_key,
        })
    })())
}

/// A totals query: the inclusive range and what the sums are grouped by.
pub fn totals_query(
    message: &pb::GetServiceTotalsRequest,
) -> Result<(NaiveDate, NaiveDate, Grouping)> {
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
    v.finish_with(start.zip(end).map(|(start, end)| (start, end, by)))
}

pub fn totals_to_proto(r: TotalsRow) -> pb::ServiceTotals {
    pb::ServiceTotals {
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
    }
}

/// What a record draws: its latest version and authorization, or nothing when not stored.
pub fn draw_reply(draw: Option<(i64, Option<AuthorizationId>)>) -> pb::GetRecordDrawResponse {
    match draw {
        Some((version, authorization_id)) => pb::GetRecordDrawResponse {
            stored: true,
            version,
            authorization_id: id_text(authorization_id),
        },
        None => pb::GetRecordDrawResponse::default(),
    }
}
