//! The tenants and requests the suites share, made through the public API with [`Fixtures`]:
//! a tenant for recording services, one for planning them, one with a client for assessments
//! and barriers, and one for the clients' own suite, each with the people, catalog and clients
//! the assertions name. The suite of a service and `cross_tenant.rs` build on the same ones.

use caseway_api::authorizations::v1 as authorizations_pb;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::eligibility::v1 as eligibility_pb;
use caseway_api::records::v1 as records_pb;
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

use crate::{Fixtures, TestEnv, TestNode, authed, date};

use clients_pb::assessment_answer::Value;

/// One tenant's catalog and clients for recording.
pub struct RecordsTenant {
    pub tenant: TenantId,
    pub admin: String,
    /// A case worker of the NORTH organization.
    pub worker: String,
    /// A case worker of the SOUTH organization only.
    pub south_worker: String,
    pub supervisor: String,
    pub assistance: String,
    pub counseling: String,
    pub workshop: String,
    pub outreach: String,
    pub unlinked: String,
    pub grant: String,
    pub old_grant: String,
    pub program: String,
    pub provider: String,
    pub reason: String,
    pub turn_away: String,
    pub maria: String,
    pub maria_enrollment: String,
    pub john: String,
    pub john_enrollment: String,
}

/// A tenant for recording: see [`RecordsTenant`].
pub async fn records_tenant(env: &TestEnv, node: &TestNode, slug: &str) -> RecordsTenant {
    use catalog_pb::{CodeList, DeliveryMode, UnitOfMeasure};
    let t = node.test_tenant(env, slug).await;
    let (tenant, north, south, make) = (t.id, t.north, t.south, &t.make);
    let worker = env.token(tenant, &[Role::Caseworker], &[north]);
    let south_worker = env.token(tenant, &[Role::Caseworker], &[south]);
    let supervisor = env.token(tenant, &[Role::Supervisor], &[north]);
    let year = |code: &str, name: &str, funder: &str, year: i32| catalog_pb::Grant {
        code: code.into(),
        name: name.into(),
        funder: funder.into(),
        start_date: Some(date(year, 1, 1)),
        end_date: Some(date(year, 12, 31)),
        ..Default::default()
    };
    let grant = make.grant(year("ESG", "Emergency Solutions", "HUD", 2026));
    let grant = grant.await.unwrap();
    let old_grant = make.grant(year("OLD", "Last year", "County", 2025));
    let old_grant = old_grant.await.unwrap();
    let program = make
        .program(catalog_pb::Program {
            code: "HP".into(),
            name: "Homelessness Prevention".into(),
            start_date: Some(date(2020, 1, 1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let group = make
        .service_group(catalog_pb::ServiceGroup {
            name: "Financial Services".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let both = vec![grant.clone(), old_grant.clone()];
    let service =
        |code: &str, unit: UnitOfMeasure, value: &str, mode: DeliveryMode| catalog_pb::Service {
            name: format!("Service {code}"),
            code: code.into(),
            unit_of_measure: unit as i32,
            default_unit_value: value.into(),
            delivery_mode: mode as i32,
            service_group_id: group.clone(),
            grant_ids: both.clone(),
            program_ids: vec![program.clone()],
            ..Default::default()
        };
    let direct = DeliveryMode::Direct;
    let assistance = make.service(service("FA", UnitOfMeasure::Dollars, "1.00", direct));
    let assistance = assistance.await.unwrap();
    let counseling = make.service(service("FC", UnitOfMeasure::Hours, "45.00", direct));
    let counseling = counseling.await.unwrap();
    let workshop = make
        .service(catalog_pb::Service {
            organization_ids: vec![north.to_string()],
            unit_value_fixed: true,
            ..service("FW", UnitOfMeasure::Count, "0.00", direct)
        })
        .await
        .unwrap();
    let outreach = service("OUT", UnitOfMeasure::Hours, "30.00", DeliveryMode::Indirect);
    let outreach = make.service(outreach).await.unwrap();
    let unlinked = make
        .service(catalog_pb::Service {
            grant_ids: vec![],
            ..service("UN", UnitOfMeasure::Minutes, "1.00", direct)
        })
        .await
        .unwrap();
    let provider = make
        .provider(catalog_pb::Provider {
            name: "Ana Diaz".into(),
            kind: catalog_pb::ProviderKind::Staff as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let reason = make.code_value(CodeList::Reason, "EVICTION", "eviction");
    let reason = reason.await.unwrap();
    let turn_away = make.code_value(CodeList::TurnAwayReason, "NO-FUNDS", "no-funds");
    let turn_away = turn_away.await.unwrap();
    let as_worker = node.fixtures(&worker);
    let (maria, maria_enrollment) =
        enrolled_client(&as_worker, "Maria", &program, (2026, 1, 5)).await;
    let (john, john_enrollment) = enrolled_client(&as_worker, "John", &program, (2026, 2, 1)).await;
    RecordsTenant {
        tenant,
        admin: t.admin,
        worker,
        south_worker,
        supervisor,
        assistance,
        counseling,
        workshop,
        outreach,
        unlinked,
        grant,
        old_grant,
        program,
        provider,
        reason,
        turn_away,
        maria,
        maria_enrollment,
        john,
        john_enrollment,
    }
}

/// A client enrolled in `program` from `entry`: its id and the enrollment's.
pub async fn enrolled_client(
    make: &Fixtures,
    first: &str,
    program: &str,
    entry: (i32, i32, i32),
) -> (String, String) {
    let id = make
        .client(clients_pb::Client {
            first_name: first.into(),
            last_name: "Client".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let entry = date(entry.0, entry.1, entry.2);
    let enrollment = make.enrollment(&id, program, entry).await.unwrap();
    (id, enrollment)
}

impl RecordsTenant {
    /// A delivery to Maria of `units` of `service` on `day`, under the 2026 grant.
    pub fn delivery(
        &self,
        service: &str,
        units: &str,
        day: (i32, i32, i32),
    ) -> records_pb::ServiceRecord {
        records_pb::ServiceRecord {
            client_id: self.maria.clone(),
            service_id: service.into(),
            service_date: Some(date(day.0, day.1, day.2)),
            grant_id: self.grant.clone(),
            enrollment_id: self.maria_enrollment.clone(),
            provider_id: self.provider.clone(),
            units: units.into(),
            ..Default::default()
        }
    }
}

/// One tenant's catalog, people and clients for planning services.
pub struct AuthorizationsTenant {
    pub tenant: TenantId,
    pub admin: String,
    /// A case worker of NORTH (user "ana").
    pub worker: String,
    /// A case worker of SOUTH only.
    pub south_worker: String,
    /// A supervisor of SOUTH only ("eve").
    pub south_supervisor: String,
    /// Two supervisors: "bo" and "cy".
    pub bo: String,
    pub cy: String,
    /// Counseling sessions: a COUNT service at 45.00 a session, open to every organization.
    pub sessions: String,
    /// A service restricted to NORTH.
    pub north_only: String,
    pub grant: String,
    pub old_grant: String,
    pub reason: String,
    pub goal: String,
    pub maria: String,
    pub john: String,
}

/// A tenant for authorizations: see [`AuthorizationsTenant`].
pub async fn authorizations_tenant(
    env: &TestEnv,
    node: &TestNode,
    slug: &str,
) -> AuthorizationsTenant {
    use catalog_pb::CodeList;
    let t = node.test_tenant(env, slug).await;
    let (tenant, north, south, make) = (t.id, t.north, t.south, &t.make);
    let worker = env.token_for("ana", tenant, &[Role::Caseworker], &[north]);
    let south_worker = env.token_for("dee", tenant, &[Role::Caseworker], &[south]);
    let south_supervisor = env.token_for("eve", tenant, &[Role::Supervisor], &[south]);
    let bo = env.token_for("bo", tenant, &[Role::Supervisor], &[north]);
    let cy = env.token_for("cy", tenant, &[Role::Supervisor], &[north]);
    let grant = |code: &str, year: i32| catalog_pb::Grant {
        code: code.into(),
        name: code.into(),
        funder: "HUD".into(),
        start_date: Some(date(year, 1, 1)),
        end_date: Some(date(year, 12, 31)),
        ..Default::default()
    };
    let grant_2026 = make.grant(grant("ESG", 2026)).await.unwrap();
    let grant_2025 = make.grant(grant("OLD", 2025)).await.unwrap();
    let service = |code: &str, orgs: Vec<String>| catalog_pb::Service {
        name: format!("Service {code}"),
        code: code.into(),
        unit_of_measure: catalog_pb::UnitOfMeasure::Count as i32,
        default_unit_value: "45.00".into(),
        delivery_mode: catalog_pb::DeliveryMode::Direct as i32,
        organization_ids: orgs,
        grant_ids: vec![grant_2026.clone(), grant_2025.clone()],
        ..Default::default()
    };
    let sessions = make.service(service("FC", vec![])).await.unwrap();
    let north_only = make.service(service("FN", vec![north.to_string()]));
    let north_only = north_only.await.unwrap();
    let reason = make.code_value(CodeList::Reason, "EVICTION", "eviction");
    let reason = reason.await.unwrap();
    let goal = make.code_value(CodeList::Goal, "STABLE-HOUSING", "stable-housing");
    let goal = goal.await.unwrap();
    let as_worker = node.fixtures(&worker);
    let maria = named_client(&as_worker, "Maria").await;
    let john = named_client(&as_worker, "John").await;
    AuthorizationsTenant {
        tenant,
        admin: t.admin,
        worker,
        south_worker,
        south_supervisor,
        bo,
        cy,
        sessions,
        north_only,
        grant: grant_2026,
        old_grant: grant_2025,
        reason,
        goal,
        maria,
        john,
    }
}

async fn named_client(make: &Fixtures, first: &str) -> String {
    make.client(clients_pb::Client {
        first_name: first.into(),
        last_name: "Client".into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

impl AuthorizationsTenant {
    /// Maria's counseling sessions in March 2026 under `rule`.
    pub fn plan(&self, rule: &str, units: &str) -> authorizations_pb::Authorization {
        authorizations_pb::Authorization {
            client_id: self.maria.clone(),
            service_id: self.sessions.clone(),
            grant_id: self.grant.clone(),
            begin_date: Some(date(2026, 3, 1)),
            end_date: Some(date(2026, 3, 31)),
            units_per_occurrence: units.into(),
            recurrence: rule.into(),
            reason_id: self.reason.clone(),
            goal_id: self.goal.clone(),
            reason: "Rent arrears after a job loss".into(),
            goals: "Keep the apartment".into(),
            ..Default::default()
        }
    }

    /// A session for Maria drawing on `authorization`.
    pub fn session(&self, authorization: &str, units: &str, day: u32) -> records_pb::ServiceRecord {
        records_pb::ServiceRecord {
            client_id: self.maria.clone(),
            service_id: self.sessions.clone(),
            service_date: Some(date(2026, 3, day as i32)),
            grant_id: self.grant.clone(),
            units: units.into(),
            authorization_id: authorization.into(),
            ..Default::default()
        }
    }
}

impl AuthorizationsTenant {
    /// An approved authorization of Maria's sessions: `rule`, `units` each, requested by the
    /// worker and approved by bo.
    pub async fn approved(
        &self,
        node: &TestNode,
        rule: &str,
        units: &str,
    ) -> authorizations_pb::Authorization {
        let plan = self.plan(rule, units);
        let created = node.fixtures(&self.worker).authorization(plan).await;
        let approved = node.fixtures(&self.bo).approve(&created.unwrap()).await;
        approved.unwrap()
    }
}

/// What an authorization has drawn, as `token` sees it.
pub async fn utilization(node: &TestNode, token: &str, id: &str) -> authorizations_pb::Utilization {
    node.authorizations
        .clone()
        .get_authorization_utilization(authed(
            token,
            authorizations_pb::GetAuthorizationUtilizationRequest {
                authorization_id: id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .utilization
        .unwrap()
}

// Clients.

/// A client with every field a case worker usually fills in (race code "5").
pub fn client(first: &str, last: &str, ssn: &str, born: (i32, i32, i32)) -> clients_pb::Client {
    clients_pb::Client {
        first_name: first.into(),
        last_name: last.into(),
        birth_date: Some(date(born.0, born.1, born.2)),
        birth_date_quality: clients_pb::DataQuality::Full as i32,
        ssn: ssn.into(),
        ssn_quality: if ssn.is_empty() {
            clients_pb::DataQuality::NotCollected
        } else {
            clients_pb::DataQuality::Full
        } as i32,
        veteran_status: clients_pb::VeteranStatus::No as i32,
        demographics: vec![clients_pb::Demographic {
            category: "race".into(),
            code: "5".into(),
        }],
        contact: Some(clients_pb::Contact {
            phone: "555-0100".into(),
            city: "Salt Lake City".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A tenant whose race list holds code "5", and a case worker's token.
pub async fn clients_tenant(env: &TestEnv, node: &TestNode, slug: &str) -> (TenantId, String) {
    let tenant = node.create_tenant(env, slug).await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    code_value(node, &admin, catalog_pb::CodeList::Race, "5").await;
    (tenant, env.token(tenant, &[Role::Caseworker], &[]))
}

/// A value of one of the tenant's code lists, labelled with its code in lower case.
pub async fn code_value(
    node: &TestNode,
    admin: &str,
    list: catalog_pb::CodeList,
    code: &str,
) -> String {
    let label = code.to_lowercase();
    node.fixtures(admin)
        .code_value(list, code, &label)
        .await
        .unwrap()
}

// Assessments and barriers.

/// A tenant with one client, Maria Lopez, and a case worker to record for her.
pub struct ClientTenant {
    pub id: TenantId,
    pub admin: String,
    pub worker: String,
    pub client_id: String,
}

pub async fn client_tenant(env: &TestEnv, node: &TestNode, slug: &str) -> ClientTenant {
    let id = node.create_tenant(env, slug).await;
    let worker = env.token(id, &[Role::Caseworker], &[]);
    let client_id = node
        .fixtures(&worker)
        .client(clients_pb::Client {
            first_name: "Maria".into(),
            last_name: "Lopez".into(),
            birth_date_quality: clients_pb::DataQuality::NotCollected as i32,
            ssn_quality: clients_pb::DataQuality::NotCollected as i32,
            veteran_status: clients_pb::VeteranStatus::No as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    ClientTenant {
        id,
        admin: env.token(id, &[Role::TenantAdmin], &[]),
        worker,
        client_id,
    }
}

pub fn field(
    key: &str,
    field_type: clients_pb::FieldType,
    required: bool,
) -> clients_pb::AssessmentField {
    clients_pb::AssessmentField {
        key: key.into(),
        label: key.replace('_', " "),
        r#type: field_type as i32,
        required,
        options: vec![],
    }
}

/// The seed's income example: monthly income, household size, main source, verified, when the
/// client last worked and a note.
pub fn income_type() -> clients_pb::AssessmentType {
    let mut source = field("income_source", clients_pb::FieldType::Code, false);
    source.options = ["EMPLOYMENT", "BENEFITS", "NONE"]
        .iter()
        .map(|code| clients_pb::FieldOption {
            code: code.to_string(),
            label: code.to_lowercase(),
        })
        .collect();
    clients_pb::AssessmentType {
        code: "INCOME".into(),
        name: "Income and household".into(),
        fields: vec![
            field("monthly_income", clients_pb::FieldType::Decimal, true),
            field("household_size", clients_pb::FieldType::Integer, true),
            source,
            field("verified", clients_pb::FieldType::Boolean, false),
            field("last_employed_on", clients_pb::FieldType::Date, false),
            field("note", clients_pb::FieldType::Text, false),
        ],
        ..Default::default()
    }
}

pub fn answer(key: &str, value: Value) -> clients_pb::AssessmentAnswer {
    clients_pb::AssessmentAnswer {
        key: key.into(),
        value: Some(value),
    }
}

pub fn assessment(
    client_id: &str,
    type_id: &str,
    on: (i32, i32, i32),
    answers: Vec<clients_pb::AssessmentAnswer>,
) -> clients_pb::RecordAssessmentRequest {
    clients_pb::RecordAssessmentRequest {
        request_id: String::new(),
        assessment: Some(clients_pb::Assessment {
            client_id: client_id.into(),
            assessment_type_id: type_id.into(),
            assessment_date: Some(date(on.0, on.1, on.2)),
            answers,
            ..Default::default()
        }),
    }
}

pub async fn define(
    node: &TestNode,
    token: &str,
    definition: clients_pb::AssessmentType,
) -> clients_pb::AssessmentType {
    node.assessments
        .clone()
        .create_assessment_type(authed(
            token,
            clients_pb::CreateAssessmentTypeRequest {
                request_id: String::new(),
                assessment_type: Some(definition),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assessment_type
        .unwrap()
}

pub fn barrier(
    client_id: &str,
    type_id: &str,
    identified: (i32, i32, i32),
) -> clients_pb::CreateBarrierRequest {
    clients_pb::CreateBarrierRequest {
        request_id: String::new(),
        barrier: Some(clients_pb::Barrier {
            client_id: client_id.into(),
            barrier_type_id: type_id.into(),
            identified_date: Some(date(identified.0, identified.1, identified.2)),
            note: "behind on rent".into(),
            ..Default::default()
        }),
    }
}

// Eligibility.

/// A tenant for eligibility: Financial Assistance (FIN_ASSIST, dollars), Counseling (COUNSEL,
/// hours) and a Workshop restricted to NORTH, the PREVENTION program, the INCOME assessment
/// type and the HOUSING barrier type, and Maria (born 15 June 1990, not a veteran), whose
/// facts the eligibility service has once the returned tenant is made.
pub struct EligibilityTenant {
    pub tenant: TenantId,
    pub admin: String,
    pub worker: String,
    /// A case worker of SOUTH only, who may not see the Workshop.
    pub south_worker: String,
    pub assistance: String,
    pub counseling: String,
    pub workshop: String,
    pub program: String,
    /// A 2026 grant funding every service.
    pub grant: String,
    pub income_type: String,
    pub housing: String,
    pub maria: String,
}

pub async fn eligibility_tenant(env: &TestEnv, node: &TestNode, slug: &str) -> EligibilityTenant {
    use catalog_pb::{DeliveryMode, UnitOfMeasure};
    let t = node.test_tenant(env, slug).await;
    let make = &t.make;
    let worker = env.token(t.id, &[Role::Caseworker], &[t.north]);
    let south_worker = env.token(t.id, &[Role::Caseworker], &[t.south]);
    let program = make
        .program(catalog_pb::Program {
            code: "PREVENTION".into(),
            name: "Homelessness Prevention".into(),
            start_date: Some(date(2020, 1, 1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let grant = make
        .grant(catalog_pb::Grant {
            code: "ESG".into(),
            name: "Emergency Solutions".into(),
            funder: "HUD".into(),
            start_date: Some(date(2026, 1, 1)),
            end_date: Some(date(2026, 12, 31)),
            ..Default::default()
        })
        .await
        .unwrap();
    let service = |code: &str, unit: UnitOfMeasure, value: &str| catalog_pb::Service {
        name: format!("Service {code}"),
        code: code.into(),
        unit_of_measure: unit as i32,
        default_unit_value: value.into(),
        delivery_mode: DeliveryMode::Direct as i32,
        program_ids: vec![program.clone()],
        grant_ids: vec![grant.clone()],
        ..Default::default()
    };
    let assistance = make.service(service("FIN_ASSIST", UnitOfMeasure::Dollars, "1.00"));
    let assistance = assistance.await.unwrap();
    let counseling = make.service(service("COUNSEL", UnitOfMeasure::Hours, "45.00"));
    let counseling = counseling.await.unwrap();
    let workshop = make
        .service(catalog_pb::Service {
            organization_ids: vec![t.north.to_string()],
            ..service("WORKSHOP", UnitOfMeasure::Count, "0.00")
        })
        .await
        .unwrap();
    let income_type = define(node, &t.admin, income_type()).await.id;
    let housing = code_value(node, &t.admin, catalog_pb::CodeList::BarrierType, "HOUSING").await;
    code_value(node, &t.admin, catalog_pb::CodeList::Race, "5").await;
    let maria = node
        .fixtures(&worker)
        .client(client("Maria", "Lopez", "", (1990, 6, 15)))
        .await
        .unwrap();
    let e = EligibilityTenant {
        tenant: t.id,
        admin: t.admin,
        worker,
        south_worker,
        assistance,
        counseling,
        workshop,
        program,
        grant,
        income_type,
        housing,
        maria,
    };
    e.wait_for_schema(node, "assessments.INCOME.monthly_income")
        .await;
    e.wait_for_schema(node, "WORKSHOP").await;
    caseway_test_support::eventually(
        "Maria's facts",
        std::time::Duration::from_secs(10),
        || async {
            node.eligibility
                .clone()
                .check_eligibility(authed(
                    &e.worker,
                    eligibility_pb::CheckEligibilityRequest {
                        client_id: e.maria.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        },
    )
    .await;
    e
}

impl EligibilityTenant {
    /// Waits until the eligibility service's fact schema mentions `text` (its events came).
    pub async fn wait_for_schema(&self, node: &TestNode, text: &str) {
        let what = format!("the fact schema naming {text}");
        caseway_test_support::eventually(&what, std::time::Duration::from_secs(10), || async {
            let facts = node
                .eligibility
                .clone()
                .get_fact_schema(authed(&self.admin, eligibility_pb::GetFactSchemaRequest {}))
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner()
                .facts;
            let shown = format!("{facts:?}");
            if shown.contains(text) {
                Ok(())
            } else {
                Err(shown)
            }
        })
        .await
    }

    /// A rule for `service` with `criteria`, published by the administrator.
    pub async fn publish(
        &self,
        node: &TestNode,
        service: &str,
        mode: eligibility_pb::EnforcementMode,
        criteria: Vec<eligibility_pb::Criterion>,
    ) -> eligibility_pb::Rule {
        node.fixtures(&self.admin)
            .published_rule(eligibility_pb::Rule {
                service_id: service.into(),
                mode: mode as i32,
                criteria,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}
