//! What the eligibility service consumes and publishes. It reads the facts its rules need from
//! the events of the clients service (clients, enrollments, assessments and their types,
//! barriers), the records service (deliveries) and the catalog (service codes and security
//! organizations, program codes), each decoded here into a `store::Fact` with the version the
//! event carries; a payload that does not say what it must is refused, never read as empty. It
//! publishes `eligibility.rule_<verb>.v1` and `eligibility.eligibility_changed.v1`.

use std::collections::BTreeMap;
use std::str::FromStr;

use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::clients::v1 as clients;
use caseway_api::events::v1::{
    AssessmentRecorded, AssessmentTypeChanged, BarrierChanged, ClientChanged, EligibilityChanged,
    EnrollmentChanged, ProgramChanged, RuleChanged, ServiceChanged, ServiceRecordChanged,
};
use caseway_api::records::v1::ServiceRecordKind;
use caseway_platform::etag;
use caseway_platform::outbox::Event;
use caseway_platform::{ClientId, DecisionId, ServiceId};

use crate::convert::{outcome_to_proto, rule_to_proto};
use crate::domain::{Answer, AssessmentFact, BarrierFact, Fact, FieldType, Outcome, RuleRow};

/// The `source` of every event the eligibility service publishes.
pub const SOURCE: &str = "caseway/eligibility";

/// The inbox name of the facts consumer, and its queue's.
pub const CONSUMER: &str = "eligibility.facts";

pub const ELIGIBILITY_CHANGED: &str = "eligibility.eligibility_changed.v1";

/// Every event the facts consumer reads.
pub const FACT_EVENTS: &[&str] = &[
    "clients.client_created.v1",
    "clients.client_updated.v1",
    CLIENT_DELETED,
    "clients.enrollment_started.v1",
    "clients.enrollment_exited.v1",
    "clients.assessment_type_created.v1",
    "clients.assessment_type_updated.v1",
    "clients.assessment_recorded.v1",
    "clients.barrier_changed.v1",
    "records.service_recorded.v1",
    "records.service_updated.v1",
    RECORD_DELETED,
    "catalog.service_created.v1",
    "catalog.service_updated.v1",
    "catalog.service_retired.v1",
    SERVICE_DELETED,
    "catalog.program_created.v1",
    "catalog.program_updated.v1",
    "catalog.program_retired.v1",
];

const CLIENT_DELETED: &str = "clients.client_deleted.v1";
const RECORD_DELETED: &str = "records.service_deleted.v1";
const SERVICE_DELETED: &str = "catalog.service_deleted.v1";

/// The type of a rule's event: `eligibility.rule_<verb>.v1`.
pub fn rule_event_type(verb: &str) -> String {
    format!("eligibility.rule_{verb}.v1")
}

pub fn rule_changed(row: &RuleRow, changed_fields: Vec<String>) -> RuleChanged {
    RuleChanged {
        rule: Some(rule_to_proto(row)),
        changed_fields,
    }
}

pub fn rule_event<'a>(
    event_type: &'a str,
    row: &RuleRow,
    payload: &'a RuleChanged,
) -> Event<'a, RuleChanged> {
    Event {
        event_type,
        source: SOURCE,
        subject: row.id.to_string(),
        payload,
    }
}

pub fn eligibility_changed(
    client: ClientId,
    service: ServiceId,
    before: Outcome,
    after: Outcome,
    decision: DecisionId,
) -> EligibilityChanged {
    EligibilityChanged {
        client_id: client.to_string(),
        service_id: service.to_string(),
        before: outcome_to_proto(before) as i32,
        after: outcome_to_proto(after) as i32,
        decision_id: decision.to_string(),
    }
}

pub fn eligibility_event<'a>(
    client: ClientId,
    payload: &'a EligibilityChanged,
) -> Event<'a, EligibilityChanged> {
    Event {
        event_type: ELIGIBILITY_CHANGED,
        source: SOURCE,
        subject: client.to_string(),
        payload,
    }
}

fn id<T: From<Uuid>>(text: &str, what: &str) -> anyhow::Result<T> {
    Uuid::parse_str(text)
        .map(T::from)
        .map_err(|_| anyhow::anyhow!("unreadable {what} {text:?}"))
}

fn version(text: &str, what: &str) -> anyhow::Result<i64> {
    etag::parse("etag", text)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("a {what} event without a version"))
}

fn date(
    d: Option<&caseway_api::google::r#type::Date>,
    what: &str,
) -> anyhow::Result<Option<chrono::NaiveDate>> {
    let Some(d) = d else { return Ok(None) };
    u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .and_then(|(m, day)| chrono::NaiveDate::from_ymd_opt(d.year, m, day))
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("unreadable {what} {d:?}"))
}

fn required_date(
    d: Option<&caseway_api::google::r#type::Date>,
    what: &str,
) -> anyhow::Result<chrono::NaiveDate> {
    date(d, what)?.ok_or_else(|| anyhow::anyhow!("an event without its {what}"))
}

fn decimal(text: &str, what: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str(text).map_err(|_| anyhow::anyhow!("unreadable {what} {text:?}"))
}

fn field_type(code: i32) -> Option<FieldType> {
    Some(match clients::FieldType::try_from(code).ok()? {
        clients::FieldType::Integer => FieldType::Integer,
        clients::FieldType::Decimal => FieldType::Decimal,
        clients::FieldType::Boolean => FieldType::Boolean,
        clients::FieldType::Date => FieldType::Date,
        clients::FieldType::Code => FieldType::Code,
        clients::FieldType::Text => FieldType::Text,
        clients::FieldType::Unspecified => return None,
    })
}

fn answer(value: &clients::assessment_answer::Value) -> anyhow::Result<Answer> {
    use clients::assessment_answer::Value;
    Ok(match value {
        Value::IntegerValue(i) => Answer::Integer(*i),
        Value::DecimalValue(d) => Answer::Decimal(decimal(d, "decimal answer")?),
        Value::BooleanValue(b) => Answer::Boolean(*b),
        Value::DateValue(d) => Answer::Date(required_date(Some(d), "date answer")?),
        Value::CodeValue(c) => Answer::Code(c.clone()),
        Value::TextValue(t) => Answer::Text(t.clone()),
    })
}

fn barrier_status(code: i32) -> anyhow::Result<&'static str> {
    match clients::BarrierStatus::try_from(code) {
        Ok(clients::BarrierStatus::Identified) => Ok("IDENTIFIED"),
        Ok(clients::BarrierStatus::BeingAddressed) => Ok("BEING_ADDRESSED"),
        Ok(clients::BarrierStatus::Resolved) => Ok("RESOLVED"),
        _ => anyhow::bail!("unreadable barrier status {code}"),
    }
}

/// A client's facts from its proto: the birth date, and veteran status when it was answered.
pub fn client_fact(client: &clients::Client, deleted: bool) -> anyhow::Result<Fact> {
    let veteran = match clients::VeteranStatus::try_from(client.veteran_status) {
        Ok(clients::VeteranStatus::Yes) => Some(true),
        Ok(clients::VeteranStatus::No) => Some(false),
        _ => None,
    };
    Ok(Fact::Client {
        id: id(&client.id, "client id")?,
        birth_date: date(client.birth_date.as_ref(), "birth date")?,
        veteran,
        deleted,
        version: version(&client.etag, "client")?,
    })
}

pub fn assessment_fact(a: &clients::Assessment) -> anyhow::Result<Fact> {
    let mut answers = BTreeMap::new();
    for each in &a.answers {
        if let Some(value) = &each.value {
            answers.insert(each.key.clone(), answer(value)?);
        }
    }
    Ok(Fact::Assessment {
        client_id: id(&a.client_id, "client id")?,
        fact: AssessmentFact {
            id: id(&a.id, "assessment id")?,
            type_code: a.assessment_type_code.clone(),
            assessment_date: required_date(a.assessment_date.as_ref(), "assessment date")?,
            answers,
        },
    })
}

pub fn barrier_fact(b: &clients::Barrier) -> anyhow::Result<Fact> {
    Ok(Fact::Barrier {
        client_id: id(&b.client_id, "client id")?,
        fact: BarrierFact {
            id: id(&b.id, "barrier id")?,
            type_code: b.barrier_type_code.clone(),
            status: barrier_status(b.status)?.into(),
            identified_date: required_date(b.identified_date.as_ref(), "identified date")?,
            resolved_date: date(b.resolved_date.as_ref(), "resolved date")?,
        },
        version: version(&b.etag, "barrier")?,
    })
}

pub fn enrollment_fact(e: &clients::Enrollment) -> anyhow::Result<Fact> {
    Ok(Fact::Enrollment {
        client_id: id(&e.client_id, "client id")?,
        id: id(&e.id, "enrollment id")?,
        program_id: id(&e.program_id, "program id")?,
        entry_date: required_date(e.entry_date.as_ref(), "entry date")?,
        exit_date: date(e.exit_date.as_ref(), "exit date")?,
        version: version(&e.etag, "enrollment")?,
    })
}

pub fn assessment_type_fact(t: &clients::AssessmentType) -> anyhow::Result<Fact> {
    let mut fields = BTreeMap::new();
    for field in &t.fields {
        let kind = field_type(field.r#type)
            .ok_or_else(|| anyhow::anyhow!("unreadable field type {}", field.r#type))?;
        fields.insert(field.key.clone(), kind);
    }
    Ok(Fact::AssessmentType {
        id: id(&t.id, "assessment type id")?,
        code: t.code.clone(),
        fields,
        version: version(&t.etag, "assessment type")?,
    })
}

/// A delivered service, or None for a turn-away or an indirect service (no client's delivery).
pub fn delivery_fact(
    r: &caseway_api::records::v1::ServiceRecord,
    deleted: bool,
) -> anyhow::Result<Option<Fact>> {
    if r.kind != ServiceRecordKind::Delivered as i32 || r.client_id.is_empty() {
        return Ok(None);
    }
    Ok(Some(Fact::Delivery {
        client_id: id(&r.client_id, "client id")?,
        id: id(&r.id, "service record id")?,
        service_id: id(&r.service_id, "service id")?,
        service_date: required_date(r.service_date.as_ref(), "service date")?,
        units: decimal(&r.units, "units")?,
        value: if r.value.is_empty() {
            Decimal::ZERO
        } else {
            decimal(&r.value, "value")?
        },
        deleted,
        version: version(&r.etag, "service record")?,
    }))
}

pub fn service_fact(s: &caseway_api::catalog::v1::Service, deleted: bool) -> anyhow::Result<Fact> {
    Ok(Fact::Service {
        id: id(&s.id, "service id")?,
        code: s.code.clone(),
        organization_ids: s
            .organization_ids
            .iter()
            .map(|o| id(o, "organization id"))
            .collect::<anyhow::Result<_>>()?,
        deleted,
        version: version(&s.etag, "service")?,
    })
}

pub fn program_fact(p: &caseway_api::catalog::v1::Program) -> anyhow::Result<Fact> {
    Ok(Fact::Program {
        id: id(&p.id, "program id")?,
        code: p.code.clone(),
        version: version(&p.etag, "program")?,
    })
}

/// The fact an event of `event_type` carries; None for an event with no fact to keep.
pub fn fact(event_type: &str, payload: &[u8]) -> anyhow::Result<Option<Fact>> {
    let missing = || anyhow::anyhow!("a {event_type} event without its resource");
    let (domain, _) = event_type.split_once('.').unwrap_or((event_type, ""));
    Ok(match (domain, event_type) {
        ("clients", t) if t.starts_with("clients.client_") => {
            let change = ClientChanged::decode(payload)?;
            let client = change.client.ok_or_else(missing)?;
            Some(client_fact(&client, t == CLIENT_DELETED)?)
        }
        ("clients", t) if t.starts_with("clients.enrollment_") => {
            let change = EnrollmentChanged::decode(payload)?;
            Some(enrollment_fact(&change.enrollment.ok_or_else(missing)?)?)
        }
        ("clients", t) if t.starts_with("clients.assessment_type_") => {
            let change = AssessmentTypeChanged::decode(payload)?;
            Some(assessment_type_fact(
                &change.assessment_type.ok_or_else(missing)?,
            )?)
        }
        ("clients", "clients.assessment_recorded.v1") => {
            let change = AssessmentRecorded::decode(payload)?;
            Some(assessment_fact(&change.assessment.ok_or_else(missing)?)?)
        }
        ("clients", "clients.barrier_changed.v1") => {
            let change = BarrierChanged::decode(payload)?;
            Some(barrier_fact(&change.barrier.ok_or_else(missing)?)?)
        }
        ("records", t) => {
            let change = ServiceRecordChanged::decode(payload)?;
            delivery_fact(&change.record.ok_or_else(missing)?, t == RECORD_DELETED)?
        }
        ("catalog", t) if t.starts_with("catalog.service_") => {
            let change = ServiceChanged::decode(payload)?;
            Some(service_fact(
                &change.service.ok_or_else(missing)?,
                t == SERVICE_DELETED,
            )?)
        }
        ("catalog", t) if t.starts_with("catalog.program_") => {
            let change = ProgramChanged::decode(payload)?;
            Some(program_fact(&change.program.ok_or_else(missing)?)?)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_event_is_read_plainly_or_refused() {
        let client = clients::Client {
            id: Uuid::now_v7().to_string(),
            birth_date: Some(caseway_api::google::r#type::Date {
                year: 1990,
                month: 6,
                day: 15,
            }),
            veteran_status: clients::VeteranStatus::Yes as i32,
            etag: etag::format(3),
            ..Default::default()
        };
        let payload = ClientChanged {
            client: Some(client.clone()),
            changed_fields: vec![],
        }
        .encode_to_vec();
        match fact("clients.client_updated.v1", &payload).unwrap() {
            Some(Fact::Client {
                veteran, version, ..
            }) => assert_eq!((veteran, version), (Some(true), 3)),
            other => panic!("{other:?}"),
        }
        let unversioned = ClientChanged {
            client: Some(clients::Client {
                etag: String::new(),
                ..client
            }),
            changed_fields: vec![],
        }
        .encode_to_vec();
        assert!(fact("clients.client_updated.v1", &unversioned).is_err());
        assert!(fact("clients.barrier_changed.v1", &[0xff, 0x01]).is_err());
        assert!(fact("catalog.grant_created.v1", &[]).unwrap().is_none());
    }
}
