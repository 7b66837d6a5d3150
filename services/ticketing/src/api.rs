//! The ticketing gRPC handlers, thin: decode (`convert`), see which desk calls (an
//! organization's user, or the support desk, whose token holds no tenant), call the use case
//! (`service`), encode. The access table has already decided which roles call each method.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use sha2::Digest;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::ticketing::v1 as pb;
use caseway_api::ticketing::v1::ticketing_service_server::TicketingService;
use caseway_platform::auth::{Principal, Role, principal};
use caseway_platform::caller::Caller;
use caseway_platform::idempotency::Key;
use caseway_platform::server::Platform;
use caseway_platform::validate::{Violations, parse_id};
use caseway_platform::{Error, PLATFORM_TENANT};

use crate::convert::{self, note_to_proto, ticket_to_proto};
use crate::domain::{Status as TicketStatus, Step, Tier};
use crate::screenshot;
use crate::service::{Change, Desk, StepRequest, Ticketing};

pub struct TicketingApi {
    platform: Arc<Platform>,
    ticketing: Arc<Ticketing>,
}

impl TicketingApi {
    pub fn new(platform: Arc<Platform>, ticketing: Arc<Ticketing>) -> Self {
        TicketingApi {
            platform,
            ticketing,
        }
    }
}

/// Who calls, owned: a user of an organization, or a support agent.
enum Who {
    Organization(Caller),
    Support(Arc<Principal>),
}

impl Who {
    fn of<T>(request: &Request<T>) -> Result<Who, Error> {
        let principal = principal(request)?;
        if principal.has_role(Role::SupportAgent) && principal.tenant_id.is_none() {
            return Ok(Who::Support(principal));
        }
        Ok(Who::Organization(Caller::of(request)?))
    }

    fn desk(&self) -> Desk<'_> {
        match self {
            Who::Organization(caller) => Desk::Organization(caller),
            Who::Support(principal) => Desk::Support(principal),
        }
    }
}

/// The support desk's statuses: those of tickets it holds, then resolved and closed ones.
const SUPPORT_STATUSES: [TicketStatus; 5] = [
    TicketStatus::Escalated,
    TicketStatus::InProgress,
    TicketStatus::WaitingOnCustomer,
    TicketStatus::Resolved,
    TicketStatus::Closed,
];

const ALL_STATUSES: [TicketStatus; 7] = [
    TicketStatus::Submitted,
    TicketStatus::WaitingOnUser,
    TicketStatus::Escalated,
    TicketStatus::InProgress,
    TicketStatus::WaitingOnCustomer,
    TicketStatus::Resolved,
    TicketStatus::Closed,
];

/// A list's text filter: none when blank.
fn text(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// The filter a list's page token is bound to: the list and everything that narrows it.
fn filter(list: &str, parts: &[String]) -> Vec<u8> {
    format!("{list}|{}", parts.join("|")).into_bytes()
}

/// A step of the workflow as a request asks it.
fn step_request<'a>(
    id: Uuid,
    step: Step,
    etag: &str,
    change: Change,
    note: Option<String>,
    key: Key<'a>,
) -> Result<StepRequest<'a>, Error> {
    Ok(StepRequest {
        id,
        step,
        expected: convert::expected_version(etag)?,
        change,
        note,
        key,
    })
}

/// What a step that keeps its question or reason as a public note asks: the ticket, the text
/// and the field that holds it, the etag and the request id.
struct Noted<'a> {
    id: &'a str,
    field: &'a str,
    text: &'a str,
    etag: &'a str,
    request_id: &'a str,
}

impl TicketingApi {
    /// Takes `step` (`ticketing.ticket.<verb>` for its idempotency key), keeping its text as a
    /// public note: AskSubmitter, AskCustomer, ReopenTicket.
    async fn noted_step<M: prost::Message>(
        &self,
        who: &Who,
        step: Step,
        verb: &str,
        noted: Noted<'_>,
        message: &M,
    ) -> Result<pb::Ticket, Status> {
        let id = id_and_text(noted.id, noted.field, noted.text, noted.request_id)?;
        let method = format!("ticketing.ticket.{verb}");
        let key = Key::of(&method, noted.request_id, message);
        let note = Some(noted.text.to_string());
        let request = step_request(id, step, noted.etag, Change::None, note, key)?;
        Ok(self.ticketing.step(&who.desk(), request).await?)
    }
}

/// The id and the text of a step that keeps a question or reason as a public note, checked.
fn id_and_text(id: &str, field: &str, text: &str, request_id: &str) -> Result<Uuid, Error> {
    let mut v = Violations::new();
    let id = v.id::<Uuid>("id", id);
    convert::step_text(field, text, &mut v);
    v.request_id(request_id);
    v.finish_with(id)
}

/// A watch: the organization's changes as this replica hears them, until the caller stops or
/// the node stops taking calls.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchTicketsResponse, Status>> + Send + 'static>>;

/// An attachment's image, in chunks, the first with the attachment.
pub type DownloadStream = Pin<
    Box<dyn Stream<Item = Result<pb::DownloadTicketAttachmentResponse, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl TicketingService for TicketingApi {
    type WatchTicketsStream = WatchStream;
    type DownloadTicketAttachmentStream = DownloadStream;

    async fn upload_ticket_attachment(
        &self,
        request: Request<tonic::Streaming<pb::UploadTicketAttachmentRequest>>,
    ) -> Result<Response<pb::UploadTicketAttachmentResponse>, Status> {
        use pb::upload_ticket_attachment_request::Part;
        let caller = Caller::of(&request)?;
        let mut parts = request.into_inner();
        let header = match parts.message().await? {
            Some(pb::UploadTicketAttachmentRequest {
                part: Some(Part::Header(header)),
            }) => header,
            _ => {
                return Err(Error::invalid("header", "the first message is the header").into());
            }
        };
        let mut v = Violations::new();
        let ticket_id = v.id::<Uuid>("header.ticket_id", &header.ticket_id);
        v.text("header.file_name", &header.file_name, 1, 200);
        v.request_id(&header.request_id);
        let ticket_id = v.finish_with(ticket_id)?;
        let mut upload = Vec::new();
        while let Some(part) = parts.message().await? {
            match part.part {
                Some(Part::Chunk(chunk)) => {
                    if chunk.len() > screenshot::MAX_CHUNK {
                        return Err(Error::invalid("chunk", "a chunk is at most 1 MiB").into());
                    }
                    if upload.len() + chunk.len() > screenshot::MAX_BYTES {
                        return Err(
                            Error::invalid("chunk", "an attachment is at most 10 MiB").into()
                        );
                    }
                    upload.extend_from_slice(&chunk);
                }
                _ => {
                    return Err(Error::invalid(
                        "header",
                        "only the first message is the header; the others are chunks",
                    )
                    .into());
                }
            }
        }
        if upload.is_empty() {
            return Err(Error::invalid("chunk", "the file is empty").into());
        }
        // What a retry with the same request_id must repeat: the header and the file's bytes.
        let fingerprint = pb::TicketAttachment {
            ticket_id: header.ticket_id.clone(),
            file_name: header.file_name.clone(),
            sha256: caseway_platform::objects::hex(&sha2::Sha256::digest(&upload)),
            ..Default::default()
        };
        let key = Key::of(
            "ticketing.attachment.upload",
            &header.request_id,
            &fingerprint,
        );
        let attachment = self
            .ticketing
            .attach(&caller, &key, ticket_id, header.file_name, upload)
            .await?;
        Ok(Response::new(pb::UploadTicketAttachmentResponse {
            attachment: Some(attachment),
        }))
    }

    async fn list_ticket_attachments(
        &self,
        request: Request<pb::ListTicketAttachmentsRequest>,
    ) -> Result<Response<pb::ListTicketAttachmentsResponse>, Status> {
        let who = Who::of(&request)?;
        let id = parse_id::<Uuid>("ticket_id", &request.get_ref().ticket_id)?;
        let attachments = self.ticketing.attachments(&who.desk(), id).await?;
        Ok(Response::new(pb::ListTicketAttachmentsResponse {
            attachments,
        }))
    }

    async fn download_ticket_attachment(
        &self,
        request: Request<pb::DownloadTicketAttachmentRequest>,
    ) -> Result<Response<Self::DownloadTicketAttachmentStream>, Status> {
        use futures::StreamExt;
        let who = Who::of(&request)?;
        let id = parse_id::<Uuid>("id", &request.get_ref().id)?;
        let (attachment, image) = self.ticketing.download(&who.desk(), id).await?;
        let mut first = Some(attachment);
        let stream = image.map(move |chunk| {
            chunk
                .map(|chunk| pb::DownloadTicketAttachmentResponse {
                    attachment: first.take(),
                    chunk: chunk.to_vec(),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn release_ticket_attachment(
        &self,
        request: Request<pb::ReleaseTicketAttachmentRequest>,
    ) -> Result<Response<pb::ReleaseTicketAttachmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let id = v.id::<Uuid>("id", &message.id);
        if message.redact.len() > 50 {
            v.add("redact", "at most 50 rectangles");
        }
        let mut redact = Vec::new();
        for (i, r) in message.redact.iter().enumerate() {
            match (
                u32::try_from(r.x),
                u32::try_from(r.y),
                u32::try_from(r.width),
                u32::try_from(r.height),
            ) {
                (Ok(x), Ok(y), Ok(width), Ok(height)) if width > 0 && height > 0 => {
                    redact.push(screenshot::Rect {
                        x,
                        y,
                        width,
                        height,
                    })
                }
                _ => v.add(
                    format!("redact[{i}]"),
                    "x and y are at least 0, width and height at least 1",
                ),
            }
        }
        let id = v.finish_with(id)?;
        let attachment = self.ticketing.release(&caller, id, redact).await?;
        Ok(Response::new(pb::ReleaseTicketAttachmentResponse {
            attachment: Some(attachment),
        }))
    }

    async fn watch_tickets(
        &self,
        request: Request<pb::WatchTicketsRequest>,
    ) -> Result<Response<Self::WatchTicketsStream>, Status> {
        let caller = Caller::of(&request)?;
        let tenant = caller.tenant;
        let stopping = self.platform.stopping.clone();
        let changes = self.ticketing.watch();
        let stream = futures::stream::unfold(Some(changes), move |changes| {
            let stopping = stopping.clone();
            async move {
                let mut changes = changes?;
                loop {
                    let next = tokio::select! {
                        next = changes.recv() => next,
                        _ = stopping.cancelled() => {
                            let end = Status::unavailable("the node is stopping: watch again");
                            return Some((Err(end), None));
                        }
                    };
                    match next {
                        Ok((of, change)) if of == tenant => {
                            return Some((Ok(change.as_ref().clone()), Some(changes)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let behind = Status::unavailable(format!(
                                "the watcher fell {missed} changes behind: list the tickets and watch again"
                            ));
                            return Some((Err(behind), None));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn submit_ticket(
        &self,
        request: Request<pb::SubmitTicketRequest>,
    ) -> Result<Response<pb::SubmitTicketResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let submission = convert::submission(&message)?;
        let key = Key::of("ticketing.ticket.submit", &message.request_id, &message);
        let ticket = self.ticketing.submit(&caller, &key, submission).await?;
        Ok(Response::new(pb::SubmitTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::GetTicketResponse>, Status> {
        let who = Who::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let ticket = self.ticketing.get(&who.desk(), id).await?;
        Ok(Response::new(pb::GetTicketResponse {
            ticket: Some(ticket_to_proto(&ticket)),
        }))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let statuses = convert::statuses(&message.statuses, &ALL_STATUSES, &mut v);
        v.text("text", &message.text, 0, 200);
        v.finish()?;
        let mut parts: Vec<String> = statuses.iter().map(|s| format!("{s:?}")).collect();
        parts.push(format!("text:{}", message.text));
        if !caller.principal.has_role(Role::TenantAdmin) {
            parts.push(format!("mine:{}", caller.principal.user_id));
        }
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &filter("ticketing.tickets", &parts),
            message.page_size,
            &message.page_token,
        )?;
        let (tickets, next_page_token) = self
            .ticketing
            .list(&caller, &statuses, text(&message.text), page)
            .await?;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: tickets.iter().map(ticket_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn list_support_tickets(
        &self,
        request: Request<pb::ListSupportTicketsRequest>,
    ) -> Result<Response<pb::ListSupportTicketsResponse>, Status> {
        let message = request.into_inner();
        let mut v = Violations::new();
        if !(0..=3).contains(&message.tier) {
            v.add("tier", "is 1, 2 or 3, or 0 for every tier");
        }
        let mut statuses = convert::statuses(&message.statuses, &SUPPORT_STATUSES, &mut v);
        v.text("text", &message.text, 0, 200);
        v.finish()?;
        if statuses.is_empty() {
            statuses = SUPPORT_STATUSES[..3].to_vec();
        }
        let tier = (message.tier > 0).then_some(message.tier as i16);
        let mut parts: Vec<String> = statuses.iter().map(|s| format!("{s:?}")).collect();
        parts.push(format!("tier:{}", message.tier));
        parts.push(format!("text:{}", message.text));
        // The support desk acts for no tenant: its tokens are bound to the platform's own.
        let page = self.platform.page_tokens.page(
            PLATFORM_TENANT,
            &filter("ticketing.support", &parts),
            message.page_size,
            &message.page_token,
        )?;
        let (tickets, next_page_token) = self
            .ticketing
            .support_queue(tier, &statuses, text(&message.text), page)
            .await?;
        Ok(Response::new(pb::ListSupportTicketsResponse {
            tickets: tickets.iter().map(ticket_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn ask_submitter(
        &self,
        request: Request<pb::AskSubmitterRequest>,
    ) -> Result<Response<pb::AskSubmitterResponse>, Status> {
        let who = Who::Organization(Caller::of(&request)?);
        let m = request.into_inner();
        let asked = Noted {
            id: &m.id,
            field: "question",
            text: &m.question,
            etag: &m.etag,
            request_id: &m.request_id,
        };
        let ticket = self
            .noted_step(&who, Step::AskSubmitter, "ask_submitter", asked, &m)
            .await?;
        Ok(Response::new(pb::AskSubmitterResponse {
            ticket: Some(ticket),
        }))
    }

    async fn escalate_ticket(
        &self,
        request: Request<pb::EscalateTicketRequest>,
    ) -> Result<Response<pb::EscalateTicketResponse>, Status> {
        let who = Who::Organization(Caller::of(&request)?);
        let message = request.into_inner();
        let mut v = Violations::new();
        let id = v.id::<Uuid>("id", &message.id);
        let severity = convert::severity(message.severity, &mut v);
        v.request_id(&message.request_id);
        let (id, severity) = v.finish_with(id.zip(severity))?;
        let key = Key::of("ticketing.ticket.escalate", &message.request_id, &message);
        let change = Change::Escalate(severity);
        let ticket = self
            .ticketing
            .step(
                &who.desk(),
                step_request(id, Step::Escalate, &message.etag, change, None, key)?,
            )
            .await?;
        Ok(Response::new(pb::EscalateTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn triage_ticket(
        &self,
        request: Request<pb::TriageTicketRequest>,
    ) -> Result<Response<pb::TriageTicketResponse>, Status> {
        let who = Who::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let id = v.id::<Uuid>("id", &message.id);
        let complexity = convert::complexity(message.complexity, &mut v);
        let priority = convert::priority(message.priority, &mut v);
        let tier = match message.tier {
            0 => None,
            n => {
                let tier = Tier::new(i64::from(n));
                if tier.is_none() {
                    v.add("tier", "is 1, 2 or 3, or 0 for the matrix's");
                }
                tier
            }
        };
        v.text(
            "tier_override_reason",
            &message.tier_override_reason,
            0,
            1000,
        );
        let (id, (complexity, priority)) = v.finish_with(id.zip(complexity.zip(priority)))?;
        let change = Change::Triage {
            complexity,
            priority,
            tier: tier.map(|tier| (tier, message.tier_override_reason.clone())),
        };
        let key = Key::of("ticketing.ticket.triage", "", &message);
        let ticket = self
            .ticketing
            .step(
                &who.desk(),
                step_request(id, Step::Triage, &message.etag, change, None, key)?,
            )
            .await?;
        Ok(Response::new(pb::TriageTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn start_ticket_work(
        &self,
        request: Request<pb::StartTicketWorkRequest>,
    ) -> Result<Response<pb::StartTicketWorkResponse>, Status> {
        let who = Who::of(&request)?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id)?;
        let key = Key::of("ticketing.ticket.start_work", "", &message);
        let ticket = self
            .ticketing
            .step(
                &who.desk(),
                step_request(id, Step::StartWork, &message.etag, Change::None, None, key)?,
            )
            .await?;
        Ok(Response::new(pb::StartTicketWorkResponse {
            ticket: Some(ticket),
        }))
    }

    async fn ask_customer(
        &self,
        request: Request<pb::AskCustomerRequest>,
    ) -> Result<Response<pb::AskCustomerResponse>, Status> {
        let who = Who::of(&request)?;
        let m = request.into_inner();
        let asked = Noted {
            id: &m.id,
            field: "question",
            text: &m.question,
            etag: &m.etag,
            request_id: &m.request_id,
        };
        let ticket = self
            .noted_step(&who, Step::AskCustomer, "ask_customer", asked, &m)
            .await?;
        Ok(Response::new(pb::AskCustomerResponse {
            ticket: Some(ticket),
        }))
    }

    async fn resolve_ticket(
        &self,
        request: Request<pb::ResolveTicketRequest>,
    ) -> Result<Response<pb::ResolveTicketResponse>, Status> {
        let who = Who::of(&request)?;
        let message = request.into_inner();
        let id = id_and_text(
            &message.id,
            "resolution",
            &message.resolution,
            &message.request_id,
        )?;
        let key = Key::of("ticketing.ticket.resolve", &message.request_id, &message);
        let change = Change::Resolve(message.resolution.clone());
        let ticket = self
            .ticketing
            .step(
                &who.desk(),
                step_request(id, Step::Resolve, &message.etag, change, None, key)?,
            )
            .await?;
        Ok(Response::new(pb::ResolveTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn reopen_ticket(
        &self,
        request: Request<pb::ReopenTicketRequest>,
    ) -> Result<Response<pb::ReopenTicketResponse>, Status> {
        let who = Who::Organization(Caller::of(&request)?);
        let m = request.into_inner();
        let reason = Noted {
            id: &m.id,
            field: "reason",
            text: &m.reason,
            etag: &m.etag,
            request_id: &m.request_id,
        };
        let ticket = self
            .noted_step(&who, Step::Reopen, "reopen", reason, &m)
            .await?;
        Ok(Response::new(pb::ReopenTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn add_ticket_note(
        &self,
        request: Request<pb::AddTicketNoteRequest>,
    ) -> Result<Response<pb::AddTicketNoteResponse>, Status> {
        let who = Who::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let id = v.id::<Uuid>("ticket_id", &message.ticket_id);
        let visibility = convert::visibility(message.visibility, &mut v);
        v.text("body", &message.body, 1, 10_000);
        v.request_id(&message.request_id);
        let id = v.finish_with(id)?;
        let key = Key::of("ticketing.ticket.add_note", &message.request_id, &message);
        let reply = self
            .ticketing
            .add_note(&who.desk(), &key, id, visibility, message.body.clone())
            .await?;
        Ok(Response::new(reply))
    }

    async fn list_ticket_notes(
        &self,
        request: Request<pb::ListTicketNotesRequest>,
    ) -> Result<Response<pb::ListTicketNotesResponse>, Status> {
        let who = Who::of(&request)?;
        let message = request.into_inner();
        let id = parse_id::<Uuid>("ticket_id", &message.ticket_id)?;
        let bound_to = match &who {
            Who::Organization(caller) => caller.tenant,
            Who::Support(_) => PLATFORM_TENANT,
        };
        let page = self.platform.page_tokens.page(
            bound_to,
            &filter("ticketing.notes", &[id.to_string()]),
            message.page_size,
            &message.page_token,
        )?;
        let (notes, next_page_token) = self.ticketing.notes(&who.desk(), id, page).await?;
        Ok(Response::new(pb::ListTicketNotesResponse {
            notes: notes.iter().map(note_to_proto).collect(),
            next_page_token,
        }))
    }
}
