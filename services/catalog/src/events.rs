//! What the catalog publishes: one event type per kind of entry and change
//! (`catalog.service_created.v1`, `catalog.grant_retired.v1`, ...), with the entry as it is
//! after the change and the fields that changed as payload; and the events the catalog itself
//! consumes: the service changes after which its cache of services is stale.

use prost::Message;

use caseway_api::events::v1 as events_pb;

use crate::convert::{
    code_value_to_proto, grant_to_proto, program_to_proto, provider_to_proto,
    service_group_to_proto, service_to_proto,
};
use crate::domain::*;

/// The CloudEvents `source` of every catalog event.
pub const SOURCE: &str = "caseway/catalog";

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Retired,
    Deleted,
}

impl Change {
    pub fn verb(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Retired => "retired",
            Change::Deleted => "deleted",
        }
    }
}

/// The event type of a change: `catalog.service_created.v1`.
pub fn event_type(kind: &str, change: Change) -> String {
    format!("catalog.{kind}_{}.v1", change.verb())
}

/// The events after which a cached service is stale (topic patterns match whole words only,
/// so each change is named).
pub fn service_changes() -> Vec<String> {
    [Change::Updated, Change::Retired, Change::Deleted]
        .into_iter()
        .map(|change| event_type(ServiceFields::KIND, change))
        .collect()
}

/// A kind of entry as its events carry it.
pub trait Published: Resource {
    type Payload: Message;

    /// The payload of a change of `record`: the entry after it, and the fields that changed
    /// (empty for a create, a delete).
    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload;
}

impl Published for ServiceGroupFields {
    type Payload = events_pb::ServiceGroupChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::ServiceGroupChanged {
            service_group: Some(service_group_to_proto(record)),
            changed_fields,
        }
    }
}

impl Published for ServiceFields {
    type Payload = events_pb::ServiceChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::ServiceChanged {
            service: Some(service_to_proto(record)),
            changed_fields,
        }
    }
}

impl Published for GrantFields {
    type Payload = events_pb::GrantChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::GrantChanged {
            grant: Some(grant_to_proto(record)),
            changed_fields,
        }
    }
}

impl Published for ProgramFields {
    type Payload = events_pb::ProgramChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::ProgramChanged {
            program: Some(program_to_proto(record)),
            changed_fields,
        }
    }
}

impl Published for ProviderFields {
    type Payload = events_pb::ProviderChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::ProviderChanged {
            provider: Some(provider_to_proto(record)),
            changed_fields,
        }
    }
}

impl Published for CodeValueFields {
    type Payload = events_pb::CodeValueChanged;

    fn payload(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Payload {
        events_pb::CodeValueChanged {
            code_value: Some(code_value_to_proto(record)),
            changed_fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_name_the_kind_and_the_change() {
        assert_eq!(
            event_type("service", Change::Created),
            "catalog.service_created.v1"
        );
        assert_eq!(
            event_type("code_value", Change::Retired),
            "catalog.code_value_retired.v1"
        );
        assert_eq!(
            service_changes(),
            [
                "catalog.service_updated.v1",
                "catalog.service_retired.v1",
                "catalog.service_deleted.v1"
            ]
        );
    }
}
