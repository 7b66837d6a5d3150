//! The events room of the clients service: what it publishes, each event built as the outbox
//! takes it (its type, subject and payload; the client in an event is masked as in a reply);
//! and the events after which its own cache of clients is stale (`client_changes`).

use prost::Message;

use caseway_api::events::v1::{ClientChanged, EnrollmentChanged};
use caseway_platform::outbox::Event;

use crate::convert::{client_to_proto, enrollment_to_proto};
use crate::domain::{Client, Enrollment};

/// The CloudEvents source of the clients service's events.
pub(crate) const SOURCE: &str = "caseway/clients";

/// An event to publish, held until the outbox takes it (`outbox::enqueue(tx, e.event())`).
pub struct Outgoing<M> {
    pub event_type: &'static str,
    pub subject: String,
    pub payload: M,
}

impl<M: Message> Outgoing<M> {
    /// The event as the outbox takes it.
    pub fn event(&self) -> Event<'_, M> {
        Event {
            event_type: self.event_type,
            source: SOURCE,
            subject: self.subject.clone(),
            payload: &self.payload,
        }
    }
}

fn client_event(
    event_type: &'static str,
    client: &Client,
    changed_fields: Vec<String>,
) -> Outgoing<ClientChanged> {
    Outgoing {
        event_type,
        subject: client.id.to_string(),
        payload: ClientChanged {
            client: Some(client_to_proto(client, None)),
            changed_fields,
        },
    }
}

/// `clients.client_created.v1`.
pub fn client_created(client: &Client) -> Outgoing<ClientChanged> {
    client_event("clients.client_created.v1", client, vec![])
}

/// `clients.client_updated.v1`, naming the fields that changed.
pub fn client_updated(client: &Client, changed_fields: Vec<String>) -> Outgoing<ClientChanged> {
    client_event("clients.client_updated.v1", client, changed_fields)
}

/// `clients.client_deleted.v1`, with the client as it was before the deletion.
pub fn client_deleted(client: &Client) -> Outgoing<ClientChanged> {
    client_event("clients.client_deleted.v1", client, vec![])
}

/// The events after which a cached client is stale (a create needs none: a client that was
/// not found is not cached).
pub fn client_changes() -> Vec<String> {
    ["clients.client_updated.v1", "clients.client_deleted.v1"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn enrollment_event(
    event_type: &'static str,
    enrollment: &Enrollment,
) -> Outgoing<EnrollmentChanged> {
    Outgoing {
        event_type,
        subject: enrollment.id.to_string(),
        payload: EnrollmentChanged {
            enrollment: Some(enrollment_to_proto(enrollment)),
        },
    }
}

/// `clients.enrollment_started.v1`.
pub fn enrollment_started(enrollment: &Enrollment) -> Outgoing<EnrollmentChanged> {
    enrollment_event("clients.enrollment_started.v1", enrollment)
}

/// `clients.enrollment_exited.v1`.
pub fn enrollment_exited(enrollment: &Enrollment) -> Outgoing<EnrollmentChanged> {
    enrollment_event("clients.enrollment_exited.v1", enrollment)
}
