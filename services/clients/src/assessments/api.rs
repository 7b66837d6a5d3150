//! The api room of assessments: the tonic handlers of AssessmentsService, thin. Each one finds
//! its caller, decodes the request, calls the use case and encodes its result.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::assessments_service_server::AssessmentsService;
use caseway_platform::caller::Caller;

use super::convert;
use super::service::Assessments;

pub struct AssessmentsApi {
    service: Arc<Assessments>,
}

impl AssessmentsApi {
    pub fn new(service: Arc<Assessments>) -> Self {
        AssessmentsApi { service }
    }
}

#[tonic::async_trait]
impl AssessmentsService for AssessmentsApi {
    async fn create_assessment_type(
        &self,
        request: Request<pb::CreateAssessmentTypeRequest>,
    ) -> Result<Response<pb::CreateAssessmentTypeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::create_type_request(request.get_ref())?;
        let outcome = self.service.create_type(&caller, input).await?;
        Ok(Response::new(outcome.reply(convert::type_created)))
    }

    async fn get_assessment_type(
        &self,
        request: Request<pb::GetAssessmentTypeRequest>,
    ) -> Result<Response<pb::GetAssessmentTypeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::get_type_request(request.get_ref())?;
        let record = self.service.get_type(&caller, id).await?;
        Ok(Response::new(convert::type_read(&record)))
    }

    async fn update_assessment_type(
        &self,
        request: Request<pb::UpdateAssessmentTypeRequest>,
    ) -> Result<Response<pb::UpdateAssessmentTypeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::update_type_request(request.get_ref())?;
        let record = self.service.update_type(&caller, input).await?;
        Ok(Response::new(convert::type_updated(&record)))
    }

    async fn list_assessment_types(
        &self,
        request: Request<pb::ListAssessmentTypesRequest>,
    ) -> Result<Response<pb::ListAssessmentTypesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::list_types_request(request.get_ref());
        let page = self.service.list_types(&caller, input).await?;
        Ok(Response::new(convert::types(page)))
    }

    async fn record_assessment(
        &self,
        request: Request<pb::RecordAssessmentRequest>,
    ) -> Result<Response<pb::RecordAssessmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::record_request(request.get_ref(), Utc::now().date_naive())?;
        let outcome = self.service.record(&caller, input).await?;
        Ok(Response::new(outcome.reply(convert::assessment_recorded)))
    }

    async fn get_assessment(
        &self,
        request: Request<pb::GetAssessmentRequest>,
    ) -> Result<Response<pb::GetAssessmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::get_assessment_request(request.get_ref())?;
        let record = self.service.get_assessment(&caller, id).await?;
        Ok(Response::new(convert::assessment_read(&record)))
    }

    async fn list_assessments(
        &self,
        request: Request<pb::ListAssessmentsRequest>,
    ) -> Result<Response<pb::ListAssessmentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let input = convert::list_assessments_request(request.get_ref())?;
        let page = self.service.list_assessments(&caller, input).await?;
        Ok(Response::new(convert::assessments(page)))
    }

    async fn list_latest_assessments(
        &self,
        request: Request<pb::ListLatestAssessmentsRequest>,
    ) -> Result<Response<pb::ListLatestAssessmentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let client_id = convert::list_latest_request(request.get_ref())?;
        let rows = self.service.list_latest(&caller, client_id).await?;
        Ok(Response::new(convert::latest_assessments(&rows)))
    }
}
