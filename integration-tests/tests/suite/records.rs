//! Service records over real gRPC: every recording check, turn-aways, Quick Services, bulk,
//! indirect services, history, totals against a hand-computed fixture, retries, events and
//! tenant isolation.

use std::time::Duration;

use prost::Message;
use tonic::Code;
use uuid::Uuid;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::records::v1 as pb;
use caseway_integration_tests::tenants::{enrolled_client, records_tenant};
use caseway_integration_tests::{
    TestEnv, TestNode, authed, date, reason, record_update, row_status, violated_fields,
};
use caseway_test_support::eventually;

async fn record(
    node: &TestNode,
    token: &str,
    record: pb::ServiceRecord,
) -> Result<pb::ServiceRecord, tonic::Status> {
    node.fixtures(token).record(record).await
}

/// The first page of a client's service records, newest first.
async fn client_history(node: &TestNode, token: &str, client: &str) -> Vec<pb::ServiceRecord> {
    let request = pb::ListClientServiceRecordsRequest {
        client_id: client.into(),
        ..Default::default()
    };
    node.records
        .clone()
        .list_client_service_records(authed(token, request))
        .await
        .unwrap()
        .into_inner()
        .records
}

#[tokio::test]
async fn a_delivery_is_checked_against_catalog_and_client_and_valued_exactly() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("records.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "record").await;

    let counseling = record(
        &node,
        &f.worker,
        f.delivery(&f.counseling, "1.25", (2026, 3, 2)),
    )
    .await
    .unwrap();
    assert_eq!(counseling.kind, pb::ServiceRecordKind::Delivered as i32);
    assert_eq!(
        counseling.unit_value, "45",
        "the catalog's default unit value"
    );
    assert_eq!(counseling.value, "56.25", "1.25 h x 45.00");
    assert_eq!(counseling.program_id, f.program, "the enrollment's program");
    assert!(!counseling.service_group_id.is_empty());
    let mut priced = f.delivery(&f.assistance, "250.10", (2026, 3, 2));
    priced.unit_value = "0.33".into();
    priced.reason_id = f.reason.clone();
    let priced = record(&node, &f.worker, priced).await.unwrap();
    assert_eq!(priced.value, "82.533");
    let (envelope, _) = events
        .expect("records.service_recorded.v1", Duration::from_secs(10))
        .await;
    let event = caseway_api::events::v1::ServiceRecordChanged::decode(envelope.payload.as_slice())
        .unwrap()
        .record
        .unwrap();
    assert_eq!(event, counseling, "the event carries the whole record");
    assert_eq!(envelope.tenant_id, f.tenant);

    // Each check names its field.
    type Change<'a> = Box<dyn Fn(&mut pb::ServiceRecord) + 'a>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "an unknown client",
            Box::new(|r| r.client_id = Uuid::now_v7().to_string()),
            "record.client_id",
        ),
        (
            "another client's enrollment",
            Box::new(|r| r.enrollment_id = f.john_enrollment.clone()),
            "record.enrollment_id",
        ),
        (
            "a date before the enrollment",
            Box::new(|r| r.service_date = Some(date(2026, 1, 4))),
            "record.enrollment_id",
        ),
        (
            "a date in the future",
            Box::new(|r| r.service_date = Some(date(2999, 1, 1))),
            "record.service_date",
        ),
        (
            "a grant not linked to the service",
            Box::new(|r| r.service_id = f.unlinked.clone()),
            "record.grant_id",
        ),
        (
            "a grant whose period ended",
            Box::new(|r| r.grant_id = f.old_grant.clone()),
            "record.grant_id",
        ),
        (
            "an indirect service for a client",
            Box::new(|r| r.service_id = f.outreach.clone()),
            "record.service_id",
        ),
        (
            "an unknown service",
            Box::new(|r| r.service_id = Uuid::now_v7().to_string()),
            "record.service_id",
        ),
        (
            "fractional hours past hundredths",
            Box::new(|r| r.units = "1.255".into()),
            "record.units",
        ),
        (
            "no units",
            Box::new(|r| r.units = String::new()),
            "record.units",
        ),
        (
            "negative units",
            Box::new(|r| r.units = "-1".into()),
            "record.units",
        ),
        (
            "a unit value in tenths of cents",
            Box::new(|r| r.unit_value = "1.005".into()),
            "record.unit_value",
        ),
        (
            "a reason from another list",
            Box::new(|r| r.reason_id = f.turn_away.clone()),
            "record.reason_id",
        ),
        (
            "an unknown provider",
            Box::new(|r| r.provider_id = Uuid::now_v7().to_string()),
            "record.provider_id",
        ),
        (
            "people reached for a client",
            Box::new(|r| r.people_reached = 3),
            "record.people_reached",
        ),
    ];
    for (what, change, field) in cases {
        let mut bad = f.delivery(&f.counseling, "1.00", (2026, 3, 2));
        change(&mut bad);
        let status = record(&node, &f.worker, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(violated_fields(&status), [field], "{what}");
    }
    let mut minutes = f.delivery(&f.unlinked, "15.5", (2026, 3, 2));
    minutes.grant_id = String::new();
    let status = record(&node, &f.worker, minutes).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["record.units"], "whole minutes");

    // A service restricted to NORTH: refused to a SOUTH worker, recorded by a NORTH one.
    let status = record(
        &node,
        &f.south_worker,
        f.delivery(&f.workshop, "1", (2026, 3, 2)),
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["record.service_id"]);
    record(&node, &f.worker, f.delivery(&f.workshop, "1", (2026, 3, 2)))
        .await
        .unwrap();
    let mut priced_workshop = f.delivery(&f.workshop, "1", (2026, 3, 2));
    priced_workshop.unit_value = "5.00".into();
    let status = record(&node, &f.worker, priced_workshop).await.unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["record.unit_value"],
        "the workshop's unit value is fixed"
    );

    // A retry of the same request records once.
    let request = pb::RecordServiceRequest {
        request_id: "visit-42".into(),
        record: Some(f.delivery(&f.assistance, "100", (2026, 3, 3))),
    };
    let mut records = node.records.clone();
    let first = records
        .record_service(authed(&f.worker, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = records
        .record_service(authed(&f.worker, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let history = client_history(&node, &f.worker, &f.maria).await;
    assert_eq!(
        history.len(),
        4,
        "counseling, assistance, workshop, one retried assistance"
    );
    let _ = (&f.admin, &f.john, &f.supervisor);
}

/// A use case that records claims its request id after writing, in the statement that stores
/// its reply and events: retries that race each other record once and all answer the first
/// reply, and a reused id with a different request is refused without writing.
#[tokio::test]
async fn racing_retries_record_once_and_a_reused_request_id_writes_nothing() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "racing-retries").await;
    let mut events = env.bus.listen("records.service_recorded.v1").await;

    let request = pb::RecordServiceRequest {
        request_id: "visit-racing".into(),
        record: Some(f.delivery(&f.counseling, "1", (2026, 3, 2))),
    };
    let calls = (0..8).map(|_| {
        let mut records = node.records.clone();
        let request = authed(&f.worker, request.clone());
        async move { records.record_service(request).await }
    });
    let replies: Vec<pb::ServiceRecord> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|reply| reply.unwrap().into_inner().record.unwrap())
        .collect();
    assert!(
        replies.iter().all(|r| r == &replies[0]),
        "every racing retry answers the first reply"
    );

    let quick = pb::RecordQuickServicesRequest {
        request_id: "quick-racing".into(),
        client_id: f.maria.clone(),
        enrollment_id: f.maria_enrollment.clone(),
        service_date: Some(date(2026, 3, 3)),
        grant_id: f.grant.clone(),
        provider_id: f.provider.clone(),
        lines: vec![
            pb::QuickServiceLine {
                service_id: f.counseling.clone(),
                units: "1".into(),
                ..Default::default()
            },
            pb::QuickServiceLine {
                service_id: f.assistance.clone(),
                units: "20".into(),
                ..Default::default()
            },
        ],
    };
    let calls = (0..4).map(|_| {
        let mut records = node.records.clone();
        let request = authed(&f.worker, quick.clone());
        async move { records.record_quick_services(request).await }
    });
    let quick_replies: Vec<Vec<pb::ServiceRecord>> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|reply| reply.unwrap().into_inner().records)
        .collect();
    assert_eq!(quick_replies[0].len(), 2);
    assert!(quick_replies.iter().all(|r| r == &quick_replies[0]));

    // The same id with another request: refused, naming the field, and nothing written.
    let mut other = request.clone();
    other.record = Some(f.delivery(&f.counseling, "2", (2026, 3, 2)));
    let status = node
        .records
        .clone()
        .record_service(authed(&f.worker, other))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(violated_fields(&status), ["request_id"]);

    let history = client_history(&node, &f.worker, &f.maria).await;
    assert_eq!(history.len(), 3, "one visit and two Quick Services lines");
    // One event per stored record, none for the retries rolled back.
    let mut recorded = Vec::new();
    while let Some((envelope, _)) = events.next(Duration::from_secs(3)).await {
        recorded.push(envelope.subject);
    }
    recorded.sort();
    let mut stored: Vec<String> = history.into_iter().map(|r| r.id).collect();
    stored.sort();
    assert_eq!(recorded, stored);
}

#[tokio::test]
async fn quick_services_are_all_or_nothing_and_bulk_reports_each_row() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "quick").await;
    let mut records = node.records.clone();
    let line = |service: &str, units: &str| pb::QuickServiceLine {
        service_id: service.into(),
        units: units.into(),
        ..Default::default()
    };
    let quick =
        |lines: Vec<pb::QuickServiceLine>, request_id: &str| pb::RecordQuickServicesRequest {
            request_id: request_id.into(),
            client_id: f.maria.clone(),
            service_date: Some(date(2026, 4, 1)),
            grant_id: f.grant.clone(),
            enrollment_id: f.maria_enrollment.clone(),
            provider_id: f.provider.clone(),
            lines,
        };
    let status = records
        .record_quick_services(authed(
            &f.worker,
            quick(
                vec![
                    line(&f.assistance, "50"),
                    line(&f.counseling, "0.333"),
                    line(&f.workshop, "1"),
                    line(&f.outreach, "1"),
                ],
                "",
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["lines[1].units", "lines[3].service_id"]
    );
    let mut bad_date = quick(
        vec![line(&f.assistance, "50"), line(&f.counseling, "1")],
        "",
    );
    bad_date.service_date = Some(date(2999, 1, 1));
    let status = records
        .record_quick_services(authed(&f.worker, bad_date))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["service_date"],
        "shared fields are named once"
    );
    let ok = quick(
        vec![
            line(&f.assistance, "50"),
            line(&f.counseling, "0.5"),
            line(&f.workshop, "1"),
        ],
        "quick-1",
    );
    let recorded = records
        .record_quick_services(authed(&f.worker, ok.clone()))
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(
        recorded
            .iter()
            .map(|r| r.value.as_str())
            .collect::<Vec<_>>(),
        ["50", "22.5", "0"]
    );
    let again = records
        .record_quick_services(authed(&f.worker, ok))
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(again, recorded);

    // Bulk: a workshop's attendees; an unknown client and a duplicate are refused by row, the
    // rest recorded; the retry records nothing twice.
    let (ahmed, ahmed_enrollment) =
        enrolled_client(&node.fixtures(&f.worker), "Ahmed", &f.program, (2026, 3, 1)).await;
    let bulk = pb::RecordBulkServiceRequest {
        request_id: "workshop-2026-04-02".into(),
        template: Some(pb::ServiceRecord {
            service_id: f.workshop.clone(),
            service_date: Some(date(2026, 4, 2)),
            grant_id: f.grant.clone(),
            units: "1".into(),
            ..Default::default()
        }),
        attendees: vec![
            pb::BulkAttendee {
                client_id: f.maria.clone(),
                enrollment_id: f.maria_enrollment.clone(),
                ..Default::default()
            },
            pb::BulkAttendee {
                client_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
            pb::BulkAttendee {
                client_id: ahmed.clone(),
                enrollment_id: ahmed_enrollment,
                units: "2".into(),
                ..Default::default()
            },
            pb::BulkAttendee {
                client_id: f.maria.clone(),
                ..Default::default()
            },
            pb::BulkAttendee {
                client_id: f.john.clone(),
                units: "1.5".into(),
                ..Default::default()
            },
        ],
    };
    let reply = records
        .record_bulk_service(authed(&f.worker, bulk.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.recorded, reply.refused), (2, 3));
    let refused: Vec<(i32, Vec<String>)> = reply
        .results
        .iter()
        .filter_map(|r| {
            r.error.as_ref().map(|e| {
                let status = row_status(e);
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                assert_eq!(reason(&status), "FIELD_INVALID");
                (r.index, violated_fields(&status))
            })
        })
        .collect();
    assert_eq!(
        refused,
        [
            (1, vec!["attendees[1].client_id".to_string()]),
            (3, vec!["attendees[3].client_id".to_string()]),
            (4, vec!["attendees[4].units".to_string()]),
        ]
    );
    assert_eq!(
        reply.results[2].record.as_ref().unwrap().units,
        "2",
        "a row's own units"
    );
    let retried = records
        .record_bulk_service(authed(&f.worker, bulk))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, reply);
    let mut owner = env.db.owner().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM records.service_records WHERE tenant_id = $1 AND service_date = '2026-04-02'",
    )
    .bind(f.tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn turn_aways_indirect_services_history_and_totals_match_a_hand_computed_fixture() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "totals").await;
    let mut records = node.records.clone();

    // March: Maria FA 100 + FC 2 h (90), John FA 50; April: Maria FA 25.50, John turned away
    // twice (once for FA, once for FC), Maria turned away once; outreach to 40 then 25 people.
    let maria_fa = record(
        &node,
        &f.worker,
        f.delivery(&f.assistance, "100", (2026, 3, 10)),
    )
    .await
    .unwrap();
    record(
        &node,
        &f.worker,
        f.delivery(&f.counseling, "2", (2026, 3, 11)),
    )
    .await
    .unwrap();
    let mut john = f.delivery(&f.assistance, "50", (2026, 3, 12));
    john.client_id = f.john.clone();
    john.enrollment_id = f.john_enrollment.clone();
    record(&node, &f.worker, john.clone()).await.unwrap();
    record(
        &node,
        &f.worker,
        f.delivery(&f.assistance, "25.50", (2026, 4, 2)),
    )
    .await
    .unwrap();
    let turn_away = |client: &str, enrollment: &str, service: &str| pb::ServiceRecord {
        client_id: client.into(),
        enrollment_id: enrollment.into(),
        service_id: service.into(),
        service_date: Some(date(2026, 4, 3)),
        grant_id: f.grant.clone(),
        turn_away_reason_id: f.turn_away.clone(),
        ..Default::default()
    };
    let turned = record(
        &node,
        &f.worker,
        turn_away(&f.john, &f.john_enrollment, &f.assistance),
    )
    .await
    .unwrap();
    assert_eq!(turned.kind, pb::ServiceRecordKind::TurnAway as i32);
    assert_eq!((turned.units.as_str(), turned.value.as_str()), ("", ""));
    record(
        &node,
        &f.worker,
        turn_away(&f.john, &f.john_enrollment, &f.counseling),
    )
    .await
    .unwrap();
    record(
        &node,
        &f.worker,
        turn_away(&f.maria, &f.maria_enrollment, &f.counseling),
    )
    .await
    .unwrap();
    let mut with_units = turn_away(&f.maria, "", &f.counseling);
    with_units.units = "1".into();
    let status = record(&node, &f.worker, with_units).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["record.units"]);
    let mut wrong_list = turn_away(&f.maria, "", &f.counseling);
    wrong_list.turn_away_reason_id = f.reason.clone();
    let status = record(&node, &f.worker, wrong_list).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["record.turn_away_reason_id"]);

    let indirect = |people: i32, service: &str| pb::RecordIndirectServiceRequest {
        request_id: String::new(),
        service_id: service.into(),
        service_date: Some(date(2026, 4, 20)),
        people_reached: people,
        grant_id: f.grant.clone(),
        provider_id: f.provider.clone(),
        comments: "street outreach".into(),
    };
    let seminar = records
        .record_indirect_service(authed(&f.worker, indirect(40, &f.outreach)))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(seminar.kind, pb::ServiceRecordKind::Indirect as i32);
    assert_eq!(
        (seminar.units.as_str(), seminar.value.as_str()),
        ("1", "30")
    );
    records
        .record_indirect_service(authed(&f.worker, indirect(25, &f.outreach)))
        .await
        .unwrap();
    for (people, service, field) in [
        (0, &f.outreach, "record.people_reached"),
        (5, &f.assistance, "record.service_id"),
    ] {
        let status = records
            .record_indirect_service(authed(&f.worker, indirect(people, service)))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), [field]);
    }

    // A record entered twice and deleted does not count; one edited counts as edited.
    let duplicate = record(
        &node,
        &f.worker,
        f.delivery(&f.assistance, "999", (2026, 3, 10)),
    )
    .await
    .unwrap();
    let status = records
        .delete_service_record(authed(
            &f.worker,
            pb::DeleteServiceRecordRequest {
                id: duplicate.id.clone(),
                etag: String::new(),
                reason: "entered twice".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "deleting takes a supervisor"
    );
    records
        .delete_service_record(authed(
            &f.supervisor,
            pb::DeleteServiceRecordRequest {
                id: duplicate.id.clone(),
                etag: duplicate.etag.clone(),
                reason: "entered twice".into(),
            },
        ))
        .await
        .unwrap();
    let edited = records
        .update_service_record(authed(
            &f.worker,
            record_update(
                pb::ServiceRecord {
                    id: maria_fa.id.clone(),
                    etag: maria_fa.etag.clone(),
                    units: "120".into(),
                    ..Default::default()
                },
                &["units"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(
        (edited.units.as_str(), edited.value.as_str()),
        ("120", "120")
    );
    let status = records
        .update_service_record(authed(
            &f.worker,
            record_update(
                pb::ServiceRecord {
                    id: maria_fa.id.clone(),
                    etag: maria_fa.etag.clone(),
                    units: "130".into(),
                    ..Default::default()
                },
                &["units"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "a stale etag");
    let status = records
        .update_service_record(authed(
            &f.worker,
            record_update(
                pb::ServiceRecord {
                    id: maria_fa.id.clone(),
                    units: "1.001".into(),
                    ..Default::default()
                },
                &["units"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["record.units"],
        "checked as on create"
    );

    // Totals over March and April.
    let totals = |group_by: Vec<pb::TotalsGrouping>| {
        let mut records = records.clone();
        let token = f.worker.clone();
        async move {
            records
                .get_service_totals(authed(
                    &token,
                    pb::GetServiceTotalsRequest {
                        start_date: Some(date(2026, 3, 1)),
                        end_date: Some(date(2026, 4, 30)),
                        group_by: group_by.into_iter().map(|g| g as i32).collect(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .totals
        }
    };
    let all = totals(vec![]).await;
    assert_eq!(all.len(), 1);
    let t = &all[0];
    // Delivered: 120 + 90 + 50 + 25.50 (dollars and hours summed as units: 120 + 2 + 50 +
    // 25.5 = 197.5) plus the outreach's 1 + 1 hours; value 120 + 90 + 50 + 25.50 + 30 + 30.
    assert_eq!(t.units, "199.5");
    assert_eq!(t.value, "345.5");
    assert_eq!(t.records, 6);
    assert_eq!(t.unduplicated_clients, 2);
    assert_eq!(t.people_reached, 65);
    assert_eq!((t.turn_aways, t.turned_away_clients), (3, 2));

    let by_month_service =
        totals(vec![pb::TotalsGrouping::Month, pb::TotalsGrouping::Service]).await;
    let rows: Vec<(String, String, String, String, i64, i64, i64)> = by_month_service
        .iter()
        .map(|t| {
            let month = t
                .month
                .as_ref()
                .map(|m| format!("{}-{:02}", m.year, m.month))
                .unwrap();
            let service = if t.service_id == f.assistance {
                "FA"
            } else if t.service_id == f.counseling {
                "FC"
            } else {
                "OUT"
            };
            (
                month,
                service.to_string(),
                t.units.clone(),
                t.value.clone(),
                t.unduplicated_clients,
                t.turn_aways,
                t.turned_away_clients,
            )
        })
        .collect();
    let mut expected = vec![
        (
            "2026-03".into(),
            "FA".into(),
            "170".into(),
            "170".into(),
            2,
            0,
            0,
        ),
        (
            "2026-03".into(),
            "FC".into(),
            "2".into(),
            "90".into(),
            1,
            0,
            0,
        ),
        (
            "2026-04".into(),
            "FA".into(),
            "25.5".into(),
            "25.5".into(),
            1,
            1,
            1,
        ),
        (
            "2026-04".into(),
            "FC".into(),
            "0".into(),
            "0".into(),
            0,
            2,
            2,
        ),
        (
            "2026-04".into(),
            "OUT".into(),
            "2".into(),
            "60".into(),
            0,
            0,
            0,
        ),
    ];
    let mut rows = rows;
    rows.sort();
    expected.sort();
    assert_eq!(rows, expected);
    let by_grant = totals(vec![pb::TotalsGrouping::Grant, pb::TotalsGrouping::Program]).await;
    assert_eq!(
        by_grant.len(),
        2,
        "the enrolled clients' program and the indirect services' none"
    );
    let enrolled = by_grant.iter().find(|t| t.program_id == f.program).unwrap();
    assert_eq!(
        (enrolled.grant_id.as_str(), enrolled.value.as_str()),
        (f.grant.as_str(), "285.5")
    );

    // Maria's history, newest first, filtered and paged.
    let history = |request: pb::ListClientServiceRecordsRequest| {
        let mut records = records.clone();
        let token = f.worker.clone();
        async move {
            records
                .list_client_service_records(authed(&token, request))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let all = history(pb::ListClientServiceRecordsRequest {
        client_id: f.maria.clone(),
        ..Default::default()
    })
    .await
    .records;
    let dates: Vec<i32> = all.iter().map(|r| r.service_date.unwrap().day).collect();
    assert_eq!(dates, [3, 2, 11, 10], "newest first, the deleted one gone");
    let turned_away = history(pb::ListClientServiceRecordsRequest {
        client_id: f.maria.clone(),
        kind: pb::ServiceRecordKind::TurnAway as i32,
        ..Default::default()
    })
    .await
    .records;
    assert_eq!(turned_away.len(), 1);
    let march_fc = history(pb::ListClientServiceRecordsRequest {
        client_id: f.maria.clone(),
        service_id: f.counseling.clone(),
        end_date: Some(date(2026, 3, 31)),
        ..Default::default()
    })
    .await
    .records;
    assert_eq!(march_fc.len(), 1);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = history(pb::ListClientServiceRecordsRequest {
            client_id: f.maria.clone(),
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        })
        .await;
        seen.extend(page.records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, all.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    let _ = &f.admin;
}

/// The records service caches catalog lookups; a catalog change reaches it by event, so a
/// retired service is refused at once. Updates and deletions are published with what changed.
/// GetServiceTotals as the records themselves give it: a scan of every record in the range,
/// the reference the day totals are held to.
async fn scanned_totals(
    env: &TestEnv,
    tenant: caseway_platform::TenantId,
    (start, end): (chrono::NaiveDate, chrono::NaiveDate),
    by: &[pb::TotalsGrouping],
) -> Vec<pb::ServiceTotals> {
    use pb::TotalsGrouping as G;
    type Row = (
        Option<Uuid>,
        Option<Uuid>,
        Option<Uuid>,
        Option<Uuid>,
        Option<chrono::NaiveDate>,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let mut owner = env.db.owner().await;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT CASE WHEN $4 THEN grant_id END, CASE WHEN $5 THEN program_id END, \
                CASE WHEN $6 THEN service_id END, CASE WHEN $7 THEN service_group_id END, \
                CASE WHEN $8 THEN date_trunc('month', service_date)::date END, \
                coalesce(sum(units) FILTER (WHERE kind <> 2), 0), \
                coalesce(sum(value) FILTER (WHERE kind <> 2), 0), \
                count(*) FILTER (WHERE kind <> 2), \
                count(DISTINCT client_id) FILTER (WHERE kind = 1), \
                coalesce(sum(people_reached) FILTER (WHERE kind = 3), 0)::bigint, \
                count(*) FILTER (WHERE kind = 2), \
                count(DISTINCT client_id) FILTER (WHERE kind = 2) \
           FROM records.service_records \
          WHERE tenant_id = $1 AND deleted_at IS NULL AND service_date BETWEEN $2 AND $3 \
          GROUP BY 1, 2, 3, 4, 5 \
          ORDER BY 5 NULLS FIRST, 1 NULLS FIRST, 2 NULLS FIRST, 4 NULLS FIRST, 3 NULLS FIRST",
    )
    .bind(tenant.as_uuid())
    .bind(start)
    .bind(end)
    .bind(by.contains(&G::Grant))
    .bind(by.contains(&G::Program))
    .bind(by.contains(&G::Service))
    .bind(by.contains(&G::ServiceGroup))
    .bind(by.contains(&G::Month))
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    rows.into_iter()
        .map(|r| pb::ServiceTotals {
            grant_id: text(r.0),
            program_id: text(r.1),
            service_id: text(r.2),
            service_group_id: text(r.3),
            month: r.4.map(caseway_platform::convert::date),
            units: r.5.normalize().to_string(),
            value: r.6.normalize().to_string(),
            records: r.7,
            unduplicated_clients: r.8,
            people_reached: r.9,
            turn_aways: r.10,
            turned_away_clients: r.11,
        })
        .collect()
}

#[tokio::test]
async fn totals_from_the_day_totals_equal_a_scan_of_the_records_after_every_kind_of_change() {
    use pb::TotalsGrouping as G;
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "day-totals").await;
    let other = records_tenant(&env, &node, "day-totals-other").await;
    let mut records = node.records.clone();

    // Deliveries over ten months for two clients and three services (with and without an
    // enrollment, so with and without a program; the unlinked service has no grant),
    // turn-aways and indirect services; a record of another tenant on the same days.
    let mut seed = 7u32;
    let mut next = |n: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 16) % n
    };
    let mut stored = Vec::new();
    for i in 0..60 {
        let day = (2026, 2 + next(10) as i32, 1 + next(28) as i32);
        let mut delivery = match i % 3 {
            0 => f.delivery(&f.assistance, &format!("{}.5", 10 + next(90)), day),
            1 => f.delivery(&f.counseling, &format!("{}", 1 + next(4)), day),
            _ => pb::ServiceRecord {
                grant_id: String::new(),
                ..f.delivery(&f.unlinked, &format!("{}", 15 + next(45)), day)
            },
        };
        if next(2) == 0 {
            delivery.client_id = f.john.clone();
            delivery.enrollment_id = f.john_enrollment.clone();
        }
        if next(3) == 0 {
            delivery.enrollment_id = String::new();
        }
        stored.push(record(&node, &f.worker, delivery).await.unwrap());
    }
    record(
        &node,
        &other.worker,
        other.delivery(&other.assistance, "5", (2026, 3, 10)),
    )
    .await
    .unwrap();
    for (client, enrollment, day) in [
        (&f.john, &f.john_enrollment, (2026, 4, 3)),
        (&f.john, &f.john_enrollment, (2026, 4, 3)),
        (&f.maria, &f.maria_enrollment, (2026, 6, 30)),
    ] {
        let turned = pb::ServiceRecord {
            client_id: client.clone(),
            enrollment_id: enrollment.clone(),
            service_id: f.assistance.clone(),
            service_date: Some(date(day.0, day.1, day.2)),
            grant_id: f.grant.clone(),
            turn_away_reason_id: f.turn_away.clone(),
            ..Default::default()
        };
        record(&node, &f.worker, turned).await.unwrap();
    }
    for (people, day) in [(40, (2026, 4, 20)), (25, (2026, 7, 1))] {
        records
            .record_indirect_service(authed(
                &f.worker,
                pb::RecordIndirectServiceRequest {
                    service_id: f.outreach.clone(),
                    service_date: Some(date(day.0, day.1, day.2)),
                    people_reached: people,
                    grant_id: f.grant.clone(),
                    provider_id: f.provider.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let ranges = [
        (day(2026, 1, 1), day(2026, 12, 31)),
        (day(2026, 3, 15), day(2026, 5, 10)),
        (day(2026, 4, 3), day(2026, 4, 3)),
    ];
    let groupings: [&[G]; 6] = [
        &[],
        &[G::Service],
        &[G::Month],
        &[G::Grant, G::Program],
        &[G::ServiceGroup, G::Month, G::Service],
        &[G::Grant, G::Program, G::Service, G::ServiceGroup, G::Month],
    ];
    let check = |records: pb::records_service_client::RecordsServiceClient<_>,
                 what: &'static str| {
        let (env, f) = (&env, &f);
        async move {
            let mut records = records;
            for (start, end) in ranges {
                for by in groupings {
                    let answered = records
                        .get_service_totals(authed(
                            &f.worker,
                            pb::GetServiceTotalsRequest {
                                start_date: Some(caseway_platform::convert::date(start)),
                                end_date: Some(caseway_platform::convert::date(end)),
                                group_by: by.iter().map(|g| *g as i32).collect(),
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .totals;
                    let scanned = scanned_totals(env, f.tenant, (start, end), by).await;
                    assert!(!scanned.is_empty());
                    assert_eq!(answered, scanned, "{what}: {start:?} to {end:?} by {by:?}");
                }
            }
        }
    };
    check(records.clone(), "as recorded").await;

    // Every change the totals count, each read back at once: a record moved to another day
    // and month, out of its enrollment (and so its program); units changed; records deleted;
    // a change of comments alone.
    let enrolled = stored[10..]
        .iter()
        .find(|r| !r.program_id.is_empty())
        .expect("a record in an enrollment");
    let change =
        |record: &pb::ServiceRecord, paths: &[&str], set: &dyn Fn(&mut pb::ServiceRecord)| {
            let mut changed = pb::ServiceRecord {
                id: record.id.clone(),
                etag: record.etag.clone(),
                ..Default::default()
            };
            set(&mut changed);
            record_update(changed, paths)
        };
    let updates = [
        change(&stored[0], &["service_date"], &|r| {
            r.service_date = Some(date(2026, 11, 30))
        }),
        change(enrolled, &["enrollment_id"], &|r| {
            r.enrollment_id = String::new()
        }),
        change(&stored[6], &["units"], &|r| r.units = "3.25".into()),
        change(&stored[9], &["comments"], &|r| {
            r.comments = "only words".into()
        }),
    ];
    for update in updates {
        records
            .update_service_record(authed(&f.worker, update))
            .await
            .unwrap();
    }
    for gone in [&stored[1], &stored[2]] {
        records
            .delete_service_record(authed(
                &f.supervisor,
                pb::DeleteServiceRecordRequest {
                    id: gone.id.clone(),
                    etag: gone.etag.clone(),
                    reason: "entered twice".into(),
                },
            ))
            .await
            .unwrap();
    }
    check(records.clone(), "after changes").await;

    // Built again from the records (as the migration does for records stored before it):
    // the same totals.
    let mut owner = env.db.owner().await;
    sqlx::query("SELECT records.rebuild_totals()")
        .execute(&mut owner)
        .await
        .unwrap();
    check(records.clone(), "rebuilt").await;
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM records.totals_changes")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(waiting, 0, "every change folded");
}

#[tokio::test]
async fn catalog_changes_reach_the_cache_and_every_change_is_published() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("records.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = records_tenant(&env, &node, "cache").await;
    let first = record(
        &node,
        &f.worker,
        f.delivery(&f.counseling, "1", (2026, 3, 2)),
    )
    .await
    .unwrap();
    node.catalog
        .clone()
        .retire_service(authed(
            &f.admin,
            catalog_pb::RetireServiceRequest {
                id: f.counseling.clone(),
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let delivery = f.delivery(&f.counseling, "1", (2026, 3, 2));
    let status = eventually(
        "the retirement reaching the records service",
        Duration::from_secs(5),
        || async {
            match record(&node, &f.worker, delivery.clone()).await {
                Err(status) => Ok(status),
                Ok(_) => Err("still accepted"),
            }
        },
    )
    .await;
    assert_eq!(violated_fields(&status), ["record.service_id"]);
    assert!(status.message().contains("retired"), "{status:?}");

    // So does a client's deletion and an enrollment's exit.
    record(
        &node,
        &f.worker,
        f.delivery(&f.assistance, "5", (2026, 3, 2)),
    )
    .await
    .unwrap();
    node.clients
        .clone()
        .exit_enrollment(authed(
            &f.worker,
            clients_pb::ExitEnrollmentRequest {
                id: f.maria_enrollment.clone(),
                etag: String::new(),
                exit_date: Some(date(2026, 3, 5)),
                exit_destination: "HOUSED".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut late = f.delivery(&f.assistance, "5", (2026, 3, 6));
    late.grant_id = String::new();
    refused_within(&node, &f.worker, late, "record.enrollment_id").await;
    let mut johns = f.delivery(&f.assistance, "5", (2026, 3, 6));
    johns.client_id = f.john.clone();
    johns.enrollment_id = String::new();
    record(&node, &f.worker, johns.clone()).await.unwrap();
    node.clients
        .clone()
        .delete_client(authed(
            &f.supervisor,
            clients_pb::DeleteClientRequest {
                id: f.john.clone(),
                etag: String::new(),
                reason: "duplicate".into(),
            },
        ))
        .await
        .unwrap();
    refused_within(&node, &f.worker, johns, "record.client_id").await;

    let mut records = node.records.clone();
    records
        .update_service_record(authed(
            &f.worker,
            record_update(
                pb::ServiceRecord {
                    id: first.id.clone(),
                    comments: "met at the shelter".into(),
                    ..Default::default()
                },
                &["comments"],
            ),
        ))
        .await
        .unwrap_err()
        .code()
        .eq(&Code::InvalidArgument)
        .then_some(())
        .expect("an edit of a record of a retired service is checked as a new one");
    let other = record(
        &node,
        &f.worker,
        f.delivery(&f.assistance, "10", (2026, 3, 2)),
    )
    .await
    .unwrap();
    records
        .update_service_record(authed(
            &f.worker,
            record_update(
                pb::ServiceRecord {
                    id: other.id.clone(),
                    units: "12".into(),
                    ..Default::default()
                },
                &["units"],
            ),
        ))
        .await
        .unwrap();
    let history = records
        .list_service_record_history(authed(
            &f.worker,
            pb::ListServiceRecordHistoryRequest {
                id: other.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        history
            .iter()
            .map(|e| (e.action.as_str(), e.changed_fields.clone()))
            .collect::<Vec<_>>(),
        [
            (
                "records.service_record.update",
                vec!["units".to_string(), "value".to_string()]
            ),
            ("records.service_record.create", vec![]),
        ],
        "what changed goes to the history, newest first"
    );
    records
        .delete_service_record(authed(
            &f.supervisor,
            pb::DeleteServiceRecordRequest {
                id: other.id.clone(),
                etag: String::new(),
                reason: "wrong client".into(),
            },
        ))
        .await
        .unwrap();
    let (envelope, _) = events
        .expect("records.service_updated.v1", Duration::from_secs(10))
        .await;
    let update =
        caseway_api::events::v1::ServiceRecordChanged::decode(envelope.payload.as_slice()).unwrap();
    assert_eq!(update.changed_fields, ["units", "value"]);
    assert_eq!(update.previous_units, "10");
    assert_eq!(update.record.unwrap().units, "12");
    let (envelope, _) = events
        .expect("records.service_deleted.v1", Duration::from_secs(10))
        .await;
    assert_eq!(envelope.subject, other.id);
}

/// Records `record` until it is refused naming `field`, for at most 5 s (a change reaches the
/// records service's cache by event).
async fn refused_within(node: &TestNode, token: &str, record_: pb::ServiceRecord, field: &str) {
    let status = eventually(
        &format!("{field} refused"),
        Duration::from_secs(5),
        || async {
            match record(node, token, record_.clone()).await {
                Err(status) => Ok(status),
                Ok(_) => Err("still accepted"),
            }
        },
    )
    .await;
    assert_eq!(violated_fields(&status), [field], "{status:?}");
}
