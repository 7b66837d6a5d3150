//! The records service's gRPC handlers: each decodes its request (`convert`), takes the
//! verified caller, calls its use case (`service`) and encodes the reply. The access table
//! (`caseway_platform::access`) decided before a handler runs that the caller's roles may call
//! it.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use caseway_api::records::v1 as pb;
use caseway_api::records::v1::records_internal_service_server::RecordsInternalService;
use caseway_api::records::v1::records_service_server::RecordsService;
use caseway_platform::RecordId;
use caseway_platform::audit;
use caseway_platform::caller::Caller;
use caseway_platform::error::Error;
use caseway_platform::idempotency::Key;
use caseway_platform::server::Platform;
use caseway_platform::validate::{Violations, parse_id};

use crate::convert::{self, record_to_proto};
use crate::service::{self, Records};

pub struct RecordsApi {
    platform: Arc<Platform>,
    records: Records,
}

impl RecordsApi {
    pub fn new(platform: Arc<Platform>, records: Records) -> Self {
        RecordsApi { platform, records }
    }
}

#[tonic::async_trait]
impl RecordsService for RecordsApi {
    async fn record_service(
        &self,
        request: Request<pb::RecordServiceRequest>,
    ) -> Result<Response<pb::RecordServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let form = message
            .record
            .as_ref()
            .ok_or_else(|| Error::invalid("record", "is required"))?;
        let mut v = Violations::new();
        let draft = convert::parse_draft(form, "record.", false, &mut v);
        let key = Key::of(
            "records.service_record.create",
            &message.request_id,
            &message,
        );
        let record = self.records.record(&caller, &key, draft, v).await?;
        Ok(Response::new(pb::RecordServiceResponse {
            record: Some(record),
        }))
    }

    async fn record_indirect_service(
        &self,
        request: Request<pb::RecordIndirectServiceRequest>,
    ) -> Result<Response<pb::RecordIndirectServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let draft =
            convert::parse_draft(&convert::indirect_form(&message), "record.", true, &mut v);
        let key = Key::of(
            "records.service_record.indirect",
            &message.request_id,
            &message,
        );
        let record = self.records.record(&caller, &key, draft, v).await?;
        Ok(Response::new(pb::RecordIndirectServiceResponse {
            record: Some(record),
        }))
    }

    async fn record_quick_services(
        &self,
        request: Request<pb::RecordQuickServicesRequest>,
    ) -> Result<Response<pb::RecordQuickServicesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let lines = convert::quick_lines(&message);
        let key = Key::of(
            "records.service_record.quick",
            &message.request_id,
            &message,
        );
        let reply = self.records.record_quick(&caller, &key, lines).await?;
        Ok(Response::new(reply))
    }

    async fn record_bulk_service(
        &self,
        request: Request<pb::RecordBulkServiceRequest>,
    ) -> Result<Response<pb::RecordBulkServiceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let template = convert::check_bulk(&message)?;
        let attendees = convert::bulk_attendees(&message, &template);
        let key = Key::of("records.service_record.bulk", &message.request_id, &message);
        let reply = self.records.record_bulk(&caller, &key, attendees).await?;
        Ok(Response::new(reply))
    }

    async fn get_service_record(
        &self,
        request: Request<pb::GetServiceRecordRequest>,
    ) -> Result<Response<pb::GetServiceRecordResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let row = self.records.get(&caller, id).await?;
        Ok(Response::new(pb::GetServiceRecordResponse {
            record: Some(record_to_proto(&row)),
        }))
    }

    async fn update_service_record(
        &self,
        request: Request<pb::UpdateServiceRecordRequest>,
    ) -> Result<Response<pb::UpdateServiceRecordResponse>, Status> {
        let caller = Caller::of(&request)?;
        let update = convert::update_request(request.into_inner())?;
        let row = self.records.update(&caller, update).await?;
        Ok(Response::new(pb::UpdateServiceRecordResponse {
            record: Some(record_to_proto(&row)),
        }))
    }

    async fn delete_service_record(
        &self,
        request: Request<pb::DeleteServiceRecordRequest>,
    ) -> Result<Response<pb::DeleteServiceRecordResponse>, Status> {
        let caller = Caller::of(&request)?;
        let deletion = convert::delete_request(request.into_inner())?;
        self.records.delete(&caller, deletion).await?;
        Ok(Response::new(pb::DeleteServiceRecordResponse {}))
    }

    async fn list_service_record_history(
        &self,
        request: Request<pb::ListServiceRecordHistoryRequest>,
    ) -> Result<Response<pb::ListServiceRecordHistoryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let id: RecordId = parse_id("id", &message.id)?;
        let page = audit::history_page_of(
            &self.platform.page_tokens,
            caller.tenant,
            id.0,
            message.page_size,
            &message.page_token,
        )?;
        let (entries, next_page_token) = self.records.history(&caller, id, page).await?;
        Ok(Response::new(pb::ListServiceRecordHistoryResponse {
            entries: entries.into_iter().map(convert::history_entry).collect(),
            next_page_token,
        }))
    }

    async fn list_client_service_records(
        &self,
        request: Request<pb::ListClientServiceRecordsRequest>,
    ) -> Result<Response<pb::ListClientServiceRecordsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let query = convert::history_query(&message)?;
        let page = self.platform.page_tokens.page(
            caller.tenant,
            &query.filter_key,
            message.page_size,
            &message.page_token,
        )?;
        let (rows, next_page_token) = self.records.client_history(&caller, &query, page).await?;
        Ok(Response::new(pb::ListClientServiceRecordsResponse {
            records: rows.iter().map(record_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_service_totals(
        &self,
        request: Request<pb::GetServiceTotalsRequest>,
    ) -> Result<Response<pb::GetServiceTotalsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (start, end, by) = convert::totals_query(request.get_ref())?;
        let rows = self.records.totals(&caller, start, end, by).await?;
        Ok(Response::new(pb::GetServiceTotalsResponse {
            totals: rows.into_iter().map(convert::totals_to_proto).collect(),
        }))
    }
}

/// The records service's internal methods, for other services of the deployment.
pub struct RecordsInternalApi {
    platform: Arc<Platform>,
}

impl RecordsInternalApi {
    pub fn new(platform: Arc<Platform>) -> Self {
        RecordsInternalApi { platform }
    }
}

#[tonic::async_trait]
impl RecordsInternalService for RecordsInternalApi {
    async fn get_record_draw(
        &self,
        request: Request<pb::GetRecordDrawRequest>,
    ) -> Result<Response<pb::GetRecordDrawResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("service_record_id", &request.get_ref().service_record_id)?;
        let draw = service::draw(&self.platform.db, caller.tenant, id).await?;
        Ok(Response::new(convert::draw_reply(draw)))
    }
}
