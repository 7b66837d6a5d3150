//! Service eligibility over the whole system: rules type-checked when saved, facts kept from
//! the clients and records services' events, decisions as of a date explained with the facts
//! they read, UNDETERMINED for a missing fact, replay after the rule and the facts changed,
//! flips published, and roles.

use std::time::Duration;

use chrono::Datelike;

use prost::Message;
use tonic::Code;

use caseway_api::clients::v1 as clients_pb;
use caseway_api::eligibility::v1 as pb;
use caseway_api::events::v1 as events_pb;
use caseway_api::records::v1 as records_pb;
use caseway_integration_tests::tenants::{EligibilityTenant, answer, eligibility_tenant};
use caseway_integration_tests::{
    TestEnv, TestNode, authed, criterion, date, rule_of, store_as_a_decision_row, violated_fields,
};
use caseway_test_support::eventually;

use clients_pb::assessment_answer::Value;
use pb::{EnforcementMode, Outcome};

const WAIT: Duration = Duration::from_secs(10);

fn income(
    client: &str,
    type_id: &str,
    on: (i32, i32, i32),
    amount: &str,
) -> clients_pb::Assessment {
    clients_pb::Assessment {
        client_id: client.into(),
        assessment_type_id: type_id.into(),
        assessment_date: Some(date(on.0, on.1, on.2)),
        answers: vec![
            answer("monthly_income", Value::DecimalValue(amount.into())),
            answer("household_size", Value::IntegerValue(2)),
        ],
        ..Default::default()
    }
}

/// A decision with the facts its reply listed, which its criteria's `fact_indexes` point at.
/// Two are equal when the decisions are and each criterion read the same facts, wherever its
/// reply listed them.
#[derive(Clone, Debug)]
struct Explained {
    decision: pb::Decision,
    facts: Vec<pb::FactUse>,
}

impl Explained {
    /// The decisions of a reply, each with the reply's facts.
    fn all(decisions: Vec<pb::Decision>, facts: Vec<pb::FactUse>) -> Vec<Explained> {
        decisions
            .into_iter()
            .map(|decision| Explained {
                decision,
                facts: facts.clone(),
            })
            .collect()
    }

    /// Each criterion's name and outcome, with the facts it read.
    fn criteria_read(&self) -> Vec<(String, i32, Vec<pb::FactUse>)> {
        self.criteria
            .iter()
            .map(|c| {
                let read = c.fact_indexes.iter();
                let read = read.map(|i| self.facts[*i as usize].clone()).collect();
                (c.name.clone(), c.outcome, read)
            })
            .collect()
    }
}

impl PartialEq for Explained {
    fn eq(&self, other: &Explained) -> bool {
        let bare = |e: &Explained| pb::Decision {
            criteria: vec![],
            ..e.decision.clone()
        };
        bare(self) == bare(other) && self.criteria_read() == other.criteria_read()
    }
}

impl std::ops::Deref for Explained {
    type Target = pb::Decision;

    fn deref(&self) -> &pb::Decision {
        &self.decision
    }
}

async fn check(
    node: &TestNode,
    token: &str,
    client: &str,
    on: (i32, i32, i32),
) -> Result<Vec<Explained>, tonic::Status> {
    node.eligibility
        .clone()
        .check_eligibility(authed(
            token,
            pb::CheckEligibilityRequest {
                client_id: client.into(),
                service_ids: vec![],
                as_of: Some(date(on.0, on.1, on.2)),
                view: pb::DecisionView::Unspecified as i32,
            },
        ))
        .await
        .map(|r| {
            let reply = r.into_inner();
            Explained::all(reply.decisions, reply.facts)
        })
}

/// A stored decision, as GetDecision answers it.
async fn decision(node: &TestNode, token: &str, id: &str) -> Explained {
    let reply = node
        .eligibility
        .clone()
        .get_decision(authed(token, pb::GetDecisionRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner();
    Explained {
        decision: reply.decision.unwrap(),
        facts: reply.facts,
    }
}

/// Checks until the decision for `service` has `outcome` (the facts' events have come).
async fn wait_for(
    node: &TestNode,
    t: &EligibilityTenant,
    service: &str,
    on: (i32, i32, i32),
    outcome: Outcome,
) -> Explained {
    wait_until(node, t, service, on, |d| d.outcome == outcome as i32).await
}

/// Checks until the decision for `service` is as `expected` says.
async fn wait_until(
    node: &TestNode,
    t: &EligibilityTenant,
    service: &str,
    on: (i32, i32, i32),
    expected: impl Fn(&Explained) -> bool,
) -> Explained {
    eventually("the decision expected", WAIT, || async {
        let decisions = check(node, &t.worker, &t.maria, on)
            .await
            .map_err(|s| s.message().to_string())?;
        let decision = decisions.into_iter().find(|d| d.service_id == service);
        match decision {
            Some(d) if expected(&d) => Ok(d),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn outcome_of(decision: &pb::Decision, criterion: &str) -> Outcome {
    let found = decision
        .criteria
        .iter()
        .find(|c| c.name == criterion)
        .unwrap_or_else(|| panic!("no criterion {criterion} in {decision:?}"));
    Outcome::try_from(found.outcome).unwrap()
}

/// The fact at `path` that a criterion of the decision read.
fn fact<'a>(explained: &'a Explained, path: &str) -> &'a pb::FactUse {
    explained
        .criteria
        .iter()
        .flat_map(|c| &c.fact_indexes)
        .map(|i| &explained.facts[*i as usize])
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no fact {path} in {explained:?}"))
}

#[tokio::test]
async fn a_rule_is_type_checked_when_saved_and_a_mistake_names_its_criterion() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-check").await;
    let mut eligibility = node.eligibility.clone();
    let create = |token: &str, criteria: Vec<pb::Criterion>| {
        authed(
            token,
            pb::CreateRuleRequest {
                request_id: String::new(),
                rule: Some(pb::Rule {
                    service_id: t.assistance.clone(),
                    mode: EnforcementMode::Advisory as i32,
                    criteria,
                    ..Default::default()
                }),
            },
        )
    };
    let good = || {
        vec![
            criterion("adult", "age >= 18", ""),
            criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            ),
        ]
    };

    // Case workers check; only a tenant administrator defines.
    let status = eligibility
        .create_rule(create(&t.worker, good()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Each kind of mistake, named by its criterion, with the place and the reason.
    for (expression, says) in [
        (
            "assessments.INCOME.monthly_incom <= 2430",
            "line 1, column 1",
        ),
        ("assessments.INCOME.last_employed_on < 5", "_<_"),
        ("delivered('NO_SUCH', 365).value < 1500", "NO_SUCH"),
        ("age + 1", "must be a bool"),
    ] {
        let mut criteria = good();
        criteria.push(criterion("third", expression, ""));
        let status = eligibility
            .create_rule(create(&t.admin, criteria))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{expression}");
        assert_eq!(
            violated_fields(&status),
            ["rule.criteria[2].expression"],
            "{expression}"
        );
        assert!(
            status.message().contains(says),
            "{expression}: {} should say {says}",
            status.message()
        );
    }
    // An any-of group of one, and a rule with no criteria.
    let mut lonely = good();
    lonely.push(criterion("veteran", "veteran", "priority"));
    let status = eligibility
        .create_rule(create(&t.admin, lonely))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["rule.criteria[2].any_of_group"]);
    let status = eligibility
        .create_rule(create(&t.admin, vec![]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["rule.criteria"]);

    // Nothing was saved.
    let listed = eligibility
        .list_rules(authed(&t.admin, pb::ListRulesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.rules.is_empty(), "{listed:?}");

    // A good rule is a draft until published; one rule per service.
    let rule = eligibility
        .create_rule(create(&t.admin, good()))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(
        (
            rule.published_version,
            rule.draft_changed,
            rule.service_code.as_str()
        ),
        (0, true, "FIN_ASSIST")
    );
    let status = eligibility
        .create_rule(create(&t.admin, good()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    // A misspelt field in an update is refused the same way, and the draft is unchanged.
    let status = eligibility
        .update_rule(authed(
            &t.admin,
            pb::UpdateRuleRequest {
                rule: Some(pb::Rule {
                    id: rule.id.clone(),
                    criteria: vec![criterion("adult", "agee >= 18", "")],
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["rule.criteria[0].expression"]);
    let published = eligibility
        .publish_rule(authed(
            &t.admin,
            pb::PublishRuleRequest {
                id: rule.id.clone(),
                etag: rule.etag.clone(),
                request_id: "publish-1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let version = published.version.unwrap();
    assert_eq!((version.version, version.criteria.len()), (1, 2));
    assert_eq!(published.rule.as_ref().unwrap().published_version, 1);
    // Publishing an unchanged draft again is refused by rule.
    let status = eligibility
        .publish_rule(authed(
            &t.admin,
            pb::PublishRuleRequest {
                id: rule.id.clone(),
                etag: String::new(),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "rule_published");
    // Case workers read rules and versions but do not publish.
    let status = eligibility
        .publish_rule(authed(
            &t.worker,
            pb::PublishRuleRequest {
                id: rule.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let read = eligibility
        .get_rule_version(authed(
            &t.worker,
            pb::GetRuleVersionRequest {
                rule_id: rule.id.clone(),
                version: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap();
    assert_eq!(read, version);
}

#[tokio::test]
async fn decisions_read_each_kind_of_fact_as_of_their_date_and_say_where_it_came_from() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-facts").await;
    let worker = node.fixtures(&t.worker);
    t.publish(
        &node,
        &t.assistance,
        EnforcementMode::Advisory,
        vec![
            criterion("adult", "age >= 18", ""),
            criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            ),
            criterion("cap", "delivered('FIN_ASSIST', 365).value < 1500", ""),
        ],
    )
    .await;
    t.publish(
        &node,
        &t.counseling,
        EnforcementMode::Advisory,
        vec![
            criterion(
                "housing",
                "barriers.exists(b, b.type == 'HOUSING' && b.status != 'RESOLVED')",
                "",
            ),
            criterion("veteran", "veteran", "priority"),
            criterion(
                "enrolled",
                "enrollments.exists(e, e.program == 'PREVENTION' && e.active)",
                "priority",
            ),
        ],
    )
    .await;

    // No income assessment yet: not the same as no income.
    let before = wait_for(
        &node,
        &t,
        &t.assistance,
        (2026, 3, 15),
        Outcome::Undetermined,
    )
    .await;
    assert_eq!(outcome_of(&before, "adult"), Outcome::Eligible);
    assert_eq!(outcome_of(&before, "income"), Outcome::Undetermined);
    assert!(fact(&before, "assessments.INCOME.monthly_income").missing);
    assert_eq!(fact(&before, "age").value, "35");
    assert_eq!(fact(&before, "age").sources[0].id, t.maria);

    let assessment = worker
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 1), "900.50"))
        .await
        .unwrap();
    let barrier = worker
        .barrier(clients_pb::Barrier {
            client_id: t.maria.clone(),
            barrier_type_id: t.housing.clone(),
            identified_date: Some(date(2026, 2, 1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let enrollment = worker
        .enrollment(&t.maria, &t.program, date(2026, 1, 5))
        .await
        .unwrap();
    let record = worker
        .record(records_pb::ServiceRecord {
            client_id: t.maria.clone(),
            service_id: t.assistance.clone(),
            service_date: Some(date(2026, 3, 10)),
            units: "1000".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Every fact followed its event; the decision says what it read and from where.
    let assistance = wait_until(&node, &t, &t.assistance, (2026, 3, 15), |d| {
        d.outcome == Outcome::Eligible as i32
            && fact(d, "delivered('FIN_ASSIST', 365)")
                .value
                .ends_with("count 1")
    })
    .await;
    let income_fact = fact(&assistance, "assessments.INCOME.monthly_income");
    assert_eq!(income_fact.value, "900.5");
    assert_eq!(income_fact.sources[0].kind, "assessment");
    assert_eq!(income_fact.sources[0].id, assessment);
    assert_eq!(
        income_fact.sources[0].effective_date,
        Some(date(2026, 3, 1))
    );
    let cap = fact(&assistance, "delivered('FIN_ASSIST', 365)");
    assert_eq!(cap.value, "value 1000, units 1000, count 1");
    assert_eq!(cap.sources[0].id, record.id);
    assert!(!assistance.id.is_empty(), "a check is stored");
    let counseling = wait_until(&node, &t, &t.counseling, (2026, 3, 15), |d| {
        d.outcome == Outcome::Eligible as i32 && !fact(d, "enrollments").sources.is_empty()
    })
    .await;
    assert_eq!(outcome_of(&counseling, "veteran"), Outcome::NotEligible);
    assert_eq!(outcome_of(&counseling, "enrolled"), Outcome::Eligible);
    assert_eq!(fact(&counseling, "barriers").sources[0].id, barrier);
    assert_eq!(fact(&counseling, "enrollments").sources[0].id, enrollment);

    // As of an earlier date: the barrier was not identified yet, nor the assessment made.
    let january = check(&node, &t.worker, &t.maria, (2026, 1, 20))
        .await
        .unwrap();
    let by_code = |code: &str| january.iter().find(|d| d.service_code == code).unwrap();
    assert_eq!(by_code("COUNSEL").outcome, Outcome::NotEligible as i32);
    assert_eq!(by_code("FIN_ASSIST").outcome, Outcome::Undetermined as i32);

    // The case worker's form: what she may receive, and what needs information first.
    let form = node
        .eligibility
        .clone()
        .list_eligible_services(authed(
            &t.worker,
            pb::ListEligibleServicesRequest {
                client_id: t.maria.clone(),
                as_of: Some(date(2026, 1, 20)),
                view: pb::DecisionView::Full as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(form.eligible.is_empty());
    assert_eq!(form.needs_information.len(), 1);
    assert_eq!(form.needs_information[0].service_code, "FIN_ASSIST");

    // A stored decision reads back as it was taken.
    let stored = decision(&node, &t.worker, &assistance.id).await;
    assert_eq!(stored.criteria_read(), assistance.criteria_read());
    assert_eq!(stored.outcome, assistance.outcome);
    // The same decision taken again on the same facts is the stored one; another date is
    // another decision. (Taken twice now that every fact is in: `assistance` may have been
    // decided before the enrollment's event came, which the counseling wait made sure of.)
    let fin_assist = |decisions: Vec<Explained>| {
        decisions
            .into_iter()
            .find(|d| d.service_code == "FIN_ASSIST")
            .unwrap()
    };
    let settled = fin_assist(
        check(&node, &t.worker, &t.maria, (2026, 3, 15))
            .await
            .unwrap(),
    );
    let again = fin_assist(
        check(&node, &t.worker, &t.maria, (2026, 3, 15))
            .await
            .unwrap(),
    );
    assert_eq!(
        (&again.id, &again.decide_time),
        (&settled.id, &settled.decide_time)
    );
    let later = check(&node, &t.worker, &t.maria, (2026, 3, 16))
        .await
        .unwrap();
    let later = later
        .iter()
        .find(|d| d.service_code == "FIN_ASSIST")
        .unwrap();
    assert_ne!(later.id, settled.id);
}

#[tokio::test]
async fn a_replay_gives_the_stored_result_after_the_rule_and_the_facts_changed() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-replay").await;
    let worker = node.fixtures(&t.worker);
    let rule = t
        .publish(
            &node,
            &t.assistance,
            EnforcementMode::Advisory,
            vec![criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            )],
        )
        .await;
    worker
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 1), "900"))
        .await
        .unwrap();
    let decision = wait_for(&node, &t, &t.assistance, (2026, 3, 15), Outcome::Eligible).await;

    // The rule tightens and the client's income rises.
    let mut eligibility = node.eligibility.clone();
    let updated = eligibility
        .update_rule(authed(
            &t.admin,
            pb::UpdateRuleRequest {
                rule: Some(pb::Rule {
                    id: rule.id.clone(),
                    criteria: vec![criterion(
                        "income",
                        "assessments.INCOME.monthly_income <= 500",
                        "",
                    )],
                    etag: rule.etag.clone(),
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert!(updated.draft_changed);
    // A draft is tested before it is published; nothing is stored.
    let tested = eligibility
        .test_rule(authed(
            &t.admin,
            pb::TestRuleRequest {
                rule_id: rule.id.clone(),
                version: 0,
                client_id: t.maria.clone(),
                as_of: Some(date(2026, 3, 15)),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(tested.outcome, Outcome::NotEligible as i32);
    assert!(tested.id.is_empty());
    let status = eligibility
        .test_rule(authed(
            &t.worker,
            pb::TestRuleRequest {
                rule_id: rule.id.clone(),
                client_id: t.maria.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    eligibility
        .publish_rule(authed(
            &t.admin,
            pb::PublishRuleRequest {
                id: rule.id.clone(),
                etag: updated.etag.clone(),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    worker
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 5), "4000"))
        .await
        .unwrap();
    let now = wait_for(
        &node,
        &t,
        &t.assistance,
        (2026, 3, 15),
        Outcome::NotEligible,
    )
    .await;
    assert_eq!(now.rule_version, 2);

    // The stored decision replays to what it was.
    let replay = eligibility
        .replay_decision(authed(
            &t.worker,
            pb::ReplayDecisionRequest {
                id: decision.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.same, "{replay:?}");
    let replayed = replay.replayed.unwrap();
    assert_eq!(replayed.outcome, Outcome::Eligible as i32);
    assert_eq!(replayed.rule_version, 1);
    assert_eq!(replayed.criteria, decision.criteria);
}

#[tokio::test]
async fn a_decision_stored_one_to_a_row_before_checks_were_reads_and_replays_the_same() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-row").await;
    t.publish(
        &node,
        &t.assistance,
        EnforcementMode::Advisory,
        vec![
            criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            ),
            criterion("adult", "age >= 18", ""),
        ],
    )
    .await;
    node.fixtures(&t.worker)
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 1), "900"))
        .await
        .unwrap();
    wait_for(&node, &t, &t.assistance, (2026, 3, 15), Outcome::Eligible).await;
    let (row, named) = store_as_a_decision_row(&mut env.db.owner().await, t.tenant).await;
    let get = |id: uuid::Uuid| {
        let mut eligibility = node.eligibility.clone();
        let request = authed(&t.worker, pb::GetDecisionRequest { id: id.to_string() });
        async move {
            let decision = eligibility.get_decision(request).await.unwrap();
            decision.into_inner().decision.unwrap()
        }
    };
    let (from_row, from_check) = (get(row).await, get(named).await);
    assert!(!from_row.criteria.is_empty() && !from_row.criteria[0].fact_indexes.is_empty());
    assert_eq!(
        from_row,
        pb::Decision {
            id: row.to_string(),
            ..from_check
        }
    );
    let replay = node
        .eligibility
        .clone()
        .replay_decision(authed(
            &t.worker,
            pb::ReplayDecisionRequest {
                id: row.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.same, "{replay:?}");
}

#[tokio::test]
async fn new_facts_that_flip_a_client_publish_eligibility_changed() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("eligibility.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-flip").await;
    let worker = node.fixtures(&t.worker);
    let rule = t
        .publish(
            &node,
            &t.assistance,
            EnforcementMode::Advisory,
            vec![criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            )],
        )
        .await;
    let (created, _) = events.expect("eligibility.rule_created.v1", WAIT).await;
    let payload = events_pb::RuleChanged::decode(created.payload.as_slice()).unwrap();
    assert_eq!(payload.rule.unwrap().id, rule.id);
    events.expect("eligibility.rule_published.v1", WAIT).await;

    // The first facts set where she stands; new facts that change it are published.
    worker
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 1), "900"))
        .await
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    let today = (today.year(), today.month() as i32, today.day() as i32);
    wait_for(&node, &t, &t.assistance, today, Outcome::Eligible).await;
    worker
        .assessment(income(&t.maria, &t.income_type, (2026, 4, 1), "5000"))
        .await
        .unwrap();
    let (flip, _) = events
        .expect("eligibility.eligibility_changed.v1", WAIT)
        .await;
    let change = events_pb::EligibilityChanged::decode(flip.payload.as_slice()).unwrap();
    assert_eq!(change.client_id, t.maria);
    assert_eq!(change.service_id, t.assistance);
    assert_eq!(
        (change.before, change.after),
        (Outcome::Eligible as i32, Outcome::NotEligible as i32)
    );
    let decision = decision(&node, &t.worker, &change.decision_id).await;
    assert_eq!(decision.outcome, Outcome::NotEligible as i32);
    assert_eq!(
        fact(&decision, "assessments.INCOME.monthly_income").value,
        "5000"
    );
}

/// Maria's birth date becomes 1 January 2010: under 18 in 2026.
async fn born_in_2010(node: &TestNode, t: &EligibilityTenant) {
    node.clients
        .clone()
        .update_client(authed(
            &t.worker,
            clients_pb::UpdateClientRequest {
                client: Some(clients_pb::Client {
                    id: t.maria.clone(),
                    birth_date: Some(date(2010, 1, 1)),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["birth_date".into()],
                }),
            },
        ))
        .await
        .unwrap();
}

/// A node with an eligibility tenant whose Financial Assistance and counseling have an
/// advisory rule published: adults only.
async fn adults_only(slug: &str) -> (TestEnv, TestNode, EligibilityTenant) {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, slug).await;
    for service in [&t.assistance, &t.counseling] {
        t.publish(
            &node,
            service,
            EnforcementMode::Advisory,
            vec![criterion("adult", "age >= 18", "")],
        )
        .await;
    }
    (env, node, t)
}

#[tokio::test]
async fn a_check_asked_again_answers_the_same_until_a_fact_of_the_client_or_the_tenant_changes() {
    use caseway_api::catalog::v1 as catalog_pb;
    let (_env, node, t) = adults_only("elig-memo").await;
    let on = (2026, 3, 15);
    let first = check(&node, &t.worker, &t.maria, on).await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    let again = check(&node, &t.worker, &t.maria, on).await.unwrap();
    assert_eq!(again, first);
    // The age both rules read is listed once in the reply, and both criteria point at it.
    let listed = &first[0].facts;
    assert_eq!(listed.iter().filter(|f| f.path == "age").count(), 1);
    let ages: Vec<i32> = first
        .iter()
        .flat_map(|d| &d.criteria)
        .flat_map(|c| c.fact_indexes.iter().copied())
        .filter(|i| listed[*i as usize].path == "age")
        .collect();
    assert_eq!(ages.len(), 2, "{first:?}");
    assert_eq!(ages[0], ages[1]);

    // Naming services answers from the same decisions, and still refuses what is not one.
    let mut eligibility = node.eligibility.clone();
    let named = |ids: Vec<String>, view: i32| {
        authed(
            &t.worker,
            pb::CheckEligibilityRequest {
                client_id: t.maria.clone(),
                service_ids: ids,
                as_of: Some(date(on.0, on.1, on.2)),
                view,
            },
        )
    };
    let full = pb::DecisionView::Full as i32;
    let one = eligibility
        .check_eligibility(named(vec![t.counseling.clone()], full))
        .await
        .unwrap()
        .into_inner();
    let one = Explained::all(one.decisions, one.facts);
    let counseling = first.iter().find(|d| d.service_id == t.counseling).unwrap();
    assert_eq!(one, vec![counseling.clone()]);
    let status = eligibility
        .check_eligibility(named(
            vec![t.counseling.clone(), uuid::Uuid::new_v4().to_string()],
            full,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["service_ids[1]"]);

    // The BASIC view is the same decisions without their criteria; a view not in the
    // contract is refused.
    let basic = eligibility
        .check_eligibility(named(vec![], pb::DecisionView::Basic as i32))
        .await
        .unwrap()
        .into_inner();
    let without_criteria: Vec<pb::Decision> = first
        .iter()
        .map(|d| pb::Decision {
            criteria: vec![],
            ..d.decision.clone()
        })
        .collect();
    assert_eq!(basic.decisions, without_criteria);
    assert!(basic.facts.is_empty(), "no facts without criteria");
    let status = eligibility
        .check_eligibility(named(vec![], 99))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["view"]);

    // A fact of the tenant (a service's code) changes every client's decisions.
    node.catalog
        .clone()
        .update_service(authed(
            &t.admin,
            catalog_pb::UpdateServiceRequest {
                service: Some(catalog_pb::Service {
                    id: t.assistance.clone(),
                    code: "FA2".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["code".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let renamed = wait_until(&node, &t, &t.assistance, on, |d| d.service_code == "FA2").await;
    assert_ne!(renamed.id, first[0].id);

    // A fact of the client's (a birth date) does too, and a check of another date is its own,
    // taken on the new facts.
    born_in_2010(&node, &t).await;
    wait_for(&node, &t, &t.counseling, on, Outcome::NotEligible).await;
    let next_day = check(&node, &t.worker, &t.maria, (2026, 3, 16))
        .await
        .unwrap();
    assert!(
        next_day
            .iter()
            .all(|d| d.outcome == Outcome::NotEligible as i32),
        "{next_day:?}"
    );
    let later = check(&node, &t.worker, &t.maria, (2028, 1, 2))
        .await
        .unwrap();
    assert!(
        later.iter().all(|d| d.outcome == Outcome::Eligible as i32),
        "{later:?}"
    );
}

#[tokio::test]
async fn racing_checks_of_the_same_facts_store_one_check_and_answer_its_decisions() {
    let (env, node, t) = adults_only("elig-race").await;
    // Eight checks at once of a date none has asked: each decides and stores (one statement
    // each, committed by itself); the first stored is the one every caller gets.
    let on = (2026, 4, 2);
    let racing =
        futures::future::join_all((0..8).map(|_| check(&node, &t.worker, &t.maria, on))).await;
    let first = racing[0].as_ref().unwrap().clone();
    assert_eq!(first.len(), 2, "{first:?}");
    for answer in &racing {
        assert_eq!(answer.as_ref().unwrap(), &first);
    }
    let mut owner = env.db.owner().await;
    let (checks, snapshots): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM eligibility.checks WHERE tenant_id = $1 AND as_of = $2), \
         (SELECT count(DISTINCT facts_digest) FROM eligibility.checks \
          WHERE tenant_id = $1 AND as_of = $2)",
    )
    .bind(t.tenant.as_uuid())
    .bind(chrono::NaiveDate::from_ymd_opt(2026, 4, 2).unwrap())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((checks, snapshots), (1, 1));
    // Each decision reads back as answered.
    for answered in &first {
        let stored = decision(&node, &t.worker, &answered.id).await;
        assert_eq!(
            (&stored.id, stored.outcome, &stored.decide_time),
            (&answered.id, answered.outcome, &answered.decide_time)
        );
    }
}

#[tokio::test]
async fn a_fact_that_comes_while_the_memo_is_not_listening_is_never_missed() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-deaf").await;
    t.publish(
        &node,
        &t.counseling,
        EnforcementMode::Advisory,
        vec![criterion("adult", "age >= 18", "")],
    )
    .await;
    let on = (2026, 3, 15);
    wait_for(&node, &t, &t.counseling, on, Outcome::Eligible).await;
    // PostgreSQL ends the memo's listening connection (as a restart or a network cut would).
    eventually("the memo's listener ended", WAIT, || async {
        let mut owner = env.db.owner().await;
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN \"eligibility_facts\"%'",
        )
        .fetch_all(&mut owner)
        .await
        .unwrap();
        if ended.contains(&true) {
            Ok(())
        } else {
            Err(ended)
        }
    })
    .await;
    born_in_2010(&node, &t).await;
    wait_for(&node, &t, &t.counseling, on, Outcome::NotEligible).await;
}

#[tokio::test]
async fn a_restricted_service_hides_its_rule_from_a_worker_outside_its_organizations() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-orgs").await;
    let rule = t
        .publish(
            &node,
            &t.workshop,
            EnforcementMode::Advisory,
            vec![criterion("adult", "age >= 18", "")],
        )
        .await;
    let mut eligibility = node.eligibility.clone();
    let status = eligibility
        .get_rule(authed(
            &t.south_worker,
            pb::GetRuleRequest {
                id: rule.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let north = check(&node, &t.worker, &t.maria, (2026, 3, 15))
        .await
        .unwrap();
    assert_eq!(north.len(), 1);
    let south = check(&node, &t.south_worker, &t.maria, (2026, 3, 15))
        .await
        .unwrap();
    assert!(south.is_empty(), "{south:?}");
    let status = eligibility
        .get_decision(authed(
            &t.south_worker,
            pb::GetDecisionRequest {
                id: north[0].id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_required_rule_refuses_records_and_authorizations_and_an_advisory_one_does_not() {
    use caseway_api::authorizations::v1 as auth_pb;
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-enforce").await;
    let worker = node.fixtures(&t.worker);
    t.publish(
        &node,
        &t.assistance,
        EnforcementMode::Required,
        vec![
            criterion("adult", "age >= 18", ""),
            criterion(
                "income",
                "assessments.INCOME.monthly_income <= 2 * 1215",
                "",
            ),
        ],
    )
    .await;
    let counseling = t
        .publish(
            &node,
            &t.counseling,
            EnforcementMode::Advisory,
            vec![criterion("senior", "age >= 65", "")],
        )
        .await;
    worker
        .assessment(income(&t.maria, &t.income_type, (2026, 3, 1), "4000"))
        .await
        .unwrap();
    wait_for(
        &node,
        &t,
        &t.assistance,
        (2026, 3, 15),
        Outcome::NotEligible,
    )
    .await;
    let delivery = |service: &str, day: u32| records_pb::ServiceRecord {
        client_id: t.maria.clone(),
        service_id: service.into(),
        service_date: Some(date(2026, 3, day as i32)),
        units: "100".into(),
        ..Default::default()
    };

    // Found not eligible on the service date: refused, naming the rule and the criterion.
    let status = worker
        .record(delivery(&t.assistance, 15))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "service_eligibility");
    assert!(status.message().contains("income"), "{}", status.message());
    // Quick Services with that line store nothing.
    let status = node
        .records
        .clone()
        .record_quick_services(authed(
            &t.worker,
            records_pb::RecordQuickServicesRequest {
                request_id: String::new(),
                client_id: t.maria.clone(),
                service_date: Some(date(2026, 3, 15)),
                lines: vec![
                    records_pb::QuickServiceLine {
                        service_id: t.counseling.clone(),
                        units: "1".into(),
                        ..Default::default()
                    },
                    records_pb::QuickServiceLine {
                        service_id: t.assistance.clone(),
                        units: "100".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rule_of(&status), "service_eligibility");
    // Before the income assessment the rule is UNDETERMINED, which does not refuse; an
    // ADVISORY rule never does.
    let mut before = delivery(&t.assistance, 1);
    before.service_date = Some(date(2026, 2, 20));
    worker.record(before).await.unwrap();
    worker.record(delivery(&t.counseling, 15)).await.unwrap();

    // A plan is refused on its first day the same way.
    let plan = |service: &str| auth_pb::Authorization {
        client_id: t.maria.clone(),
        service_id: service.into(),
        grant_id: t.grant.clone(),
        begin_date: Some(date(2026, 3, 15)),
        end_date: Some(date(2026, 3, 31)),
        units_per_occurrence: "1".into(),
        recurrence: "FREQ=WEEKLY".into(),
        reason: "Rent arrears".into(),
        goals: "Keep the apartment".into(),
        ..Default::default()
    };
    let status = worker.authorization(plan(&t.assistance)).await.unwrap_err();
    assert_eq!(rule_of(&status), "service_eligibility");
    worker.authorization(plan(&t.counseling)).await.unwrap();

    // Counseling's rule made REQUIRED binds from its publication on.
    let mut eligibility = node.eligibility.clone();
    let updated = eligibility
        .update_rule(authed(
            &t.admin,
            pb::UpdateRuleRequest {
                rule: Some(pb::Rule {
                    id: counseling.id.clone(),
                    mode: EnforcementMode::Required as i32,
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    eligibility
        .publish_rule(authed(
            &t.admin,
            pb::PublishRuleRequest {
                id: counseling.id.clone(),
                etag: updated.etag,
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    eventually("counseling refused", WAIT, || async {
        match worker.record(delivery(&t.counseling, 16)).await {
            Err(status) if status.code() == Code::FailedPrecondition => Ok(rule_of(&status)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The eligibility service's facts of `tenant`, table by table, as rows (the owner reads past
/// row-level security).
async fn facts_of(env: &TestEnv, tenant: caseway_platform::TenantId) -> Vec<(String, Vec<String>)> {
    let mut owner = env.db.owner().await;
    let mut tables = Vec::new();
    for table in FACT_TABLES {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT (to_jsonb(t) - 'tenant_id')::text FROM eligibility.{table} t \
             WHERE tenant_id = $1 ORDER BY id"
        )))
        .bind(tenant.as_uuid())
        .fetch_all(&mut owner)
        .await
        .unwrap();
        tables.push((table.to_string(), rows));
    }
    tables
}

const FACT_TABLES: [&str; 8] = [
    "services",
    "programs",
    "assessment_types",
    "clients",
    "assessments",
    "barriers",
    "enrollments",
    "deliveries",
];

#[tokio::test]
async fn a_rebuild_from_the_other_services_apis_gives_the_facts_the_events_gave() {
    use caseway_eligibility::rebuild::{Sources, rebuild};
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let t = eligibility_tenant(&env, &node, "elig-rebuild").await;
    let worker = node.fixtures(&t.worker);
    // A history with changes: an updated client, two assessments, a barrier resolved, an
    // enrollment, two deliveries and a second client.
    let mut maria = node
        .clients
        .clone()
        .get_client(authed(
            &t.worker,
            clients_pb::GetClientRequest {
                id: t.maria.clone(),
                ssn_view: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    maria.veteran_status = clients_pb::VeteranStatus::Yes as i32;
    node.clients
        .clone()
        .update_client(authed(
            &t.worker,
            clients_pb::UpdateClientRequest {
                client: Some(maria),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["veteran_status".into()],
                }),
            },
        ))
        .await
        .unwrap();
    for (on, amount) in [((2026, 1, 10), "3000"), ((2026, 3, 1), "900")] {
        worker
            .assessment(income(&t.maria, &t.income_type, on, amount))
            .await
            .unwrap();
    }
    let barrier = worker
        .barrier(clients_pb::Barrier {
            client_id: t.maria.clone(),
            barrier_type_id: t.housing.clone(),
            identified_date: Some(date(2026, 2, 1)),
            ..Default::default()
        })
        .await
        .unwrap();
    node.barriers
        .clone()
        .update_barrier(authed(
            &t.worker,
            clients_pb::UpdateBarrierRequest {
                barrier: Some(clients_pb::Barrier {
                    id: barrier,
                    status: clients_pb::BarrierStatus::Resolved as i32,
                    resolved_date: Some(date(2026, 5, 1)),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["status".into(), "resolved_date".into()],
                }),
            },
        ))
        .await
        .unwrap();
    worker
        .enrollment(&t.maria, &t.program, date(2026, 1, 5))
        .await
        .unwrap();
    for (day, units) in [(10, "400"), (20, "250")] {
        worker
            .record(records_pb::ServiceRecord {
                client_id: t.maria.clone(),
                service_id: t.assistance.clone(),
                service_date: Some(date(2026, 3, day)),
                units: units.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    worker
        .client(caseway_integration_tests::tenants::client(
            "John",
            "Smith",
            "",
            (1980, 1, 1),
        ))
        .await
        .unwrap();

    // The events have brought everything: both clients, the veteran, both deliveries, the
    // barrier resolved.
    let from_events = eventually("every fact from the events", WAIT, || async {
        let facts = facts_of(&env, t.tenant).await;
        let rows = |table: &str| {
            facts
                .iter()
                .find(|(name, _)| name == table)
                .map(|(_, rows)| rows.clone())
                .unwrap_or_default()
        };
        let ready = rows("clients").len() == 2
            && rows("clients")
                .iter()
                .any(|c| c.contains("\"veteran\": true"))
            && rows("deliveries").len() == 2
            && rows("assessments").len() == 2
            && rows("enrollments").len() == 1
            && rows("barriers").iter().any(|b| b.contains("RESOLVED"));
        if ready { Ok(facts) } else { Err(facts) }
    })
    .await;

    // Forget them, rebuild from the APIs, and the rows are the same.
    let mut owner = env.db.owner().await;
    for table in FACT_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM eligibility.{table} WHERE tenant_id = $1"
        )))
        .bind(t.tenant.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    }
    let service = caseway_eligibility::service::Eligibility::new(
        caseway_platform::Db::connect_lazy(&env.db.app_url, 2).unwrap(),
    );
    let sources = Sources {
        catalog: node.channel.clone(),
        clients: node.channel.clone(),
        records: node.channel.clone(),
        token: t.admin.clone(),
    };
    let rebuilt = rebuild(&service, t.tenant, &sources).await.unwrap();
    assert_eq!(rebuilt.clients, 2);
    assert_eq!(rebuilt.written, rebuilt.read);
    assert_eq!(facts_of(&env, t.tenant).await, from_events);
    // A second rebuild finds nothing newer.
    let again = rebuild(&service, t.tenant, &sources).await.unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(facts_of(&env, t.tenant).await, from_events);
}

#[tokio::test]
async fn a_redelivered_or_older_event_changes_no_fact() {
    use caseway_eligibility::domain::Fact;
    use caseway_platform::{ClientId, TenantId};
    let env = TestEnv::new().await;
    let service = caseway_eligibility::service::Eligibility::new(
        caseway_platform::Db::connect_lazy(&env.db.app_url, 2).unwrap(),
    );
    let tenant = TenantId::new();
    let client = ClientId::new();
    let fact = |veteran: bool, deleted: bool, version: i64| Fact::Client {
        id: client,
        birth_date: Some(chrono::NaiveDate::from_ymd_opt(1990, 6, 15).unwrap()),
        veteran: Some(veteran),
        deleted,
        version,
    };
    let as_of = |veteran: bool, version: i64| fact(veteran, false, version);
    let veteran_of = || async {
        let mut owner = env.db.owner().await;
        sqlx::query_as::<_, (Option<bool>, i64)>(
            "SELECT veteran, version FROM eligibility.clients WHERE id = $1",
        )
        .bind(client.0)
        .fetch_one(&mut owner)
        .await
        .unwrap()
    };
    let apply = |facts: Vec<(uuid::Uuid, Fact)>| service.apply_facts(tenant, facts);
    // Version 2 comes first, then version 1 late: the row stays at 2.
    let second = uuid::Uuid::now_v7();
    apply(vec![(second, as_of(true, 2))]).await.unwrap();
    apply(vec![(uuid::Uuid::now_v7(), as_of(false, 1))])
        .await
        .unwrap();
    assert_eq!(veteran_of().await, (Some(true), 2));
    // The same event again changes nothing, even carrying something else, also in a batch
    // with an older one.
    apply(vec![
        (second, as_of(false, 3)),
        (uuid::Uuid::now_v7(), as_of(false, 1)),
    ])
    .await
    .unwrap();
    assert_eq!(veteran_of().await, (Some(true), 2));
    // A newer version is kept; a deletion stays, whatever comes after it, in a batch or not.
    apply(vec![(uuid::Uuid::now_v7(), as_of(false, 3))])
        .await
        .unwrap();
    assert_eq!(veteran_of().await, (Some(false), 3));
    let deleted = fact(false, true, 3);
    apply(vec![
        (uuid::Uuid::now_v7(), deleted),
        (uuid::Uuid::now_v7(), as_of(true, 9)),
    ])
    .await
    .unwrap();
    apply(vec![(uuid::Uuid::now_v7(), as_of(true, 10))])
        .await
        .unwrap();
    let mut owner = env.db.owner().await;
    let (deleted, veteran): (bool, Option<bool>) =
        sqlx::query_as("SELECT deleted, veteran FROM eligibility.clients WHERE id = $1")
            .bind(client.0)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!((deleted, veteran), (true, Some(false)));
}
