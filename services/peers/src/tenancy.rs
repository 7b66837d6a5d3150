//! The tenancy service, as the catalog asks it: the tenant's security organizations, with the
//! caller's own credentials.

use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::tenancy::v1::ListOrganizationsRequest;
use caseway_api::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use caseway_platform::caller::Caller;
use caseway_platform::error::Result;
use caseway_platform::server::Platform;

use crate::call::{self, Retry, call};

const PEER: &str = "tenancy";

#[derive(Clone)]
pub struct Tenancy {
    client: TenancyServiceClient<Channel>,
}

impl Tenancy {
    pub fn new(platform: &Platform, endpoint: &str) -> anyhow::Result<Self> {
        Ok(Tenancy {
            client: TenancyServiceClient::new(platform.peers.channel(endpoint)?),
        })
    }

    /// The ids of the caller's tenant's security organizations, every page.
    pub async fn organization_ids(&self, caller: &Caller) -> Result<Vec<Uuid>> {
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let reply = call(
                PEER,
                Retry::Idempotent,
                || {
                    Ok(caller.forward(ListOrganizationsRequest {
                        page_size: 500,
                        page_token: page_token.clone(),
                        ..Default::default()
                    }))
                },
                |request| {
                    let mut client = self.client.clone();
                    async move { client.list_organizations(request).await }
                },
            )
            .await
            .map_err(|failure| failure.into_error(PEER))?;
            for organization in &reply.organizations {
                ids.push(call::id(PEER, "organization id", &organization.id)?);
            }
            if reply.next_page_token.is_empty() {
                return Ok(ids);
            }
            page_token = reply.next_page_token;
        }
    }
}
