//! The demo data of `caseway dev`: the seed's example catalog in a demo tenant with two
//! security organizations. Every step has a stable request id, so running it again changes
//! nothing.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_catalog::Catalog;
use caseway_catalog::cache::ServiceCache;
use caseway_catalog::domain::*;
use caseway_platform::auth::{Principal, Role, TokenIssuer};
use caseway_platform::db::Db;
use caseway_platform::tenant_status::TenantStatusCache;
use caseway_platform::{Config, TenantId};
use caseway_tenancy::Tenancy;
use caseway_tenancy::domain::OrganizationFields;

pub struct Demo {
    pub tenant_id: TenantId,
    pub tenant_slug: String,
    pub organization_ids: Vec<Uuid>,
    pub service_id: Uuid,
    pub token: String,
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
    };
    let mut organization_ids = Vec::new();
    for (code, name) in [
        ("NORTH", "North Family Center"),
        ("SOUTH", "South Outreach Office"),
    ] {
        let request_id = format!("seed-organization-{code}");
        let request = tenancy_pb::CreateOrganizationRequest {
            request_id: request_id.clone(),
            ..Default::default()
        };
        let reply = tenancy
            .create_organization(
                &admin,
                tenant.id,
                &request_id,
                OrganizationFields {
                    code: code.into(),
                    name: name.into(),
                },
                &request,
                |o| tenancy_pb::CreateOrganizationResponse {
                    organization: Some(caseway_tenancy::api::organization_to_proto(o)),
                },
            )
            .await
            .map_err(err)?;
        organization_ids.push(id_of(reply.organization.map(|o| o.id))?);
    }

    let catalog = Catalog::new(db.clone(), Arc::new(ServiceCache::new()));
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
            },
        )
        .await?;
        first_service.get_or_insert(id);
    }
    for (list, code, label) in [
        (CodeList::Reason, "EVICTION", "Facing eviction"),
        (CodeList::Goal, "STABLE-HOUSING", "Stable housing"),
        (CodeList::ReferralPlan, "LEGAL-AID", "Referred to legal aid"),
        (CodeList::BarrierType, "HOUSING", "Housing"),
        (CodeList::BarrierType, "EMPLOYMENT", "Employment"),
        (CodeList::TurnAwayReason, "NO-FUNDS", "No funds available"),
    ] {
        create(
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
    Ok(Demo {
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        organization_ids,
        service_id: first_service.context("a seeded service")?,
        token,
    })
}

fn id_of(id: Option<String>) -> anyhow::Result<Uuid> {
    id.context("created entry has an id")?
        .parse()
        .context("created entry id is a UUID")
}

/// Creates one catalog entry under a stable request id and returns its id.
async fn create<E: caseway_catalog::catalog::Entry>(
    catalog: &Catalog,
    admin: &Principal,
    request_id: &str,
    fields: E,
) -> anyhow::Result<Uuid> {
    let tenant = admin.tenant().map_err(err)?;
    // The fingerprint only needs to be stable between runs: the request id names the entry.
    let request = catalog_pb::GetServiceRequest {
        id: request_id.to_string(),
    };
    let reply = catalog
        .create(admin, tenant, request_id, fields, None, &request, |r| {
            catalog_pb::GetServiceResponse {
                service: Some(catalog_pb::Service {
                    id: r.id.to_string(),
                    ..Default::default()
                }),
            }
        })
        .await
        .map_err(err)?;
    id_of(reply.service.map(|s| s.id))
}
