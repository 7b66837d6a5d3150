//! The help desk over the whole system: a ticket from its submitter to the organization's
//! administrators and on to the hosting provider's support desk and back, who may take each
//! step, tiers from the matrix and overrides, public and internal notes, events and audit,
//! and the support desk's isolation, which PostgreSQL enforces.

use std::time::Duration;

use prost::Message;
use tonic::Code;

use caseway_api::events::v1 as events_pb;
use caseway_api::ticketing::v1 as pb;
use caseway_integration_tests::{
    TestEnv, TestNode, authed, rule_of, submit_ticket as submit, ticket_submission as submission,
    violated_fields,
};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

async fn get(node: &TestNode, token: &str, id: &str) -> Result<pb::Ticket, tonic::Status> {
    node.ticketing
        .clone()
        .get_ticket(authed(token, pb::GetTicketRequest { id: id.into() }))
        .await
        .map(|r| r.into_inner().ticket.unwrap())
}

async fn note(
    node: &TestNode,
    token: &str,
    ticket: &str,
    visibility: pb::NoteVisibility,
    body: &str,
) -> Result<pb::AddTicketNoteResponse, tonic::Status> {
    node.ticketing
        .clone()
        .add_ticket_note(authed(
            token,
            pb::AddTicketNoteRequest {
                ticket_id: ticket.into(),
                visibility: visibility as i32,
                body: body.into(),
                request_id: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn notes(node: &TestNode, token: &str, ticket: &str) -> Vec<String> {
    node.ticketing
        .clone()
        .list_ticket_notes(authed(
            token,
            pb::ListTicketNotesRequest {
                ticket_id: ticket.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .notes
        .into_iter()
        .map(|n| n.body)
        .collect()
}

async fn escalate(node: &TestNode, admin: &str, id: &str, severity: pb::Severity) -> pb::Ticket {
    node.ticketing
        .clone()
        .escalate_ticket(authed(
            admin,
            pb::EscalateTicketRequest {
                id: id.into(),
                severity: severity as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

fn status(ticket: &pb::Ticket) -> pb::TicketStatus {
    pb::TicketStatus::try_from(ticket.status).unwrap()
}

async fn support_queue(node: &TestNode, support: &str) -> Vec<pb::Ticket> {
    node.ticketing
        .clone()
        .list_support_tickets(authed(support, pb::ListSupportTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tickets
}

#[tokio::test]
async fn a_ticket_goes_from_its_submitter_to_the_administrators_to_support_and_back() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let mut events = env.bus.listen("ticketing.#").await;
    let tenant = node.create_tenant(&env, "help-a").await;
    let ana = env.token_for("ana", tenant, &[Role::Caseworker], &[]);
    let ben = env.token_for("ben", tenant, &[Role::Caseworker], &[]);
    let admin = env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]);
    let support = env.support_token("sam");
    let mut api = node.ticketing.clone();

    // Submitted: the submitter and the administrators see it; another worker and support
    // do not.
    let ticket = submit(&node, &ana, "Quick Services fails").await;
    assert_eq!(status(&ticket), pb::TicketStatus::Submitted);
    assert_eq!(ticket.submitted_by, "ana");
    assert_eq!(
        ticket.context.as_ref().unwrap().trace_id,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let id = ticket.id.clone();
    assert_eq!(get(&node, &admin, &id).await.unwrap().id, id);
    for stranger in [&ben, &support] {
        let refused = get(&node, stranger, &id).await.unwrap_err();
        assert_eq!(refused.code(), Code::NotFound);
    }
    assert!(support_queue(&node, &support).await.is_empty());
    let listed = |token: &str| {
        let mut api = node.ticketing.clone();
        let request = authed(token, pb::ListTicketsRequest::default());
        async move {
            api.list_tickets(request)
                .await
                .unwrap()
                .into_inner()
                .tickets
        }
    };
    assert_eq!(listed(&ana).await.len(), 1);
    assert_eq!(listed(&admin).await.len(), 1);
    assert!(listed(&ben).await.is_empty());

    // The administrator asks; the submitter's public answer brings it back.
    let asked = api
        .ask_submitter(authed(
            &admin,
            pb::AskSubmitterRequest {
                id: id.clone(),
                question: "Which client were you recording for?".into(),
                etag: ticket.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&asked), pb::TicketStatus::WaitingOnUser);
    let stale = api
        .escalate_ticket(authed(
            &admin,
            pb::EscalateTicketRequest {
                id: id.clone(),
                severity: pb::Severity::High as i32,
                etag: ticket.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let answered = note(&node, &ana, &id, pb::NoteVisibility::Public, "Maria Lopez")
        .await
        .unwrap();
    assert_eq!(
        status(answered.ticket.as_ref().unwrap()),
        pb::TicketStatus::Submitted
    );

    // Only an administrator escalates; support then sees it, untriaged.
    let refused = api
        .escalate_ticket(authed(
            &ana,
            pb::EscalateTicketRequest {
                id: id.clone(),
                severity: pb::Severity::High as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let escalated = escalate(&node, &admin, &id, pb::Severity::High).await;
    assert_eq!(status(&escalated), pb::TicketStatus::Escalated);
    assert!(escalated.escalate_time.is_some());
    let queue = support_queue(&node, &support).await;
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0].id.clone(), queue[0].tier), (id.clone(), 0));
    // With support now, it is support's to resolve.
    let resolve = |token: &str, resolution: &str| {
        let mut api = node.ticketing.clone();
        let request = authed(
            token,
            pb::ResolveTicketRequest {
                id: id.clone(),
                resolution: resolution.into(),
                ..Default::default()
            },
        );
        async move { api.resolve_ticket(request).await }
    };
    let refused = resolve(&admin, "done").await.unwrap_err();
    assert_eq!(rule_of(&refused), "ticket_holder");

    // Support triages: the matrix's tier, or another with a reason.
    let start = |token: &str| {
        let mut api = node.ticketing.clone();
        let request = authed(
            token,
            pb::StartTicketWorkRequest {
                id: id.clone(),
                etag: String::new(),
            },
        );
        async move { api.start_ticket_work(request).await }
    };
    let untriaged = start(&support).await.unwrap_err();
    assert_eq!(rule_of(&untriaged), "ticket_status");
    let triage = |tier: i32, reason: &str| {
        let mut api = node.ticketing.clone();
        let request = authed(
            &support,
            pb::TriageTicketRequest {
                id: id.clone(),
                complexity: pb::Complexity::Low as i32,
                priority: pb::Priority::Medium as i32,
                tier,
                tier_override_reason: reason.into(),
                etag: String::new(),
            },
        );
        async move { api.triage_ticket(request).await }
    };
    let triaged = triage(0, "").await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(
        triaged.tier, 2,
        "a HIGH severity goes to tier 2 by the default matrix"
    );
    let refused = triage(1, "").await.unwrap_err();
    assert_eq!(rule_of(&refused), "tier_override");
    let refused = triage(4, "").await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["tier"]);
    let overridden = triage(1, "a known configuration answer")
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(overridden.tier, 1);
    assert_eq!(
        overridden.tier_override_reason,
        "a known configuration answer"
    );

    // Work, a question to the organization, the administrator's answer.
    let working = start(&support).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(status(&working), pb::TicketStatus::InProgress);
    let waiting = api
        .ask_customer(authed(
            &support,
            pb::AskCustomerRequest {
                id: id.clone(),
                question: "Can you send the time it failed?".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&waiting), pb::TicketStatus::WaitingOnCustomer);
    let answered = note(&node, &admin, &id, pb::NoteVisibility::Public, "At 10:42")
        .await
        .unwrap();
    assert_eq!(
        status(answered.ticket.as_ref().unwrap()),
        pb::TicketStatus::InProgress
    );

    // Internal notes are support's alone.
    note(
        &node,
        &support,
        &id,
        pb::NoteVisibility::Internal,
        "Looks like the idempotency key clash",
    )
    .await
    .unwrap();
    let refused = note(&node, &admin, &id, pb::NoteVisibility::Internal, "psst")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let public = [
        "Which client were you recording for?",
        "Maria Lopez",
        "Can you send the time it failed?",
        "At 10:42",
    ];
    assert_eq!(notes(&node, &admin, &id).await, public);
    assert_eq!(notes(&node, &ana, &id).await, public);
    let mut all = public.map(String::from).to_vec();
    all.push("Looks like the idempotency key clash".into());
    assert_eq!(notes(&node, &support, &id).await, all);

    // Support resolves; the submitter reopens, and it returns to support's work.
    let resolved = resolve(&support, "Fixed in 4.2.2")
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&resolved), pb::TicketStatus::Resolved);
    assert_eq!(resolved.resolved_by, "sam");
    let reopened = api
        .reopen_ticket(authed(
            &ana,
            pb::ReopenTicketRequest {
                id: id.clone(),
                reason: "It fails again".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&reopened), pb::TicketStatus::InProgress);

    // Each change was published as the organization's event, and support's are audited in
    // the organization's log.
    let mut seen = Vec::new();
    while let Some((envelope, _)) = events.next(Duration::from_secs(2)).await {
        assert_eq!(envelope.tenant_id, tenant);
        if envelope.event_type == "ticketing.ticket_note_added.v1" {
            let added = events_pb::TicketNoteAdded::decode(envelope.payload.as_slice()).unwrap();
            assert_eq!(added.note.unwrap().ticket_id, id);
        }
        seen.push(envelope.event_type);
    }
    for expected in [
        "ticketing.ticket_submitted.v1",
        "ticketing.ticket_escalated.v1",
        "ticketing.ticket_status_changed.v1",
        "ticketing.ticket_note_added.v1",
    ] {
        assert!(seen.iter().any(|e| e == expected), "{expected} in {seen:?}");
    }
    let mut owner = env.db.owner().await;
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, action FROM platform.audit_log WHERE tenant_id = $1 \
         AND resource_type = 'ticket' ORDER BY id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    for step in ["triage", "start_work", "ask_customer", "resolve"] {
        let action = format!("ticketing.ticket.{step}");
        assert!(
            audited.contains(&("sam".to_string(), action.clone())),
            "{action} by support in {audited:?}"
        );
    }
}

#[tokio::test]
async fn a_submission_is_checked_and_an_administrator_resolves_what_stays_inside() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.create_tenant(&env, "help-b").await;
    let ana = env.token_for("ana", tenant, &[Role::Caseworker], &[]);
    let admin = env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]);
    let mut api = node.ticketing.clone();

    let mut bad = submission("");
    let ticket = bad.ticket.as_mut().unwrap();
    ticket.kind = 0;
    ticket.context.as_mut().unwrap().trace_id = "not-a-trace".into();
    ticket.contact.as_mut().unwrap().email = "ana".into();
    ticket.contact.as_mut().unwrap().preferred = pb::ContactMethod::Phone as i32;
    let refused = api.submit_ticket(authed(&ana, bad)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "ticket.contact.email",
            "ticket.contact.phone",
            "ticket.context.trace_id",
            "ticket.kind",
            "ticket.title",
        ]
    );

    // A retry with the same request_id is the same ticket.
    let mut request = submission("Printer");
    request.request_id = "ticket-1".into();
    let first = api
        .submit_ticket(authed(&ana, request.clone()))
        .await
        .unwrap();
    let again = api.submit_ticket(authed(&ana, request)).await.unwrap();
    assert_eq!(first.into_inner(), again.into_inner());

    let id = submit(&node, &ana, "How do I record a turn-away?").await.id;
    let resolved = api
        .resolve_ticket(authed(
            &admin,
            pb::ResolveTicketRequest {
                id: id.clone(),
                resolution: "Record the service with a turn-away reason.".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&resolved), pb::TicketStatus::Resolved);
    let refused = api
        .escalate_ticket(authed(
            &admin,
            pb::EscalateTicketRequest {
                id: id.clone(),
                severity: pb::Severity::Low as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&refused), "ticket_status");
    // Reopened, it returns to the administrators.
    let reopened = api
        .reopen_ticket(authed(
            &admin,
            pb::ReopenTicketRequest {
                id,
                reason: "One more question".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(status(&reopened), pb::TicketStatus::Submitted);
    assert!(reopened.resolve_time.is_none());
}

/// The rows of `table` a support transaction reads.
async fn count(tx: &mut caseway_platform::SupportTx, table: &str) -> Result<i64, sqlx::Error> {
    let statement = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(statement))
        .fetch_one(tx.conn())
        .await
}

/// Two tenants, each with a ticket kept inside and one escalated with a public and an
/// internal note: what a support agent's transaction sees, in PostgreSQL itself.
#[tokio::test]
async fn support_sees_escalated_tickets_of_every_tenant_and_no_other_row_of_any_table() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let support = env.support_token("sam");
    let mut escalated = Vec::new();
    let mut tenants = Vec::new();
    for slug in ["help-c", "help-d"] {
        let tenant = node.create_tenant(&env, slug).await;
        let ana = env.token_for("ana", tenant, &[Role::Caseworker], &[]);
        let admin = env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]);
        submit(&node, &ana, "kept inside").await;
        let id = submit(&node, &ana, "escalated").await.id;
        escalate(&node, &admin, &id, pb::Severity::Low).await;
        note(&node, &admin, &id, pb::NoteVisibility::Public, "public")
            .await
            .unwrap();
        note(
            &node,
            &support,
            &id,
            pb::NoteVisibility::Internal,
            "internal",
        )
        .await
        .unwrap();
        escalated.push(id);
        tenants.push(tenant);
    }
    let mut queue: Vec<String> = support_queue(&node, &support)
        .await
        .into_iter()
        .map(|t| t.id)
        .collect();
    queue.sort();
    escalated.sort();
    assert_eq!(queue, escalated);

    let db = &env.db.db;
    // Escalated tickets of both tenants and all their notes, acting for no tenant or for one.
    let mut tx = db.support_tx().await.unwrap();
    assert_eq!(count(&mut tx, "ticketing.tickets").await.unwrap(), 2);
    assert_eq!(count(&mut tx, "ticketing.notes").await.unwrap(), 4);
    tx.act_for_tenant(tenants[0]).await.unwrap();
    assert_eq!(count(&mut tx, "ticketing.tickets").await.unwrap(), 2);
    drop(tx);

    // Nothing of any other table of any schema: refused, or no row. (Acting for a tenant, it
    // writes that tenant's ticketing events, and reads back the ids of the ones not yet
    // relayed: the outbox's policy for support holds ticketing events only.)
    let mut owner = env.db.owner().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN \
           ('platform', 'tenancy', 'catalog', 'clients', 'records', 'authorizations', \
            'eligibility', 'ticketing') ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    for table in &tables {
        if table.starts_with("ticketing.") {
            continue;
        }
        for tenant in [None, Some(tenants[0])] {
            if tenant.is_some() && table == "platform.outbox" {
                continue;
            }
            let mut tx = db.support_tx().await.unwrap();
            if let Some(tenant) = tenant {
                tx.act_for_tenant(tenant).await.unwrap();
            }
            match count(&mut tx, table).await {
                Ok(rows) => assert_eq!(rows, 0, "support read {rows} rows of {table}"),
                Err(error) => assert!(
                    error.to_string().contains("permission denied"),
                    "{table}: {error}"
                ),
            }
        }
    }

    // A tenant's own transactions, as the services' role, never read an internal note.
    let mut tx = db.tenant_tx(tenants[0]).await.unwrap();
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM ticketing.notes")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(notes, 1, "the public note only");
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM ticketing.tickets")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(tickets, 2, "its own two tickets, not the other tenant's");
    let _: TenantId = tenants[1];
}

#[tokio::test]
async fn an_administrator_watching_sees_a_support_note_within_a_second_and_nothing_else() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    caseway_test_support::eventually(
        "the watchers' follower",
        Duration::from_secs(10),
        || async {
            match env.bus.bus.followers_of(caseway_ticketing::worker::WATCHED) {
                0 => Err("not bound yet"),
                _ => Ok(()),
            }
        },
    )
    .await;
    let a = node.create_tenant(&env, "watch-a").await;
    let b = node.create_tenant(&env, "watch-b").await;
    let a_admin = env.token_for("lisa", a, &[Role::TenantAdmin], &[]);
    let b_worker = env.token_for("bo", b, &[Role::Caseworker], &[]);
    let support = env.support_token("sam");
    let ticket = submit(&node, &a_admin, "Totals differ").await;
    escalate(&node, &a_admin, &ticket.id, pb::Severity::Medium).await;

    let mut watch = node
        .ticketing
        .clone()
        .watch_tickets(authed(&a_admin, pb::WatchTicketsRequest {}))
        .await
        .unwrap()
        .into_inner();
    // Neither another organization's ticket nor support's internal note reaches A's watcher.
    submit(&node, &b_worker, "B's own").await;
    note(
        &node,
        &support,
        &ticket.id,
        pb::NoteVisibility::Internal,
        "internal",
    )
    .await
    .unwrap();
    let added = note(
        &node,
        &support,
        &ticket.id,
        pb::NoteVisibility::Public,
        "We are on it",
    )
    .await
    .unwrap();
    // The changes of A's ticket made before the watch began may still be on their way; the
    // note arrives within a second, and nothing of B's or internal comes before it.
    let added = added.note.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let seen = loop {
        let seen = tokio::time::timeout_at(deadline, watch.message())
            .await
            .expect("the note reached the watcher within a second")
            .unwrap()
            .unwrap();
        match &seen.change {
            Some(pb::watch_tickets_response::Change::Note(note)) => {
                assert_eq!(note.id, added.id, "only the public note: {note:?}");
                break seen;
            }
            Some(pb::watch_tickets_response::Change::Ticket(t)) => assert_eq!(t.id, ticket.id),
            None => panic!("an empty change"),
        }
    };
    assert!(seen.by_support);
    assert_eq!(seen.changed_by, "sam");

    // A status change by support follows.
    node.ticketing
        .clone()
        .triage_ticket(authed(
            &support,
            pb::TriageTicketRequest {
                id: ticket.id.clone(),
                complexity: pb::Complexity::Low as i32,
                priority: pb::Priority::Low as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match seen.change {
        Some(pb::watch_tickets_response::Change::Ticket(t)) => assert_eq!(t.tier, 1),
        other => panic!("expected the triaged ticket, saw {other:?}"),
    }
    // Watching is for administrators.
    let refused = node
        .ticketing
        .clone()
        .watch_tickets(authed(&b_worker, pb::WatchTicketsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A node with a watcher connected still stops: the watch ends UNAVAILABLE (watch again,
    // elsewhere) instead of holding the drain.
    tokio::time::timeout(Duration::from_secs(30), node.shutdown())
        .await
        .expect("the node stopped with a watcher connected");
    let ended = watch.message().await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);
}

/// A node of every target with `config`'s ticketing settings, a listener of its ticketing
/// events, an organization `slug` with its administrator lisa, and support's sam.
struct SweptDesk {
    node: TestNode,
    events: caseway_test_support::EventListener,
    tenant: TenantId,
    admin: String,
    support: String,
}

async fn swept_desk(
    env: &TestEnv,
    config: caseway_platform::config::Config,
    slug: &str,
) -> SweptDesk {
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let events = env.bus.listen("ticketing.#").await;
    let tenant = node.create_tenant(env, slug).await;
    SweptDesk {
        admin: env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]),
        support: env.support_token("sam"),
        node,
        events,
        tenant,
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    let t = t.as_ref().expect("a time");
    chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

async fn triage(node: &TestNode, support: &str, id: &str, priority: pb::Priority) -> pb::Ticket {
    node.ticketing
        .clone()
        .triage_ticket(authed(
            support,
            pb::TriageTicketRequest {
                id: id.into(),
                complexity: pb::Complexity::Low as i32,
                priority: priority as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

async fn start_work(node: &TestNode, support: &str, id: &str) -> pb::Ticket {
    node.ticketing
        .clone()
        .start_ticket_work(authed(
            support,
            pb::StartTicketWorkRequest {
                id: id.into(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

async fn ask_customer(node: &TestNode, support: &str, id: &str) -> pb::Ticket {
    node.ticketing
        .clone()
        .ask_customer(authed(
            support,
            pb::AskCustomerRequest {
                id: id.into(),
                question: "Which client was it?".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

/// The breaches published for `ticket` within `wait`, by clock.
async fn breaches(
    events: &mut caseway_test_support::EventListener,
    ticket: &str,
    wait: Duration,
) -> Vec<pb::ServiceLevelClock> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some((envelope, _)) = events.next(left).await else {
            return seen;
        };
        if envelope.event_type != "ticketing.sla_breached.v1" {
            continue;
        }
        let breached = events_pb::TicketSlaBreached::decode(envelope.payload.as_slice()).unwrap();
        if breached.ticket.as_ref().unwrap().id == ticket {
            seen.push(pb::ServiceLevelClock::try_from(breached.clock).unwrap());
        }
    }
}

#[tokio::test]
async fn service_levels_stand_still_while_support_waits_and_each_breach_is_published_once() {
    let env = TestEnv::new().await;
    let config = caseway_platform::config::Config {
        ticketing_sla: "*:1s/8s".into(),
        ticketing_sweep_interval: Duration::from_millis(100),
        ..env.config()
    };
    let SweptDesk {
        node,
        mut events,
        tenant,
        admin,
        support,
    } = swept_desk(&env, config, "sla-a").await;

    // Escalated: both clocks run from the escalation, the targets of the policy.
    let ticket = submit(&node, &admin, "Exports time out").await;
    assert!(ticket.service_level.is_none(), "no clock before escalation");
    let escalated = escalate(&node, &admin, &ticket.id, pb::Severity::High).await;
    let id = escalated.id.clone();
    let level = escalated.service_level.unwrap();
    let at = time(&escalated.escalate_time);
    assert_eq!(
        time(&level.first_response_due_time),
        at + chrono::Duration::seconds(1)
    );
    assert_eq!(
        time(&level.resolution_due_time),
        at + chrono::Duration::seconds(8)
    );

    // Nobody answers within a second: the first response is breached, once.
    assert_eq!(
        breaches(&mut events, &id, Duration::from_millis(2500)).await,
        [pb::ServiceLevelClock::FirstResponse]
    );
    let breached = get(&node, &admin, &id).await.unwrap();
    let level = breached.service_level.unwrap();
    assert!(level.first_response_breach_time.is_some());
    assert!(level.resolution_breach_time.is_none());
    assert!(
        breached.etag != escalated.etag,
        "a breach changes the ticket"
    );

    // Support works it and asks the organization: the clocks stand still (the question is its
    // first response), and no breach comes while they do, long past the resolution's due time.
    triage(&node, &support, &id, pb::Priority::High).await;
    start_work(&node, &support, &id).await;
    let waiting = ask_customer(&node, &support, &id).await;
    let level = waiting.service_level.unwrap();
    assert!(level.first_response_time.is_some());
    let paused_at = time(&level.pause_time);
    let due_before = time(&level.resolution_due_time);
    let waited = chrono::Utc::now();
    assert!(
        breaches(&mut events, &id, Duration::from_secs(7))
            .await
            .is_empty()
    );
    assert!(
        chrono::Utc::now() > due_before,
        "{waited} waited past the due time"
    );
    let still = get(&node, &support, &id)
        .await
        .unwrap()
        .service_level
        .unwrap();
    assert!(still.resolution_breach_time.is_none());

    // The administrator answers: the clocks go on, the resolution due later by the time they
    // stood still, and it is breached once that has run out.
    let answered = note(
        &node,
        &admin,
        &id,
        pb::NoteVisibility::Public,
        "Client 1042",
    )
    .await
    .unwrap()
    .ticket
    .unwrap();
    assert_eq!(status(&answered), pb::TicketStatus::InProgress);
    let level = answered.service_level.unwrap();
    assert!(level.pause_time.is_none());
    let resumed_at = time(&answered.update_time);
    assert_eq!(
        time(&level.resolution_due_time),
        due_before + (resumed_at - paused_at)
    );
    assert_eq!(
        breaches(&mut events, &id, Duration::from_secs(10)).await,
        [pb::ServiceLevelClock::Resolution]
    );
    let level = get(&node, &support, &id)
        .await
        .unwrap()
        .service_level
        .unwrap();
    assert!(time(&level.resolution_breach_time) >= time(&level.resolution_due_time));

    // Each breach is in the organization's audit log, by the sweeper.
    let mut owner = env.db.owner().await;
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM platform.audit_log WHERE tenant_id = $1 \
         AND action = 'ticketing.ticket.sla_breach' ORDER BY occurred_at",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(audited, [caseway_ticketing::service::SWEEPER; 2]);
}

#[tokio::test]
async fn the_support_queue_puts_what_is_due_soonest_first_and_waiting_tickets_last() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let a = node.create_tenant(&env, "queue-a").await;
    let b = node.create_tenant(&env, "queue-b").await;
    let a_admin = env.token_for("lisa", a, &[Role::TenantAdmin], &[]);
    let b_admin = env.token_for("bea", b, &[Role::TenantAdmin], &[]);
    let support = env.support_token("sam");
    let first = submit(&node, &a_admin, "First").await;
    escalate(&node, &a_admin, &first.id, pb::Severity::Medium).await;
    let second = submit(&node, &b_admin, "Second").await;
    escalate(&node, &b_admin, &second.id, pb::Severity::Medium).await;
    for id in [&first.id, &second.id] {
        triage(&node, &support, id, pb::Priority::Medium).await;
    }
    let ids = |queue: Vec<pb::Ticket>| queue.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(support_queue(&node, &support).await),
        [first.id.clone(), second.id.clone()]
    );
    // The first waits on its organization: its clocks stand still, it goes after the second.
    start_work(&node, &support, &first.id).await;
    ask_customer(&node, &support, &first.id).await;
    assert_eq!(
        ids(support_queue(&node, &support).await),
        [second.id.clone(), first.id.clone()]
    );
    // A ticket of a higher priority in the same tier goes before both, whatever its due time.
    let third = submit(&node, &a_admin, "Third").await;
    escalate(&node, &a_admin, &third.id, pb::Severity::Low).await;
    assert_eq!(
        triage(&node, &support, &third.id, pb::Priority::High)
            .await
            .tier,
        1
    );
    let queue = support_queue(&node, &support).await;
    assert_eq!(queue[0].id, third.id);
    // Page by page, the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = node
            .ticketing
            .clone()
            .list_support_tickets(authed(
                &support,
                pb::ListSupportTicketsRequest {
                    page_size: 1,
                    page_token: token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.tickets.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, ids(queue));

    // Text narrows both queues, in any case; a wildcard is only itself.
    let found = |token: &str, text: &str, support: bool| {
        let mut api = node.ticketing.clone();
        let (token, text) = (token.to_string(), text.to_string());
        async move {
            let tickets = if support {
                api.list_support_tickets(authed(
                    &token,
                    pb::ListSupportTicketsRequest {
                        text,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .tickets
            } else {
                api.list_tickets(authed(
                    &token,
                    pb::ListTicketsRequest {
                        text,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .tickets
            };
            tickets.into_iter().map(|t| t.title).collect::<Vec<_>>()
        }
    };
    assert_eq!(found(&support, "tHIRD", true).await, ["Third"]);
    assert_eq!(found(&a_admin, "first", false).await, ["First"]);
    assert!(
        found(&a_admin, "second", false).await.is_empty(),
        "B's ticket"
    );
    assert!(found(&support, "%", true).await.is_empty());
    assert_eq!(found(&support, "", true).await.len(), 3);
}

#[tokio::test]
async fn a_resolved_ticket_closes_after_the_configured_days_and_is_never_reopened() {
    let env = TestEnv::new().await;
    let config = caseway_platform::config::Config {
        ticketing_close_after_days: 3,
        ticketing_sweep_interval: Duration::from_millis(100),
        ..env.config()
    };
    let SweptDesk {
        node,
        mut events,
        tenant: _,
        admin,
        ..
    } = swept_desk(&env, config, "close-a").await;
    let resolve = |id: String| {
        let mut api = node.ticketing.clone();
        let request = authed(
            &admin,
            pb::ResolveTicketRequest {
                id,
                resolution: "Answered in the guide".into(),
                ..Default::default()
            },
        );
        async move { api.resolve_ticket(request).await.unwrap() }
    };
    let old = submit(&node, &admin, "Old").await;
    let recent = submit(&node, &admin, "Recent").await;
    resolve(old.id.clone()).await;
    resolve(recent.id.clone()).await;
    // The first was resolved four days ago (as if), the second two.
    let mut owner = env.db.owner().await;
    for (id, days) in [(&old.id, 4), (&recent.id, 2)] {
        sqlx::query(
            "UPDATE ticketing.tickets SET resolved_at = now() - make_interval(days => $2) \
             WHERE id = $1::uuid",
        )
        .bind(id)
        .bind(days)
        .execute(&mut owner)
        .await
        .unwrap();
    }
    // Its resolution's event came first; then the closing, by the sweeper.
    let (changed, closed) = loop {
        let (envelope, _) = events
            .expect(
                "ticketing.ticket_status_changed.v1",
                Duration::from_secs(10),
            )
            .await;
        let changed = events_pb::TicketChanged::decode(envelope.payload.as_slice()).unwrap();
        let ticket = changed.ticket.clone().unwrap();
        if status(&ticket) == pb::TicketStatus::Closed {
            break (changed, ticket);
        }
    };
    assert_eq!(closed.id, old.id);
    assert_eq!(status(&closed), pb::TicketStatus::Closed);
    assert!(closed.close_time.is_some());
    assert_eq!(changed.changed_by, caseway_ticketing::service::SWEEPER);
    assert_eq!(
        status(&get(&node, &admin, &recent.id).await.unwrap()),
        pb::TicketStatus::Resolved
    );
    // Closed is final.
    let refused = node
        .ticketing
        .clone()
        .reopen_ticket(authed(
            &admin,
            pb::ReopenTicketRequest {
                id: old.id.clone(),
                reason: "Again".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&refused), "ticket_status");
    // A list of closed tickets finds it.
    let listed = node
        .ticketing
        .clone()
        .list_tickets(authed(
            &admin,
            pb::ListTicketsRequest {
                statuses: vec![pb::TicketStatus::Closed as i32],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .tickets;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, old.id);
}

#[tokio::test]
async fn an_answer_after_the_due_time_is_a_breach_though_the_sweep_has_not_come_by() {
    let env = TestEnv::new().await;
    let config = caseway_platform::config::Config {
        ticketing_sla: "*:1s/1h".into(),
        // The sweep looks once, at start, before any ticket: only the answer can see it late.
        ticketing_sweep_interval: Duration::from_secs(3600),
        ..env.config()
    };
    let SweptDesk {
        node,
        mut events,
        tenant: _,
        admin,
        support,
    } = swept_desk(&env, config, "late-a").await;
    let ticket = submit(&node, &admin, "Reports are slow").await;
    escalate(&node, &admin, &ticket.id, pb::Severity::Low).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered = note(
        &node,
        &support,
        &ticket.id,
        pb::NoteVisibility::Public,
        "Looking at it now",
    )
    .await
    .unwrap()
    .ticket
    .unwrap();
    let level = answered.service_level.unwrap();
    assert!(level.first_response_time.is_some());
    assert!(
        time(&level.first_response_breach_time) > time(&level.first_response_due_time),
        "answered late, so breached: {level:?}"
    );
    assert_eq!(
        breaches(&mut events, &ticket.id, Duration::from_secs(3)).await,
        [pb::ServiceLevelClock::FirstResponse]
    );
}
