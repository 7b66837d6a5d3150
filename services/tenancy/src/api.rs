//! The tenancy gRPC API, thin: who calls (the principal for the hosting provider's tenant
//! lifecycle RPCs, which hold no tenant; the [`Caller`] for a tenant's organizations), the
//! request decoded by `convert`, the use case called, the reply encoded by `convert`, and the
//! page tokens of the list calls.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use caseway_api::tenancy::v1 as pb;
use caseway_api::tenancy::v1::tenancy_service_server::TenancyService;
use caseway_platform::PLATFORM_TENANT;
use caseway_platform::auth::{Role, principal};
use caseway_platform::caller::Caller;
use caseway_platform::server::Platform;

use crate::convert;
use crate::service::Tenancy;

pub struct TenancyApi {
    platform: Arc<Platform>,
    tenancy: Tenancy,
}

impl TenancyApi {
    pub fn new(platform: Arc<Platform>, tenancy: Tenancy) -> Self {
        TenancyApi { platform, tenancy }
    }

    /// The caller of an organization RPC, which a platform administrator calls naming the
    /// tenant (NOT_FOUND when there is no such tenant).
    async fn acting_for<T>(&self, request: &Request<T>, tenant_id: &str) -> Result<Caller, Status> {
        let caller = Caller::acting_for(request, tenant_id)?;
        if !tenant_id.is_empty() {
            self.tenancy.require_tenant(caller.tenant).await?;
        }
        Ok(caller)
    }
}

#[tonic::async_trait]
impl TenancyService for TenancyApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let actor = principal(&request)?;
        let create = convert::create_tenant_request(request.get_ref())?;
        let tenant = self.tenancy.create_tenant(&actor, create).await?;
        Ok(Response::new(convert::create_tenant_reply(&tenant)))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let actor = principal(&request)?;
        let id = convert::get_tenant_request(request.get_ref())?;
        let tenant = if actor.has_role(Role::PlatformAdmin) {
            self.tenancy.get_tenant(id).await?
        } else {
            self.tenancy.get_own_tenant(actor.tenant()?, id).await?
        };
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(convert::tenant_to_proto(&tenant)),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let message = request.get_ref();
        let query = convert::list_tenants_request(message)?;
        let page = self.platform.page_tokens.page::<String>(
            PLATFORM_TENANT,
            &query.filter,
            message.page_size,
            &message.page_token,
        )?;
        let mut tenants = self
            .tenancy
            .list_tenants(
                query.status,
                query.slug.as_deref(),
                page.after.clone(),
                page.limit + 1,
            )
            .await?;
        let next_page_token = page.finish(&mut tenants, |t| t.slug.clone());
        Ok(Response::new(convert::list_tenants_reply(
            &tenants,
            next_page_token,
        )))
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::SuspendTenantRequest>,
    ) -> Result<Response<pb::SuspendTenantResponse>, Status> {
        let actor = principal(&request)?;
        let change = convert::suspend_tenant_request(request.get_ref())?;
        let tenant = self.tenancy.set_status(&actor, change).await?;
        Ok(Response::new(pb::SuspendTenantResponse {
            tenant: Some(convert::tenant_to_proto(&tenant)),
        }))
    }

    async fn resume_tenant(
        &self,
        request: Request<pb::ResumeTenantRequest>,
    ) -> Result<Response<pb::ResumeTenantResponse>, Status> {
        let actor = principal(&request)?;
        let change = convert::resume_tenant_request(request.get_ref())?;
        let tenant = self.tenancy.set_status(&actor, change).await?;
        Ok(Response::new(pb::ResumeTenantResponse {
            tenant: Some(convert::tenant_to_proto(&tenant)),
        }))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let actor = principal(&request)?;
        let update = convert::update_tenant_request(request.into_inner())?;
        let tenant = self.tenancy.update_tenant(&actor, update).await?;
        Ok(Response::new(pb::UpdateTenantResponse {
            tenant: Some(convert::tenant_to_proto(&tenant)),
        }))
    }

    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let caller = self
            .acting_for(&request, &request.get_ref().tenant_id)
            .await?;
        let create = convert::create_organization_request(request.get_ref())?;
        let organization = self.tenancy.create_organization(&caller, create).await?;
        Ok(Response::new(convert::create_organization_reply(
            &organization,
        )))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::get_organization_request(request.get_ref())?;
        let organization = self.tenancy.get_organization(caller.tenant, id).await?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(convert::organization_to_proto(&organization)),
        }))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let caller = self
            .acting_for(&request, &request.get_ref().tenant_id)
            .await?;
        let update = convert::update_organization_request(request.into_inner())?;
        let organization = self.tenancy.update_organization(&caller, update).await?;
        Ok(Response::new(pb::UpdateOrganizationResponse {
            organization: Some(convert::organization_to_proto(&organization)),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let deletion = convert::delete_organization_request(request.get_ref())?;
        self.tenancy.delete_organization(&caller, deletion).await?;
        Ok(Response::new(pb::DeleteOrganizationResponse {}))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = self
            .acting_for(&request, &request.get_ref().tenant_id)
            .await?;
        let message = request.get_ref();
        let page = self.platform.page_tokens.page::<String>(
            caller.tenant,
            convert::ORGANIZATIONS_FILTER,
            message.page_size,
            &message.page_token,
        )?;
        let mut organizations = self
            .tenancy
            .list_organizations(caller.tenant, page.after.clone(), page.limit + 1)
            .await?;
        let next_page_token = page.finish(&mut organizations, |o| o.code.clone());
        Ok(Response::new(convert::list_organizations_reply(
            &organizations,
            next_page_token,
        )))
    }
}
