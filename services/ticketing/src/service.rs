//! The ticketing service's use cases, one function per operation. A call comes from one of two
//! desks: an organization's user (a tenant's transaction: the organization's tickets and their
//! public notes) or the hosting provider's support desk (a support transaction: escalated
//! tickets of every tenant, acting for the ticket's tenant when it writes). Each step owns its
//! transaction: the ticket, its note, the audit row, the events and, where a retry could
//! repeat it, the idempotent reply.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sha2::Digest;
use uuid::Uuid;

use caseway_api::ticketing::v1 as pb;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Principal, Role};
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Reason, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::outbox::{self, Event};
use caseway_platform::paging::Page;
use caseway_platform::{Db, Scoped, SupportTx, TenantId, TenantTx};
use tokio::sync::broadcast;

use crate::convert::{Submission, ticket_to_proto};
use crate::domain::*;
use crate::events;
use crate::files::Files;
use crate::screenshot::{self, Clean, Rect};
use crate::sla::{Clock, SlaPolicy, priority_of};
use crate::store::{self, SupportCursor};

/// Who calls: a user of an organization, or an agent of the hosting provider's support desk
/// (whose token holds no tenant).
pub enum Desk<'a> {
    Organization(&'a Caller),
    Support(&'a Arc<Principal>),
}

impl Desk<'_> {
    fn principal(&self) -> &Principal {
        match self {
            Desk::Organization(caller) => &caller.principal,
            Desk::Support(principal) => principal,
        }
    }

    fn by_support(&self) -> bool {
        matches!(self, Desk::Support(_))
    }

    /// The part the caller plays on `ticket`, or NOT_FOUND when it may not see it: support
    /// sees what its transaction shows (escalated tickets); an administrator sees the
    /// organization's; anyone else their own.
    fn actor(&self, ticket: &TicketRow) -> Result<Actor> {
        match self {
            Desk::Support(_) => Ok(Actor::Support),
            Desk::Organization(caller) if caller.principal.has_role(Role::TenantAdmin) => {
                Ok(Actor::Administrator)
            }
            Desk::Organization(caller) if ticket.submitted_by == caller.principal.user_id => {
                Ok(Actor::Submitter)
            }
            Desk::Organization(_) => Err(Error::not_found("ticket", ticket.id)),
        }
    }
}

/// A desk's transaction: a tenant's, or the support desk's.
enum DeskTx {
    Organization(TenantTx),
    Support(SupportTx),
}

impl Scoped for DeskTx {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            DeskTx::Organization(tx) => tx.conn(),
            DeskTx::Support(tx) => tx.conn(),
        }
    }

    fn tenant_id(&self) -> caseway_platform::TenantId {
        match self {
            DeskTx::Organization(tx) => tx.tenant_id(),
            DeskTx::Support(tx) => Scoped::tenant_id(tx),
        }
    }
}

impl DeskTx {
    async fn commit(self) -> Result<()> {
        match self {
            DeskTx::Organization(tx) => tx.commit().await,
            DeskTx::Support(tx) => tx.commit().await,
        }
    }
}

/// A step's change beyond the status: what escalation, triage and resolution set.
pub enum Change {
    None,
    Escalate(Severity),
    Triage {
        complexity: Complexity,
        priority: Priority,
        /// A tier other than the matrix's, and why.
        tier: Option<(Tier, String)>,
    },
    Resolve(String),
}

/// One step of the workflow as a call asks it.
pub struct StepRequest<'a> {
    pub id: Uuid,
    pub step: Step,
    pub expected: Option<i64>,
    pub change: Change,
    /// The question or reason the step keeps as a public note.
    pub note: Option<String>,
    pub key: Key<'a>,
}

/// The time now as PostgreSQL keeps it (to the microsecond), so what a call answers reads
/// back the same.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// One change of one organization's tickets, as watchers receive it.
pub type Watched = (TenantId, Arc<pb::WatchTicketsResponse>);

/// Changes a watcher may fall behind by before it is ended.
const WATCH_BACKLOG: usize = 1024;

/// Who the sweeps act as, in the audit log.
pub const SWEEPER: &str = "caseway/ticketing-sweeper";

/// The advisory lock key of the sweeps (any constant shared by every replica: one replica
/// sweeps at a time).
const LOCK_KEY: i64 = 7_262_101;

/// Tickets changed per sweep transaction; a round goes on until none is left.
const BATCH: i64 = 200;

pub struct Ticketing {
    db: Db,
    matrix: TierMatrix,
    sla: SlaPolicy,
    /// How long a resolved ticket waits for a reopening before it closes.
    close_after: chrono::Duration,
    files: Files,
    /// Turns to decode an image (see `DECODING`).
    decoding: tokio::sync::Semaphore,
    /// Every change of every organization's tickets this replica hears, for its watchers.
    watchers: broadcast::Sender<Watched>,
}

impl Ticketing {
    pub fn new(
        db: Db,
        matrix: TierMatrix,
        sla: SlaPolicy,
        close_after: chrono::Duration,
        files: Files,
    ) -> Self {
        Ticketing {
            db,
            matrix,
            sla,
            close_after,
            files,
            decoding: tokio::sync::Semaphore::new(DECODING),
            watchers: broadcast::channel(WATCH_BACKLOG).0,
        }
    }

    /// Tells this replica's watchers of `tenant` about a change (the worker following the
    /// ticketing events calls it, in every replica).
    pub fn changed(&self, tenant: TenantId, change: pb::WatchTicketsResponse) {
        // No watcher is not an error.
        let _ = self.watchers.send((tenant, Arc::new(change)));
    }

    /// The changes this replica hears from now on, of every organization: a watcher keeps
    /// its own.
    pub fn watch(&self) -> broadcast::Receiver<Watched> {
        self.watchers.subscribe()
    }

    /// Keeps an escalated ticket's service-level clocks across its change from `before` at
    /// `now`: the targets of its tier and priority, or before triage, those its severity
    /// gives.
    fn keep_clocks(&self, ticket: &mut TicketRow, before: Status, now: DateTime<Utc>) {
        let Some(escalated_at) = ticket.escalated_at else {
            return;
        };
        let severity = ticket.severity.unwrap_or(Severity::Medium);
        let priority = ticket.priority.unwrap_or(priority_of(severity));
        let tier = ticket
            .tier
            .unwrap_or_else(|| self.matrix.tier(severity, Complexity::Low, priority));
        ticket.clocks.keep(
            &self.sla,
            escalated_at,
            (tier, priority),
            (before, ticket.status),
            now,
        );
    }

    async fn open(&self, desk: &Desk<'_>) -> Result<DeskTx> {
        Ok(match desk {
            Desk::Organization(caller) => {
                DeskTx::Organization(self.db.tenant_tx(caller.tenant).await?)
            }
            Desk::Support(_) => DeskTx::Support(self.db.support_tx().await?),
        })
    }

    /// The ticket `id` as the desk may see it, locked when `lock`; a support transaction then
    /// acts for the ticket's tenant.
    async fn visible(
        &self,
        tx: &mut DeskTx,
        desk: &Desk<'_>,
        id: Uuid,
        lock: bool,
    ) -> Result<(TicketRow, Actor)> {
        let ticket = store::ticket(tx.conn(), id, lock)
            .await?
            .ok_or_else(|| Error::not_found("ticket", id))?;
        let actor = desk.actor(&ticket)?;
        if let DeskTx::Support(support) = tx {
            support.act_for_tenant(ticket.tenant_id).await?;
        }
        Ok((ticket, actor))
    }

    /// Submits a ticket to the organization's administrators.
    pub async fn submit(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        submission: Submission,
    ) -> Result<pb::Ticket> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let now = now();
        let ticket = TicketRow {
            tenant_id: caller.tenant,
            id: Uuid::now_v7(),
            kind: submission.kind,
            title: submission.title,
            description: submission.description,
            context: submission.context,
            contact: submission.contact,
            status: Status::Submitted,
            submitted_by: caller.principal.user_id.clone(),
            severity: None,
            complexity: None,
            priority: None,
            tier: None,
            tier_override_reason: None,
            resolution: None,
            resolved_by: None,
            resolved_by_support: false,
            escalated_at: None,
            resolved_at: None,
            clocks: Default::default(),
            closed_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::insert_ticket(tx.conn(), &ticket).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "ticketing.ticket.submit",
                resource_type: "ticket",
                resource_id: ticket.id,
                changed_fields: &[],
            },
        )
        .await?;
        let payload = events::ticket_changed(&ticket, None, &caller.principal.user_id, false);
        outbox::enqueue(&mut tx, event(events::SUBMITTED, &ticket, &payload)).await?;
        let reply = ticket_to_proto(&ticket);
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get(&self, desk: &Desk<'_>, id: Uuid) -> Result<TicketRow> {
        let mut tx = self.open(desk).await?;
        let (ticket, _) = self.visible(&mut tx, desk, id, false).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    /// The organization's tickets for an administrator, the caller's own for anyone else.
    pub async fn list(
        &self,
        caller: &Caller,
        statuses: &[Status],
        text: Option<&str>,
        page: Page<(DateTime<Utc>, Uuid)>,
    ) -> Result<(Vec<TicketRow>, String)> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let own = (!caller.principal.has_role(Role::TenantAdmin))
            .then_some(caller.principal.user_id.as_str());
        let mut rows = store::organization_tickets(
            tx.conn(),
            own,
            statuses,
            text,
            page.after.as_ref(),
            page.limit,
        )
        .await?;
        tx.commit().await?;
        let next = page.finish(&mut rows, |t| (t.created_at, t.id));
        Ok((rows, next))
    }

    /// The support queue.
    pub async fn support_queue(
        &self,
        tier: Option<i16>,
        statuses: &[Status],
        text: Option<&str>,
        page: Page<SupportCursor>,
    ) -> Result<(Vec<TicketRow>, String)> {
        let mut tx = self.db.support_tx().await?;
        let mut rows = store::support_tickets(
            tx.conn(),
            tier,
            statuses,
            text,
            page.after.as_ref(),
            page.limit,
        )
        .await?;
        tx.commit().await?;
        let next = page.finish(&mut rows, store::support_cursor);
        Ok((rows, next))
    }

    /// Takes one step of the workflow: checks who holds the ticket and its status, changes
    /// it, keeps the step's question or reason as a public note, audits it, publishes it.
    pub async fn step(&self, desk: &Desk<'_>, request: StepRequest<'_>) -> Result<pb::Ticket> {
        let mut tx = self.open(desk).await?;
        let (mut ticket, actor) = self.visible(&mut tx, desk, request.id, true).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &request.key).await? {
            return Ok(previous);
        }
        check_version(request.expected, ticket.version)?;
        let subject = format!("tickets/{}", ticket.id);
        let status = ticket
            .after(request.step, actor)
            .map_err(|refusal| Error::precondition(refusal.rule, &subject, refusal.message))?;
        let before = ticket.status;
        let now = now();
        // A clock that ran out before this step is breached, though the sweep has not come by
        // yet: answering or resolving late is still late.
        let late = ticket.breach_clocks(now);
        let principal = desk.principal();
        let mut changed = vec!["status".to_string()];
        match request.change {
            Change::None => {}
            Change::Escalate(severity) => {
                ticket.severity = Some(severity);
                ticket.escalated_at = Some(now);
                changed.extend(["severity".into(), "escalate_time".into()]);
            }
            Change::Triage {
                complexity,
                priority,
                tier,
            } => {
                let severity = ticket.severity.unwrap_or(Severity::Medium);
                let matrix = self.matrix.tier(severity, complexity, priority);
                let (tier, reason) = match tier {
                    Some((tier, reason)) if tier != matrix => {
                        if reason.trim().is_empty() {
                            return Err(Error::precondition(
                                TicketingRule::TierOverride,
                                &subject,
                                format!(
                                    "the matrix gives tier {}; another tier needs a tier_override_reason",
                                    matrix.number()
                                ),
                            ));
                        }
                        (tier, Some(reason))
                    }
                    _ => (matrix, None),
                };
                ticket.complexity = Some(complexity);
                ticket.priority = Some(priority);
                ticket.tier = Some(tier);
                ticket.tier_override_reason = reason;
                changed.extend([
                    "complexity".into(),
                    "priority".into(),
                    "tier".into(),
                    "tier_override_reason".into(),
                ]);
            }
            Change::Resolve(resolution) => {
                ticket.resolution = Some(resolution);
                ticket.resolved_by = Some(principal.user_id.clone());
                ticket.resolved_by_support = desk.by_support();
                ticket.resolved_at = Some(now);
                changed.extend(["resolution".into(), "resolved_by".into()]);
            }
        }
        if request.step == Step::Reopen {
            ticket.resolved_at = None;
        }
        if desk.by_support() && (request.note.is_some() || request.step == Step::Resolve) {
            ticket.clocks.first_responded_at.get_or_insert(now);
        }
        ticket.status = status;
        self.keep_clocks(&mut ticket, before, now);
        ticket.version += 1;
        ticket.updated_at = now;
        store::update_ticket(tx.conn(), &ticket).await?;
        let note = match request.note {
            Some(body) => {
                let note = NoteRow {
                    tenant_id: ticket.tenant_id,
                    id: Uuid::now_v7(),
                    ticket_id: ticket.id,
                    visibility: Visibility::Public,
                    body,
                    author: principal.user_id.clone(),
                    by_support: desk.by_support(),
                    created_at: now,
                };
                store::insert_note(tx.conn(), &note).await?;
                Some(note)
            }
            None => None,
        };
        let verb = match request.step {
            Step::AskSubmitter => "ask_submitter",
            Step::Escalate => "escalate",
            Step::Triage => "triage",
            Step::StartWork => "start_work",
            Step::AskCustomer => "ask_customer",
            Step::Resolve => "resolve",
            Step::Reopen => "reopen",
        };
        audit::record(
            &mut tx,
            principal,
            AuditEntry {
                action: &format!("ticketing.ticket.{verb}"),
                resource_type: "ticket",
                resource_id: ticket.id,
                changed_fields: &changed,
            },
        )
        .await?;
        let event_type = match request.step {
            Step::Escalate => events::ESCALATED,
            _ => events::STATUS_CHANGED,
        };
        let payload =
            events::ticket_changed(&ticket, Some(before), &principal.user_id, desk.by_support());
        outbox::enqueue(&mut tx, event(event_type, &ticket, &payload)).await?;
        if let Some(note) = &note {
            let payload = events::note_added(note, ticket.status);
            outbox::enqueue(&mut tx, event(events::NOTE_ADDED, &ticket, &payload)).await?;
        }
        record_swept(&mut tx, &ticket, before, &late).await?;
        let reply = ticket_to_proto(&ticket);
        idempotency::complete(&mut tx, &request.key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    /// Adds a note; a public answer moves a ticket waiting on its asker's question back.
    /// Only support writes internal notes.
    pub async fn add_note(
        &self,
        desk: &Desk<'_>,
        key: &Key<'_>,
        ticket_id: Uuid,
        visibility: Visibility,
        body: String,
    ) -> Result<pb::AddTicketNoteResponse> {
        if visibility == Visibility::Internal && !desk.by_support() {
            return Err(Error::denied(
                Reason::RoleNotPermitted,
                "only the support desk writes internal notes",
            ));
        }
        let mut tx = self.open(desk).await?;
        let (mut ticket, actor) = self.visible(&mut tx, desk, ticket_id, true).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let principal = desk.principal();
        let now = now();
        let note = NoteRow {
            tenant_id: ticket.tenant_id,
            id: Uuid::now_v7(),
            ticket_id,
            visibility,
            body,
            author: principal.user_id.clone(),
            by_support: desk.by_support(),
            created_at: now,
        };
        store::insert_note(tx.conn(), &note).await?;
        let before = ticket.status;
        let late = ticket.breach_clocks(now);
        if visibility == Visibility::Public {
            ticket.status = ticket.after_public_note(actor);
            if desk.by_support() {
                ticket.clocks.first_responded_at.get_or_insert(now);
            }
        }
        self.keep_clocks(&mut ticket, before, now);
        ticket.version += 1;
        ticket.updated_at = now;
        store::update_ticket(tx.conn(), &ticket).await?;
        audit::record(
            &mut tx,
            principal,
            AuditEntry {
                action: "ticketing.ticket.add_note",
                resource_type: "ticket",
                resource_id: ticket.id,
                changed_fields: &["notes".to_string()],
            },
        )
        .await?;
        let payload = events::note_added(&note, ticket.status);
        outbox::enqueue(&mut tx, event(events::NOTE_ADDED, &ticket, &payload)).await?;
        if ticket.status != before {
            let payload = events::ticket_changed(
                &ticket,
                Some(before),
                &principal.user_id,
                desk.by_support(),
            );
            outbox::enqueue(&mut tx, event(events::STATUS_CHANGED, &ticket, &payload)).await?;
        }
        record_swept(&mut tx, &ticket, before, &late).await?;
        let reply = pb::AddTicketNoteResponse {
            note: Some(crate::convert::note_to_proto(&note)),
            ticket: Some(ticket_to_proto(&ticket)),
        };
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    /// A page of the notes of a ticket the desk sees (a tenant's transaction reads public
    /// notes only).
    pub async fn notes(
        &self,
        desk: &Desk<'_>,
        ticket_id: Uuid,
        page: Page<(DateTime<Utc>, Uuid)>,
    ) -> Result<(Vec<NoteRow>, String)> {
        let mut tx = self.open(desk).await?;
        self.visible(&mut tx, desk, ticket_id, false).await?;
        let mut rows = store::notes(tx.conn(), ticket_id, page.after.as_ref(), page.limit).await?;
        tx.commit().await?;
        let next = page.finish(&mut rows, |n| (n.created_at, n.id));
        Ok((rows, next))
    }
}

impl Ticketing {
    /// One round of the service-level sweep: marks each clock run out by now on a ticket
    /// support holds, once, with its audit row and a `ticketing.sla_breached.v1` event. None
    /// when another replica sweeps.
    pub async fn sweep_service_levels(&self) -> Result<Option<usize>> {
        self.sweep(Round::ServiceLevels).await
    }

    /// One round of closing: each ticket resolved longer ago than the provider's number of
    /// days and not reopened closes, with its audit row and status event. None when another
    /// replica sweeps.
    pub async fn close_resolved(&self) -> Result<Option<usize>> {
        self.sweep(Round::Closing).await
    }

    /// A round across tenants, in batches: finds and locks tickets of every tenant (through
    /// the system role's functions), then changes each in its tenant's scope.
    async fn sweep(&self, round: Round) -> Result<Option<usize>> {
        let mut changed = 0;
        loop {
            let mut tx = self.db.system_tx().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(tx.conn())
                .await?;
            if !locked {
                return Ok((changed > 0).then_some(changed));
            }
            let now = now();
            let found = match round {
                Round::ServiceLevels => store::sla_run_out(tx.conn(), now, BATCH).await?,
                Round::Closing => {
                    store::resolved_before(tx.conn(), now - self.close_after, BATCH).await?
                }
            };
            for &(tenant, id) in &found {
                tx.act_for_tenant(tenant).await?;
                let Some(mut ticket) = store::ticket(tx.conn(), id, true).await? else {
                    continue;
                };
                let before = ticket.status;
                let swept = match round {
                    Round::ServiceLevels => ticket.breach_clocks(now),
                    Round::Closing => ticket.close(now),
                };
                if !swept.is_empty() {
                    ticket.version += 1;
                    ticket.updated_at = now;
                }
                // Also mends a next due time left behind (it is read back from the clocks).
                store::update_ticket(tx.conn(), &ticket).await?;
                record_swept(&mut tx, &ticket, before, &swept).await?;
                changed += swept.len();
            }
            tx.commit().await?;
            if (found.len() as i64) < BATCH {
                return Ok(Some(changed));
            }
        }
    }
}

/// Audits and publishes what a sweep did to a ticket (a breach is the sweeper's, also when
/// a step finds a clock run out before the sweep did).
async fn record_swept(
    tx: &mut impl Scoped,
    ticket: &TicketRow,
    before: Status,
    swept: &[Swept],
) -> Result<()> {
    let actor = Principal {
        user_id: SWEEPER.into(),
        tenant_id: Some(ticket.tenant_id),
        organization_ids: Vec::new(),
        roles: Vec::new(),
        permissions: Vec::new(),
        service: None,
    };
    for &what in swept {
        let (action, changed_fields) = match what {
            Swept::Breached(Clock::FirstResponse) => {
                ("ticketing.ticket.sla_breach", "first_response_breach_time")
            }
            Swept::Breached(Clock::Resolution) => {
                ("ticketing.ticket.sla_breach", "resolution_breach_time")
            }
            Swept::Closed => ("ticketing.ticket.close", "status"),
        };
        audit::record(
            tx,
            &actor,
            AuditEntry {
                action,
                resource_type: "ticket",
                resource_id: ticket.id,
                changed_fields: &[changed_fields.to_string()],
            },
        )
        .await?;
        match what {
            Swept::Breached(clock) => {
                let payload = events::sla_breached(ticket, clock);
                outbox::enqueue(tx, event(events::SLA_BREACHED, ticket, &payload)).await?;
            }
            Swept::Closed => {
                let payload = events::ticket_changed(ticket, Some(before), SWEEPER, false);
                outbox::enqueue(tx, event(events::STATUS_CHANGED, ticket, &payload)).await?;
            }
        }
    }
    Ok(())
}

/// The size of a download's chunks.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// An attachment's image as a download streams it.
pub type Download = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// Images decoded at once by a replica: each may take a few hundred MiB.
const DECODING: usize = 2;

impl Ticketing {
    /// Decodes and writes an image again off the async threads, at most `DECODING` at a time;
    /// `upload` says whether the image is the caller's (its faults are INVALID_ARGUMENT
    /// `chunk`) or one stored already (whose faults are ours).
    async fn off_thread<F>(&self, upload: bool, work: F) -> Result<Clean>
    where
        F: FnOnce() -> std::result::Result<Clean, String> + Send + 'static,
    {
        let _turn = self.decoding.acquire().await.map_err(Error::internal)?;
        let done = tokio::task::spawn_blocking(work)
            .await
            .map_err(Error::internal)?;
        done.map_err(|reason| match upload {
            true => Error::invalid("chunk", reason),
            false => Error::internal(anyhow::anyhow!("a stored image {reason}")),
        })
    }

    /// Attaches a screenshot to a ticket its submitter or an administrator sees: the image is
    /// read, decoded and written again before anything is stored. Its object is written before
    /// the transaction (no row is locked while the store takes its time), then its row; an
    /// object whose row did not commit is removed.
    pub async fn attach(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        ticket_id: Uuid,
        file_name: String,
        upload: Vec<u8>,
    ) -> Result<pb::TicketAttachment> {
        let clean = self
            .off_thread(true, move || screenshot::clean(&upload))
            .await?;
        let mut attachment = AttachmentRow {
            tenant_id: caller.tenant,
            id: Uuid::now_v7(),
            ticket_id,
            file_name,
            format: clean.format,
            size_bytes: clean.bytes.len() as i64,
            width: clean.width as i32,
            height: clean.height as i32,
            sha256: sha2::Sha256::digest(&clean.bytes).to_vec(),
            object_key: String::new(),
            uploaded_by: caller.principal.user_id.clone(),
            release: Release::Inside,
            released_by: None,
            released_at: None,
            created_at: now(),
        };
        attachment.object_key = object_key(&attachment, "original");
        self.files.put(&attachment.object_key, clean.bytes).await?;
        let stored = async {
            let desk = Desk::Organization(caller);
            let mut tx = self.open(&desk).await?;
            let (ticket, _) = self.visible(&mut tx, &desk, ticket_id, true).await?;
            if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
                return Ok((previous, false));
            }
            let subject = format!("tickets/{ticket_id}");
            if ticket.status == Status::Closed {
                return Err(Error::precondition(
                    TicketingRule::TicketStatus,
                    &subject,
                    "the ticket is CLOSED; nothing is attached to it",
                ));
            }
            if store::count_attachments(tx.conn(), ticket_id).await? >= MAX_ATTACHMENTS {
                return Err(Error::precondition(
                    TicketingRule::AttachmentLimit,
                    &subject,
                    format!("a ticket holds at most {MAX_ATTACHMENTS} attachments"),
                ));
            }
            store::insert_attachment(tx.conn(), &attachment).await?;
            audit::record(
                &mut tx,
                &caller.principal,
                AuditEntry {
                    action: "ticketing.attachment.upload",
                    resource_type: "ticket_attachment",
                    resource_id: attachment.id,
                    changed_fields: &[],
                },
            )
            .await?;
            let reply = crate::convert::attachment_to_proto(&attachment, &[]);
            idempotency::complete(&mut tx, key, &reply).await?;
            tx.commit().await?;
            Ok((reply, true))
        }
        .await;
        match stored {
            Ok((reply, true)) => Ok(reply),
            // A retry answered as the first time: this upload's object is not needed.
            Ok((previous, false)) => {
                self.files.forget(&attachment.object_key).await;
                Ok(previous)
            }
            Err(error) => {
                self.files.forget(&attachment.object_key).await;
                Err(error)
            }
        }
    }

    /// The attachments of a ticket the desk sees (support: released ones), with support's
    /// reads of each.
    pub async fn attachments(
        &self,
        desk: &Desk<'_>,
        ticket_id: Uuid,
    ) -> Result<Vec<pb::TicketAttachment>> {
        let mut tx = self.open(desk).await?;
        self.visible(&mut tx, desk, ticket_id, false).await?;
        let rows = store::attachments(tx.conn(), ticket_id).await?;
        let reads = store::reads(tx.conn(), ticket_id).await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|a| crate::convert::attachment_to_proto(a, &reads))
            .collect())
    }

    /// The attachment `id` as the desk sees it, with its ticket's part for the caller;
    /// NOT_FOUND when the desk does not see it or its ticket.
    async fn visible_attachment(
        &self,
        tx: &mut DeskTx,
        desk: &Desk<'_>,
        id: Uuid,
        lock: bool,
    ) -> Result<(AttachmentRow, Actor)> {
        let attachment = store::attachment(tx.conn(), id, lock)
            .await?
            .ok_or_else(|| Error::not_found("attachment", id))?;
        match self.visible(tx, desk, attachment.ticket_id, false).await {
            Ok((_, actor)) => Ok((attachment, actor)),
            Err(error) if error.code() == tonic::Code::NotFound => {
                Err(Error::not_found("attachment", id))
            }
            Err(error) => Err(error),
        }
    }

    /// An attachment and its image, to whoever sees its ticket (support: a released one); a
    /// read by support is kept, with an audit row, in the attachment's organization before the
    /// image leaves.
    pub async fn download(
        &self,
        desk: &Desk<'_>,
        id: Uuid,
    ) -> Result<(pb::TicketAttachment, Download)> {
        let mut tx = self.open(desk).await?;
        let (attachment, _) = self.visible_attachment(&mut tx, desk, id, false).await?;
        if desk.by_support() {
            let read = AttachmentRead {
                attachment_id: id,
                reader: desk.principal().user_id.clone(),
                read_at: now(),
            };
            store::insert_read(tx.conn(), attachment.tenant_id, &read).await?;
            audit::record(
                &mut tx,
                desk.principal(),
                AuditEntry {
                    action: "ticketing.attachment.read",
                    resource_type: "ticket_attachment",
                    resource_id: id,
                    changed_fields: &[],
                },
            )
            .await?;
        }
        let reads = store::reads(tx.conn(), attachment.ticket_id).await?;
        tx.commit().await?;
        let image = self
            .files
            .stream(&attachment.object_key, DOWNLOAD_CHUNK)
            .await?;
        Ok((
            crate::convert::attachment_to_proto(&attachment, &reads),
            Box::pin(image),
        ))
    }

    /// Lets an attachment go to support, as it is or with `redact` blacked out, for an
    /// administrator of its organization. A redaction is read, drawn and written as a new
    /// object outside any transaction; a short one then records the release if the attachment
    /// is still inside, and the original is removed once it did.
    pub async fn release(
        &self,
        caller: &Caller,
        id: Uuid,
        redact: Vec<Rect>,
    ) -> Result<pb::TicketAttachment> {
        let desk = Desk::Organization(caller);
        let subject = format!("attachments/{id}");
        let already = || {
            Error::precondition(
                TicketingRule::AttachmentRelease,
                &subject,
                "the attachment was released already",
            )
        };
        let (mut attachment, actor) = {
            let mut tx = self.open(&desk).await?;
            let found = self.visible_attachment(&mut tx, &desk, id, false).await?;
            tx.commit().await?;
            found
        };
        if actor != Actor::Administrator {
            return Err(Error::denied(
                Reason::RoleNotPermitted,
                "an administrator of the organization releases attachments",
            ));
        }
        if attachment.release != Release::Inside {
            return Err(already());
        }
        for (i, r) in redact.iter().enumerate() {
            if !screenshot::within(r, attachment.width as u32, attachment.height as u32) {
                return Err(Error::invalid(
                    format!("redact[{i}]"),
                    format!(
                        "is not a rectangle within the image ({} x {} pixels)",
                        attachment.width, attachment.height
                    ),
                ));
            }
        }
        let original = attachment.object_key.clone();
        if redact.is_empty() {
            attachment.release = Release::Confirmed;
        } else {
            let stored = self.files.get(&original).await?;
            let format = attachment.format;
            let clean = self
                .off_thread(false, move || screenshot::redact(&stored, format, &redact))
                .await?;
            attachment.release = Release::Redacted;
            attachment.size_bytes = clean.bytes.len() as i64;
            attachment.sha256 = sha2::Sha256::digest(&clean.bytes).to_vec();
            attachment.object_key = object_key(&attachment, "redacted");
            self.files.put(&attachment.object_key, clean.bytes).await?;
        }
        attachment.released_by = Some(caller.principal.user_id.clone());
        attachment.released_at = Some(now());
        let stored = async {
            let mut tx = self.open(&desk).await?;
            let (now_stored, _) = self.visible_attachment(&mut tx, &desk, id, true).await?;
            if now_stored.release != Release::Inside {
                return Err(already());
            }
            store::update_attachment(tx.conn(), &attachment).await?;
            audit::record(
                &mut tx,
                &caller.principal,
                AuditEntry {
                    action: "ticketing.attachment.release",
                    resource_type: "ticket_attachment",
                    resource_id: id,
                    changed_fields: &["release".to_string()],
                },
            )
            .await?;
            tx.commit().await
        }
        .await;
        let redacted = attachment.object_key != original;
        match stored {
            // The original is gone once the redacted image stands in its place.
            Ok(()) if redacted => self.files.forget(&original).await,
            Ok(()) => {}
            Err(error) => {
                if redacted {
                    self.files.forget(&attachment.object_key).await;
                }
                return Err(error);
            }
        }
        Ok(crate::convert::attachment_to_proto(&attachment, &[]))
    }
}

/// Which sweep.
#[derive(Clone, Copy)]
enum Round {
    ServiceLevels,
    Closing,
}

/// An event of `ticket`'s tenant (the transaction's), its subject the ticket.
fn event<'a, M: prost::Message>(
    event_type: &'a str,
    ticket: &TicketRow,
    payload: &'a M,
) -> Event<'a, M> {
    Event {
        event_type,
        source: events::SOURCE,
        subject: ticket.id.to_string(),
        payload,
    }
}
