//! What the authorizations service publishes (`authorizations.authorization_<verb>.v1` with the
//! authorization as it now stands) and what it consumes: the records service's events, which
//! confirm, move and give back the units that service records draw, decoded here into what a
//! record draws. A payload that does not say it plainly is refused, never read as zero.

use std::str::FromStr;

use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::events::v1::{AuthorizationChanged, ServiceRecordChanged};
use caseway_api::records::v1::ServiceRecordKind;
use caseway_platform::RecordId;
use caseway_platform::etag;
use caseway_platform::outbox::Event;

use crate::convert::authorization_to_proto;
use crate::domain::{AuthorizationRow, RecordDraw};

/// The `source` of every event the authorizations service publishes.
pub const SOURCE: &str = "caseway/authorizations";

/// The name of the drawdown consumer (its queue is named after it).
pub const CONSUMER: &str = "authorizations.drawdown";

pub const RECORD_DELETED: &str = "records.service_deleted.v1";

pub const RECORD_EVENTS: &[&str] = &[
    "records.service_recorded.v1",
    "records.service_updated.v1",
    RECORD_DELETED,
];

/// The type of the event a change publishes: `authorizations.authorization_<verb>.v1`.
pub fn event_type(verb: &str) -> String {
    format!("authorizations.authorization_{verb}.v1")
}

pub fn changed(row: &AuthorizationRow, changed_fields: Vec<String>) -> AuthorizationChanged {
    AuthorizationChanged {
        authorization: Some(authorization_to_proto(row, false)),
        changed_fields,
    }
}

pub fn event<'a>(
    event_type: &'a str,
    row: &AuthorizationRow,
    payload: &'a AuthorizationChanged,
) -> Event<'a, AuthorizationChanged> {
    Event {
        event_type,
        source: SOURCE,
        subject: row.id.to_string(),
        payload,
    }
}

fn optional_id<T: From<Uuid>>(text: &str, what: &str) -> anyhow::Result<Option<T>> {
    if text.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(text)
        .map(|id| Some(id.into()))
        .map_err(|_| anyhow::anyhow!("unreadable {what} {text:?}"))
}

fn decimal(text: &str, what: &str) -> anyhow::Result<Decimal> {
    if text.is_empty() {
        return Ok(Decimal::ZERO);
    }
    Decimal::from_str(text).map_err(|_| anyhow::anyhow!("unreadable {what} {text:?}"))
}

/// What a records event says the record draws, or None when it names no authorization now or
/// before (nothing to do).
pub fn record_draw(event_type: &str, payload: &[u8]) -> anyhow::Result<Option<RecordDraw>> {
    let change = ServiceRecordChanged::decode(payload)?;
    let record = change.record.unwrap_or_default();
    let current = optional_id(&record.authorization_id, "authorization id")?;
    let previous = optional_id(
        &change.previous_authorization_id,
        "previous authorization id",
    )?;
    if current.is_none() && previous.is_none() {
        return Ok(None);
    }
    let record_id = RecordId(Uuid::parse_str(&record.id)?);
    let version = etag::parse("etag", &record.etag)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("a service record event without a version"))?;
    let delivered =
        event_type != RECORD_DELETED && record.kind == ServiceRecordKind::Delivered as i32;
    let service_date = match record.service_date.as_ref() {
        None => None,
        Some(d) => Some(
            u32::try_from(d.month)
                .ok()
                .zip(u32::try_from(d.day).ok())
                .and_then(|(m, day)| chrono::NaiveDate::from_ymd_opt(d.year, m, day))
                .ok_or_else(|| anyhow::anyhow!("unreadable service date {d:?}"))?,
        ),
    };
    let (units, value) = if delivered {
        (
            decimal(&record.units, "units")?,
            decimal(&record.value, "value")?,
        )
    } else {
        (Decimal::ZERO, Decimal::ZERO)
    };
    Ok(Some(RecordDraw {
        record_id,
        version,
        current,
        previous,
        units,
        value,
        service_date,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use caseway_api::records::v1::ServiceRecord;

    fn payload(units: &str, authorization: &str) -> Vec<u8> {
        ServiceRecordChanged {
            record: Some(ServiceRecord {
                id: Uuid::now_v7().to_string(),
                kind: ServiceRecordKind::Delivered as i32,
                units: units.into(),
                value: "10".into(),
                authorization_id: authorization.into(),
                etag: etag::format(1),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_records_event_is_read_plainly_or_refused() {
        let authorization = Uuid::now_v7().to_string();
        let draw = record_draw(RECORD_EVENTS[0], &payload("2.5", &authorization))
            .unwrap()
            .unwrap();
        assert_eq!(draw.units, Decimal::new(25, 1));
        assert!(record_draw(RECORD_EVENTS[0], &payload("two", &authorization)).is_err());
        assert!(record_draw(RECORD_EVENTS[0], &payload("2", "not-an-id")).is_err());
        assert!(
            record_draw(RECORD_EVENTS[0], &payload("2", ""))
                .unwrap()
                .is_none()
        );
        let deleted = record_draw(RECORD_DELETED, &payload("2", &authorization))
            .unwrap()
            .unwrap();
        assert_eq!(deleted.units, Decimal::ZERO);
    }
}
