//! The tenancy gRPC API: decode, authorize, validate, call the domain, encode.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use caseway_api::tenancy::v1 as pb;
use caseway_api::tenancy::v1::tenancy_service_server::TenancyService;
use caseway_platform::auth::{Role, principal};
use caseway_platform::convert::timestamp;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, parse_id};
use caseway_platform::{TenantId, etag};

use crate::domain::{NewTenant, Organization, OrganizationFields, Tenancy, Tenant, TenantStatus};

pub struct TenancyApi {
    platform: Arc<Platform>,
    tenancy: Tenancy,
}

impl TenancyApi {
    pub fn new(platform: Arc<Platform>, tenancy: Tenancy) -> Self {
        TenancyApi { platform, tenancy }
    }
}

pub fn tenant_to_proto(tenant: &Tenant) -> pb::Tenant {
    pb::Tenant {
        id: tenant.id.to_string(),
        slug: tenant.slug.clone(),
        display_name: tenant.display_name.clone(),
        status: match tenant.status {
            TenantStatus::Active => pb::TenantStatus::Active,
            TenantStatus::Suspended => pb::TenantStatus::Suspended,
        } as i32,
        etag: etag::format(tenant.version),
        create_time: Some(timestamp(tenant.created_at)),
        update_time: Some(timestamp(tenant.updated_at)),
    }
}

pub fn organization_to_proto(organization: &Organization) -> pb::Organization {
    pb::Organization {
        id: organization.id.to_string(),
        code: organization.code.clone(),
        name: organization.name.clone(),
        etag: etag::format(organization.version),
        create_time: Some(timestamp(organization.created_at)),
        update_time: Some(timestamp(organization.updated_at)),
    }
}

fn tenant_id(field: &str, value: &str) -> Result<TenantId> {
    Ok(TenantId(parse_id(field, value)?))
}

fn status_filter(value: i32) -> Result<Option<TenantStatus>> {
    match pb::TenantStatus::try_from(value) {
        Ok(pb::TenantStatus::Unspecified) => Ok(None),
        Ok(pb::TenantStatus::Active) => Ok(Some(TenantStatus::Active)),
        Ok(pb::TenantStatus::Suspended) => Ok(Some(TenantStatus::Suspended)),
        Err(_) => Err(Error::invalid("status", "is not a tenant status")),
    }
}

#[tonic::async_trait]
impl TenancyService for TenancyApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let caller = principal(&request)?;
        let message = request.into_inner();
        let tenant = message.tenant.clone().unwrap_or_default();
        let reply = self
            .tenancy
            .create_tenant(
                &caller.user_id,
                &message.request_id,
                NewTenant {
                    slug: tenant.slug,
                    display_name: tenant.display_name,
                },
                &message,
                |t| pb::CreateTenantResponse {
                    tenant: Some(tenant_to_proto(t)),
                },
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let caller = principal(&request)?;
        let id = tenant_id("id", &request.get_ref().id)?;
        let tenant = if caller.has_role(Role::PlatformAdmin) {
            self.tenancy.get_tenant(id).await?
        } else {
            self.tenancy.get_own_tenant(caller.tenant()?, id).await?
        };
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant_to_proto(&tenant)),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let message = request.into_inner();
        let limit = validate::page_size(message.page_size)?;
        let status = status_filter(message.status)?;
        let filter = pb::ListTenantsRequest {
            page_size: 0,
            page_token: String::new(),
            ..message.clone()
        };
        let filter = prost::Message::encode_to_vec(&filter);
        let tokens = &self.platform.page_tokens;
        let after: Option<String> = tokens.decode(
            &message.page_token,
            caseway_platform::PLATFORM_TENANT,
            &filter,
        )?;
        let mut tenants = self.tenancy.list_tenants(status, after, limit + 1).await?;
        let next_page_token = tokens.finish_page(
            &mut tenants,
            limit,
            caseway_platform::PLATFORM_TENANT,
            &filter,
            |t| t.slug.clone(),
        );
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.iter().map(tenant_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::SuspendTenantRequest>,
    ) -> Result<Response<pb::SuspendTenantResponse>, Status> {
        let caller = principal(&request)?;
        let id = tenant_id("id", &request.get_ref().id)?;
        let tenant = self
            .tenancy
            .set_status(
                &caller.user_id,
                id,
                TenantStatus::Suspended,
                &request.get_ref().reason,
            )
            .await?;
        Ok(Response::new(pb::SuspendTenantResponse {
            tenant: Some(tenant_to_proto(&tenant)),
        }))
    }

    async fn resume_tenant(
        &self,
        request: Request<pb::ResumeTenantRequest>,
    ) -> Result<Response<pb::ResumeTenantResponse>, Status> {
        let caller = principal(&request)?;
        let id = tenant_id("id", &request.get_ref().id)?;
        let tenant = self
            .tenancy
            .set_status(&caller.user_id, id, TenantStatus::Active, "")
            .await?;
        Ok(Response::new(pb::ResumeTenantResponse {
            tenant: Some(tenant_to_proto(&tenant)),
        }))
    }

    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let organization = message.organization.clone().unwrap_or_default();
        let reply = self
            .tenancy
            .create_organization(
                &caller,
                tenant,
                &message.request_id,
                OrganizationFields {
                    code: organization.code,
                    name: organization.name,
                },
                &message,
                |o| pb::CreateOrganizationResponse {
                    organization: Some(organization_to_proto(o)),
                },
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let organization = self.tenancy.get_organization(tenant, id).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(organization_to_proto(&organization)),
        }))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let organization = message
            .organization
            .ok_or_else(|| Error::invalid("organization", "is required"))?;
        let id = parse_id("organization.id", &organization.id)?;
        let expected = etag::parse("organization.etag", &organization.etag)?;
        let mask =
            validate::update_mask(message.update_mask.as_ref(), OrganizationFields::MUTABLE)?;
        let updated = self
            .tenancy
            .update_organization(
                &caller,
                tenant,
                id,
                expected,
                OrganizationFields {
                    code: organization.code,
                    name: organization.name,
                },
                &mask,
            )
            .await?;
        Ok(Response::new(pb::UpdateOrganizationResponse {
            organization: Some(organization_to_proto(&updated)),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let expected = etag::parse("etag", &request.get_ref().etag)?;
        self.tenancy
            .delete_organization(&caller, tenant, id, expected)
            .await?;
        Ok(Response::new(pb::DeleteOrganizationResponse {}))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let limit = validate::page_size(message.page_size)?;
        let filter: &[u8] = b"organizations";
        let tokens = &self.platform.page_tokens;
        let after: Option<String> = tokens.decode(&message.page_token, tenant, filter)?;
        let mut organizations = self
            .tenancy
            .list_organizations(tenant, after, limit + 1)
            .await?;
        let next_page_token = tokens.finish_page(&mut organizations, limit, tenant, filter, |o| {
            o.code.clone()
        });
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: organizations.iter().map(organization_to_proto).collect(),
            next_page_token,
        }))
    }
}
