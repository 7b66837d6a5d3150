//! The catalog gRPC API, thin: each handler reads who calls (`Caller::of`), decodes the
//! request into a checked domain input (`convert`), calls the use case (`service`) and encodes
//! its answer (`convert`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use caseway_api::catalog::v1 as pb;
use caseway_api::catalog::v1::catalog_internal_service_server::CatalogInternalService;
use caseway_api::catalog::v1::catalog_service_server::CatalogService;
use caseway_platform::caller::Caller;
use caseway_platform::idempotency::Key;
use caseway_platform::server::Platform;

use crate::convert;
use crate::domain::*;
use crate::service::{Catalog, Retire};

pub struct CatalogApi {
    platform: Arc<Platform>,
    service: Catalog,
}

impl CatalogApi {
    pub fn new(platform: Arc<Platform>, service: Catalog) -> Self {
        CatalogApi { platform, service }
    }

    /// Every Retire RPC: its target and request id, then the one retire use case; `reply`
    /// wraps the retired entry.
    async fn retire<E, M, R>(
        &self,
        request: Request<M>,
        reply: impl Fn(&Record<E>) -> R,
    ) -> Result<Response<R>, Status>
    where
        E: Retire,
        M: RetireRequest,
        R: prost::Message + Default,
    {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let (id, etag, request_id) = m.parts();
        let target = convert::retire_target(id, etag, request_id)?;
        let method = format!("catalog.{}.retire", E::KIND);
        let key = Key::of(&method, request_id, m);
        let reply = self
            .service
            .retire::<E, _>(&caller, &key, target, reply)
            .await?;
        Ok(Response::new(reply))
    }
}

/// What every Retire request carries: the entry's id, the etag it was read at and the
/// request id.
trait RetireRequest: prost::Message {
    fn parts(&self) -> (&str, &str, &str);
}

macro_rules! retire_requests {
    ($($request:ty),+ $(,)?) => {
        $(impl RetireRequest for $request {
            fn parts(&self) -> (&str, &str, &str) {
                (&self.id, &self.etag, &self.request_id)
            }
        })+
    };
}

retire_requests!(
    pb::RetireServiceRequest,
    pb::RetireGrantRequest,
    pb::RetireProgramRequest,
    pb::RetireProviderRequest,
    pb::RetireCodeValueRequest,
);

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    // ---- service groups ----

    async fn create_service_group(
        &self,
        request: Request<pb::CreateServiceGroupRequest>,
    ) -> Result<Response<pb::CreateServiceGroupResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_service_group(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_service_group(
        &self,
        request: Request<pb::GetServiceGroupRequest>,
    ) -> Result<Response<pb::GetServiceGroupResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get::<ServiceGroupFields>(&caller, id).await?;
        Ok(Response::new(pb::GetServiceGroupResponse {
            service_group: Some(convert::service_group_to_proto(&record)),
        }))
    }

    async fn update_service_group(
        &self,
        request: Request<pb::UpdateServiceGroupRequest>,
    ) -> Result<Response<pb::UpdateServiceGroupResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_service_group(request.get_ref())?;
        let record = self
            .service
            .update::<ServiceGroupFields>(&caller, input)
            .await?;
        Ok(Response::new(pb::UpdateServiceGroupResponse {
            service_group: Some(convert::service_group_to_proto(&record)),
        }))
    }

    async fn delete_service_group(
        &self,
        request: Request<pb::DeleteServiceGroupRequest>,
    ) -> Result<Response<pb::DeleteServiceGroupResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let target = convert::target(&m.id, &m.etag)?;
        self.service
            .delete::<ServiceGroupFields>(&caller, target)
            .await?;
        Ok(Response::new(pb::DeleteServiceGroupResponse {}))
    }

    async fn list_service_groups(
        &self,
        request: Request<pb::ListServiceGroupsRequest>,
    ) -> Result<Response<pb::ListServiceGroupsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_service_groups(m);
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (service_groups, next_page_token) =
            self.service.list_service_groups(&caller, page).await?;
        Ok(Response::new(pb::ListServiceGroupsResponse {
            service_groups: service_groups
                .iter()
                .map(convert::service_group_to_proto)
                .collect(),
            next_page_token,
        }))
    }

    // ---- services ----

    async fn create_service(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_service(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get_service(&caller, id).await?;
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(convert::service_to_proto(&record)),
        }))
    }

    async fn update_service(
        &self,
        request: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_service(request.get_ref())?;
        let record = self.service.update::<ServiceFields>(&caller, input).await?;
        Ok(Response::new(pb::UpdateServiceResponse {
            service: Some(convert::service_to_proto(&record)),
        }))
    }

    async fn retire_service(
        &self,
        request: Request<pb::RetireServiceRequest>,
    ) -> Result<Response<pb::RetireServiceResponse>, Status> {
        self.retire::<ServiceFields, _, _>(request, |record| pb::RetireServiceResponse {
            service: Some(convert::service_to_proto(record)),
        })
        .await
    }

    async fn delete_service(
        &self,
        request: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let target = convert::target(&m.id, &m.etag)?;
        self.service
            .delete::<ServiceFields>(&caller, target)
            .await?;
        Ok(Response::new(pb::DeleteServiceResponse {}))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_services(m, &caller.principal)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (services, next_page_token) = self
            .service
            .list_services(&caller, &query.filter, page)
            .await?;
        Ok(Response::new(pb::ListServicesResponse {
            services: services.iter().map(convert::service_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- grants ----

    async fn create_grant(
        &self,
        request: Request<pb::CreateGrantRequest>,
    ) -> Result<Response<pb::CreateGrantResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_grant(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_grant(
        &self,
        request: Request<pb::GetGrantRequest>,
    ) -> Result<Response<pb::GetGrantResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get::<GrantFields>(&caller, id).await?;
        Ok(Response::new(pb::GetGrantResponse {
            grant: Some(convert::grant_to_proto(&record)),
        }))
    }

    async fn update_grant(
        &self,
        request: Request<pb::UpdateGrantRequest>,
    ) -> Result<Response<pb::UpdateGrantResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_grant(request.get_ref())?;
        let record = self.service.update::<GrantFields>(&caller, input).await?;
        Ok(Response::new(pb::UpdateGrantResponse {
            grant: Some(convert::grant_to_proto(&record)),
        }))
    }

    async fn retire_grant(
        &self,
        request: Request<pb::RetireGrantRequest>,
    ) -> Result<Response<pb::RetireGrantResponse>, Status> {
        self.retire::<GrantFields, _, _>(request, |record| pb::RetireGrantResponse {
            grant: Some(convert::grant_to_proto(record)),
        })
        .await
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_grants(m)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (grants, next_page_token) = self
            .service
            .list_grants(&caller, &query.filter, page)
            .await?;
        Ok(Response::new(pb::ListGrantsResponse {
            grants: grants.iter().map(convert::grant_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- programs ----

    async fn create_program(
        &self,
        request: Request<pb::CreateProgramRequest>,
    ) -> Result<Response<pb::CreateProgramResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_program(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_program(
        &self,
        request: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::GetProgramResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get::<ProgramFields>(&caller, id).await?;
        Ok(Response::new(pb::GetProgramResponse {
            program: Some(convert::program_to_proto(&record)),
        }))
    }

    async fn update_program(
        &self,
        request: Request<pb::UpdateProgramRequest>,
    ) -> Result<Response<pb::UpdateProgramResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_program(request.get_ref())?;
        let record = self.service.update::<ProgramFields>(&caller, input).await?;
        Ok(Response::new(pb::UpdateProgramResponse {
            program: Some(convert::program_to_proto(&record)),
        }))
    }

    async fn retire_program(
        &self,
        request: Request<pb::RetireProgramRequest>,
    ) -> Result<Response<pb::RetireProgramResponse>, Status> {
        self.retire::<ProgramFields, _, _>(request, |record| pb::RetireProgramResponse {
            program: Some(convert::program_to_proto(record)),
        })
        .await
    }

    async fn list_programs(
        &self,
        request: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_programs(m)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (programs, next_page_token) = self
            .service
            .list_programs(&caller, &query.filter, page)
            .await?;
        Ok(Response::new(pb::ListProgramsResponse {
            programs: programs.iter().map(convert::program_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- providers ----

    async fn create_provider(
        &self,
        request: Request<pb::CreateProviderRequest>,
    ) -> Result<Response<pb::CreateProviderResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_provider(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_provider(
        &self,
        request: Request<pb::GetProviderRequest>,
    ) -> Result<Response<pb::GetProviderResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get::<ProviderFields>(&caller, id).await?;
        Ok(Response::new(pb::GetProviderResponse {
            provider: Some(convert::provider_to_proto(&record)),
        }))
    }

    async fn update_provider(
        &self,
        request: Request<pb::UpdateProviderRequest>,
    ) -> Result<Response<pb::UpdateProviderResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_provider(request.get_ref())?;
        let record = self
            .service
            .update::<ProviderFields>(&caller, input)
            .await?;
        Ok(Response::new(pb::UpdateProviderResponse {
            provider: Some(convert::provider_to_proto(&record)),
        }))
    }

    async fn retire_provider(
        &self,
        request: Request<pb::RetireProviderRequest>,
    ) -> Result<Response<pb::RetireProviderResponse>, Status> {
        self.retire::<ProviderFields, _, _>(request, |record| pb::RetireProviderResponse {
            provider: Some(convert::provider_to_proto(record)),
        })
        .await
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_providers(m)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (providers, next_page_token) = self
            .service
            .list_providers(&caller, &query.filter, page)
            .await?;
        Ok(Response::new(pb::ListProvidersResponse {
            providers: providers.iter().map(convert::provider_to_proto).collect(),
            next_page_token,
        }))
    }

    // ---- code values ----

    async fn create_code_value(
        &self,
        request: Request<pb::CreateCodeValueRequest>,
    ) -> Result<Response<pb::CreateCodeValueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_code_value(request.get_ref())?;
        Ok(Response::new(self.service.create(&caller, input).await?))
    }

    async fn get_code_value(
        &self,
        request: Request<pb::GetCodeValueRequest>,
    ) -> Result<Response<pb::GetCodeValueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::id(&request.get_ref().id)?;
        let record = self.service.get::<CodeValueFields>(&caller, id).await?;
        Ok(Response::new(pb::GetCodeValueResponse {
            code_value: Some(convert::code_value_to_proto(&record)),
        }))
    }

    async fn update_code_value(
        &self,
        request: Request<pb::UpdateCodeValueRequest>,
    ) -> Result<Response<pb::UpdateCodeValueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_code_value(request.get_ref())?;
        let record = self
            .service
            .update::<CodeValueFields>(&caller, input)
            .await?;
        Ok(Response::new(pb::UpdateCodeValueResponse {
            code_value: Some(convert::code_value_to_proto(&record)),
        }))
    }

    async fn retire_code_value(
        &self,
        request: Request<pb::RetireCodeValueRequest>,
    ) -> Result<Response<pb::RetireCodeValueResponse>, Status> {
        self.retire::<CodeValueFields, _, _>(request, |record| pb::RetireCodeValueResponse {
            code_value: Some(convert::code_value_to_proto(record)),
        })
        .await
    }

    async fn list_code_values(
        &self,
        request: Request<pb::ListCodeValuesRequest>,
    ) -> Result<Response<pb::ListCodeValuesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.get_ref();
        let query = convert::list_code_values(m)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.bound_to,
            m.page_size,
            &m.page_token,
        )?;
        let (code_values, next_page_token) = self
            .service
            .list_code_values(&caller, &query.filter, page)
            .await?;
        Ok(Response::new(pb::ListCodeValuesResponse {
            code_values: code_values
                .iter()
                .map(convert::code_value_to_proto)
                .collect(),
            next_page_token,
        }))
    }
}

/// The catalog's internal methods, for other services of the deployment.
pub struct CatalogInternalApi {
    service: Catalog,
}

impl CatalogInternalApi {
    pub fn new(service: Catalog) -> Self {
        CatalogInternalApi { service }
    }
}

#[tonic::async_trait]
impl CatalogInternalService for CatalogInternalApi {
    async fn list_service_restrictions(
        &self,
        request: Request<pb::ListServiceRestrictionsRequest>,
    ) -> Result<Response<pb::ListServiceRestrictionsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let restrictions = self.service.service_restrictions(&caller).await?;
        Ok(Response::new(convert::service_restrictions_to_proto(
            restrictions,
        )))
    }
}
