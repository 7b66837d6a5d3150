//! The api room of barriers: the tonic handlers of BarriersService, thin. Each one finds its
//! caller, decodes the request, calls the use case and encodes its result.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::barriers_service_server::BarriersService;
use caseway_platform::caller::Caller;

use super::convert;
use super::service::Barriers;

pub struct BarriersApi {
    service: Arc<Barriers>,
}

impl BarriersApi {
    pub fn new(service: Arc<Barriers>) -> Self {
        BarriersApi { service }
    }
}

#[tonic::async_trait]
impl BarriersService for BarriersApi {
    async fn create_barrier(
        &self,
        request: Request<pb::CreateBarrierRequest>,
    ) -> Result<Response<pb::CreateBarrierResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_request(request.get_ref(), Utc::now().date_naive())?;
        let outcome = self.service.create(&caller, input).await?;
        Ok(Response::new(outcome.reply(convert::barrier_created)))
    }

    async fn get_barrier(
        &self,
        request: Request<pb::GetBarrierRequest>,
    ) -> Result<Response<pb::GetBarrierResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::get_request(request.get_ref())?;
        let barrier = self.service.get(&caller, id).await?;
        Ok(Response::new(convert::barrier_read(&barrier)))
    }

    async fn update_barrier(
        &self,
        request: Request<pb::UpdateBarrierRequest>,
    ) -> Result<Response<pb::UpdateBarrierResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_request(request.get_ref())?;
        let barrier = self.service.update(&caller, input).await?;
        Ok(Response::new(convert::barrier_updated(&barrier)))
    }

    async fn list_barriers(
        &self,
        request: Request<pb::ListBarriersRequest>,
    ) -> Result<Response<pb::ListBarriersResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::list_request(request.get_ref())?;
        let page = self.service.list(&caller, input).await?;
        Ok(Response::new(convert::barriers(page)))
    }
}
