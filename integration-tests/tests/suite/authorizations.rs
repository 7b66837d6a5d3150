//! Service authorizations over real gRPC, PostgreSQL and RabbitMQ: plans from a recurrence,
//! the approval workflow with separation of duties, the drawdown by recorded services under
//! 64 concurrent recordings, deletes and redelivered events, the closing worker, and tenant
//! isolation.

use std::time::Duration;

use tonic::Code;
use uuid::Uuid;

use caseway_api::authorizations::v1 as pb;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::records::v1 as records_pb;
use caseway_integration_tests::tenants::{authorizations_tenant, utilization};
use caseway_integration_tests::{
    TestEnv, TestNode, authed, date, reason, record_update, row_status, rule_of, violated_fields,
};
use caseway_platform::access::HOLD_UNITS;
use caseway_test_support::eventually;

async fn create(
    node: &TestNode,
    token: &str,
    authorization: pb::Authorization,
) -> Result<pb::Authorization, tonic::Status> {
    node.fixtures(token).authorization(authorization).await
}

async fn approve(
    node: &TestNode,
    token: &str,
    id: &str,
) -> Result<pb::Authorization, tonic::Status> {
    node.authorizations
        .clone()
        .approve_authorization(authed(
            token,
            pb::ApproveAuthorizationRequest {
                id: id.into(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().authorization.unwrap())
}

/// Waits until the utilization satisfies `ready` (the records' events arrive through
/// RabbitMQ); panics after 10 s showing the last one.
async fn utilization_when(
    node: &TestNode,
    token: &str,
    id: &str,
    ready: impl Fn(&pb::Utilization) -> bool,
) -> pb::Utilization {
    eventually(
        "the utilization following",
        Duration::from_secs(10),
        || async {
            let u = utilization(node, token, id).await;
            if ready(&u) { Ok(u) } else { Err(u) }
        },
    )
    .await
}

async fn record(
    node: &TestNode,
    token: &str,
    request_id: &str,
    record: records_pb::ServiceRecord,
) -> Result<records_pb::ServiceRecord, tonic::Status> {
    node.records
        .clone()
        .record_service(authed(
            token,
            records_pb::RecordServiceRequest {
                request_id: request_id.into(),
                record: Some(record),
            },
        ))
        .await
        .map(|r| r.into_inner().record.unwrap())
}

#[tokio::test]
async fn an_authorization_is_planned_from_its_recurrence_and_checked() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("authorizations.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-plan").await;

    // Mondays and Thursdays of March 2026, two sessions each.
    let created = create(&node, &f.worker, f.plan("FREQ=WEEKLY;BYDAY=MO,TH", "2"))
        .await
        .unwrap();
    assert_eq!(created.status, pb::AuthorizationStatus::Pending as i32);
    assert_eq!(created.requested_by, "ana");
    assert_eq!(
        created.unit_of_measure,
        catalog_pb::UnitOfMeasure::Count as i32
    );
    assert_eq!(created.unit_value, "45", "defaults from the catalog");
    let days: Vec<i32> = created.occurrences.iter().map(|d| d.day).collect();
    assert_eq!(days, [2, 5, 9, 12, 16, 19, 23, 26, 30]);
    assert_eq!(created.occurrence_count, 9);
    assert_eq!(created.authorized_units, "18");
    assert_eq!(created.authorized_value, "810");
    let (envelope, _) = events
        .expect(
            "authorizations.authorization_requested.v1",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(envelope.subject, created.id);
    assert_eq!(envelope.tenant_id, f.tenant);

    // The last Friday of each month, with its own unit value; stored canonically.
    let mut plan = f.plan("rrule:freq=monthly;byday=-1fr", "1");
    plan.begin_date = Some(date(2026, 1, 1));
    plan.end_date = Some(date(2026, 6, 30));
    plan.unit_value = "50.00".into();
    let monthly = create(&node, &f.worker, plan).await.unwrap();
    assert_eq!(monthly.recurrence, "FREQ=MONTHLY;BYDAY=-1FR");
    let days: Vec<(i32, i32)> = monthly
        .occurrences
        .iter()
        .map(|d| (d.month, d.day))
        .collect();
    assert_eq!(days, [(1, 30), (2, 27), (3, 27), (4, 24), (5, 29), (6, 26)]);
    assert_eq!(monthly.authorized_value, "300");

    // The same request id again: one authorization.
    let request = pb::CreateAuthorizationRequest {
        request_id: "plan-1".into(),
        authorization: Some(f.plan("FREQ=DAILY;COUNT=3", "1")),
    };
    let first = node
        .authorizations
        .clone()
        .create_authorization(authed(&f.worker, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = node
        .authorizations
        .clone()
        .create_authorization(authed(&f.worker, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let listed = node
        .authorizations
        .clone()
        .list_client_authorizations(authed(
            &f.worker,
            pb::ListClientAuthorizationsRequest {
                client_id: f.maria.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorizations;
    assert_eq!(listed.len(), 3);

    // Every refusal names its field and the rule.
    let refused = |plan: pb::Authorization, token: String| {
        let node = &node;
        async move {
            let status = create(node, &token, plan).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            (violated_fields(&status), status.message().to_string())
        }
    };
    let mut plan = f.plan("FREQ=YEARLY", "1");
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.recurrence"]);
    assert!(
        message.contains("FREQ=YEARLY is not supported"),
        "{message}"
    );
    plan.recurrence = "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1".into();
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.recurrence"]);
    assert!(message.contains("BYSETPOS is not supported"), "{message}");
    plan.recurrence = "FREQ=WEEKLY;BYDAY=TU;COUNT=6".into();
    let (_, message) = refused(plan.clone(), f.worker.clone()).await;
    assert!(message.contains("COUNT=6 does not fit"), "{message}");
    plan.recurrence = "FREQ=WEEKLY;UNTIL=20260430".into();
    let (_, message) = refused(plan.clone(), f.worker.clone()).await;
    assert!(message.contains("after the end date"), "{message}");
    let mut plan = f.plan("FREQ=WEEKLY", "1.5");
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.units_per_occurrence"]);
    assert!(message.contains("whole"), "{message}");
    // Totals too large to store, a unit value finer than cents, a rule that is not ASCII.
    plan.units_per_occurrence = "999999999999".into();
    plan.recurrence = "FREQ=DAILY".into();
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.units_per_occurrence"]);
    assert!(message.contains("more than can be stored"), "{message}");
    plan.units_per_occurrence = "1".into();
    plan.unit_value = "12.345".into();
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.unit_value"]);
    assert!(message.contains("at most 2 decimal places"), "{message}");
    plan.unit_value = String::new();
    plan.recurrence = "FREQ=WEEKLY;BYDAY=MÖ".into();
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.recurrence"]);
    assert!(message.contains("outside ASCII"), "{message}");
    plan.recurrence = "FREQ=WEEKLY".into();
    plan.grant_id = f.old_grant.clone();
    let (fields, message) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.grant_id"]);
    assert!(message.contains("does not cover"), "{message}");
    plan.grant_id = f.grant.clone();
    plan.end_date = Some(date(2026, 2, 1));
    let (fields, _) = refused(plan.clone(), f.worker.clone()).await;
    assert_eq!(fields, ["authorization.end_date"]);
    let mut plan = f.plan("FREQ=WEEKLY", "1");
    plan.client_id = Uuid::now_v7().to_string();
    plan.reason_id = f.goal.clone();
    let (fields, _) = refused(plan, f.worker.clone()).await;
    assert_eq!(
        fields,
        ["authorization.client_id", "authorization.reason_id"]
    );
    let mut plan = f.plan("FREQ=WEEKLY", "1");
    plan.service_id = f.north_only.clone();
    // The catalog does not show SOUTH a service of NORTH's.
    let (fields, _) = refused(plan, f.south_worker.clone()).await;
    assert_eq!(fields, ["authorization.service_id"]);
    let mut plan = f.plan("", "");
    plan.begin_date = None;
    let (fields, _) = refused(plan, f.worker.clone()).await;
    assert_eq!(
        fields,
        [
            "authorization.recurrence",
            "authorization.units_per_occurrence",
            "authorization.begin_date"
        ]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn the_workflow_separates_duties_and_allows_edits_only_while_pending() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("authorizations.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-flow").await;
    let mut api = node.authorizations.clone();

    // Requested by supervisor bo: bo may not decide it, a case worker may not either.
    let created = create(&node, &f.bo, f.plan("FREQ=WEEKLY;BYDAY=MO", "1"))
        .await
        .unwrap();
    let status = approve(&node, &f.bo, &created.id).await.unwrap_err();
    assert_eq!(rule_of(&status), "separation_of_duties");
    assert!(
        status
            .message()
            .contains("must not be a person who requested or changed its plan")
    );
    let status = api
        .deny_authorization(authed(
            &f.bo,
            pb::DenyAuthorizationRequest {
                id: created.id.clone(),
                etag: String::new(),
                reason: "no".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "separation_of_duties");
    let status = approve(&node, &f.worker, &created.id).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Edits while Pending, with the etag; a stale etag is refused.
    let update = |etag: &str, units: &str| pb::UpdateAuthorizationRequest {
        authorization: Some(pb::Authorization {
            id: created.id.clone(),
            etag: etag.into(),
            units_per_occurrence: units.into(),
            recurrence: "FREQ=WEEKLY;BYDAY=MO,WE".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["units_per_occurrence".into(), "recurrence".into()],
        }),
    };
    let edited = api
        .update_authorization(authed(&f.worker, update(&created.etag, "2")))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    assert_eq!(edited.occurrence_count, 9);
    assert_eq!(edited.authorized_units, "18");
    let (envelope, _) = events
        .expect(
            "authorizations.authorization_updated.v1",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(envelope.subject, created.id);
    let status = api
        .update_authorization(authed(&f.worker, update(&created.etag, "3")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);

    // Approved by cy, with the etag of what cy read.
    let approved = api
        .approve_authorization(authed(
            &f.cy,
            pb::ApproveAuthorizationRequest {
                id: created.id.clone(),
                etag: edited.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    assert_eq!(approved.status, pb::AuthorizationStatus::Approved as i32);
    assert_eq!(approved.decided_by, "cy");
    assert!(approved.decide_time.is_some());
    let (envelope, _) = events
        .expect(
            "authorizations.authorization_approved.v1",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(envelope.subject, created.id);

    // No edits, no second decision after approval.
    let status = api
        .update_authorization(authed(&f.worker, update("", "3")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_pending");
    assert!(status.message().contains("Approved"));
    let status = approve(&node, &f.cy, &created.id).await.unwrap_err();
    assert_eq!(rule_of(&status), "authorization_status");

    // Approved -> Closed; nothing after that.
    let closed = api
        .close_authorization(authed(
            &f.admin,
            pb::CloseAuthorizationRequest {
                id: created.id.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    assert_eq!(closed.status, pb::AuthorizationStatus::Closed as i32);
    events
        .expect(
            "authorizations.authorization_closed.v1",
            Duration::from_secs(10),
        )
        .await;
    let cancel = |id: &str, reason: &str| pb::CancelAuthorizationRequest {
        id: id.into(),
        etag: String::new(),
        reason: reason.into(),
        ..Default::default()
    };
    let status = api
        .cancel_authorization(authed(&f.cy, cancel(&created.id, "moved away")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_status");

    // Denied with a reason (required), and cancelled.
    let second = create(&node, &f.worker, f.plan("FREQ=WEEKLY", "1"))
        .await
        .unwrap();
    let deny = |reason: &str| pb::DenyAuthorizationRequest {
        id: second.id.clone(),
        etag: String::new(),
        reason: reason.into(),
        ..Default::default()
    };
    let status = api
        .deny_authorization(authed(&f.bo, deny("")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reason"]);
    let denied = api
        .deny_authorization(authed(&f.bo, deny("Not eligible for this fund")))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    assert_eq!(denied.status, pb::AuthorizationStatus::Denied as i32);
    assert_eq!(denied.decision_reason, "Not eligible for this fund");
    let third = create(&node, &f.worker, f.plan("FREQ=WEEKLY", "1"))
        .await
        .unwrap();
    let cancelled = api
        .cancel_authorization(authed(&f.bo, cancel(&third.id, "moved away")))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    assert_eq!(cancelled.status, pb::AuthorizationStatus::Cancelled as i32);

    // Every transition is in the history, newest first.
    let history = api
        .list_authorization_history(authed(
            &f.worker,
            pb::ListAuthorizationHistoryRequest {
                authorization_id: created.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("authorizations.authorization.closed", "admin"),
            ("authorizations.authorization.approved", "cy"),
            ("authorizations.authorization.updated", "ana"),
            ("authorizations.authorization.requested", "bo"),
        ]
    );
    assert_eq!(
        history[2].changed_fields,
        ["units_per_occurrence", "recurrence"]
    );

    // The client's list, filtered and paged.
    let list = |statuses: Vec<i32>, page_size: i32, page_token: String| {
        let mut api = api.clone();
        let request = pb::ListClientAuthorizationsRequest {
            client_id: f.maria.clone(),
            statuses,
            page_size,
            page_token,
            ..Default::default()
        };
        let token = f.worker.clone();
        async move {
            api.list_client_authorizations(authed(&token, request))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let page = list(vec![], 2, String::new()).await;
    assert_eq!(page.authorizations.len(), 2);
    assert_eq!(page.authorizations[0].id, third.id, "newest first");
    let rest = list(vec![], 2, page.next_page_token.clone()).await;
    assert_eq!(rest.authorizations.len(), 1);
    assert_eq!(rest.authorizations[0].id, created.id);
    assert!(rest.next_page_token.is_empty());
    let denied_only = list(
        vec![pb::AuthorizationStatus::Denied as i32],
        0,
        String::new(),
    )
    .await;
    assert_eq!(denied_only.authorizations.len(), 1);
    assert_eq!(denied_only.authorizations[0].id, second.id);
    node.shutdown().await;
}

#[tokio::test]
async fn sixty_four_parallel_recordings_never_overspend_an_authorization() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-race").await;
    // Ten Mondays-to-Fridays... ten weekdays of two sessions: 20 units.
    let authorization = f
        .approved(&node, "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=10", "2")
        .await;
    assert_eq!(authorization.authorized_units, "20");

    // 64 workers record 3 sessions each at once: 6 fit (18 units), 58 do not.
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let node_records = node.records.clone();
            let token = f.worker.clone();
            let session = f.session(&authorization.id, "3", 2 + (i % 10));
            tokio::spawn(async move {
                node_records
                    .clone()
                    .record_service(authed(
                        &token,
                        records_pb::RecordServiceRequest {
                            request_id: format!("race-{i}"),
                            record: Some(session),
                        },
                    ))
                    .await
                    .map(|r| r.into_inner().record.unwrap())
            })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, call) in calls.into_iter().enumerate() {
        match call.await.unwrap() {
            Ok(record) => accepted.push((i, record)),
            Err(status) => {
                assert_eq!(rule_of(&status), "authorization_units_remaining");
                assert!(
                    status
                        .message()
                        .contains("has 2 units remaining; 3 were asked"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    assert_eq!(accepted.len(), 6, "exactly what the authorization covers");
    assert_eq!(refused, 58);

    // Every accepted call counted once, through the records' events.
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "18" && u.held_units == "0"
    })
    .await;
    assert_eq!(u.service_record_count, 6);
    assert_eq!(u.remaining_units, "2");
    assert_eq!(u.delivered_value, "810");
    assert_eq!(u.remaining_value, "90");

    // A retried accepted call is answered from the first result and draws nothing more.
    let (i, first) = &accepted[0];
    let retried = record(
        &node,
        &f.worker,
        &format!("race-{i}"),
        f.session(&authorization.id, "3", 2 + (*i as u32 % 10)),
    )
    .await
    .unwrap();
    assert_eq!(retried.id, first.id);
    // The last 2 units still go to a new record, and then nothing does.
    record(&node, &f.worker, "", f.session(&authorization.id, "2", 20))
        .await
        .unwrap();
    let status = record(&node, &f.worker, "", f.session(&authorization.id, "1", 20))
        .await
        .unwrap_err();
    assert!(status.message().contains("has 0 units remaining"));
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "20"
    })
    .await;
    assert_eq!(u.remaining_units, "0");
    assert_eq!(u.service_record_count, 7);
    node.shutdown().await;
}

#[tokio::test]
async fn deletes_give_units_back_and_redelivered_events_change_nothing() {
    let env = TestEnv::new().await;
    let mut record_events = env.bus.listen("records.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-delete").await;
    // Weekly on Monday in March 2026: 5 Mondays x 2 = 10 units.
    let authorization = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;

    let first = record(&node, &f.worker, "", f.session(&authorization.id, "4", 2))
        .await
        .unwrap();
    let (recorded, _) = record_events
        .expect("records.service_recorded.v1", Duration::from_secs(10))
        .await;
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "4"
    })
    .await;
    assert_eq!(u.remaining_units, "6");
    // Planned against delivered per occurrence: 4 on the first Monday, nothing since.
    let per: Vec<(i32, &str, &str)> = u
        .occurrences
        .iter()
        .map(|o| {
            (
                o.date.as_ref().unwrap().day,
                o.delivered_units.as_str(),
                o.variance_units.as_str(),
            )
        })
        .collect();
    assert_eq!(
        per,
        [
            (2, "4", "2"),
            (9, "0", "-2"),
            (16, "0", "-2"),
            (23, "0", "-2"),
            (30, "0", "-2")
        ]
    );

    // The same event delivered again (as RabbitMQ does after a lost ack): counted once. A
    // later recording's event comes after it on the queue, so once that one shows, the
    // duplicate was handled.
    env.bus
        .bus
        .publish_confirmed(std::slice::from_ref(&recorded))
        .await
        .unwrap();
    record(&node, &f.worker, "", f.session(&authorization.id, "1", 9))
        .await
        .unwrap();
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.service_record_count == 2
    })
    .await;
    assert_eq!(u.delivered_units, "5");

    // A change of units moves the drawdown; more than remains is refused.
    let mut records_api = node.records.clone();
    let update = |units: &str, etag: &str| {
        record_update(
            records_pb::ServiceRecord {
                id: first.id.clone(),
                etag: etag.into(),
                units: units.into(),
                ..Default::default()
            },
            &["units"],
        )
    };
    let status = records_api
        .update_service_record(authed(&f.worker, update("10", "")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_units_remaining");
    assert!(
        status.message().contains("has 9 units remaining"),
        "{}",
        status.message()
    );
    records_api
        .update_service_record(authed(&f.worker, update("6", &first.etag)))
        .await
        .unwrap();
    utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "7" && u.remaining_units == "3"
    })
    .await;
    // Two changes of the record at once from the same version: one is stored, the other
    // is told the record changed, and what is drawn is the stored one's units with nothing
    // left held.
    let mut last = "";
    for round in 0..5 {
        let current = records_api
            .get_service_record(authed(
                &f.worker,
                records_pb::GetServiceRecordRequest {
                    id: first.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        // Two new unit counts (a change to what is stored already would be no change).
        let mut counts: Vec<&str> = ["2", "3", "5", "8"]
            .into_iter()
            .filter(|u| *u != current.units)
            .take(2)
            .collect();
        if round % 2 == 1 {
            counts.reverse();
        }
        let (units_one, units_two) = (counts[0], counts[1]);
        let (mut one, mut two) = (records_api.clone(), records_api.clone());
        let (a, b) = tokio::join!(
            one.update_service_record(authed(&f.worker, update(units_one, &current.etag))),
            two.update_service_record(authed(&f.worker, update(units_two, &current.etag))),
        );
        let (winner, lost) = match (a, b) {
            (Ok(_), Err(lost)) => (units_one, lost),
            (Err(lost), Ok(_)) => (units_two, lost),
            other => panic!("one change is stored: {other:?}"),
        };
        assert_eq!(lost.code(), Code::Aborted, "{lost:?}");
        last = winner;
    }
    let current = records_api
        .get_service_record(authed(
            &f.worker,
            records_pb::GetServiceRecordRequest {
                id: first.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(current.units, last);
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.held_units == "0"
            && u.delivered_units == (current.units.parse::<i32>().unwrap() + 1).to_string()
    })
    .await;
    assert_eq!(u.service_record_count, 2);
    // Back to 6 units for what follows.
    let updated = records_api
        .update_service_record(authed(&f.worker, update("6", &current.etag)))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "7" && u.remaining_units == "3" && u.held_units == "0"
    })
    .await;

    // Deleting gives the units back.
    records_api
        .delete_service_record(authed(
            &f.bo,
            records_pb::DeleteServiceRecordRequest {
                id: first.id.clone(),
                etag: updated.etag.clone(),
                reason: "entered twice".into(),
            },
        ))
        .await
        .unwrap();
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "1"
    })
    .await;
    assert_eq!(u.remaining_units, "9");
    assert_eq!(u.service_record_count, 1);
    // The deleted record's first event again, under a new event id (the inbox cannot tell):
    // its record version is older than the delete's, so nothing is drawn for it.
    let mut replay = recorded.clone();
    replay.id = Uuid::now_v7();
    env.bus.bus.publish_confirmed(&[replay]).await.unwrap();
    record(&node, &f.worker, "", f.session(&authorization.id, "1", 16))
        .await
        .unwrap();
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.service_record_count == 2
    })
    .await;
    assert_eq!(u.delivered_units, "2", "an older version changes nothing");

    // With no inbox, the drawdown itself leaves a purged tenant's late events alone: while
    // the tenant is marked purged its authorizations count as not there.
    let authorization_id =
        caseway_platform::AuthorizationId(Uuid::parse_str(&authorization.id).unwrap());
    let mut owner = env.db.owner().await;
    let purged = |at: &'static str| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenancy.tenants SET purged_at = {at} WHERE id = $1"
        )))
        .bind(f.tenant.as_uuid())
    };
    let lock = || async {
        let mut tx = env.db.db.tenant_tx(f.tenant).await.unwrap();
        caseway_authorizations::store::lock_draw(
            tx.conn(),
            authorization_id,
            caseway_platform::RecordId::new(),
        )
        .await
        .unwrap()
    };
    assert!(lock().await.is_some(), "an authorization of the tenant");
    purged("now()").execute(&mut owner).await.unwrap();
    assert!(lock().await.is_none(), "none while the tenant is purged");
    purged("NULL").execute(&mut owner).await.unwrap();
    node.shutdown().await;
}

/// Copies of one change of a record that arrive together (a redelivery overlapping the first
/// delivery, on the same replica or another) count once: each applies under the
/// authorization's lock and reads the record's draw only once it holds it, so the copies that
/// waited see what the first wrote and settle nothing more.
#[tokio::test]
async fn copies_of_one_record_event_applied_at_once_count_once() {
    use prost::Message;

    let env = TestEnv::new().await;
    let mut record_events = env.bus.listen("records.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-copies").await;
    let authorization = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    record(&node, &f.worker, "", f.session(&authorization.id, "4", 2))
        .await
        .unwrap();
    let (recorded, _) = record_events
        .expect("records.service_recorded.v1", Duration::from_secs(10))
        .await;
    utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "4"
    })
    .await;

    // The record's next version, 3 units where it had 4, as eight copies at once (the
    // consumer takes up to eight deliveries together).
    let mut change =
        caseway_api::events::v1::ServiceRecordChanged::decode(recorded.payload.as_slice()).unwrap();
    let next = change.record.as_mut().unwrap();
    next.etag = caseway_platform::etag::format(2);
    next.units = "3".into();
    let payload = change.encode_to_vec();
    let copies: Vec<_> = (0..8)
        .map(|_| {
            let mut copy = recorded.clone();
            copy.id = Uuid::now_v7();
            copy.payload = payload.clone();
            copy
        })
        .collect();
    env.bus.bus.publish_confirmed(&copies).await.unwrap();
    // A later recording's event comes after them on the queue: once it shows, they were all
    // applied.
    record(&node, &f.worker, "", f.session(&authorization.id, "1", 9))
        .await
        .unwrap();
    utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.service_record_count == 2 && u.delivered_units == "4"
    })
    .await;
    // And it stays so once every copy has had time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let u = utilization(&node, &f.worker, &authorization.id).await;
    assert_eq!(
        u.delivered_units, "4",
        "3 for the changed record, 1 for the other"
    );
    assert_eq!(u.held_units, "0");
    node.shutdown().await;
}

/// A record moved to another authorization draws on the new one and gives the old one its
/// units back; moved to none, it draws on nothing.
#[tokio::test]
async fn a_record_moved_between_authorizations_draws_on_the_one_it_names() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-move").await;
    // Weekly on Monday in March 2026: 5 Mondays x 2 = 10 units each.
    let first = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    let second = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    let drawn = |id: &str, delivered: &'static str, remaining: &'static str| {
        let node = &node;
        let worker = f.worker.clone();
        let id = id.to_string();
        async move {
            utilization_when(node, &worker, &id, |u| {
                u.delivered_units == delivered && u.remaining_units == remaining
            })
            .await
        }
    };

    let recorded = record(&node, &f.worker, "", f.session(&first.id, "4", 2))
        .await
        .unwrap();
    drawn(&first.id, "4", "6").await;

    let moved_to = async |authorization_id: &str, etag: &str| {
        node.records
            .clone()
            .update_service_record(authed(
                &f.worker,
                record_update(
                    records_pb::ServiceRecord {
                        id: recorded.id.clone(),
                        etag: etag.into(),
                        authorization_id: authorization_id.into(),
                        ..Default::default()
                    },
                    &["authorization_id"],
                ),
            ))
            .await
    };
    let moved = moved_to(&second.id, &recorded.etag)
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(moved.authorization_id, second.id);
    drawn(&second.id, "4", "6").await;
    let u = drawn(&first.id, "0", "10").await;
    assert_eq!(u.service_record_count, 0);

    // Moved to none: neither counts it.
    moved_to("", &moved.etag).await.unwrap();
    drawn(&second.id, "0", "10").await;
    assert_eq!(
        utilization(&node, &f.worker, &first.id)
            .await
            .delivered_units,
        "0"
    );
}

#[tokio::test]
async fn a_record_draws_only_on_an_authorization_that_covers_it() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-cover").await;
    let authorization = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    let pending = create(&node, &f.worker, f.plan("FREQ=WEEKLY;BYDAY=MO", "2"))
        .await
        .unwrap();

    let status = record(&node, &f.worker, "", f.session(&pending.id, "1", 2))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_approved");
    let mut johns = f.session(&authorization.id, "1", 2);
    johns.client_id = f.john.clone();
    let status = record(&node, &f.worker, "", johns).await.unwrap_err();
    assert_eq!(rule_of(&status), "authorization_client");
    let mut other = f.session(&authorization.id, "1", 2);
    other.service_id = f.north_only.clone();
    let status = record(&node, &f.worker, "", other).await.unwrap_err();
    assert_eq!(rule_of(&status), "authorization_service");
    let mut april = f.session(&authorization.id, "1", 2);
    april.service_date = Some(date(2026, 4, 6));
    let status = record(&node, &f.worker, "", april).await.unwrap_err();
    assert_eq!(rule_of(&status), "authorization_period");
    assert!(
        status
            .message()
            .contains("outside the authorization's period")
    );
    let status = record(
        &node,
        &f.worker,
        "",
        f.session(&Uuid::now_v7().to_string(), "1", 2),
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["record.authorization_id"]);
    // A turn-away draws nothing.
    let mut turn_away = f.session(&authorization.id, "", 2);
    turn_away.turn_away_reason_id = f.reason.clone();
    let status = record(&node, &f.worker, "", turn_away).await.unwrap_err();
    assert!(
        violated_fields(&status).contains(&"record.authorization_id".to_string()),
        "{status:?}"
    );

    // Quick Services: all or nothing, a line over the authorization refuses the form and
    // holds nothing.
    let mut records_api = node.records.clone();
    let quick = |units: &str| records_pb::RecordQuickServicesRequest {
        request_id: String::new(),
        client_id: f.maria.clone(),
        service_date: Some(date(2026, 3, 9)),
        grant_id: f.grant.clone(),
        lines: vec![
            records_pb::QuickServiceLine {
                service_id: f.sessions.clone(),
                units: "2".into(),
                authorization_id: authorization.id.clone(),
                ..Default::default()
            },
            records_pb::QuickServiceLine {
                service_id: f.sessions.clone(),
                units: units.into(),
                authorization_id: authorization.id.clone(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let status = records_api
        .record_quick_services(authed(&f.worker, quick("9")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_units_remaining");
    let u = utilization(&node, &f.worker, &authorization.id).await;
    assert_eq!(
        u.remaining_units, "10",
        "the first line's hold was given back"
    );
    records_api
        .record_quick_services(authed(&f.worker, quick("3")))
        .await
        .unwrap();
    let u = utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "5"
    })
    .await;
    assert_eq!(u.remaining_units, "5");

    // Bulk: the attendee whose authorization is short is refused alone.
    let bulk = records_api
        .record_bulk_service(authed(
            &f.worker,
            records_pb::RecordBulkServiceRequest {
                request_id: "bulk-1".into(),
                template: Some(records_pb::ServiceRecord {
                    service_id: f.sessions.clone(),
                    service_date: Some(date(2026, 3, 16)),
                    grant_id: f.grant.clone(),
                    units: "6".into(),
                    ..Default::default()
                }),
                attendees: vec![
                    records_pb::BulkAttendee {
                        client_id: f.maria.clone(),
                        authorization_id: authorization.id.clone(),
                        ..Default::default()
                    },
                    records_pb::BulkAttendee {
                        client_id: f.john.clone(),
                        ..Default::default()
                    },
                ],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((bulk.recorded, bulk.refused), (1, 1));
    let error = row_status(bulk.results[0].error.as_ref().unwrap());
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&error), "RULE_VIOLATED");
    assert_eq!(rule_of(&error), "authorization_units_remaining");
    assert!(
        error.message().contains("has 5 units remaining"),
        "{error:?}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn expired_authorizations_are_closed_once_by_one_replica() {
    let env = TestEnv::new().await;
    let mut events = env
        .bus
        .listen("authorizations.authorization_closed.v1")
        .await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-expire").await;
    let ended = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "1").await;
    let drawn = record(&node, &f.worker, "", f.session(&ended.id, "3", 2))
        .await
        .unwrap();
    utilization_when(&node, &f.worker, &ended.id, |u| u.delivered_units == "3").await;
    let pending = create(&node, &f.worker, f.plan("FREQ=WEEKLY;BYDAY=MO", "1"))
        .await
        .unwrap();
    let mut current = f.plan("FREQ=WEEKLY;BYDAY=MO", "1");
    current.end_date = Some(date(2026, 12, 31));
    let current = create(&node, &f.worker, current).await.unwrap();
    approve(&node, &f.bo, &current.id).await.unwrap();

    // Two replicas' workers at once: the lock lets one close it.
    let a = caseway_platform::server::Platform::new(env.config()).unwrap();
    let b = caseway_platform::server::Platform::new(env.config()).unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    // While another holds the lock, a round does nothing.
    let mut holder = env.db.owner().await;
    sqlx::query("SELECT pg_advisory_lock(7262005)")
        .execute(&mut holder)
        .await
        .unwrap();
    let skipped = caseway_authorizations::service::close_expired(&a.db, today)
        .await
        .unwrap();
    assert_eq!(skipped, None);
    sqlx::query("SELECT pg_advisory_unlock(7262005)")
        .execute(&mut holder)
        .await
        .unwrap();
    let (one, two) = tokio::join!(
        caseway_authorizations::service::close_expired(&a.db, today),
        caseway_authorizations::service::close_expired(&b.db, today),
    );
    let closed = one.unwrap().unwrap_or(0) + two.unwrap().unwrap_or(0);
    assert_eq!(closed, 1, "closed once");
    let (envelope, _) = events
        .expect(
            "authorizations.authorization_closed.v1",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(envelope.subject, ended.id);
    assert!(events.next(Duration::from_millis(500)).await.is_none());
    let get = |id: &str| {
        let mut api = node.authorizations.clone();
        let request = pb::GetAuthorizationRequest { id: id.into() };
        let token = f.worker.clone();
        async move {
            api.get_authorization(authed(&token, request))
                .await
                .unwrap()
                .into_inner()
                .authorization
                .unwrap()
        }
    };
    let closed = get(&ended.id).await;
    assert_eq!(closed.status, pb::AuthorizationStatus::Closed as i32);
    assert_eq!(closed.decided_by, caseway_authorizations::service::WORKER);
    assert_eq!(
        get(&pending.id).await.status,
        pb::AuthorizationStatus::Pending as i32
    );
    assert_eq!(
        get(&current.id).await.status,
        pb::AuthorizationStatus::Approved as i32
    );
    // Nothing more can be drawn from it now; a record drawn on it may still be corrected
    // down.
    let status = record(&node, &f.worker, "", f.session(&ended.id, "1", 2))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_approved");
    let update = |units: &str| {
        record_update(
            records_pb::ServiceRecord {
                id: drawn.id.clone(),
                units: units.into(),
                ..Default::default()
            },
            &["units"],
        )
    };
    let mut records_api = node.records.clone();
    let status = records_api
        .update_service_record(authed(&f.worker, update("4")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_approved");
    records_api
        .update_service_record(authed(&f.worker, update("2")))
        .await
        .unwrap();
    let u = utilization_when(&node, &f.worker, &ended.id, |u| u.delivered_units == "2").await;
    assert_eq!(
        (u.remaining_units.as_str(), u.held_units.as_str()),
        ("3", "0")
    );
    a.db.close().await;
    b.db.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn holds_whose_record_never_came_are_given_back() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-sweep").await;
    // Five Mondays of two sessions: 10 units.
    let authorization = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    let stored = record(&node, &f.worker, "", f.session(&authorization.id, "2", 2))
        .await
        .unwrap();
    utilization_when(&node, &f.worker, &authorization.id, |u| {
        u.delivered_units == "2"
    })
    .await;
    // A record that draws on no authorization.
    let plain = record(&node, &f.worker, "", f.session("", "1", 3))
        .await
        .unwrap();
    // Units held for records that were never stored, for a change of the stored record that
    // was never written, and for the plain record (which does not name the authorization).
    // One attempt of the test's own makes every hold.
    let attempt = Uuid::now_v7();
    let reserve = |record_id: &str, version: i64, units: &str| pb::ReserveUnitsRequest {
        authorization_id: authorization.id.clone(),
        service_record_id: record_id.into(),
        service_record_version: version,
        client_id: f.maria.clone(),
        service_id: f.sessions.clone(),
        service_date: Some(date(2026, 3, 9)),
        units: units.into(),
        hold_id: attempt.to_string(),
    };
    let release = |record_id: &str, version: i64, hold: Uuid| pb::ReleaseUnitsRequest {
        authorization_id: authorization.id.clone(),
        service_record_id: record_id.into(),
        service_record_version: version,
        hold_id: hold.to_string(),
    };
    // The records service calls these internal methods with its own identity.
    let records_service = env.service_token("records", f.tenant, HOLD_UNITS);
    let mut api = node.authorizations_internal.clone();
    let never = Uuid::now_v7().to_string();
    for (record_id, version, units) in [
        (never.as_str(), 1, "3"),
        (stored.id.as_str(), 2, "4"),
        (plain.id.as_str(), 1, "1"),
    ] {
        api.reserve_units(authed(&records_service, reserve(record_id, version, units)))
            .await
            .unwrap();
    }
    // A hold for a later version of the stored record, by another attempt: the one for
    // version 2 stays counted (as earlier units: version 2 might be stored).
    let mut later = reserve(&stored.id, 3, "1");
    later.hold_id = Uuid::now_v7().to_string();
    api.reserve_units(authed(&records_service, later))
        .await
        .unwrap();
    let u = utilization(&node, &f.worker, &authorization.id).await;
    assert_eq!(
        (u.remaining_units.as_str(), u.held_units.as_str()),
        ("2", "6")
    );
    // The release call gives back what no stored record draws, if the caller's attempt made
    // the hold.
    api.release_units(authed(
        &records_service,
        release(&plain.id, 1, Uuid::now_v7()),
    ))
    .await
    .unwrap();
    assert_eq!(
        utilization(&node, &f.worker, &authorization.id)
            .await
            .remaining_units,
        "2"
    );
    api.release_units(authed(&records_service, release(&plain.id, 1, attempt)))
        .await
        .unwrap();
    assert_eq!(
        utilization(&node, &f.worker, &authorization.id)
            .await
            .remaining_units,
        "3"
    );

    let config = env.config();
    let platform = caseway_platform::server::Platform::new(config.clone()).unwrap();
    let records =
        caseway_peers::records::Records::new(&platform, &format!("http://{}", node.addr()))
            .unwrap();
    let sweep = |older_than| {
        caseway_authorizations::service::sweep_unsettled(&platform.db, &records, older_than)
    };
    // Younger than the threshold: left alone.
    let young = sweep(chrono::Duration::minutes(10)).await.unwrap();
    assert_eq!(young, Some(0));
    // Older: the records service says none of those versions is stored, so the never-stored
    // record's hold and both of the stored record's go back; its delivery stays.
    let released = sweep(chrono::Duration::zero()).await.unwrap();
    assert_eq!(released, Some(3));
    let u = utilization(&node, &f.worker, &authorization.id).await;
    assert_eq!(
        (
            u.remaining_units.as_str(),
            u.held_units.as_str(),
            u.delivered_units.as_str()
        ),
        ("8", "0", "2")
    );

    // A change of the record that was written (version 2 stored, naming this authorization)
    // and whose event has not come yet: its hold stays, whoever asks to give it back.
    let mut owner = env.db.owner().await;
    sqlx::query("UPDATE records.service_records SET version = 2, units = 4, value = 4 * unit_value WHERE id = $1")
        .bind(Uuid::parse_str(&stored.id).unwrap())
        .execute(&mut owner)
        .await
        .unwrap();
    api.reserve_units(authed(&records_service, reserve(&stored.id, 2, "4")))
        .await
        .unwrap();
    let status = api
        .release_units(authed(&records_service, release(&stored.id, 2, attempt)))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "service_record_stored");
    assert!(status.message().contains("version 2"), "{status:?}");
    let kept = sweep(chrono::Duration::zero()).await.unwrap();
    assert_eq!(kept, Some(0));
    let u = utilization(&node, &f.worker, &authorization.id).await;
    assert_eq!(
        (u.remaining_units.as_str(), u.held_units.as_str()),
        ("6", "2")
    );
    platform.db.close().await;
    node.shutdown().await;
}

#[tokio::test]
async fn recurrences_are_bounded_and_expanded_only_once_every_other_check_passed() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-bounds").await;
    let refused = |plan: pb::Authorization| {
        let node = &node;
        let worker = f.worker.clone();
        async move {
            let status = create(node, &worker, plan).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            (violated_fields(&status), status.message().to_string())
        }
    };
    // A value listed twice, or a part given twice.
    for rule in [
        "FREQ=WEEKLY;BYDAY=MO,TH,MO",
        "FREQ=MONTHLY;BYMONTHDAY=1,1",
        "FREQ=WEEKLY;INTERVAL=2;INTERVAL=2",
    ] {
        let (fields, message) = refused(f.plan(rule, "1")).await;
        assert_eq!(fields, ["authorization.recurrence"], "{rule}");
        assert!(message.contains("twice"), "{message}");
    }
    // A rule longer than 256 characters is refused at the edge.
    let long = format!("FREQ=WEEKLY;BYDAY={}", vec!["MO"; 100].join(","));
    let (fields, _) = refused(f.plan(&long, "1")).await;
    assert_eq!(fields, ["authorization.recurrence"]);
    // A period of centuries is refused on its end date, never walked.
    let mut centuries = f.plan("FREQ=DAILY", "1");
    centuries.end_date = Some(date(9999, 12, 31));
    let (fields, message) = refused(centuries).await;
    assert!(
        fields.contains(&"authorization.end_date".to_string()),
        "{fields:?}"
    );
    assert!(!fields.contains(&"authorization.recurrence".to_string()));
    assert!(message.contains("3660 days"), "{message}");
    // What only the expansion can tell (COUNT does not fit in March) waits until every other
    // check has passed: half a session is refused alone first.
    let mut plan = f.plan("FREQ=WEEKLY;COUNT=50", "0.5");
    let (fields, _) = refused(plan.clone()).await;
    assert_eq!(fields, ["authorization.units_per_occurrence"]);
    plan.units_per_occurrence = "1".into();
    let (fields, message) = refused(plan).await;
    assert_eq!(fields, ["authorization.recurrence"]);
    assert!(message.contains("COUNT=50 does not fit"), "{message}");
    node.shutdown().await;
}

#[tokio::test]
async fn whoever_changed_a_plan_may_not_approve_it() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-editor").await;
    let mut api = node.authorizations.clone();
    // Requested by case worker ana; supervisor cy then raises the units and the days.
    let created = create(&node, &f.worker, f.plan("FREQ=WEEKLY;BYDAY=MO", "1"))
        .await
        .unwrap();
    let edited = api
        .update_authorization(authed(
            &f.cy,
            pb::UpdateAuthorizationRequest {
                authorization: Some(pb::Authorization {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    units_per_occurrence: "4".into(),
                    recurrence: "FREQ=DAILY".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["units_per_occurrence".into(), "recurrence".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .authorization
        .unwrap();
    // cy may neither approve nor deny what cy changed.
    let status = approve(&node, &f.cy, &edited.id).await.unwrap_err();
    assert_eq!(rule_of(&status), "separation_of_duties");
    assert!(status.message().contains("ana, cy"), "{status:?}");
    let status = api
        .deny_authorization(authed(
            &f.cy,
            pb::DenyAuthorizationRequest {
                id: edited.id.clone(),
                etag: String::new(),
                reason: "no".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "separation_of_duties");
    // bo, who had no hand in it, may.
    let approved = approve(&node, &f.bo, &edited.id).await.unwrap();
    assert_eq!(approved.status, pb::AuthorizationStatus::Approved as i32);
    assert_eq!(approved.authorized_units, edited.authorized_units);
    node.shutdown().await;
}

#[tokio::test]
async fn records_and_authorizations_of_a_restricted_service_are_hidden_from_outsiders() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-hidden").await;
    // NORTH's service: an approved authorization and a session drawn on it, for Maria; and a
    // session of the open service.
    let mut plan = f.plan("FREQ=WEEKLY;BYDAY=MO", "2");
    plan.service_id = f.north_only.clone();
    let pending = create(&node, &f.worker, plan.clone()).await.unwrap();
    let authorization = approve(
        &node,
        &f.bo,
        &create(&node, &f.worker, plan).await.unwrap().id,
    )
    .await
    .unwrap();
    let mut session = f.session(&authorization.id, "2", 2);
    session.service_id = f.north_only.clone();
    let hidden = record(&node, &f.worker, "", session).await.unwrap();
    let open = record(&node, &f.worker, "", f.session("", "1", 3))
        .await
        .unwrap();
    let (mut records, mut auths) = (node.records.clone(), node.authorizations.clone());
    let not_found = |answer: Result<(), tonic::Status>, what: &str| match answer {
        Err(status) if status.code() == Code::NotFound => {}
        other => panic!("{what}: expected NOT_FOUND, got {other:?}"),
    };
    for outsider in [&f.south_worker, &f.south_supervisor] {
        // Records.
        not_found(
            records
                .get_service_record(authed(
                    outsider,
                    records_pb::GetServiceRecordRequest {
                        id: hidden.id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            "get record",
        );
        not_found(
            records
                .update_service_record(authed(
                    outsider,
                    record_update(
                        records_pb::ServiceRecord {
                            id: hidden.id.clone(),
                            comments: "seen".into(),
                            ..Default::default()
                        },
                        &["comments"],
                    ),
                ))
                .await
                .map(|_| ()),
            "update record",
        );
        not_found(
            records
                .list_service_record_history(authed(
                    outsider,
                    records_pb::ListServiceRecordHistoryRequest {
                        id: hidden.id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            "record history",
        );
        let listed: Vec<String> = records
            .list_client_service_records(authed(
                outsider,
                records_pb::ListClientServiceRecordsRequest {
                    client_id: f.maria.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .records
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            listed,
            std::slice::from_ref(&open.id),
            "only the open service's record"
        );
        let totals = records
            .get_service_totals(authed(
                outsider,
                records_pb::GetServiceTotalsRequest {
                    start_date: Some(date(2026, 1, 1)),
                    end_date: Some(date(2026, 12, 31)),
                    group_by: vec![],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .totals;
        assert_eq!(
            (totals[0].records, totals[0].units.as_str()),
            (1, "1"),
            "left out of totals"
        );
        // Authorizations.
        for id in [&authorization.id, &pending.id] {
            not_found(
                auths
                    .get_authorization(authed(
                        outsider,
                        pb::GetAuthorizationRequest { id: id.clone() },
                    ))
                    .await
                    .map(|_| ()),
                "get authorization",
            );
            not_found(
                auths
                    .get_authorization_utilization(authed(
                        outsider,
                        pb::GetAuthorizationUtilizationRequest {
                            authorization_id: id.clone(),
                        },
                    ))
                    .await
                    .map(|_| ()),
                "utilization",
            );
            not_found(
                auths
                    .list_authorization_history(authed(
                        outsider,
                        pb::ListAuthorizationHistoryRequest {
                            authorization_id: id.clone(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(|_| ()),
                "authorization history",
            );
        }
        not_found(
            auths
                .update_authorization(authed(
                    outsider,
                    pb::UpdateAuthorizationRequest {
                        authorization: Some(pb::Authorization {
                            id: pending.id.clone(),
                            goals: "seen".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["goals".into()],
                        }),
                    },
                ))
                .await
                .map(|_| ()),
            "update authorization",
        );
        let listed = auths
            .list_client_authorizations(authed(
                outsider,
                pb::ListClientAuthorizationsRequest {
                    client_id: f.maria.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .authorizations;
        assert!(listed.is_empty(), "{listed:?}");
    }
    // The SOUTH supervisor decides, ends and deletes none of it.
    let eve = &f.south_supervisor;
    not_found(
        approve(&node, eve, &pending.id).await.map(|_| ()),
        "approve",
    );
    not_found(
        auths
            .deny_authorization(authed(
                eve,
                pb::DenyAuthorizationRequest {
                    id: pending.id.clone(),
                    etag: String::new(),
                    reason: "no".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "deny",
    );
    not_found(
        auths
            .cancel_authorization(authed(
                eve,
                pb::CancelAuthorizationRequest {
                    id: authorization.id.clone(),
                    etag: String::new(),
                    reason: "no".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "cancel",
    );
    not_found(
        auths
            .close_authorization(authed(
                eve,
                pb::CloseAuthorizationRequest {
                    id: authorization.id.clone(),
                    etag: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        "close",
    );
    not_found(
        records
            .delete_service_record(authed(
                eve,
                records_pb::DeleteServiceRecordRequest {
                    id: hidden.id.clone(),
                    etag: String::new(),
                    reason: "mine now".into(),
                },
            ))
            .await
            .map(|_| ()),
        "delete record",
    );
    // Nor can they record or plan the service.
    let mut session = f.session("", "1", 4);
    session.service_id = f.north_only.clone();
    let status = record(&node, &f.south_worker, "", session)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["record.service_id"]);
    let status = records
        .record_quick_services(authed(
            &f.south_worker,
            records_pb::RecordQuickServicesRequest {
                client_id: f.maria.clone(),
                service_date: Some(date(2026, 3, 4)),
                lines: vec![records_pb::QuickServiceLine {
                    service_id: f.north_only.clone(),
                    units: "1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["lines[0].service_id"]);
    let status = records
        .record_indirect_service(authed(
            &f.south_worker,
            records_pb::RecordIndirectServiceRequest {
                service_id: f.north_only.clone(),
                service_date: Some(date(2026, 3, 4)),
                people_reached: 10,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["record.service_id"]);
    let bulk = records
        .record_bulk_service(authed(
            &f.south_worker,
            records_pb::RecordBulkServiceRequest {
                request_id: String::new(),
                template: Some(records_pb::ServiceRecord {
                    service_id: f.north_only.clone(),
                    service_date: Some(date(2026, 3, 4)),
                    units: "1".into(),
                    ..Default::default()
                }),
                attendees: vec![records_pb::BulkAttendee {
                    client_id: f.maria.clone(),
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((bulk.recorded, bulk.refused), (0, 1));
    let mut plan = f.plan("FREQ=WEEKLY", "1");
    plan.service_id = f.north_only.clone();
    let status = create(&node, &f.south_worker, plan).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["authorization.service_id"]);
    // NORTH and the tenant administrator see it all, untouched.
    for insider in [&f.worker, &f.admin] {
        let got = records
            .get_service_record(authed(
                insider,
                records_pb::GetServiceRecordRequest {
                    id: hidden.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert!(got.comments.is_empty());
        let status = utilization(&node, insider, &pending.id).await.status;
        assert_eq!(status, pb::AuthorizationStatus::Pending as i32);
    }
    // A service restricted later hides its records at once (the catalog's event drops what
    // the records service knew).
    let mut catalog = node.catalog.clone();
    let service = catalog
        .get_service(authed(
            &f.admin,
            catalog_pb::GetServiceRequest {
                id: f.sessions.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let north = catalog
        .get_service(authed(
            &f.admin,
            catalog_pb::GetServiceRequest {
                id: f.north_only.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
        .organization_ids;
    catalog
        .update_service(authed(
            &f.admin,
            catalog_pb::UpdateServiceRequest {
                service: Some(catalog_pb::Service {
                    id: service.id.clone(),
                    etag: service.etag.clone(),
                    organization_ids: north,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["organization_ids".into()],
                }),
            },
        ))
        .await
        .unwrap();
    eventually(
        "a newly restricted service's record hidden from outsiders",
        Duration::from_secs(10),
        || async {
            let request = authed(
                &f.south_worker,
                records_pb::GetServiceRecordRequest {
                    id: open.id.clone(),
                },
            );
            match records.clone().get_service_record(request).await {
                Err(status) if status.code() == Code::NotFound => Ok(()),
                other => Err(other.map(|_| "still shown")),
            }
        },
    )
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_retried_decision_answers_with_the_first_reply() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "auth-retry").await;
    let mut api = node.authorizations.clone();
    let created = create(&node, &f.worker, f.plan("FREQ=WEEKLY;BYDAY=MO", "1"))
        .await
        .unwrap();
    let approve = |request_id: &str, etag: &str| pb::ApproveAuthorizationRequest {
        id: created.id.clone(),
        etag: etag.into(),
        request_id: request_id.into(),
    };
    let first = api
        .approve_authorization(authed(&f.bo, approve("approve-1", &created.etag)))
        .await
        .unwrap()
        .into_inner();
    // The same request again (its answer was lost): the first reply, not a refusal for an
    // authorization already approved, nor a stale etag.
    let again = api
        .approve_authorization(authed(&f.bo, approve("approve-1", &created.etag)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    // Without a request id the workflow refuses a second approval.
    let status = api
        .approve_authorization(authed(&f.bo, approve("", "")))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "authorization_status");
    // Another request under the same id is the caller's mistake, told apart.
    let status = api
        .approve_authorization(authed(&f.bo, approve("approve-1", "")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    // Each method keys its own requests: closing under the same id is a new request.
    let closed = api
        .close_authorization(authed(
            &f.bo,
            pb::CloseAuthorizationRequest {
                id: created.id.clone(),
                etag: String::new(),
                request_id: "approve-1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        closed.authorization.unwrap().status,
        pb::AuthorizationStatus::Closed as i32
    );
    node.shutdown().await;
}
