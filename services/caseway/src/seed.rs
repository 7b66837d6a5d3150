//! The demo data of `caseway dev`: the seed's example catalog in a demo tenant with two
//! security organizations. Every step has a stable request id, so running it again changes
//! nothing.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_catalog::Catalog;
use caseway_catalog::cache::ServiceCache;
use caseway_catalog::domain::*;
use caseway_platform::auth::{Principal, Role, TokenIssuer, on_behalf_of};
use caseway_platform::caller::Caller;
use caseway_platform::db::Db;
use caseway_platform::idempotency::Fingerprint;
use caseway_platform::tenant_status::TenantStatusCache;
use caseway_platform::{Config, TenantId};
use caseway_tenancy::Tenancy;
use caseway_tenancy::domain::OrganizationFields;

pub struct Demo {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    pub organization_ids: Vec<Uuid>,
    pub service_id: Uuid,
    /// The seeded services by code (FA, FC, FW).
    pub services: Vec<(String, Uuid)>,
    pub grant_id: Uuid,
    pub turn_away_reason_id: Uuid,
    pub program_id: Uuid,
    /// BARRIER_TYPE code values by code.
    pub barrier_types: Vec<(String, Uuid)>,
    pub token: String,
    /// A supervisor's token (another person than the token's), to approve authorizations.
    pub supervisor_token: String,
}

/// What the demo seed recorded through the API, for the banner's examples.
pub struct Seeded {
    pub client_id: Uuid,
    pub authorization_id: Uuid,
}

const SLUG: &str = "demo";

fn err(e: caseway_platform::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn seed_demo(config: &Config) -> anyhow::Result<Demo> {
    let db = Db::connect_lazy(&config.database_url, 4)?;
    let tenancy = Tenancy::new(
        db.clone(),
        Arc::new(TenantStatusCache::new(db.clone(), config.tenant_status_ttl)),
    );
    let tenant = match tenancy.tenant_by_slug(SLUG).await {
        Ok(tenant) => tenant,
        Err(_) => crate::cli::create_tenant(&tenancy, SLUG, "Demo Community Services").await?,
    };
    let admin = Principal {
        user_id: "caseway-dev".into(),
        tenant_id: Some(tenant.id),
        organization_ids: vec![],
        roles: vec![Role::TenantAdmin],
        permissions: vec![],
        service: None,
    };
    let mut organization_ids = Vec::new();
    for (code, name) in [
        ("NORTH", "North Family Center"),
        ("SOUTH", "South Outreach Office"),
    ] {
        let request_id = format!("seed-organization-{code}");
        // Fingerprinted as the request earlier seeds sent, so a seeded database replays.
        let request = tenancy_pb::CreateOrganizationRequest {
            request_id: request_id.clone(),
            ..Default::default()
        };
        let caller = Caller {
            principal: Arc::new(admin.clone()),
            tenant: tenant.id,
            authorization: None,
        };
        let create = caseway_tenancy::domain::Retryable {
            request_id,
            fingerprint: Fingerprint::of(&request),
            change: OrganizationFields {
                code: code.into(),
                name: name.into(),
            },
        };
        let organization = tenancy
            .create_organization(&caller, create)
            .await
            .map_err(err)?;
        organization_ids.push(organization.id);
    }

    let catalog = Catalog::new(db.clone(), Arc::new(ServiceCache::new()), None);
    let group = create(
        &catalog,
        &admin,
        "seed-group-financial",
        ServiceGroupFields {
            name: "Financial Services".into(),
            description: "Money, counseling and workshops that build financial stability".into(),
        },
    )
    .await?;
    let grant = create(
        &catalog,
        &admin,
        "seed-grant-esg",
        GrantFields {
            code: "ESG-2026".into(),
            name: "Emergency Solutions Grant 2026".into(),
            funder: "HUD".into(),
            start_date: NaiveDate::from_ymd_opt(2026, 1, 1).context("date")?,
            end_date: NaiveDate::from_ymd_opt(2026, 12, 31),
            budget: Some(Decimal::from(250_000)),
        },
    )
    .await?;
    let program = create(
        &catalog,
        &admin,
        "seed-program-prevention",
        ProgramFields {
            code: "HP".into(),
            name: "Homelessness Prevention".into(),
            description: String::new(),
            start_date: NaiveDate::from_ymd_opt(2025, 1, 1).context("date")?,
            end_date: None,
        },
    )
    .await?;
    let services = [
        (
            "FA",
            "Financial Assistance",
            UnitOfMeasure::Dollars,
            "1.00",
            vec![],
        ),
        (
            "FC",
            "Financial Counseling",
            UnitOfMeasure::Hours,
            "45.00",
            vec![],
        ),
        (
            "FW",
            "Financial Workshop",
            UnitOfMeasure::Count,
            "0.00",
            vec![organization_ids[0]],
        ),
    ];
    let mut first_service = None;
    let mut seeded_services = Vec::new();
    for (code, name, unit, value, orgs) in services {
        let id = create(
            &catalog,
            &admin,
            &format!("seed-service-{code}"),
            ServiceFields {
                code: code.into(),
                name: name.into(),
                description: String::new(),
                unit_of_measure: unit,
                default_unit_value: Decimal::from_str(value)?,
                delivery_mode: DeliveryMode::Direct,
                service_group_id: Some(group),
                organization_ids: orgs,
                grant_ids: vec![grant],
                program_ids: vec![program],
                unit_value_fixed: false,
            },
        )
        .await?;
        first_service.get_or_insert(id);
        seeded_services.push((code.to_string(), id));
    }
    let mut barrier_types = Vec::new();
    let mut turn_away_reason = None;
    for (list, code, label) in [
        (CodeList::Reason, "EVICTION", "Facing eviction"),
        (CodeList::Goal, "STABLE-HOUSING", "Stable housing"),
        (CodeList::ReferralPlan, "LEGAL-AID", "Referred to legal aid"),
        (CodeList::BarrierType, "HOUSING", "Housing"),
        (CodeList::BarrierType, "EMPLOYMENT", "Employment"),
        (CodeList::TurnAwayReason, "NO-FUNDS", "No funds available"),
        // HUD's race and ethnicity (3.04) and gender (3.06) codes.
        (
            CodeList::Race,
            "1",
            "American Indian, Alaska Native, or Indigenous",
        ),
        (CodeList::Race, "2", "Asian or Asian American"),
        (CodeList::Race, "3", "Black, African American, or African"),
        (CodeList::Race, "4", "Native Hawaiian or Pacific Islander"),
        (CodeList::Race, "5", "White"),
        (CodeList::Race, "6", "Hispanic/Latina/e/o"),
        (CodeList::Race, "7", "Middle Eastern or North African"),
        (CodeList::Gender, "0", "Woman"),
        (CodeList::Gender, "1", "Man"),
        (CodeList::Gender, "4", "Non-binary"),
    ] {
        let id = create(
            &catalog,
            &admin,
            &format!("seed-code-{}-{code}", list.as_str()),
            CodeValueFields {
                code_list: list,
                code: code.into(),
                label: label.into(),
                sort_order: 0,
            },
        )
        .await?;
        if list == CodeList::BarrierType {
            barrier_types.push((code.to_string(), id));
        }
        if list == CodeList::TurnAwayReason {
            turn_away_reason = Some(id);
        }
    }
    create(
        &catalog,
        &admin,
        "seed-provider-ana",
        ProviderFields {
            name: "Ana Diaz".into(),
            kind: ProviderKind::Staff,
            email: "ana.diaz@example.org".into(),
            phone: String::new(),
        },
    )
    .await?;

    let issuer = TokenIssuer::from_file(
        &config.jwt_private_key_file,
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let token = issuer.issue(
        "demo-admin",
        Some(tenant.id),
        &[Role::TenantAdmin, Role::Caseworker],
        &organization_ids,
        chrono::Duration::hours(12),
    )?;
    let supervisor_token = issuer.issue(
        "demo-supervisor",
        Some(tenant.id),
        &[Role::Supervisor],
        &organization_ids,
        chrono::Duration::hours(1),
    )?;
    Ok(Demo {
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        organization_ids,
        service_id: first_service.context("a seeded service")?,
        services: seeded_services,
        grant_id: grant,
        turn_away_reason_id: turn_away_reason.context("a seeded turn-away reason")?,
        program_id: program,
        barrier_types,
        token,
        supervisor_token,
    })
}

fn id_of(id: Option<String>) -> anyhow::Result<Uuid> {
    id.context("created entry has an id")?
        .parse()
        .context("created entry id is a UUID")
}

/// Creates one catalog entry under a stable request id and returns its id.
async fn create<E: caseway_catalog::service::Entry>(
    catalog: &Catalog,
    admin: &Principal,
    request_id: &str,
    fields: E,
) -> anyhow::Result<Uuid> {
    let caller = Caller {
        principal: Arc::new(admin.clone()),
        tenant: admin.tenant().map_err(err)?,
        authorization: None,
    };
    // The fingerprint only needs to be stable between runs: the request id names the entry
    // (hashed as a message holding it: the bytes earlier seeds stored).
    let input = Retryable {
        request_id: request_id.to_string(),
        fingerprint: Fingerprint::of(&request_id.to_string()),
        change: fields,
    };
    let reply = catalog.create(&caller, input).await.map_err(err)?;
    id_of(E::created_id(&reply).map(str::to_string))
}

/// Demo clients of `caseway dev`, recorded through the running gRPC API as a case worker
/// would: the seed's assessment types (income, household, disability, veteran status), then a
/// handful of clients with an enrollment in the prevention program, assessments and barriers.
/// Whatever already exists is left as it is, so running it again changes nothing.
pub async fn seed_demo_clients(addr: std::net::SocketAddr, demo: &Demo) -> anyhow::Result<Seeded> {
    use caseway_api::clients::v1 as pb;
    use caseway_api::clients::v1::assessment_answer::Value;
    use caseway_api::clients::v1::assessments_service_client::AssessmentsServiceClient;
    use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
    use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
    use caseway_platform::convert::date;

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connecting to the demo node")?;
    let bearer: caseway_platform::auth::Authorization = format!("Bearer {}", demo.token)
        .parse()
        .context("the demo token is ASCII")?;
    let mut clients = ClientsServiceClient::new(channel.clone());
    let mut assessments = AssessmentsServiceClient::new(channel.clone());
    let channel_for_records = channel.clone();
    let mut barriers = BarriersServiceClient::new(channel);
    let day = |y: i32, m: u32, d: u32| {
        NaiveDate::from_ymd_opt(y, m, d)
            .map(date)
            .context("a calendar date")
    };

    // Assessment types, by code.
    let field = |key: &str, label: &str, kind: pb::FieldType, required: bool, options: &[&str]| {
        pb::AssessmentField {
            key: key.into(),
            label: label.into(),
            r#type: kind as i32,
            required,
            options: options
                .iter()
                .map(|code| pb::FieldOption {
                    code: code.to_string(),
                    label: code.replace('_', " ").to_lowercase(),
                })
                .collect(),
        }
    };
    let definitions = [
        (
            "INCOME",
            "Income",
            vec![
                field(
                    "monthly_income",
                    "Monthly household income",
                    pb::FieldType::Decimal,
                    true,
                    &[],
                ),
                field(
                    "income_source",
                    "Main source of income",
                    pb::FieldType::Code,
                    false,
                    &["EMPLOYMENT", "BENEFITS", "CHILD_SUPPORT", "NONE"],
                ),
                field(
                    "verified",
                    "Verified with documents",
                    pb::FieldType::Boolean,
                    false,
                    &[],
                ),
            ],
        ),
        (
            "HOUSEHOLD",
            "Household size",
            vec![
                field(
                    "household_size",
                    "People in the household",
                    pb::FieldType::Integer,
                    true,
                    &[],
                ),
                field(
                    "children",
                    "Children under 18",
                    pb::FieldType::Integer,
                    false,
                    &[],
                ),
            ],
        ),
        (
            "DISABILITY",
            "Disability",
            vec![
                field(
                    "has_disability",
                    "Has a disabling condition",
                    pb::FieldType::Boolean,
                    true,
                    &[],
                ),
                field(
                    "disability_type",
                    "Kind of condition",
                    pb::FieldType::Code,
                    false,
                    &[
                        "PHYSICAL",
                        "DEVELOPMENTAL",
                        "MENTAL_HEALTH",
                        "CHRONIC_HEALTH",
                    ],
                ),
            ],
        ),
        (
            "VETERAN",
            "Veteran status",
            vec![
                field(
                    "is_veteran",
                    "Served in the armed forces",
                    pb::FieldType::Boolean,
                    true,
                    &[],
                ),
                field(
                    "discharge",
                    "Discharge",
                    pb::FieldType::Code,
                    false,
                    &["HONORABLE", "GENERAL", "OTHER"],
                ),
                field(
                    "separation_date",
                    "Date of separation",
                    pb::FieldType::Date,
                    false,
                    &[],
                ),
            ],
        ),
    ];
    let existing = assessments
        .list_assessment_types(on_behalf_of(
            pb::ListAssessmentTypesRequest {
                include_retired: true,
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await?
        .into_inner()
        .assessment_types;
    let mut type_ids = Vec::new();
    for (code, name, fields) in definitions {
        let id = match existing.iter().find(|t| t.code == code) {
            Some(found) => found.id.clone(),
            None => {
                assessments
                    .create_assessment_type(on_behalf_of(
                        pb::CreateAssessmentTypeRequest {
                            request_id: format!("seed-assessment-type-{code}"),
                            assessment_type: Some(pb::AssessmentType {
                                code: code.into(),
                                name: name.into(),
                                fields,
                                ..Default::default()
                            }),
                        },
                        Some(&bearer),
                    ))
                    .await?
                    .into_inner()
                    .assessment_type
                    .context("a created assessment type")?
                    .id
            }
        };
        type_ids.push((code, id));
    }
    let type_id = |code: &str| {
        type_ids
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, id)| id.clone())
            .context("a seeded assessment type")
    };
    let barrier_type = |code: &str| {
        demo.barrier_types
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, id)| id.to_string())
            .context("a seeded barrier type")
    };

    type Ymd = (i32, u32, u32);
    struct DemoClient {
        first: &'static str,
        last: &'static str,
        born: Ymd,
        ssn: &'static str,
        veteran: bool,
        income: &'static str,
        source: &'static str,
        household: i64,
        disability: Option<&'static str>,
        /// Race and gender codes.
        race: &'static str,
        gender: &'static str,
        /// Barrier type code, identified on, resolved on.
        barriers: &'static [(&'static str, Ymd, Option<Ymd>)],
    }
    let people = [
        DemoClient {
            first: "Maria",
            last: "Lopez",
            born: (1980, 2, 29),
            ssn: "123-45-6789",
            veteran: false,
            income: "1250.00",
            source: "EMPLOYMENT",
            household: 4,
            disability: None,
            race: "6",
            gender: "0",
            barriers: &[("HOUSING", (2026, 2, 3), None)],
        },
        DemoClient {
            first: "John",
            last: "Smith",
            born: (1975, 6, 1),
            ssn: "234-56-7890",
            veteran: false,
            income: "0",
            source: "NONE",
            household: 1,
            disability: Some("MENTAL_HEALTH"),
            race: "5",
            gender: "1",
            barriers: &[
                ("HOUSING", (2026, 1, 12), None),
                ("EMPLOYMENT", (2026, 1, 12), Some((2026, 4, 20))),
            ],
        },
        DemoClient {
            first: "Ahmed",
            last: "Hassan",
            born: (1990, 1, 15),
            ssn: "",
            veteran: false,
            income: "2100.50",
            source: "EMPLOYMENT",
            household: 5,
            disability: None,
            race: "7",
            gender: "1",
            barriers: &[],
        },
        DemoClient {
            first: "Mei",
            last: "Chen",
            born: (1968, 11, 30),
            ssn: "345-67-8901",
            veteran: false,
            income: "940.00",
            source: "BENEFITS",
            household: 2,
            disability: Some("CHRONIC_HEALTH"),
            race: "2",
            gender: "0",
            barriers: &[("EMPLOYMENT", (2026, 3, 9), None)],
        },
        DemoClient {
            first: "Robert",
            last: "Okafor",
            born: (1959, 7, 4),
            ssn: "456-78-9012",
            veteran: true,
            income: "1630.00",
            source: "BENEFITS",
            household: 1,
            disability: Some("PHYSICAL"),
            race: "3",
            gender: "1",
            barriers: &[("HOUSING", (2026, 3, 30), None)],
        },
    ];
    let mut first_client = None;
    let mut enrolled = Vec::new();
    for (n, person) in people.iter().enumerate() {
        let birth_date = day(person.born.0, person.born.1, person.born.2)?;
        let found = clients
            .search_clients(on_behalf_of(
                pb::SearchClientsRequest {
                    name: format!("{} {}", person.first, person.last),
                    birth_date: Some(birth_date),
                    page_size: 1,
                    ..Default::default()
                },
                Some(&bearer),
            ))
            .await?
            .into_inner()
            .matches
            .into_iter()
            .filter_map(|m| m.client)
            .find(|c| c.first_name == person.first && c.last_name == person.last);
        let client_id = match found {
            Some(client) => client.id,
            None => {
                let full = pb::DataQuality::Full as i32;
                clients
                    .create_client(on_behalf_of(
                        pb::CreateClientRequest {
                            request_id: format!("seed-client-{n}"),
                            client: Some(pb::Client {
                                first_name: person.first.into(),
                                last_name: person.last.into(),
                                birth_date: Some(birth_date),
                                birth_date_quality: full,
                                ssn: person.ssn.into(),
                                ssn_quality: if person.ssn.is_empty() {
                                    pb::DataQuality::ClientDoesntKnow as i32
                                } else {
                                    full
                                },
                                veteran_status: if person.veteran {
                                    pb::VeteranStatus::Yes
                                } else {
                                    pb::VeteranStatus::No
                                } as i32,
                                organization_id: demo.organization_ids[n % 2].to_string(),
                                demographics: [("race", person.race), ("gender", person.gender)]
                                    .iter()
                                    .map(|(category, code)| pb::Demographic {
                                        category: category.to_string(),
                                        code: code.to_string(),
                                    })
                                    .collect(),
                                contact: Some(pb::Contact {
                                    city: "Springfield".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                        },
                        Some(&bearer),
                    ))
                    .await?
                    .into_inner()
                    .client
                    .context("a created client")?
                    .id
            }
        };
        first_client.get_or_insert(client_id.parse::<Uuid>()?);

        let enrollments = clients
            .list_enrollments(on_behalf_of(
                pb::ListEnrollmentsRequest {
                    client_id: client_id.clone(),
                    page_size: 1,
                    ..Default::default()
                },
                Some(&bearer),
            ))
            .await?
            .into_inner()
            .enrollments;
        let enrollment_id = match enrollments.first() {
            Some(enrollment) => enrollment.id.clone(),
            None => {
                clients
                    .start_enrollment(on_behalf_of(
                        pb::StartEnrollmentRequest {
                            request_id: format!("seed-enrollment-{n}"),
                            enrollment: Some(pb::Enrollment {
                                client_id: client_id.clone(),
                                program_id: demo.program_id.to_string(),
                                entry_date: Some(day(2026, 1, 5 + n as u32)?),
                                ..Default::default()
                            }),
                        },
                        Some(&bearer),
                    ))
                    .await?
                    .into_inner()
                    .enrollment
                    .context("a started enrollment")?
                    .id
            }
        };
        enrolled.push((client_id.clone(), enrollment_id));

        let latest = assessments
            .list_latest_assessments(on_behalf_of(
                pb::ListLatestAssessmentsRequest {
                    client_id: client_id.clone(),
                },
                Some(&bearer),
            ))
            .await?
            .into_inner()
            .assessments;
        if latest.is_empty() {
            let answer = |key: &str, value: Value| pb::AssessmentAnswer {
                key: key.into(),
                value: Some(value),
            };
            let mut recorded = vec![
                (
                    "INCOME",
                    vec![
                        answer("monthly_income", Value::DecimalValue(person.income.into())),
                        answer("income_source", Value::CodeValue(person.source.into())),
                        answer("verified", Value::BooleanValue(true)),
                    ],
                ),
                (
                    "HOUSEHOLD",
                    vec![
                        answer("household_size", Value::IntegerValue(person.household)),
                        answer(
                            "children",
                            Value::IntegerValue((person.household - 2).max(0)),
                        ),
                    ],
                ),
                (
                    "DISABILITY",
                    match person.disability {
                        Some(kind) => vec![
                            answer("has_disability", Value::BooleanValue(true)),
                            answer("disability_type", Value::CodeValue(kind.into())),
                        ],
                        None => vec![answer("has_disability", Value::BooleanValue(false))],
                    },
                ),
            ];
            if person.veteran {
                recorded.push((
                    "VETERAN",
                    vec![
                        answer("is_veteran", Value::BooleanValue(true)),
                        answer("discharge", Value::CodeValue("HONORABLE".into())),
                        answer("separation_date", Value::DateValue(day(1983, 9, 30)?)),
                    ],
                ));
            }
            for (code, answers) in recorded {
                assessments
                    .record_assessment(on_behalf_of(
                        pb::RecordAssessmentRequest {
                            request_id: format!("seed-assessment-{n}-{code}"),
                            assessment: Some(pb::Assessment {
                                client_id: client_id.clone(),
                                assessment_type_id: type_id(code)?,
                                assessment_date: Some(day(2026, 1, 5 + n as u32)?),
                                answers,
                                ..Default::default()
                            }),
                        },
                        Some(&bearer),
                    ))
                    .await?;
            }
        }

        let existing = barriers
            .list_barriers(on_behalf_of(
                pb::ListBarriersRequest {
                    client_id: client_id.clone(),
                    page_size: 1,
                    ..Default::default()
                },
                Some(&bearer),
            ))
            .await?
            .into_inner()
            .barriers;
        if existing.is_empty() {
            for (b, (code, identified, resolved)) in person.barriers.iter().enumerate() {
                barriers
                    .create_barrier(on_behalf_of(
                        pb::CreateBarrierRequest {
                            request_id: format!("seed-barrier-{n}-{b}"),
                            barrier: Some(pb::Barrier {
                                client_id: client_id.clone(),
                                barrier_type_id: barrier_type(code)?,
                                identified_date: Some(day(
                                    identified.0,
                                    identified.1,
                                    identified.2,
                                )?),
                                status: match resolved {
                                    Some(_) => pb::BarrierStatus::Resolved,
                                    None => pb::BarrierStatus::BeingAddressed,
                                } as i32,
                                resolved_date: resolved
                                    .map(|(y, m, d)| day(y, m, d))
                                    .transpose()?,
                                ..Default::default()
                            }),
                        },
                        Some(&bearer),
                    ))
                    .await?;
            }
        }
    }
    seed_demo_records(&channel_for_records, &bearer, demo, &enrolled).await?;
    let authorization_id =
        seed_demo_authorization(&channel_for_records, &bearer, demo, &enrolled).await?;
    Ok(Seeded {
        client_id: first_client.context("a demo client")?,
        authorization_id,
    })
}

/// The first demo client's authorization of weekly counseling for the last quarter of 2026,
/// approved by the demo supervisor, and a session recorded against it. Stable request ids: a
/// second run finds them.
async fn seed_demo_authorization(
    channel: &tonic::transport::Channel,
    bearer: &caseway_platform::auth::Authorization,
    demo: &Demo,
    enrolled: &[(String, String)],
) -> anyhow::Result<Uuid> {
    use caseway_api::authorizations::v1 as pb;
    use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
    use caseway_api::records::v1 as records_pb;
    use caseway_api::records::v1::records_service_client::RecordsServiceClient;
    use caseway_platform::convert::date;
    let day = |m: u32, d: u32| {
        NaiveDate::from_ymd_opt(2026, m, d)
            .map(date)
            .context("a calendar date")
    };
    let (client_id, enrollment_id) = enrolled.first().context("a demo client")?;
    let counseling = demo
        .services
        .iter()
        .find(|(code, _)| code == "FC")
        .map(|(_, id)| id.to_string())
        .context("the seeded counseling service")?;
    let mut authorizations = AuthorizationsServiceClient::new(channel.clone());
    let created = authorizations
        .create_authorization(on_behalf_of(
            pb::CreateAuthorizationRequest {
                request_id: "seed-authorization-0".into(),
                authorization: Some(pb::Authorization {
                    client_id: client_id.clone(),
                    service_id: counseling.clone(),
                    grant_id: demo.grant_id.to_string(),
                    begin_date: Some(day(10, 1)?),
                    end_date: Some(day(12, 31)?),
                    units_per_occurrence: "1.5".into(),
                    recurrence: "FREQ=WEEKLY;BYDAY=TU".into(),
                    reason: "Budgeting sessions before the lease renewal".into(),
                    goals: "A household budget the client keeps".into(),
                    ..Default::default()
                }),
            },
            Some(bearer),
        ))
        .await?
        .into_inner()
        .authorization
        .context("the created authorization")?;
    let current = authorizations
        .get_authorization(on_behalf_of(
            pb::GetAuthorizationRequest {
                id: created.id.clone(),
            },
            Some(bearer),
        ))
        .await?
        .into_inner()
        .authorization
        .context("the authorization")?;
    if current.status == pb::AuthorizationStatus::Pending as i32 {
        let supervisor: caseway_platform::auth::Authorization =
            format!("Bearer {}", demo.supervisor_token)
                .parse()
                .context("the supervisor token is ASCII")?;
        authorizations
            .approve_authorization(on_behalf_of(
                pb::ApproveAuthorizationRequest {
                    id: created.id.clone(),
                    etag: current.etag.clone(),
                    request_id: format!("seed-approve-{}", created.id),
                },
                Some(&supervisor),
            ))
            .await?;
    }
    RecordsServiceClient::new(channel.clone())
        .record_service(on_behalf_of(
            records_pb::RecordServiceRequest {
                request_id: "seed-record-0-authorized".into(),
                record: Some(records_pb::ServiceRecord {
                    client_id: client_id.clone(),
                    service_id: counseling,
                    service_date: Some(day(10, 6)?),
                    grant_id: demo.grant_id.to_string(),
                    enrollment_id: enrollment_id.clone(),
                    units: "1.5".into(),
                    authorization_id: created.id.clone(),
                    ..Default::default()
                }),
            },
            Some(bearer),
        ))
        .await?;
    created.id.parse().context("the authorization id is a UUID")
}

/// A few services recorded for the demo clients (deliveries, a Quick Services form and a
/// turn-away), under stable request ids so a second run records nothing.
async fn seed_demo_records(
    channel: &tonic::transport::Channel,
    bearer: &caseway_platform::auth::Authorization,
    demo: &Demo,
    enrolled: &[(String, String)],
) -> anyhow::Result<()> {
    use caseway_api::records::v1 as pb;
    use caseway_platform::convert::date;
    let mut records = caseway_api::records::v1::records_service_client::RecordsServiceClient::new(
        channel.clone(),
    );
    let service = |code: &str| {
        demo.services
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, id)| id.to_string())
            .context("a seeded service")
    };
    let day = |m: u32, d: u32| {
        NaiveDate::from_ymd_opt(2026, m, d)
            .map(date)
            .context("a calendar date")
    };
    for (n, (client_id, enrollment_id)) in enrolled.iter().enumerate() {
        let record = |code: &str, units: &str, month: u32| -> anyhow::Result<pb::ServiceRecord> {
            Ok(pb::ServiceRecord {
                client_id: client_id.clone(),
                service_id: service(code)?,
                service_date: Some(day(month, 10 + n as u32)?),
                grant_id: demo.grant_id.to_string(),
                enrollment_id: enrollment_id.clone(),
                units: units.into(),
                ..Default::default()
            })
        };
        records
            .record_service(on_behalf_of(
                pb::RecordServiceRequest {
                    request_id: format!("seed-record-{n}-assistance"),
                    record: Some(record("FA", &format!("{}", 150 + 50 * n), 2)?),
                },
                Some(bearer),
            ))
            .await?;
        records
            .record_quick_services(on_behalf_of(
                pb::RecordQuickServicesRequest {
                    request_id: format!("seed-record-{n}-quick"),
                    client_id: client_id.clone(),
                    service_date: Some(day(3, 2 + n as u32)?),
                    grant_id: demo.grant_id.to_string(),
                    enrollment_id: enrollment_id.clone(),
                    provider_id: String::new(),
                    lines: [("FC", "1.5"), ("FW", "1")]
                        .iter()
                        .map(|(code, units)| {
                            Ok(pb::QuickServiceLine {
                                service_id: service(code)?,
                                units: units.to_string(),
                                ..Default::default()
                            })
                        })
                        .collect::<anyhow::Result<_>>()?,
                },
                Some(bearer),
            ))
            .await?;
        if n == 1 {
            let mut turned_away = record("FA", "", 4)?;
            turned_away.turn_away_reason_id = demo.turn_away_reason_id.to_string();
            records
                .record_service(on_behalf_of(
                    pb::RecordServiceRequest {
                        request_id: format!("seed-record-{n}-turn-away"),
                        record: Some(turned_away),
                    },
                    Some(bearer),
                ))
                .await?;
        }
    }
    Ok(())
}
