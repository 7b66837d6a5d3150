//! The records service, as the authorizations service asks it with its own identity: whether
//! the units held for a version of a record can be given back. A hold is given back only when
//! no stored version of the record from the held one on draws on the authorization; otherwise
//! the record's event is on its way (through the outbox, however long the broker is down) and
//! settles the hold itself. The answer must not depend on who released (a user outside a
//! restricted service's security organizations would be told its records do not exist), so it
//! is asked with the service identity.

use std::sync::Arc;

use tonic::transport::Channel;

use caseway_api::records::v1::GetRecordDrawRequest;
use caseway_api::records::v1::records_internal_service_client::RecordsInternalServiceClient;
use caseway_platform::access::READ_RECORD_DRAWS;
use caseway_platform::auth::ServiceIdentity;
use caseway_platform::error::Result;
use caseway_platform::server::Platform;
use caseway_platform::{AuthorizationId, RecordId, TenantId};

use crate::call::{self, Retry, call};

const PEER: &str = "records";

/// Who the records service sees calling.
const CALLER: &str = "authorizations";

pub struct Records {
    client: RecordsInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
}

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
        record_id: RecordId,
        authorization_id: AuthorizationId,
        held_version: i64,
    ) -> Result<bool> {
        let draw = call(
            PEER,
            Retry::Idempotent,
            || {
                self.identity.request(
                    GetRecordDrawRequest {
                        service_record_id: record_id.to_string(),
                    },
                    CALLER,
                    tenant,
                    READ_RECORD_DRAWS,
                )
            },
            |request| {
                let mut client = self.client.clone();
                async move { client.get_record_draw(request).await }
            },
        )
        .await
        .map_err(|failure| failure.into_error(PEER))?;
        let names_it = call::optional_id(PEER, "authorization id", &draw.authorization_id)?
            == Some(authorization_id);
        Ok(!draw.stored || draw.version < held_version || !names_it)
    }
}
