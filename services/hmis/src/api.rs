//! The HMIS gRPC handlers, thin: decode (`convert`), call the use case (`service`), encode.
//! The access table has already decided which roles call each method.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::hmis::v1 as pb;
use caseway_api::hmis::v1::hmis_service_server::HmisService;
use caseway_platform::caller::Caller;
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::convert::{
    export_to_proto, mapping_from_proto, mapping_to_proto, settings_from_proto, settings_to_proto,
    subject_from_proto,
};
use crate::domain::{self, Subject};
use crate::service::Hmis;

pub struct HmisApi {
    platform: Arc<Platform>,
    hmis: Arc<Hmis>,
}

impl HmisApi {
    pub fn new(platform: Arc<Platform>, hmis: Arc<Hmis>) -> Self {
        HmisApi { platform, hmis }
    }
}

/// A file of an export, in chunks.
pub type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadExportFileResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl HmisService for HmisApi {
    type DownloadExportFileStream = DownloadStream;

    async fn set_mapping(
        &self,
        request: Request<pb::SetMappingRequest>,
    ) -> Result<Response<pb::SetMappingResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mapping = mapping_from_proto(request.get_ref().mapping.as_ref())?;
        let mapping = self.hmis.set_mapping(&caller, mapping).await?;
        Ok(Response::new(pb::SetMappingResponse {
            mapping: Some(mapping_to_proto(&mapping)),
        }))
    }

    async fn list_mappings(
        &self,
        request: Request<pb::ListMappingsRequest>,
    ) -> Result<Response<pb::ListMappingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let subject = match message.subject {
            0 => None,
            value => {
                let mut v = Violations::new();
                let subject = subject_from_proto(value, "subject", &mut v);
                Some(v.finish_with(subject)?)
            }
        };
        let filter = format!("hmis.mappings/{}", subject.map_or(0, |s| s as i32));
        let page = self.platform.page_tokens.page(
            caller.tenant,
            filter.as_bytes(),
            message.page_size,
            &message.page_token,
        )?;
        let (mappings, next_page_token) = self.hmis.list_mappings(&caller, subject, page).await?;
        Ok(Response::new(pb::ListMappingsResponse {
            mappings: mappings.iter().map(mapping_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_mapping(
        &self,
        request: Request<pb::DeleteMappingRequest>,
    ) -> Result<Response<pb::DeleteMappingResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let mut v = Violations::new();
        let subject: Option<Subject> = subject_from_proto(message.subject, "subject", &mut v);
        v.text("code", &message.code, 1, 200);
        let subject = v.finish_with(subject)?;
        self.hmis
            .delete_mapping(&caller, subject, &message.code)
            .await?;
        Ok(Response::new(pb::DeleteMappingResponse {}))
    }

    async fn get_settings(
        &self,
        request: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::GetSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let settings = self.hmis.settings(&caller).await?;
        Ok(Response::new(pb::GetSettingsResponse {
            settings: Some(settings_to_proto(&settings)),
        }))
    }

    async fn update_settings(
        &self,
        request: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::UpdateSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let settings = settings_from_proto(request.get_ref().settings.as_ref())?;
        let settings = self.hmis.update_settings(&caller, settings).await?;
        Ok(Response::new(pb::UpdateSettingsResponse {
            settings: Some(settings_to_proto(&settings)),
        }))
    }

    async fn start_export(
        &self,
        request: Request<pb::StartExportRequest>,
    ) -> Result<Response<pb::StartExportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let mut v = Violations::new();
        let start = validate::date(&mut v, "start_date", message.start_date.as_ref(), true);
        let end = validate::date(&mut v, "end_date", message.end_date.as_ref(), true);
        if let (Some(start), Some(end)) = (start, end) {
            domain::check_range(start, end, &mut v);
        }
        let (start, end) = v.finish_with(start.zip(end))?;
        let (export, joined) = self
            .hmis
            .start_export(&caller, start, end, message.include_ssn)
            .await?;
        Ok(Response::new(pb::StartExportResponse {
            export: Some(export_to_proto(&export)),
            joined,
        }))
    }

    async fn get_export(
        &self,
        request: Request<pb::GetExportRequest>,
    ) -> Result<Response<pb::GetExportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id::<Uuid>("id", &request.get_ref().id)?;
        let export = self.hmis.export(&caller, id).await?;
        Ok(Response::new(pb::GetExportResponse {
            export: Some(export_to_proto(&export)),
        }))
    }

    async fn download_export_file(
        &self,
        request: Request<pb::DownloadExportFileRequest>,
    ) -> Result<Response<Self::DownloadExportFileStream>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let mut v = Violations::new();
        let id = v.id::<Uuid>("id", &message.id);
        let file = domain::File::parse(&message.name);
        if file.is_none() {
            v.add("name", "is one of the eight files, such as Client.csv");
        }
        let (id, file) = v.finish_with(id.zip(file))?;
        let chunks = self.hmis.download(&caller, id, file).await?;
        let stream = chunks.map(|chunk| {
            chunk
                .map(|chunk| pb::DownloadExportFileResponse {
                    chunk: chunk.to_vec(),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
