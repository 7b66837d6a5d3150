//! Proto <-> domain for tickets and notes: requests read into checked domain values (or the
//! violations, each naming its field), tickets and notes written back as replies.

use caseway_api::ticketing::v1 as pb;
use caseway_platform::convert::timestamp;
use caseway_platform::etag;
use caseway_platform::validate::Violations;

use crate::domain::*;
use crate::sla::{Clock, Clocks};

/// What a submission carries, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub context: Context,
    pub contact: Contact,
}

/// The ticket of a SubmitTicket request, checked: a kind, a title and description, a
/// context of the right shapes, and a contact reachable the way it prefers.
pub fn submission(message: &pb::SubmitTicketRequest) -> caseway_platform::Result<Submission> {
    let mut v = Violations::new();
    v.request_id(&message.request_id);
    let Some(ticket) = &message.ticket else {
        v.add("ticket", "is required");
        return Err(caseway_platform::Error::InvalidArgument(v.into_inner()));
    };
    let kind = match pb::TicketKind::try_from(ticket.kind) {
        Ok(pb::TicketKind::Issue) => Some(Kind::Issue),
        Ok(pb::TicketKind::Question) => Some(Kind::Question),
        Ok(pb::TicketKind::Suggestion) => Some(Kind::Suggestion),
        _ => {
            v.add("ticket.kind", "is ISSUE, QUESTION or SUGGESTION");
            None
        }
    };
    v.text("ticket.title", &ticket.title, 1, 200);
    v.text("ticket.description", &ticket.description, 1, 10_000);
    let context = ticket.context.clone().unwrap_or_default();
    if !context.trace_id.is_empty() && !trace_id_like(&context.trace_id) {
        v.add("ticket.context.trace_id", "is 32 hexadecimal digits");
    }
    let contact = match &ticket.contact {
        Some(contact) => Some(self::contact(contact, &mut v)),
        None => {
            v.add("ticket.contact", "is required");
            None
        }
    };
    v.finish()?;
    match (kind, contact) {
        (Some(kind), Some(contact)) => Ok(Submission {
            kind,
            title: ticket.title.trim().to_string(),
            description: ticket.description.clone(),
            context: Context {
                area: context.area,
                rpc: context.rpc,
                request_id: context.request_id,
                trace_id: context.trace_id.to_ascii_lowercase(),
                client_application: context.client_application,
                client_version: context.client_version,
            },
            contact,
        }),
        _ => Err(caseway_platform::Error::invalid("ticket", "is incomplete")),
    }
}

fn contact(contact: &pb::TicketContact, v: &mut Violations) -> Contact {
    v.text("ticket.contact.name", &contact.name, 1, 200);
    let preferred = match pb::ContactMethod::try_from(contact.preferred) {
        Ok(pb::ContactMethod::Phone) => ContactMethod::Phone,
        Ok(pb::ContactMethod::Unspecified | pb::ContactMethod::Email) => ContactMethod::Email,
        Err(_) => {
            v.add("ticket.contact.preferred", "is EMAIL or PHONE");
            ContactMethod::Email
        }
    };
    let email = contact.email.trim();
    if !email.is_empty() && !email_like(email) {
        v.add("ticket.contact.email", "is not an email address");
    } else if email.is_empty() && preferred == ContactMethod::Email {
        v.add("ticket.contact.email", "is required to be reached by email");
    }
    let phone = contact.phone.trim();
    if !phone.is_empty() && !phone_like(phone) {
        v.add(
            "ticket.contact.phone",
            "is 7 to 30 digits, spaces and + ( ) - with at least 7 digits",
        );
    } else if phone.is_empty() && preferred == ContactMethod::Phone {
        v.add("ticket.contact.phone", "is required to be reached by phone");
    }
    Contact {
        name: contact.name.trim().to_string(),
        email: email.to_string(),
        phone: phone.to_string(),
        preferred,
    }
}

/// A ticket's etag as a request sent it: None when empty.
pub fn expected_version(etag: &str) -> caseway_platform::Result<Option<i64>> {
    etag::parse("etag", etag)
}

/// A required text of a step (a question, a resolution, a reason), checked.
pub fn step_text(field: &str, text: &str, v: &mut Violations) {
    v.text(field, text, 1, 10_000);
}

pub fn severity(value: i32, v: &mut Violations) -> Option<Severity> {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::Low) => Some(Severity::Low),
        Ok(pb::Severity::Medium) => Some(Severity::Medium),
        Ok(pb::Severity::High) => Some(Severity::High),
        Ok(pb::Severity::Critical) => Some(Severity::Critical),
        _ => {
            v.add("severity", "is LOW, MEDIUM, HIGH or CRITICAL");
            None
        }
    }
}

pub fn complexity(value: i32, v: &mut Violations) -> Option<Complexity> {
    match pb::Complexity::try_from(value) {
        Ok(pb::Complexity::Low) => Some(Complexity::Low),
        Ok(pb::Complexity::Medium) => Some(Complexity::Medium),
        Ok(pb::Complexity::High) => Some(Complexity::High),
        _ => {
            v.add("complexity", "is LOW, MEDIUM or HIGH");
            None
        }
    }
}

pub fn priority(value: i32, v: &mut Violations) -> Option<Priority> {
    match pb::Priority::try_from(value) {
        Ok(pb::Priority::Low) => Some(Priority::Low),
        Ok(pb::Priority::Medium) => Some(Priority::Medium),
        Ok(pb::Priority::High) => Some(Priority::High),
        Ok(pb::Priority::Urgent) => Some(Priority::Urgent),
        _ => {
            v.add("priority", "is LOW, MEDIUM, HIGH or URGENT");
            None
        }
    }
}

pub fn visibility(value: i32, v: &mut Violations) -> Visibility {
    match pb::NoteVisibility::try_from(value) {
        Ok(pb::NoteVisibility::Internal) => Visibility::Internal,
        Ok(pb::NoteVisibility::Unspecified | pb::NoteVisibility::Public) => Visibility::Public,
        Err(_) => {
            v.add("visibility", "is PUBLIC or INTERNAL");
            Visibility::Public
        }
    }
}

/// The statuses a list asks for, checked; `allowed` says which a list may name.
pub fn statuses(values: &[i32], allowed: &[Status], v: &mut Violations) -> Vec<Status> {
    let mut statuses = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match pb::TicketStatus::try_from(*value).ok().and_then(status_of) {
            Some(status) if allowed.contains(&status) => {
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
            _ => v.add(format!("statuses[{i}]"), "is not a status this list holds"),
        }
    }
    statuses.sort();
    statuses
}

fn status_of(status: pb::TicketStatus) -> Option<Status> {
    match status {
        pb::TicketStatus::Submitted => Some(Status::Submitted),
        pb::TicketStatus::WaitingOnUser => Some(Status::WaitingOnUser),
        pb::TicketStatus::Escalated => Some(Status::Escalated),
        pb::TicketStatus::InProgress => Some(Status::InProgress),
        pb::TicketStatus::WaitingOnCustomer => Some(Status::WaitingOnCustomer),
        pb::TicketStatus::Resolved => Some(Status::Resolved),
        pb::TicketStatus::Closed => Some(Status::Closed),
        pb::TicketStatus::Unspecified => None,
    }
}

pub fn status_to_proto(status: Status) -> pb::TicketStatus {
    match status {
        Status::Submitted => pb::TicketStatus::Submitted,
        Status::WaitingOnUser => pb::TicketStatus::WaitingOnUser,
        Status::Escalated => pb::TicketStatus::Escalated,
        Status::InProgress => pb::TicketStatus::InProgress,
        Status::WaitingOnCustomer => pb::TicketStatus::WaitingOnCustomer,
        Status::Resolved => pb::TicketStatus::Resolved,
        Status::Closed => pb::TicketStatus::Closed,
    }
}

fn kind_to_proto(kind: Kind) -> pb::TicketKind {
    match kind {
        Kind::Issue => pb::TicketKind::Issue,
        Kind::Question => pb::TicketKind::Question,
        Kind::Suggestion => pb::TicketKind::Suggestion,
    }
}

fn severity_to_proto(severity: Option<Severity>) -> pb::Severity {
    match severity {
        None => pb::Severity::Unspecified,
        Some(Severity::Low) => pb::Severity::Low,
        Some(Severity::Medium) => pb::Severity::Medium,
        Some(Severity::High) => pb::Severity::High,
        Some(Severity::Critical) => pb::Severity::Critical,
    }
}

fn complexity_to_proto(complexity: Option<Complexity>) -> pb::Complexity {
    match complexity {
        None => pb::Complexity::Unspecified,
        Some(Complexity::Low) => pb::Complexity::Low,
        Some(Complexity::Medium) => pb::Complexity::Medium,
        Some(Complexity::High) => pb::Complexity::High,
    }
}

fn priority_to_proto(priority: Option<Priority>) -> pb::Priority {
    match priority {
        None => pb::Priority::Unspecified,
        Some(Priority::Low) => pb::Priority::Low,
        Some(Priority::Medium) => pb::Priority::Medium,
        Some(Priority::High) => pb::Priority::High,
        Some(Priority::Urgent) => pb::Priority::Urgent,
    }
}

pub fn ticket_to_proto(t: &TicketRow) -> pb::Ticket {
    pb::Ticket {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.to_string(),
        kind: kind_to_proto(t.kind) as i32,
        title: t.title.clone(),
        description: t.description.clone(),
        context: Some(pb::TicketContext {
            area: t.context.area.clone(),
            rpc: t.context.rpc.clone(),
            request_id: t.context.request_id.clone(),
            trace_id: t.context.trace_id.clone(),
            client_application: t.context.client_application.clone(),
            client_version: t.context.client_version.clone(),
        }),
        contact: Some(pb::TicketContact {
            name: t.contact.name.clone(),
            email: t.contact.email.clone(),
            phone: t.contact.phone.clone(),
            preferred: match t.contact.preferred {
                ContactMethod::Email => pb::ContactMethod::Email,
                ContactMethod::Phone => pb::ContactMethod::Phone,
            } as i32,
        }),
        status: status_to_proto(t.status) as i32,
        submitted_by: t.submitted_by.clone(),
        severity: severity_to_proto(t.severity) as i32,
        complexity: complexity_to_proto(t.complexity) as i32,
        priority: priority_to_proto(t.priority) as i32,
        tier: t.tier.map_or(0, |tier| i32::from(tier.number())),
        tier_override_reason: t.tier_override_reason.clone().unwrap_or_default(),
        resolution: t.resolution.clone().unwrap_or_default(),
        resolved_by: t.resolved_by.clone().unwrap_or_default(),
        etag: etag::format(t.version),
        create_time: Some(timestamp(t.created_at)),
        update_time: Some(timestamp(t.updated_at)),
        escalate_time: t.escalated_at.map(timestamp),
        resolve_time: t.resolved_at.map(timestamp),
        service_level: t.escalated_at.map(|_| service_level_to_proto(&t.clocks)),
        close_time: t.closed_at.map(timestamp),
    }
}

fn service_level_to_proto(c: &Clocks) -> pb::TicketServiceLevel {
    pb::TicketServiceLevel {
        first_response_due_time: c.first_response_due.map(timestamp),
        first_response_time: c.first_responded_at.map(timestamp),
        first_response_breach_time: c.first_response_breached_at.map(timestamp),
        resolution_due_time: c.resolution_due.map(timestamp),
        resolution_breach_time: c.resolution_breached_at.map(timestamp),
        pause_time: c.paused_at.map(timestamp),
    }
}

pub fn clock_to_proto(clock: Clock) -> pb::ServiceLevelClock {
    match clock {
        Clock::FirstResponse => pb::ServiceLevelClock::FirstResponse,
        Clock::Resolution => pb::ServiceLevelClock::Resolution,
    }
}

pub fn note_to_proto(n: &NoteRow) -> pb::TicketNote {
    pb::TicketNote {
        id: n.id.to_string(),
        ticket_id: n.ticket_id.to_string(),
        visibility: match n.visibility {
            Visibility::Public => pb::NoteVisibility::Public,
            Visibility::Internal => pb::NoteVisibility::Internal,
        } as i32,
        body: n.body.clone(),
        author: n.author.clone(),
        by_support: n.by_support,
        create_time: Some(timestamp(n.created_at)),
    }
}

pub fn attachment_to_proto(a: &AttachmentRow, reads: &[AttachmentRead]) -> pb::TicketAttachment {
    pb::TicketAttachment {
        id: a.id.to_string(),
        ticket_id: a.ticket_id.to_string(),
        file_name: a.file_name.clone(),
        content_type: a.format.content_type().to_string(),
        size_bytes: a.size_bytes,
        width: a.width,
        height: a.height,
        sha256: caseway_platform::objects::hex(&a.sha256),
        uploaded_by: a.uploaded_by.clone(),
        create_time: Some(timestamp(a.created_at)),
        release: match a.release {
            Release::Inside => pb::AttachmentRelease::Inside,
            Release::Confirmed => pb::AttachmentRelease::Confirmed,
            Release::Redacted => pb::AttachmentRelease::Redacted,
        } as i32,
        released_by: a.released_by.clone().unwrap_or_default(),
        release_time: a.released_at.map(timestamp),
        support_reads: reads
            .iter()
            .filter(|r| r.attachment_id == a.id)
            .map(|r| pb::AttachmentRead {
                reader: r.reader.clone(),
                read_time: Some(timestamp(r.read_at)),
            })
            .collect(),
    }
}
