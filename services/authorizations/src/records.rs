//! What the records service says of a record that units were held for: whether the hold can
//! be given back. A hold is given back only when no stored version of the record from the
//! held one on draws on the authorization; otherwise the record's event is on its way (through
//! the outbox, however long the broker is down) and settles the hold itself. Both the
//! release call and the worker ask before giving back, so neither a failed commit that did
//! commit nor a caller releasing another's hold can make room for an overspend.

use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::records::v1::GetServiceRecordRequest;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_platform::auth::{Authorization, on_behalf_of};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag;

pub struct Records {
    client: RecordsServiceClient<Channel>,
}

impl Records {
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(endpoint.to_string())?.connect_lazy();
        Ok(Records {
            client: RecordsServiceClient::new(channel),
        })
    }

    /// Whether the units held for `held_version` of the record on `authorization_id` are
    /// unused: the record is not stored (never, or deleted since), its latest version is
    /// older than the held one (that was not written), or its latest version no longer names
    /// this authorization. When its latest version is the held one or later and names the
    /// authorization, that version's event settles the hold.
    pub async fn hold_unused(
        &self,
        bearer: Option<&Authorization>,
        record_id: Uuid,
        authorization_id: Uuid,
        held_version: i64,
    ) -> Result<bool> {
        let request = on_behalf_of(
            GetServiceRecordRequest {
                id: record_id.to_string(),
            },
            bearer,
        );
        match self.client.clone().get_service_record(request).await {
            Ok(reply) => {
                let record = reply.into_inner().record.unwrap_or_default();
                // A record's etag is the records service's own: one it cannot read is its
                // fault, not the caller's.
                let version = etag::parse("etag", &record.etag)
                    .map_err(|_| {
                        Error::Unavailable(format!(
                            "records service: unreadable etag {:?}",
                            record.etag
                        ))
                    })?
                    .unwrap_or(0);
                let names_it =
                    Uuid::parse_str(&record.authorization_id).ok() == Some(authorization_id);
                Ok(version < held_version || !names_it)
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(true),
            Err(status) if status.code() == tonic::Code::PermissionDenied => Err(
                Error::PermissionDenied(format!("records service: {}", status.message())),
            ),
            Err(status) => Err(Error::Unavailable(format!(
                "records service: {}",
                status.message()
            ))),
        }
    }
}
