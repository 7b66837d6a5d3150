//! `caseway eligibility rebuild --tenant X`: one tenant's facts read again from the other
//! services' public APIs, page by page, as the tenant's administrator, and written as their
//! events would have written them (the same decoding, the same versions). For a tenant whose
//! events came before the facts queue existed, or a read model to check against its sources.

use std::future::Future;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::clients::v1::assessments_service_client::AssessmentsServiceClient;
use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::records::v1 as records_pb;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_platform::TenantId;

use crate::domain::Fact;
use crate::events;
use crate::service::Eligibility;

/// The most a page asks for.
const PAGE: i32 = 500;

/// Where the facts are read: the channels of the catalog, the clients service and the records
/// service, and a tenant administrator's token.
pub struct Sources {
    pub catalog: Channel,
    pub clients: Channel,
    pub records: Channel,
    pub token: String,
}

/// What a rebuild read, and how much of it was newer than what was kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub read: usize,
    pub written: usize,
    pub clients: usize,
}

/// Every item of a paged list: `page` is asked with each next page token until none is left.
async fn all<T, F, Fut>(mut page: F) -> Result<Vec<T>, Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (mut more, next) = page(token).await?;
        items.append(&mut more);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

impl Sources {
    fn request<T>(&self, message: T) -> Result<Request<T>, Status> {
        let bearer: MetadataValue<_> = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not visible ASCII"))?;
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", bearer);
        Ok(request)
    }

    /// The tenant's facts as its services' APIs give them.
    pub async fn facts(&self) -> anyhow::Result<(Vec<Fact>, usize)> {
        let catalog = CatalogServiceClient::new(self.catalog.clone());
        let clients = ClientsServiceClient::new(self.clients.clone());
        let assessments = AssessmentsServiceClient::new(self.clients.clone());
        let barriers = BarriersServiceClient::new(self.clients.clone());
        let records = RecordsServiceClient::new(self.records.clone());
        let mut facts = Vec::new();
        let services = all(|page_token| {
            let mut catalog = catalog.clone();
            let request = self.request(catalog_pb::ListServicesRequest {
                page_size: PAGE,
                page_token,
                include_retired: true,
                ..Default::default()
            });
            async move {
                let reply = catalog.list_services(request?).await?.into_inner();
                Ok((reply.services, reply.next_page_token))
            }
        })
        .await?;
        for service in &services {
            facts.push(events::service_fact(service, false)?);
        }
        let programs = all(|page_token| {
            let mut catalog = catalog.clone();
            let request = self.request(catalog_pb::ListProgramsRequest {
                page_size: PAGE,
                page_token,
                include_retired: true,
                ..Default::default()
            });
            async move {
                let reply = catalog.list_programs(request?).await?.into_inner();
                Ok((reply.programs, reply.next_page_token))
            }
        })
        .await?;
        for program in &programs {
            facts.push(events::program_fact(program)?);
        }
        let types = all(|page_token| {
            let mut assessments = assessments.clone();
            let request = self.request(clients_pb::ListAssessmentTypesRequest {
                page_size: PAGE,
                page_token,
                include_retired: true,
            });
            async move {
                let reply = assessments
                    .list_assessment_types(request?)
                    .await?
                    .into_inner();
                Ok((reply.assessment_types, reply.next_page_token))
            }
        })
        .await?;
        for assessment_type in &types {
            facts.push(events::assessment_type_fact(assessment_type)?);
        }
        let people = all(|page_token| {
            let mut clients = clients.clone();
            let request = self.request(clients_pb::ListClientsRequest {
                page_size: PAGE,
                page_token,
            });
            async move {
                let reply = clients.list_clients(request?).await?.into_inner();
                Ok((reply.clients, reply.next_page_token))
            }
        })
        .await?;
        for client in &people {
            facts.push(events::client_fact(client, false)?);
            let id = client.id.clone();
            let enrollments = all(|page_token| {
                let mut clients = clients.clone();
                let request = self.request(clients_pb::ListEnrollmentsRequest {
                    client_id: id.clone(),
                    page_size: PAGE,
                    page_token,
                });
                async move {
                    let reply = clients.list_enrollments(request?).await?.into_inner();
                    Ok((reply.enrollments, reply.next_page_token))
                }
            })
            .await?;
            for enrollment in &enrollments {
                facts.push(events::enrollment_fact(enrollment)?);
            }
            let recorded = all(|page_token| {
                let mut assessments = assessments.clone();
                let request = self.request(clients_pb::ListAssessmentsRequest {
                    client_id: id.clone(),
                    page_size: PAGE,
                    page_token,
                    ..Default::default()
                });
                async move {
                    let reply = assessments.list_assessments(request?).await?.into_inner();
                    Ok((reply.assessments, reply.next_page_token))
                }
            })
            .await?;
            for assessment in &recorded {
                facts.push(events::assessment_fact(assessment)?);
            }
            let found = all(|page_token| {
                let mut barriers = barriers.clone();
                let request = self.request(clients_pb::ListBarriersRequest {
                    client_id: id.clone(),
                    page_size: PAGE,
                    page_token,
                    ..Default::default()
                });
                async move {
                    let reply = barriers.list_barriers(request?).await?.into_inner();
                    Ok((reply.barriers, reply.next_page_token))
                }
            })
            .await?;
            for barrier in &found {
                facts.push(events::barrier_fact(barrier)?);
            }
            let history = all(|page_token| {
                let mut records = records.clone();
                let request = self.request(records_pb::ListClientServiceRecordsRequest {
                    client_id: id.clone(),
                    page_size: PAGE,
                    page_token,
                    ..Default::default()
                });
                async move {
                    let reply = records
                        .list_client_service_records(request?)
                        .await?
                        .into_inner();
                    Ok((reply.records, reply.next_page_token))
                }
            })
            .await?;
            for record in &history {
                facts.extend(events::delivery_fact(record, false)?);
            }
        }
        Ok((facts, people.len()))
    }
}

/// Reads the tenant's facts from `sources` and writes what is newer than what is kept.
pub async fn rebuild(
    eligibility: &Eligibility,
    tenant: TenantId,
    sources: &Sources,
) -> anyhow::Result<Rebuilt> {
    let (facts, clients) = sources.facts().await?;
    let read = facts.len();
    let written = eligibility.keep_facts(tenant, facts).await?;
    Ok(Rebuilt {
        read,
        written,
        clients,
    })
}
