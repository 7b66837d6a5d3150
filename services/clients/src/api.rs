//! The api room of the clients service: the tonic handlers of ClientsService, thin. Each one
//! finds its caller, decodes the request into a checked input, calls the use case and encodes
//! its result. SSNs leave this service masked unless the caller may see them whole.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::clients_service_server::ClientsService;
use caseway_platform::caller::Caller;

use crate::convert;
use crate::service::Clients;

pub struct ClientsApi {
    service: Arc<Clients>,
}

impl ClientsApi {
    pub fn new(service: Arc<Clients>) -> Self {
        ClientsApi { service }
    }
}

#[tonic::async_trait]
impl ClientsService for ClientsApi {
    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_client_request(
            &caller.principal,
            request.get_ref(),
            Utc::now().date_naive(),
        )?;
        let outcome = self.service.create(&caller, input).await?;
        Ok(Response::new(outcome.reply(convert::client_created)))
    }

    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::GetClientResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::get_client_request(request.get_ref())?;
        let (client, ssn) = self.service.get(&caller, input).await?;
        Ok(Response::new(convert::client_read(&client, ssn.as_ref())))
    }

    async fn update_client(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Result<Response<pb::UpdateClientResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_client_request(request.get_ref())?;
        let client = self.service.update(&caller, input).await?;
        Ok(Response::new(convert::client_updated(&client)))
    }

    async fn delete_client(
        &self,
        request: Request<pb::DeleteClientRequest>,
    ) -> Result<Response<pb::DeleteClientResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::delete_client_request(request.get_ref())?;
        self.service.delete(&caller, input).await?;
        Ok(Response::new(pb::DeleteClientResponse {}))
    }

    async fn list_client_history(
        &self,
        request: Request<pb::ListClientHistoryRequest>,
    ) -> Result<Response<pb::ListClientHistoryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::history_request(request.get_ref())?;
        let page = self.service.history(&caller, input).await?;
        Ok(Response::new(convert::client_history(page)))
    }

    async fn search_clients(
        &self,
        request: Request<pb::SearchClientsRequest>,
    ) -> Result<Response<pb::SearchClientsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::search_request(&caller.principal, request.get_ref())?;
        let page = self.service.search(&caller, input).await?;
        Ok(Response::new(convert::client_matches(page)))
    }

    async fn start_enrollment(
        &self,
        request: Request<pb::StartEnrollmentRequest>,
    ) -> Result<Response<pb::StartEnrollmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::start_enrollment_request(request.get_ref(), Utc::now().date_naive())?;
        let outcome = self.service.start_enrollment(&caller, input).await?;
        Ok(Response::new(outcome.reply(convert::enrollment_started)))
    }

    async fn exit_enrollment(
        &self,
        request: Request<pb::ExitEnrollmentRequest>,
    ) -> Result<Response<pb::ExitEnrollmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::exit_enrollment_request(request.get_ref())?;
        let reply = self.service.exit_enrollment(&caller, input).await?;
        Ok(Response::new(reply))
    }

    async fn get_enrollment(
        &self,
        request: Request<pb::GetEnrollmentRequest>,
    ) -> Result<Response<pb::GetEnrollmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::get_enrollment_request(request.get_ref())?;
        let enrollment = self.service.get_enrollment(&caller, id).await?;
        Ok(Response::new(convert::enrollment_read(&enrollment)))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let page = convert::list_clients_request(request.get_ref());
        let listed = self.service.list(&caller, page).await?;
        Ok(Response::new(convert::clients(listed)))
    }

    async fn list_enrollments(
        &self,
        request: Request<pb::ListEnrollmentsRequest>,
    ) -> Result<Response<pb::ListEnrollmentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::list_enrollments_request(request.get_ref())?;
        let page = self.service.list_enrollments(&caller, input).await?;
        Ok(Response::new(convert::enrollments(page)))
    }
}
