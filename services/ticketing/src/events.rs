//! What the ticketing service publishes: a ticket submitted, escalated or moved to another
//! status, and a note added (`caseway.events.v1.TicketChanged`, `TicketNoteAdded`). It
//! consumes nothing yet.

use caseway_api::events::v1 as events_pb;

use crate::convert::{note_to_proto, status_to_proto, ticket_to_proto};
use crate::domain::{NoteRow, Status, TicketRow};

/// The CloudEvents `source` of every ticketing event.
pub const SOURCE: &str = "caseway/ticketing";

pub const SUBMITTED: &str = "ticketing.ticket_submitted.v1";
pub const ESCALATED: &str = "ticketing.ticket_escalated.v1";
pub const STATUS_CHANGED: &str = "ticketing.ticket_status_changed.v1";
pub const NOTE_ADDED: &str = "ticketing.ticket_note_added.v1";

/// A ticket's change: the ticket after it, the status before (None for a submission), and
/// who made it.
pub fn ticket_changed(
    ticket: &TicketRow,
    before: Option<Status>,
    changed_by: &str,
    by_support: bool,
) -> events_pb::TicketChanged {
    events_pb::TicketChanged {
        ticket: Some(ticket_to_proto(ticket)),
        before: before.map_or(0, |status| status_to_proto(status) as i32),
        changed_by: changed_by.to_string(),
        by_support,
    }
}

/// A note added, with the ticket's status after it.
pub fn note_added(note: &NoteRow, status: Status) -> events_pb::TicketNoteAdded {
    events_pb::TicketNoteAdded {
        note: Some(note_to_proto(note)),
        status: status_to_proto(status) as i32,
    }
}
