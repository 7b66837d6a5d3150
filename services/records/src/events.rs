//! What the records service publishes: `records.service_recorded.v1` for each new record, and
//! `records.service_updated.v1` / `records.service_deleted.v1` for a change, each carrying the
//! record as it now stands (and, for a change, the units and authorization it drew before, so
//! the authorizations service can move a drawdown). It consumes nothing itself; the caches of
//! what it looks up follow the catalog's and the clients service's events in `caseway-peers`.

use caseway_api::events::v1::ServiceRecordChanged;
use caseway_platform::outbox::Event;

use crate::convert::{decimal_text, id_text, record_to_proto};
use crate::domain::RecordRow;

/// The `source` of every event the records service publishes.
pub const SOURCE: &str = "caseway/records";

pub const RECORDED: &str = "records.service_recorded.v1";
pub const UPDATED: &str = "records.service_updated.v1";
pub const DELETED: &str = "records.service_deleted.v1";

/// The payload of a record's event: the record, the fields that changed, and what it drew
/// before the change.
pub fn changed(
    row: &RecordRow,
    changed_fields: Vec<String>,
    previous: Option<&RecordRow>,
) -> ServiceRecordChanged {
    ServiceRecordChanged {
        record: Some(record_to_proto(row)),
        changed_fields,
        previous_units: previous.map(|p| decimal_text(p.units)).unwrap_or_default(),
        previous_authorization_id: previous
            .map(|p| id_text(p.authorization_id))
            .unwrap_or_default(),
    }
}

/// The event of `event_type` for `row` with `payload`.
pub fn event<'a>(
    event_type: &'a str,
    row: &RecordRow,
    payload: &'a ServiceRecordChanged,
) -> Event<'a, ServiceRecordChanged> {
    Event {
        event_type,
        source: SOURCE,
        subject: row.id.to_string(),
        payload,
    }
}
