//! The authorizations service's gRPC handlers: each decodes its request (`convert`), takes
//! the verified caller, calls its use case (`service`) and encodes the reply. The access table
//! (`caseway_platform::access`) decided before a handler runs that the caller's roles may call
//! it; the internal methods accept only a service identity.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_internal_service_server::AuthorizationsInternalService;
use caseway_api::authorizations::v1::authorizations_service_server::AuthorizationsService;
use caseway_platform::AuthorizationId;
use caseway_platform::audit;
use caseway_platform::caller::Caller;
use caseway_platform::idempotency::Key;
use caseway_platform::server::Platform;
use caseway_platform::validate::parse_id;

use crate::convert::{self, authorization_to_proto, text};
use crate::domain::Transition;
use crate::service::Authorizations;

pub struct AuthorizationsApi {
    platform: Arc<Platform>,
    authorizations: Arc<Authorizations>,
}

impl AuthorizationsApi {
    pub fn new(platform: Arc<Platform>, authorizations: Arc<Authorizations>) -> Self {
        AuthorizationsApi {
            platform,
            authorizations,
        }
    }

    /// A transition, idempotent by the request's `request_id` (each method keyed apart).
    async fn decide<M: prost::Message>(
        &self,
        caller: &Caller,
        message: &M,
        decision: convert::Decision,
        transition: Transition,
        request_id: &str,
    ) -> Result<pb::Authorization, Status> {
        let method = format!("authorizations.authorization.{}", transition.verb());
        let key = Key::of(&method, request_id, message);
        Ok(self
            .authorizations
            .decide(caller, &key, decision, transition)
            .await?)
    }
}

#[tonic::async_trait]
impl AuthorizationsService for AuthorizationsApi {
    async fn create_authorization(
        &self,
        request: Request<pb::CreateAuthorizationRequest>,
    ) -> Result<Response<pb::CreateAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let creation = convert::create_request(&message)?;
        let key = Key::of(
            "authorizations.authorization.create",
            &message.request_id,
            &message,
        );
        let reply = self.authorizations.create(&caller, &key, creation).await?;
        Ok(Response::new(reply))
    }

    async fn get_authorization(
        &self,
        request: Request<pb::GetAuthorizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row = self.authorizations.get(&caller, id).await?;
        Ok(Response::new(pb::GetAuthorizationResponse {
            authorization: Some(authorization_to_proto(&row, true)),
        }))
    }

    async fn update_authorization(
        &self,
        request: Request<pb::UpdateAuthorizationRequest>,
    ) -> Result<Response<pb::UpdateAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let update = convert::update_request(request.into_inner())?;
        let row = self.authorizations.update(&caller, update).await?;
        Ok(Response::new(pb::UpdateAuthorizationResponse {
            authorization: Some(authorization_to_proto(&row, true)),
        }))
    }

    async fn approve_authorization(
        &self,
        request: Request<pb::ApproveAuthorizationRequest>,
    ) -> Result<Response<pb::ApproveAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let decision = convert::decision(&m.id, &m.etag, None, &m.request_id)?;
        let authorization = self
            .decide(&caller, &m, decision, Transition::Approve, &m.request_id)
            .await?;
        Ok(Response::new(pb::ApproveAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn deny_authorization(
        &self,
        request: Request<pb::DenyAuthorizationRequest>,
    ) -> Result<Response<pb::DenyAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let decision = convert::decision(&m.id, &m.etag, Some(&m.reason), &m.request_id)?;
        let authorization = self
            .decide(&caller, &m, decision, Transition::Deny, &m.request_id)
            .await?;
        Ok(Response::new(pb::DenyAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn cancel_authorization(
        &self,
        request: Request<pb::CancelAuthorizationRequest>,
    ) -> Result<Response<pb::CancelAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let decision = convert::decision(&m.id, &m.etag, Some(&m.reason), &m.request_id)?;
        let authorization = self
            .decide(&caller, &m, decision, Transition::Cancel, &m.request_id)
            .await?;
        Ok(Response::new(pb::CancelAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn close_authorization(
        &self,
        request: Request<pb::CloseAuthorizationRequest>,
    ) -> Result<Response<pb::CloseAuthorizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let m = request.into_inner();
        let decision = convert::decision(&m.id, &m.etag, None, &m.request_id)?;
        let authorization = self
            .decide(&caller, &m, decision, Transition::Close, &m.request_id)
            .await?;
        Ok(Response::new(pb::CloseAuthorizationResponse {
            authorization: Some(authorization),
        }))
    }

    async fn list_client_authorizations(
        &self,
        request: Request<pb::ListClientAuthorizationsRequest>,
    ) -> Result<Response<pb::ListClientAuthorizationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let query = convert::list_query(&message)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.filter_key,
            message.page_size,
            &message.page_token,
        )?;
        let (rows, next_page_token) = self
            .authorizations
            .list_for_client(&caller, &query, page)
            .await?;
        Ok(Response::new(pb::ListClientAuthorizationsResponse {
            authorizations: rows
                .iter()
                .map(|r| authorization_to_proto(r, false))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_authorization_utilization(
        &self,
        request: Request<pb::GetAuthorizationUtilizationRequest>,
    ) -> Result<Response<pb::GetAuthorizationUtilizationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("authorization_id", &request.get_ref().authorization_id)?;
        let (row, deliveries, records) = self.authorizations.utilization(&caller, id).await?;
        Ok(Response::new(pb::GetAuthorizationUtilizationResponse {
            utilization: Some(convert::utilization(&row, &deliveries, records)),
        }))
    }

    async fn list_authorization_history(
        &self,
        request: Request<pb::ListAuthorizationHistoryRequest>,
    ) -> Result<Response<pb::ListAuthorizationHistoryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let id: AuthorizationId = parse_id("authorization_id", &message.authorization_id)?;
        let page = audit::history_page_of(
            &self.platform.page_tokens,
            caller.tenant,
            id.0,
            message.page_size,
            &message.page_token,
        )?;
        let (entries, next_page_token) = self.authorizations.history(&caller, id, page).await?;
        Ok(Response::new(pb::ListAuthorizationHistoryResponse {
            entries: entries.into_iter().map(convert::history_entry).collect(),
            next_page_token,
        }))
    }
}

/// The internal methods the records service holds and gives back units with.
#[tonic::async_trait]
impl AuthorizationsInternalService for AuthorizationsApi {
    async fn reserve_units(
        &self,
        request: Request<pb::ReserveUnitsRequest>,
    ) -> Result<Response<pb::ReserveUnitsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let reservation = convert::reservation(request.get_ref())?;
        let remaining = self.authorizations.reserve(&caller, reservation).await?;
        Ok(Response::new(pb::ReserveUnitsResponse {
            remaining_units: text(remaining),
        }))
    }

    async fn release_units(
        &self,
        request: Request<pb::ReleaseUnitsRequest>,
    ) -> Result<Response<pb::ReleaseUnitsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let draw = convert::release_request(request.get_ref())?;
        self.authorizations.release(&caller, draw).await?;
        Ok(Response::new(pb::ReleaseUnitsResponse {}))
    }
}
