//! What the ticketing service publishes: a ticket submitted, escalated or moved to another
//! status, a note added and a service-level clock run out (`caseway.events.v1.TicketChanged`,
//! `TicketNoteAdded`, `TicketSlaBreached`); and what it reads of its own events for the
//! organizations' watchers.

use prost::Message;

use caseway_api::events::v1 as events_pb;
use caseway_api::ticketing::v1 as pb;

use crate::convert::{clock_to_proto, note_to_proto, status_to_proto, ticket_to_proto};
use crate::domain::{NoteRow, Status, TicketRow};
use crate::sla::Clock;

/// The CloudEvents `source` of every ticketing event.
pub const SOURCE: &str = "caseway/ticketing";

pub const SUBMITTED: &str = "ticketing.ticket_submitted.v1";
pub const ESCALATED: &str = "ticketing.ticket_escalated.v1";
pub const STATUS_CHANGED: &str = "ticketing.ticket_status_changed.v1";
pub const NOTE_ADDED: &str = "ticketing.ticket_note_added.v1";
pub const SLA_BREACHED: &str = "ticketing.sla_breached.v1";

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

/// A clock of a ticket ran out.
pub fn sla_breached(ticket: &TicketRow, clock: Clock) -> events_pb::TicketSlaBreached {
    events_pb::TicketSlaBreached {
        ticket: Some(ticket_to_proto(ticket)),
        clock: clock_to_proto(clock) as i32,
    }
}

/// What an organization's watchers see of one of its ticketing events: None for an internal
/// note (support's alone) and for an event of another kind; an error for one that does not
/// decode.
pub fn watched(
    event_type: &str,
    payload: &[u8],
) -> anyhow::Result<Option<pb::WatchTicketsResponse>> {
    use pb::watch_tickets_response::Change;
    Ok(match event_type {
        SUBMITTED | ESCALATED | STATUS_CHANGED => {
            let changed = events_pb::TicketChanged::decode(payload)?;
            Some(pb::WatchTicketsResponse {
                change: changed.ticket.map(Change::Ticket),
                before: changed.before,
                changed_by: changed.changed_by,
                by_support: changed.by_support,
            })
        }
        SLA_BREACHED => {
            let breached = events_pb::TicketSlaBreached::decode(payload)?;
            Some(pb::WatchTicketsResponse {
                change: breached.ticket.map(Change::Ticket),
                before: 0,
                changed_by: String::new(),
                by_support: false,
            })
        }
        NOTE_ADDED => {
            let added = events_pb::TicketNoteAdded::decode(payload)?;
            match added.note {
                Some(note) if note.visibility == pb::NoteVisibility::Public as i32 => {
                    Some(pb::WatchTicketsResponse {
                        before: 0,
                        changed_by: note.author.clone(),
                        by_support: note.by_support,
                        change: Some(Change::Note(note)),
                    })
                }
                _ => None,
            }
        }
        _ => None,
    })
}
