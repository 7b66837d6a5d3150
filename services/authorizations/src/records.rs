//! What the records service says of a record that units were held for: whether the hold can
//! be given back. A hold is given back only when no stored version of the record from the
//! held one on draws on the authorization; otherwise the record's event is on its way (through
//! the outbox, however long the broker is down) and settles the hold itself. Both the
//! release call and the worker ask before giving back, so neither a failed commit that did
//! commit nor a caller releasing another's hold can make room for an overspend. The question
//! is an internal method of the records service, asked with this service's own identity: the
//! answer must not depend on who released (a user outside a restricted service's security
//! organizations would be told its records do not exist).

use std::sync::Arc;

use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::records::v1::GetRecordDrawRequest;
use caseway_api::records::v1::records_internal_service_client::RecordsInternalServiceClient;
use caseway_platform::TenantId;
use caseway_platform::access::READ_RECORD_DRAWS;
use caseway_platform::auth::ServiceIdentity;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::Platform;

pub struct Records {
    client: RecordsInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
}

/// Who the records service sees calling.
const CALLER: &str = "authorizations";

impl Records {
    pub fn new(platform: &Platform, endpoint: &str) -> anyhow::Result<Self> {
        Ok(Records {
            client: RecordsInternalServiceClient::new(platform.peers.channel(endpoint)?),
            identity: platform.service_identity.clone(),
        })
    }

    /// Whether the units held for `held_version` of the record on `authorization_id` are
    /// unused: the record is not stored (never, or deleted since), its latest version is
    /// older than the held one (that was not written), or its latest version no longer names
    /// this authorization. When its latest version is the held one or later and names the
    /// authorization, that version's event settles the hold.
    pub async fn hold_unused(
        &self,
        tenant: TenantId,
        record_id: Uuid,
        authorization_id: Uuid,
        held_version: i64,
    ) -> Result<bool> {
        let request = self.identity.request(
            GetRecordDrawRequest {
                service_record_id: record_id.to_string(),
            },
            CALLER,
            tenant,
            READ_RECORD_DRAWS,
        )?;
        match self.client.clone().get_record_draw(request).await {
            Ok(reply) => {
                let draw = reply.into_inner();
                let names_it =
                    Uuid::parse_str(&draw.authorization_id).ok() == Some(authorization_id);
                Ok(!draw.stored || draw.version < held_version || !names_it)
            }
            Err(status) => Err(Error::from_peer("records", &status)),
        }
    }
}
