//! Assessment types and recorded assessments, and barriers: typed answers checked against the
//! type, history and the latest per type, barrier types from the catalog, roles, events and
//! tenant isolation.

use std::time::Duration;

use prost::Message;
use tonic::Code;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as pb;
use caseway_api::common::v1::LifecycleState;
use caseway_api::events::v1 as events_pb;
use caseway_integration_tests::tenants::{
    answer, assessment, barrier, client_tenant, code_value, define, field, income_type,
};
use caseway_integration_tests::{TestEnv, authed, date, violated_fields};

use pb::assessment_answer::Value;

#[tokio::test]
async fn admins_define_types_and_workers_record_assessments_checked_against_them() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("clients.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = client_tenant(&env, &node, "assess").await;
    let mut assessments = node.assessments.clone();

    // Only a tenant administrator defines types; a bad definition names its fields.
    let status = assessments
        .create_assessment_type(authed(
            &t.worker,
            pb::CreateAssessmentTypeRequest {
                request_id: String::new(),
                assessment_type: Some(income_type()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut bad = income_type();
    bad.fields[1].key = "Household Size".into();
    bad.fields[2].options.clear();
    bad.fields.push(pb::AssessmentField {
        r#type: 0,
        ..field("pets", pb::FieldType::Integer, false)
    });
    let status = assessments
        .create_assessment_type(authed(
            &t.admin,
            pb::CreateAssessmentTypeRequest {
                request_id: String::new(),
                assessment_type: Some(bad),
            },
        ))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "assessment_type.fields[1].key",
            "assessment_type.fields[2].options",
            "assessment_type.fields[6].type"
        ]
    );
    let income = define(&node, &t.admin, income_type()).await;
    assert_eq!(income.state, LifecycleState::Active as i32);
    let (envelope, _) = events
        .expect(
            "clients.assessment_type_created.v1",
            Duration::from_secs(10),
        )
        .await;
    let created = events_pb::AssessmentTypeChanged::decode(envelope.payload.as_slice()).unwrap();
    assert_eq!(created.assessment_type.unwrap().fields.len(), 6);
    let status = assessments
        .create_assessment_type(authed(
            &t.admin,
            pb::CreateAssessmentTypeRequest {
                request_id: String::new(),
                assessment_type: Some(income_type()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    // Answers of the wrong kind, a missing required field, a code off the list, an unknown
    // field and a date that is no date: each named, nothing stored.
    let status = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &income.id,
                (2026, 3, 1),
                vec![
                    answer("household_size", Value::TextValue("three".into())),
                    answer("income_source", Value::CodeValue("LOTTERY".into())),
                    answer("pets", Value::IntegerValue(2)),
                    answer(
                        "last_employed_on",
                        Value::DateValue(caseway_api::google::r#type::Date {
                            year: 2025,
                            month: 2,
                            day: 30,
                        }),
                    ),
                ],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "assessment.answers.household_size",
            "assessment.answers.income_source",
            "assessment.answers.last_employed_on",
            "assessment.answers.monthly_income",
            "assessment.answers.pets",
        ]
    );
    assert!(
        status.message().contains("integer") || format!("{status:?}").contains("integer"),
        "the wrong-kind answer says what the field takes: {status:?}"
    );
    let status = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &income.id,
                (2999, 1, 1),
                vec![
                    answer("monthly_income", Value::DecimalValue("12.345678".into())),
                    answer("household_size", Value::IntegerValue(2)),
                ],
            ),
        ))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "assessment.answers.monthly_income",
            "assessment.assessment_date"
        ]
    );
    let reader = assessments.clone();
    let listed = |token: String, type_id: String| {
        let mut assessments = reader.clone();
        let client_id = t.client_id.clone();
        async move {
            assessments
                .list_assessments(authed(
                    &token,
                    pb::ListAssessmentsRequest {
                        client_id,
                        assessment_type_id: type_id,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .assessments
        }
    };
    assert!(listed(t.worker.clone(), String::new()).await.is_empty());

    // Two incomes over time and a disability assessment: history newest first, the latest
    // of each type for eligibility.
    let intake = pb::RecordAssessmentRequest {
        request_id: "intake-income".into(),
        ..assessment(
            &t.client_id,
            &income.id,
            (2026, 3, 1),
            vec![
                answer("note", Value::TextValue("pay stubs seen".into())),
                answer("monthly_income", Value::DecimalValue("1250.50".into())),
                answer("household_size", Value::IntegerValue(3)),
                answer("income_source", Value::CodeValue("EMPLOYMENT".into())),
                answer("verified", Value::BooleanValue(true)),
                answer("last_employed_on", Value::DateValue(date(2026, 2, 27))),
            ],
        )
    };
    let march = assessments
        .record_assessment(authed(&t.worker, intake.clone()))
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    assert_eq!(march.assessment_type_code, "INCOME");
    assert_eq!(
        march
            .answers
            .iter()
            .map(|a| a.key.as_str())
            .collect::<Vec<_>>(),
        [
            "monthly_income",
            "household_size",
            "income_source",
            "verified",
            "last_employed_on",
            "note"
        ],
        "answers come back in the type's order"
    );
    assert_eq!(
        march.answers[0].value,
        Some(Value::DecimalValue("1250.5".into()))
    );
    let (envelope, _) = events
        .expect("clients.assessment_recorded.v1", Duration::from_secs(10))
        .await;
    let recorded = events_pb::AssessmentRecorded::decode(envelope.payload.as_slice())
        .unwrap()
        .assessment
        .unwrap();
    assert_eq!(recorded, march, "the event carries the whole assessment");
    assert_eq!(envelope.tenant_id, t.id);

    // A retry of the same request records nothing new.
    let retried = assessments
        .record_assessment(authed(&t.worker, intake))
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    assert_eq!(retried.id, march.id);

    let june = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &income.id,
                (2026, 6, 1),
                vec![
                    answer("monthly_income", Value::DecimalValue("0".into())),
                    answer("household_size", Value::IntegerValue(4)),
                ],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    let disability = define(
        &node,
        &t.admin,
        pb::AssessmentType {
            code: "DISABILITY".into(),
            name: "Disability".into(),
            fields: vec![field("has_disability", pb::FieldType::Boolean, true)],
            ..Default::default()
        },
    )
    .await;
    let disabled = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &disability.id,
                (2026, 1, 15),
                vec![answer("has_disability", Value::BooleanValue(false))],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    let history: Vec<String> = listed(t.worker.clone(), String::new())
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        history,
        [june.id.clone(), march.id.clone(), disabled.id.clone()]
    );
    let incomes: Vec<String> = listed(t.worker.clone(), income.id.clone())
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(incomes, [june.id.clone(), march.id.clone()]);
    let latest = assessments
        .list_latest_assessments(authed(
            &t.worker,
            pb::ListLatestAssessmentsRequest {
                client_id: t.client_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessments;
    assert_eq!(
        latest
            .iter()
            .map(|a| (a.assessment_type_code.as_str(), a.id.as_str()))
            .collect::<Vec<_>>(),
        [
            ("DISABILITY", disabled.id.as_str()),
            ("INCOME", june.id.as_str())
        ]
    );

    // A changed type: a new required field applies to new assessments; old ones keep their
    // answers. A retired type takes no new assessments.
    let mut changed = income.clone();
    changed
        .fields
        .push(field("children", pb::FieldType::Integer, true));
    let changed = assessments
        .update_assessment_type(authed(
            &t.admin,
            pb::UpdateAssessmentTypeRequest {
                assessment_type: Some(changed),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["fields".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment_type
        .unwrap();
    let status = assessments
        .update_assessment_type(authed(
            &t.admin,
            pb::UpdateAssessmentTypeRequest {
                assessment_type: Some(income.clone()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "the etag is stale");
    let status = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &income.id,
                (2026, 7, 1),
                vec![
                    answer("monthly_income", Value::DecimalValue("10".into())),
                    answer("household_size", Value::IntegerValue(1)),
                ],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["assessment.answers.children"]);
    let got = assessments
        .get_assessment(authed(
            &t.worker,
            pb::GetAssessmentRequest {
                id: march.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    assert_eq!(got, march);
    assessments
        .update_assessment_type(authed(
            &t.admin,
            pb::UpdateAssessmentTypeRequest {
                assessment_type: Some(pb::AssessmentType {
                    id: changed.id.clone(),
                    etag: changed.etag.clone(),
                    state: LifecycleState::Retired as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["state".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let status = assessments
        .record_assessment(authed(
            &t.worker,
            assessment(
                &t.client_id,
                &income.id,
                (2026, 7, 1),
                vec![
                    answer("monthly_income", Value::DecimalValue("10".into())),
                    answer("household_size", Value::IntegerValue(1)),
                    answer("children", Value::IntegerValue(0)),
                ],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let types = assessments
        .list_assessment_types(authed(&t.worker, pb::ListAssessmentTypesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .assessment_types;
    assert_eq!(
        types.iter().map(|t| t.code.as_str()).collect::<Vec<_>>(),
        ["DISABILITY"],
        "retired types are listed only when asked for"
    );
    assert_eq!(listed(t.worker.clone(), String::new()).await.len(), 3);
}

#[tokio::test]
async fn barriers_take_catalog_types_and_follow_status_with_dates() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("clients.barrier_changed.v1").await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = client_tenant(&env, &node, "barriers").await;
    let other = client_tenant(&env, &node, "barriers-other").await;
    let housing = code_value(
        &node,
        &t.admin,
        catalog_pb::CodeList::BarrierType,
        "HOUSING",
    )
    .await;
    let reason = code_value(&node, &t.admin, catalog_pb::CodeList::Reason, "EVICTION").await;
    let foreign = code_value(
        &node,
        &other.admin,
        catalog_pb::CodeList::BarrierType,
        "HOUSING",
    )
    .await;
    let mut barriers = node.barriers.clone();

    for (type_id, why) in [
        (&reason, "a code of another list"),
        (&foreign, "another tenant's barrier type"),
        (&uuid::Uuid::now_v7().to_string(), "an unknown id"),
    ] {
        let status = barriers
            .create_barrier(authed(
                &t.worker,
                barrier(&t.client_id, type_id, (2026, 3, 1)),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            ["barrier.barrier_type_id"],
            "{why}: {status:?}"
        );
    }
    let status = barriers
        .create_barrier(authed(
            &t.worker,
            barrier(&t.client_id, &housing, (2999, 3, 1)),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["barrier.identified_date"]);
    let status = barriers
        .create_barrier(authed(
            &t.worker,
            barrier(&other.client_id, &housing, (2026, 3, 1)),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["barrier.client_id"]);

    let created = barriers
        .create_barrier(authed(
            &t.worker,
            barrier(&t.client_id, &housing, (2026, 3, 1)),
        ))
        .await
        .unwrap()
        .into_inner()
        .barrier
        .unwrap();
    assert_eq!(created.status, pb::BarrierStatus::Identified as i32);
    assert_eq!(created.barrier_type_code, "HOUSING");
    let (envelope, _) = events
        .expect("clients.barrier_changed.v1", Duration::from_secs(10))
        .await;
    let event = events_pb::BarrierChanged::decode(envelope.payload.as_slice()).unwrap();
    assert_eq!(event.barrier.unwrap(), created);
    assert!(event.changed_fields.is_empty());

    let update = |b: pb::Barrier, paths: &[&str]| pb::UpdateBarrierRequest {
        barrier: Some(b),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    // Resolved needs a resolved date, not before identification.
    let status = barriers
        .update_barrier(authed(
            &t.worker,
            update(
                pb::Barrier {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    status: pb::BarrierStatus::Resolved as i32,
                    ..Default::default()
                },
                &["status"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["barrier.resolved_date"]);
    let status = barriers
        .update_barrier(authed(
            &t.worker,
            update(
                pb::Barrier {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    status: pb::BarrierStatus::Resolved as i32,
                    resolved_date: Some(date(2026, 2, 1)),
                    ..Default::default()
                },
                &["status", "resolved_date"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["barrier.resolved_date"]);
    let addressed = barriers
        .update_barrier(authed(
            &t.worker,
            update(
                pb::Barrier {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    status: pb::BarrierStatus::BeingAddressed as i32,
                    ..Default::default()
                },
                &["status"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .barrier
        .unwrap();
    let resolved = barriers
        .update_barrier(authed(
            &t.worker,
            update(
                pb::Barrier {
                    id: created.id.clone(),
                    etag: addressed.etag.clone(),
                    status: pb::BarrierStatus::Resolved as i32,
                    resolved_date: Some(date(2026, 4, 15)),
                    ..Default::default()
                },
                &["status", "resolved_date"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .barrier
        .unwrap();
    assert_eq!(resolved.resolved_date, Some(date(2026, 4, 15)));
    assert_eq!(
        resolved.note, "behind on rent",
        "fields outside the mask stay"
    );
    let status = barriers
        .update_barrier(authed(
            &t.worker,
            update(
                pb::Barrier {
                    id: created.id.clone(),
                    etag: addressed.etag.clone(),
                    note: "stale".into(),
                    ..Default::default()
                },
                &["note"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let mut changes = Vec::new();
    for _ in 0..2 {
        let (envelope, _) = events
            .expect("clients.barrier_changed.v1", Duration::from_secs(10))
            .await;
        let event = events_pb::BarrierChanged::decode(envelope.payload.as_slice()).unwrap();
        changes.push((event.barrier.unwrap().status, event.changed_fields));
    }
    assert_eq!(
        changes,
        [
            (
                pb::BarrierStatus::BeingAddressed as i32,
                vec!["status".to_string()]
            ),
            (
                pb::BarrierStatus::Resolved as i32,
                vec!["resolved_date".to_string(), "status".to_string()]
            ),
        ]
    );

    let employment = code_value(
        &node,
        &t.admin,
        catalog_pb::CodeList::BarrierType,
        "EMPLOYMENT",
    )
    .await;
    let open = barriers
        .create_barrier(authed(
            &t.worker,
            barrier(&t.client_id, &employment, (2026, 5, 1)),
        ))
        .await
        .unwrap()
        .into_inner()
        .barrier
        .unwrap();
    let reader = barriers.clone();
    let list = |status: pb::BarrierStatus| {
        let mut barriers = reader.clone();
        let (token, client_id) = (t.worker.clone(), t.client_id.clone());
        async move {
            barriers
                .list_barriers(authed(
                    &token,
                    pb::ListBarriersRequest {
                        client_id,
                        status: status as i32,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .barriers
                .into_iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(pb::BarrierStatus::Unspecified).await,
        [open.id.clone(), created.id.clone()]
    );
    assert_eq!(
        list(pb::BarrierStatus::Identified).await,
        std::slice::from_ref(&open.id)
    );
    assert_eq!(
        list(pb::BarrierStatus::Resolved).await,
        std::slice::from_ref(&created.id)
    );
    let got = barriers
        .get_barrier(authed(
            &t.worker,
            pb::GetBarrierRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .barrier
        .unwrap();
    assert_eq!(got, resolved);
}
