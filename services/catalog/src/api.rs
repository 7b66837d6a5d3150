//! The catalog gRPC API: decode, authorize, validate, call the use cases, encode.

use std::sync::Arc;

use rust_decimal::Decimal;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::catalog::v1 as pb;
use caseway_api::catalog::v1::catalog_internal_service_server::CatalogInternalService;
use caseway_api::catalog::v1::catalog_service_server::CatalogService;
use caseway_api::common::v1::LifecycleState;
use caseway_api::tenancy::v1::ListOrganizationsRequest;
use caseway_api::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use caseway_platform::auth::{Authorization, Role, on_behalf_of, principal};
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::catalog::Catalog;
use crate::domain::*;
use crate::store::{self, ServiceFilter};

pub struct CatalogApi {
    platform: Arc<Platform>,
    catalog: Catalog,
    tenancy: TenancyServiceClient<Channel>,
}

impl CatalogApi {
    pub fn new(
        platform: Arc<Platform>,
        catalog: Catalog,
        tenancy_endpoint: &str,
    ) -> anyhow::Result<Self> {
        let channel = platform.peers.channel(tenancy_endpoint)?;
        Ok(CatalogApi {
            platform,
            catalog,
            tenancy: TenancyServiceClient::new(channel),
        })
    }

    /// The tenant's security organizations, asked of the tenancy service with the caller's
    /// own credentials.
    async fn organizations(&self, authorization: Option<&Authorization>) -> Result<Vec<Uuid>> {
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = on_behalf_of(
                ListOrganizationsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                },
                authorization,
            );
            let response = self
                .tenancy
                .clone()
                .list_organizations(request)
                .await
                .map_err(|status| {
                    Error::Unavailable(format!("tenancy service: {}", status.message()))
                })?
                .into_inner();
            ids.extend(
                response
                    .organizations
                    .iter()
                    .filter_map(|o| Uuid::parse_str(&o.id).ok()),
            );
            if response.next_page_token.is_empty() {
                return Ok(ids);
            }
            page_token = response.next_page_token;
        }
    }

    async fn organizations_if(
        &self,
        needed: bool,
        authorization: Option<&Authorization>,
    ) -> Result<Option<Vec<Uuid>>> {
        if needed {
            Ok(Some(self.organizations(authorization).await?))
        } else {
            Ok(None)
        }
    }

    /// Encodes a list request without its paging fields: page tokens are bound to it.
    fn filter_of<M: prost::Message + Clone>(message: &M, clear: impl Fn(&mut M)) -> Vec<u8> {
        let mut filter = message.clone();
        clear(&mut filter);
        filter.encode_to_vec()
    }
}

// ---- conversions ----

fn state_to_proto(state: State) -> i32 {
    match state {
        State::Active => LifecycleState::Active as i32,
        State::Retired => LifecycleState::Retired as i32,
    }
}

fn ids_to_proto(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

pub fn service_group_to_proto(r: &Record<ServiceGroupFields>) -> pb::ServiceGroup {
    pb::ServiceGroup {
        id: r.id.to_string(),
        name: r.fields.name.clone(),
        description: r.fields.description.clone(),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn service_to_proto(r: &Record<ServiceFields>) -> pb::Service {
    let f = &r.fields;
    pb::Service {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        unit_of_measure: match f.unit_of_measure {
            UnitOfMeasure::Dollars => pb::UnitOfMeasure::Dollars,
            UnitOfMeasure::Hours => pb::UnitOfMeasure::Hours,
            UnitOfMeasure::Minutes => pb::UnitOfMeasure::Minutes,
            UnitOfMeasure::Count => pb::UnitOfMeasure::Count,
        } as i32,
        default_unit_value: f.default_unit_value.round_dp(2).to_string(),
        delivery_mode: match f.delivery_mode {
            DeliveryMode::Direct => pb::DeliveryMode::Direct,
            DeliveryMode::Indirect => pb::DeliveryMode::Indirect,
        } as i32,
        service_group_id: f
            .service_group_id
            .map(|g| g.to_string())
            .unwrap_or_default(),
        organization_ids: ids_to_proto(&f.organization_ids),
        grant_ids: ids_to_proto(&f.grant_ids),
        program_ids: ids_to_proto(&f.program_ids),
        unit_value_fixed: f.unit_value_fixed,
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn grant_to_proto(r: &Record<GrantFields>) -> pb::Grant {
    let f = &r.fields;
    pb::Grant {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        funder: f.funder.clone(),
        start_date: Some(date(f.start_date)),
        end_date: f.end_date.map(date),
        budget: f
            .budget
            .map(|b| b.round_dp(2).to_string())
            .unwrap_or_default(),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn program_to_proto(r: &Record<ProgramFields>) -> pb::Program {
    let f = &r.fields;
    pb::Program {
        id: r.id.to_string(),
        code: f.code.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        start_date: Some(date(f.start_date)),
        end_date: f.end_date.map(date),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn provider_to_proto(r: &Record<ProviderFields>) -> pb::Provider {
    let f = &r.fields;
    pb::Provider {
        id: r.id.to_string(),
        name: f.name.clone(),
        kind: match f.kind {
            ProviderKind::Staff => pb::ProviderKind::Staff,
            ProviderKind::Vendor => pb::ProviderKind::Vendor,
        } as i32,
        email: f.email.clone(),
        phone: f.phone.clone(),
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

fn code_list_to_proto(list: CodeList) -> pb::CodeList {
    match list {
        CodeList::Reason => pb::CodeList::Reason,
        CodeList::Goal => pb::CodeList::Goal,
        CodeList::ReferralPlan => pb::CodeList::ReferralPlan,
        CodeList::BarrierType => pb::CodeList::BarrierType,
        CodeList::TurnAwayReason => pb::CodeList::TurnAwayReason,
        CodeList::Race => pb::CodeList::Race,
        CodeList::Ethnicity => pb::CodeList::Ethnicity,
        CodeList::Gender => pb::CodeList::Gender,
    }
}

pub fn code_value_to_proto(r: &Record<CodeValueFields>) -> pb::CodeValue {
    let f = &r.fields;
    pb::CodeValue {
        id: r.id.to_string(),
        code_list: code_list_to_proto(f.code_list) as i32,
        code: f.code.clone(),
        label: f.label.clone(),
        sort_order: f.sort_order,
        state: state_to_proto(r.state),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

fn unit_of_measure(v: &mut Violations, field: &str, value: i32) -> UnitOfMeasure {
    match pb::UnitOfMeasure::try_from(value) {
        Ok(pb::UnitOfMeasure::Dollars) => UnitOfMeasure::Dollars,
        Ok(pb::UnitOfMeasure::Hours) => UnitOfMeasure::Hours,
        Ok(pb::UnitOfMeasure::Minutes) => UnitOfMeasure::Minutes,
        Ok(pb::UnitOfMeasure::Count) => UnitOfMeasure::Count,
        Ok(pb::UnitOfMeasure::Unspecified) => {
            v.add(field, "is required");
            UnitOfMeasure::Count
        }
        Err(_) => {
            v.add(field, "is not a unit of measure");
            UnitOfMeasure::Count
        }
    }
}

fn delivery_mode(
    v: &mut Violations,
    field: &str,
    value: i32,
    required: bool,
) -> Option<DeliveryMode> {
    match pb::DeliveryMode::try_from(value) {
        Ok(pb::DeliveryMode::Direct) => Some(DeliveryMode::Direct),
        Ok(pb::DeliveryMode::Indirect) => Some(DeliveryMode::Indirect),
        Ok(pb::DeliveryMode::Unspecified) => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Err(_) => {
            v.add(field, "is not a delivery mode");
            None
        }
    }
}

fn provider_kind(
    v: &mut Violations,
    field: &str,
    value: i32,
    required: bool,
) -> Option<ProviderKind> {
    match pb::ProviderKind::try_from(value) {
        Ok(pb::ProviderKind::Staff) => Some(ProviderKind::Staff),
        Ok(pb::ProviderKind::Vendor) => Some(ProviderKind::Vendor),
        Ok(pb::ProviderKind::Unspecified) => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Err(_) => {
            v.add(field, "is not a provider kind");
            None
        }
    }
}

fn code_list(v: &mut Violations, field: &str, value: i32) -> CodeList {
    match pb::CodeList::try_from(value) {
        Ok(pb::CodeList::Reason) => CodeList::Reason,
        Ok(pb::CodeList::Goal) => CodeList::Goal,
        Ok(pb::CodeList::ReferralPlan) => CodeList::ReferralPlan,
        Ok(pb::CodeList::BarrierType) => CodeList::BarrierType,
        Ok(pb::CodeList::TurnAwayReason) => CodeList::TurnAwayReason,
        Ok(pb::CodeList::Race) => CodeList::Race,
        Ok(pb::CodeList::Ethnicity) => CodeList::Ethnicity,
        Ok(pb::CodeList::Gender) => CodeList::Gender,
        Ok(pb::CodeList::Unspecified) => {
            v.add(field, "is required");
            CodeList::Reason
        }
        Err(_) => {
            v.add(field, "is not a code list");
            CodeList::Reason
        }
    }
}

fn parse_service_group(p: &pb::ServiceGroup, v: &mut Violations) -> ServiceGroupFields {
    let _ = v;
    ServiceGroupFields {
        name: p.name.clone(),
        description: p.description.clone(),
    }
}

fn parse_service(p: &pb::Service, v: &mut Violations) -> ServiceFields {
    let prefix = "service";
    ServiceFields {
        code: p.code.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        unit_of_measure: unit_of_measure(v, "service.unit_of_measure", p.unit_of_measure),
        default_unit_value: v
            .decimal("service.default_unit_value", &p.default_unit_value, 2)
            .unwrap_or(Decimal::ZERO),
        delivery_mode: delivery_mode(v, "service.delivery_mode", p.delivery_mode, true)
            .unwrap_or(DeliveryMode::Direct),
        service_group_id: v.optional_id(&format!("{prefix}.service_group_id"), &p.service_group_id),
        organization_ids: v.ids(
            &format!("{prefix}.organization_ids"),
            &p.organization_ids,
            MAX_LINKS,
        ),
        grant_ids: v.ids(&format!("{prefix}.grant_ids"), &p.grant_ids, MAX_LINKS),
        program_ids: v.ids(&format!("{prefix}.program_ids"), &p.program_ids, MAX_LINKS),
        unit_value_fixed: p.unit_value_fixed,
    }
}

fn parse_grant(p: &pb::Grant, v: &mut Violations) -> GrantFields {
    let fallback = chrono::NaiveDate::MIN;
    GrantFields {
        code: p.code.clone(),
        name: p.name.clone(),
        funder: p.funder.clone(),
        start_date: validate::date(v, "grant.start_date", p.start_date.as_ref(), true)
            .unwrap_or(fallback),
        end_date: validate::date(v, "grant.end_date", p.end_date.as_ref(), false),
        budget: if p.budget.is_empty() {
            None
        } else {
            v.decimal("grant.budget", &p.budget, 2)
        },
    }
}

fn parse_program(p: &pb::Program, v: &mut Violations) -> ProgramFields {
    ProgramFields {
        code: p.code.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        start_date: validate::date(v, "program.start_date", p.start_date.as_ref(), true)
            .unwrap_or(chrono::NaiveDate::MIN),
        end_date: validate::date(v, "program.end_date", p.end_date.as_ref(), false),
    }
}

fn parse_provider(p: &pb::Provider, v: &mut Violations) -> ProviderFields {
    ProviderFields {
        name: p.name.clone(),
        kind: provider_kind(v, "provider.kind", p.kind, true).unwrap_or(ProviderKind::Staff),
        email: p.email.clone(),
        phone: p.phone.clone(),
    }
}

fn parse_code_value(p: &pb::CodeValue, v: &mut Violations) -> CodeValueFields {
    CodeValueFields {
        code_list: code_list(v, "code_value.code_list", p.code_list),
        code: p.code.clone(),
        label: p.label.clone(),
        sort_order: p.sort_order,
    }
}

/// Parses a resource for a create: every field counts, and every violation is reported at once.
fn for_create<P, F: Resource>(
    resource: Option<P>,
    kind: &str,
    parse: impl Fn(&P, &mut Violations) -> F,
) -> Result<F> {
    let resource = resource.ok_or_else(|| Error::invalid(kind, "is required"))?;
    let mut violations = Violations::new();
    let fields = parse(&resource, &mut violations);
    fields.validate(kind, &mut violations);
    violations.finish()?;
    Ok(fields)
}

/// What an update request names: the id, the expected version, the mask and the parsed
/// fields (only masked fields are checked).
struct UpdateParts<F> {
    id: Uuid,
    expected: Option<i64>,
    mask: Vec<&'static str>,
    fields: F,
}

fn for_update<P, F: Resource>(
    resource: Option<P>,
    mask: Option<&prost_types::FieldMask>,
    kind: &str,
    id_of: impl Fn(&P) -> &str,
    etag_of: impl Fn(&P) -> &str,
    parse: impl Fn(&P, &mut Violations) -> F,
) -> Result<UpdateParts<F>> {
    let resource = resource.ok_or_else(|| Error::invalid(kind, "is required"))?;
    let id = parse_id(&format!("{kind}.id"), id_of(&resource))?;
    let expected = etag::parse(&format!("{kind}.etag"), etag_of(&resource))?;
    let mask = validate::update_mask(mask, F::MUTABLE)?;
    let mut violations = Violations::new();
    let fields = parse(&resource, &mut violations);
    violations.retain_masked(kind, &mask);
    violations.finish()?;
    Ok(UpdateParts {
        id,
        expected,
        mask,
        fields,
    })
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    // ---- service groups ----

    async fn create_service_group(
        &self,
        request: Request<pb::CreateServiceGroupRequest>,
    ) -> Result<Response<pb::CreateServiceGroupResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let fields = for_create(
            m.service_group.clone(),
            "service_group",
            parse_service_group,
        )?;
        let reply = self
            .catalog
            .create(&caller, tenant, &m.request_id, fields, None, &m, |r| {
                pb::CreateServiceGroupResponse {
                    service_group: Some(service_group_to_proto(r)),
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_service_group(
        &self,
        request: Request<pb::GetServiceGroupRequest>,
    ) -> Result<Response<pb::GetServiceGroupResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self.catalog.get::<ServiceGroupFields>(tenant, id).await?;
        Ok(Response::new(pb::GetServiceGroupResponse {
            service_group: Some(service_group_to_proto(&record)),
        }))
    }

    async fn update_service_group(
        &self,
        request: Request<pb::UpdateServiceGroupRequest>,
    ) -> Result<Response<pb::UpdateServiceGroupResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let parts = for_update(
            m.service_group,
            m.update_mask.as_ref(),
            "service_group",
            |p| &p.id,
            |p| &p.etag,
            parse_service_group,
        )?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                None,
            )
            .await?;
        Ok(Response::new(pb::UpdateServiceGroupResponse {
            service_group: Some(service_group_to_proto(&record)),
        }))
    }

    async fn delete_service_group(
        &self,
        request: Request<pb::DeleteServiceGroupRequest>,
    ) -> Result<Response<pb::DeleteServiceGroupResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        self.catalog
            .delete::<ServiceGroupFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::DeleteServiceGroupResponse {}))
    }

    async fn list_service_groups(
        &self,
        request: Request<pb::ListServiceGroupsRequest>,
    ) -> Result<Response<pb::ListServiceGroupsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let filter = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter)?;
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows = store::list_service_groups(tx.conn(), after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter, |r| {
            (r.fields.name.clone(), r.id)
        });
        Ok(Response::new(pb::ListServiceGroupsResponse {
            service_groups: rows.iter().map(service_group_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- services ----

    async fn create_service(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = caseway_platform::auth::authorization_of(&request);
        let m = request.into_inner();
        let fields = for_create(m.service.clone(), "service", parse_service)?;
        let organizations = self
            .organizations_if(!fields.organization_ids.is_empty(), authorization.as_ref())
            .await?;
        let reply = self
            .catalog
            .create(
                &caller,
                tenant,
                &m.request_id,
                fields,
                organizations.as_deref(),
                &m,
                |r| pb::CreateServiceResponse {
                    service: Some(service_to_proto(r)),
                },
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self
            .catalog
            .cache()
            .get_or_load(tenant, id, || async {
                self.catalog
                    .get::<ServiceFields>(tenant, id)
                    .await
                    .map(Some)
            })
            .await?
            .ok_or_else(|| Error::not_found("service", id))?;
        // A restricted service is invisible outside its organizations: the same answer as
        // for a service that does not exist.
        if !record.fields.visible_to(&caller) {
            return Err(Error::not_found("service", id).into());
        }
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(service_to_proto(&record)),
        }))
    }

    async fn update_service(
        &self,
        request: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = caseway_platform::auth::authorization_of(&request);
        let m = request.into_inner();
        let parts = for_update(
            m.service,
            m.update_mask.as_ref(),
            "service",
            |p| &p.id,
            |p| &p.etag,
            parse_service,
        )?;
        let organizations = self
            .organizations_if(
                parts.mask.contains(&"organization_ids")
                    && !parts.fields.organization_ids.is_empty(),
                authorization.as_ref(),
            )
            .await?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                organizations.as_deref(),
            )
            .await?;
        Ok(Response::new(pb::UpdateServiceResponse {
            service: Some(service_to_proto(&record)),
        }))
    }

    async fn retire_service(
        &self,
        request: Request<pb::RetireServiceRequest>,
    ) -> Result<Response<pb::RetireServiceResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        let record = self
            .catalog
            .retire::<ServiceFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::RetireServiceResponse {
            service: Some(service_to_proto(&record)),
        }))
    }

    async fn delete_service(
        &self,
        request: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        self.catalog
            .delete::<ServiceFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::DeleteServiceResponse {}))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let mut v = Violations::new();
        let service_group_id = v.optional_id("service_group_id", &m.service_group_id);
        let grant_id = v.optional_id("grant_id", &m.grant_id);
        let program_id = v.optional_id("program_id", &m.program_id);
        let mode = delivery_mode(&mut v, "delivery_mode", m.delivery_mode, false);
        v.text("query", &m.query, 0, 200);
        v.finish()?;
        let filter = ServiceFilter {
            service_group_id,
            delivery_mode: mode,
            grant_id,
            program_id,
            query: (!m.query.is_empty()).then(|| m.query.clone()),
            include_retired: m.include_retired,
            visible_to_organizations: (!caller.has_role(Role::TenantAdmin))
                .then(|| caller.organization_ids.clone()),
        };
        // Bound to the caller's organizations too: a token is not a way to see more.
        let mut filter_bytes = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        filter_bytes.extend(format!("{:?}", filter.visible_to_organizations).bytes());
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter_bytes)?;
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows = store::list_services(tx.conn(), &filter, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter_bytes, |r| {
            (r.fields.code.clone(), r.id)
        });
        Ok(Response::new(pb::ListServicesResponse {
            services: rows.iter().map(service_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- grants ----

    async fn create_grant(
        &self,
        request: Request<pb::CreateGrantRequest>,
    ) -> Result<Response<pb::CreateGrantResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let fields = for_create(m.grant.clone(), "grant", parse_grant)?;
        let reply = self
            .catalog
            .create(&caller, tenant, &m.request_id, fields, None, &m, |r| {
                pb::CreateGrantResponse {
                    grant: Some(grant_to_proto(r)),
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<Response<pb::GetGrantResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self.catalog.get::<GrantFields>(tenant, id).await?;
        Ok(Response::new(pb::GetGrantResponse {
            grant: Some(grant_to_proto(&record)),
        }))
    }

    async fn update_grant(
        &self,
        request: Request<pb::UpdateGrantRequest>,
    ) -> Result<Response<pb::UpdateGrantResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let parts = for_update(
            m.grant,
            m.update_mask.as_ref(),
            "grant",
            |p| &p.id,
            |p| &p.etag,
            parse_grant,
        )?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                None,
            )
            .await?;
        Ok(Response::new(pb::UpdateGrantResponse {
            grant: Some(grant_to_proto(&record)),
        }))
    }

    async fn retire_grant(
        &self,
        request: Request<pb::RetireGrantRequest>,
    ) -> Result<Response<pb::RetireGrantResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        let record = self
            .catalog
            .retire::<GrantFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::RetireGrantResponse {
            grant: Some(grant_to_proto(&record)),
        }))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let mut v = Violations::new();
        v.text("query", &m.query, 0, 200);
        let active_on = validate::date(&mut v, "active_on", m.active_on.as_ref(), false);
        v.finish()?;
        let filter = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter)?;
        let query = (!m.query.is_empty()).then_some(m.query.as_str());
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows = store::list_grants(
            tx.conn(),
            query,
            active_on,
            m.include_retired,
            after,
            limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter, |r| {
            (r.fields.code.clone(), r.id)
        });
        Ok(Response::new(pb::ListGrantsResponse {
            grants: rows.iter().map(grant_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- programs ----

    async fn create_program(
        &self,
        request: Request<pb::CreateProgramRequest>,
    ) -> Result<Response<pb::CreateProgramResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let fields = for_create(m.program.clone(), "program", parse_program)?;
        let reply = self
            .catalog
            .create(&caller, tenant, &m.request_id, fields, None, &m, |r| {
                pb::CreateProgramResponse {
                    program: Some(program_to_proto(r)),
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_program(
        &self,
        request: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::GetProgramResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self.catalog.get::<ProgramFields>(tenant, id).await?;
        Ok(Response::new(pb::GetProgramResponse {
            program: Some(program_to_proto(&record)),
        }))
    }

    async fn update_program(
        &self,
        request: Request<pb::UpdateProgramRequest>,
    ) -> Result<Response<pb::UpdateProgramResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let parts = for_update(
            m.program,
            m.update_mask.as_ref(),
            "program",
            |p| &p.id,
            |p| &p.etag,
            parse_program,
        )?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                None,
            )
            .await?;
        Ok(Response::new(pb::UpdateProgramResponse {
            program: Some(program_to_proto(&record)),
        }))
    }

    async fn retire_program(
        &self,
        request: Request<pb::RetireProgramRequest>,
    ) -> Result<Response<pb::RetireProgramResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        let record = self
            .catalog
            .retire::<ProgramFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::RetireProgramResponse {
            program: Some(program_to_proto(&record)),
        }))
    }

    async fn list_programs(
        &self,
        request: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let mut v = Violations::new();
        v.text("query", &m.query, 0, 200);
        let active_on = validate::date(&mut v, "active_on", m.active_on.as_ref(), false);
        v.finish()?;
        let filter = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter)?;
        let query = (!m.query.is_empty()).then_some(m.query.as_str());
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows = store::list_programs(
            tx.conn(),
            query,
            active_on,
            m.include_retired,
            after,
            limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter, |r| {
            (r.fields.code.clone(), r.id)
        });
        Ok(Response::new(pb::ListProgramsResponse {
            programs: rows.iter().map(program_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- providers ----

    async fn create_provider(
        &self,
        request: Request<pb::CreateProviderRequest>,
    ) -> Result<Response<pb::CreateProviderResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let fields = for_create(m.provider.clone(), "provider", parse_provider)?;
        let reply = self
            .catalog
            .create(&caller, tenant, &m.request_id, fields, None, &m, |r| {
                pb::CreateProviderResponse {
                    provider: Some(provider_to_proto(r)),
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_provider(
        &self,
        request: Request<pb::GetProviderRequest>,
    ) -> Result<Response<pb::GetProviderResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self.catalog.get::<ProviderFields>(tenant, id).await?;
        Ok(Response::new(pb::GetProviderResponse {
            provider: Some(provider_to_proto(&record)),
        }))
    }

    async fn update_provider(
        &self,
        request: Request<pb::UpdateProviderRequest>,
    ) -> Result<Response<pb::UpdateProviderResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let parts = for_update(
            m.provider,
            m.update_mask.as_ref(),
            "provider",
            |p| &p.id,
            |p| &p.etag,
            parse_provider,
        )?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                None,
            )
            .await?;
        Ok(Response::new(pb::UpdateProviderResponse {
            provider: Some(provider_to_proto(&record)),
        }))
    }

    async fn retire_provider(
        &self,
        request: Request<pb::RetireProviderRequest>,
    ) -> Result<Response<pb::RetireProviderResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        let record = self
            .catalog
            .retire::<ProviderFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::RetireProviderResponse {
            provider: Some(provider_to_proto(&record)),
        }))
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let mut v = Violations::new();
        v.text("query", &m.query, 0, 200);
        let kind = provider_kind(&mut v, "kind", m.kind, false);
        v.finish()?;
        let filter = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter)?;
        let query = (!m.query.is_empty()).then_some(m.query.as_str());
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows =
            store::list_providers(tx.conn(), query, kind, m.include_retired, after, limit + 1)
                .await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter, |r| {
            (r.fields.name.clone(), r.id)
        });
        Ok(Response::new(pb::ListProvidersResponse {
            providers: rows.iter().map(provider_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- code values ----

    async fn create_code_value(
        &self,
        request: Request<pb::CreateCodeValueRequest>,
    ) -> Result<Response<pb::CreateCodeValueResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let fields = for_create(m.code_value.clone(), "code_value", parse_code_value)?;
        let reply = self
            .catalog
            .create(&caller, tenant, &m.request_id, fields, None, &m, |r| {
                pb::CreateCodeValueResponse {
                    code_value: Some(code_value_to_proto(r)),
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_code_value(
        &self,
        request: Request<pb::GetCodeValueRequest>,
    ) -> Result<Response<pb::GetCodeValueResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let record = self.catalog.get::<CodeValueFields>(tenant, id).await?;
        Ok(Response::new(pb::GetCodeValueResponse {
            code_value: Some(code_value_to_proto(&record)),
        }))
    }

    async fn update_code_value(
        &self,
        request: Request<pb::UpdateCodeValueRequest>,
    ) -> Result<Response<pb::UpdateCodeValueResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let parts = for_update(
            m.code_value,
            m.update_mask.as_ref(),
            "code_value",
            |p| &p.id,
            |p| &p.etag,
            parse_code_value,
        )?;
        let record = self
            .catalog
            .update(
                &caller,
                tenant,
                parts.id,
                parts.expected,
                parts.fields,
                &parts.mask,
                None,
            )
            .await?;
        Ok(Response::new(pb::UpdateCodeValueResponse {
            code_value: Some(code_value_to_proto(&record)),
        }))
    }

    async fn retire_code_value(
        &self,
        request: Request<pb::RetireCodeValueRequest>,
    ) -> Result<Response<pb::RetireCodeValueResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        let record = self
            .catalog
            .retire::<CodeValueFields>(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::RetireCodeValueResponse {
            code_value: Some(code_value_to_proto(&record)),
        }))
    }

    async fn list_code_values(
        &self,
        request: Request<pb::ListCodeValuesRequest>,
    ) -> Result<Response<pb::ListCodeValuesResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let m = request.into_inner();
        let limit = validate::page_size(m.page_size)?;
        let mut v = Violations::new();
        let list = code_list(&mut v, "code_list", m.code_list);
        v.finish()?;
        let filter = Self::filter_of(&m, |f| {
            f.page_size = 0;
            f.page_token.clear();
        });
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&m.page_token, tenant, &filter)?;
        let mut tx = self.catalog.db().tenant_tx(tenant).await?;
        let mut rows =
            store::list_code_values(tx.conn(), list, m.include_retired, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token = tokens.finish_page(&mut rows, limit, tenant, &filter, |r| {
            (r.fields.sort_order, r.fields.code.clone(), r.id)
        });
        Ok(Response::new(pb::ListCodeValuesResponse {
            code_values: rows.iter().map(code_value_to_proto).collect(),
            next_page_token,
        }))
    }
}

/// The catalog's internal methods, for other services of the deployment.
pub struct CatalogInternalApi {
    platform: Arc<Platform>,
}

impl CatalogInternalApi {
    pub fn new(platform: Arc<Platform>) -> Self {
        CatalogInternalApi { platform }
    }
}

#[tonic::async_trait]
impl CatalogInternalService for CatalogInternalApi {
    async fn list_service_restrictions(
        &self,
        request: Request<pb::ListServiceRestrictionsRequest>,
    ) -> Result<Response<pb::ListServiceRestrictionsResponse>, Status> {
        let tenant = principal(&request)?.tenant()?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let restrictions = store::service_restrictions(tx.conn()).await?;
        tx.commit().await?;
        Ok(Response::new(pb::ListServiceRestrictionsResponse {
            restrictions: restrictions
                .into_iter()
                .map(|(id, organizations)| pb::ServiceRestriction {
                    service_id: id.to_string(),
                    organization_ids: organizations.iter().map(Uuid::to_string).collect(),
                })
                .collect(),
        }))
    }
}
