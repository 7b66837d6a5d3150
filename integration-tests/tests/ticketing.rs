//! The help desk over the whole system: a ticket from its submitter to the organization's
//! administrators and on to the hosting provider's support desk and back, who may take each
//! step, tiers from the matrix and overrides, public and internal notes, events and audit,
//! and the support desk's isolation, which PostgreSQL enforces.

use std::time::Duration;

use prost::Message;
use tonic::Code;

use caseway_api::events::v1 as events_pb;
use caseway_api::ticketing::v1 as pb;
use caseway_integration_tests::{TestEnv, TestNode, authed, rule_of, violated_fields};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

fn submission(title: &str) -> pb::SubmitTicketRequest {
    pb::SubmitTicketRequest {
        request_id: String::new(),
        ticket: Some(pb::Ticket {
            kind: pb::TicketKind::Issue as i32,
            title: title.into(),
            description: "Saving Quick Services fails with an error.".into(),
            context: Some(pb::TicketContext {
                area: "Services > Quick Services".into(),
                rpc: "caseway.records.v1.RecordsService/RecordQuickServices".into(),
                trace_id: "4BF92F3577B34DA6A3CE929D0E0E4736".into(),
                client_application: "caseway-web".into(),
                client_version: "4.2.1".into(),
                ..Default::default()
            }),
            contact: Some(pb::TicketContact {
                name: "Ana Case".into(),
                email: "ana@example.org".into(),
                preferred: pb::ContactMethod::Email as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn submit(node: &TestNode, token: &str, title: &str) -> pb::Ticket {
    node.ticketing
        .clone()
        .submit_ticket(authed(token, submission(title)))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

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
