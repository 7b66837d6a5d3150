//! Units held on service authorizations for the records being stored. Before a record that
//! names an authorization is written, the authorizations service holds its units (refusing
//! what the authorization does not cover or no longer has); the record's event then confirms
//! the hold, and a record that was not stored gives its hold back here. Both are internal
//! methods of the authorizations service, called with this service's own identity (never the
//! user's token) for the caller's tenant.

use std::sync::Arc;

use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_internal_service_client::AuthorizationsInternalServiceClient;
use caseway_platform::TenantId;
use caseway_platform::access::HOLD_UNITS;
use caseway_platform::auth::ServiceIdentity;
use caseway_platform::convert::date;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::Platform;

use crate::store::RecordRow;

/// Units held for one version of one record, by one attempt to store it.
#[derive(Clone, Debug)]
pub struct Hold {
    pub authorization_id: Uuid,
    pub record_id: Uuid,
    pub version: i64,
    pub hold_id: Uuid,
}

pub struct Authorizations {
    client: AuthorizationsInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
}

/// Who the authorizations service sees calling.
const CALLER: &str = "records";

/// The rules the authorizations service names, as this service reports them.
fn rule(status: &tonic::Status) -> &'static str {
    let named = status
        .get_details_precondition_failure()
        .and_then(|p| p.violations.into_iter().next())
        .map(|v| v.r#type)
        .unwrap_or_default();
    match named.as_str() {
        "authorization_approved" => "authorization_approved",
        "authorization_client" => "authorization_client",
        "authorization_service" => "authorization_service",
        "authorization_period" => "authorization_period",
        "authorization_units_remaining" => "authorization_units_remaining",
        _ => "authorization_drawdown",
    }
}

impl Authorizations {
    pub fn new(platform: &Platform, endpoint: &str) -> anyhow::Result<Self> {
        Ok(Authorizations {
            client: AuthorizationsInternalServiceClient::new(platform.peers.channel(endpoint)?),
            identity: platform.service_identity.clone(),
        })
    }

    /// Holds the units of `row` (at `version`) on its authorization, if it names one; refusals
    /// name `field` (INVALID_ARGUMENT) or the authorization's rule (FAILED_PRECONDITION).
    pub async fn hold(
        &self,
        tenant: TenantId,
        row: &RecordRow,
        version: i64,
        field: &str,
    ) -> Result<Option<Hold>> {
        let (Some(authorization_id), Some(client_id), Some(units)) =
            (row.authorization_id, row.client_id, row.units)
        else {
            return Ok(None);
        };
        let hold_id = Uuid::now_v7();
        let request = self.identity.request(
            pb::ReserveUnitsRequest {
                authorization_id: authorization_id.to_string(),
                service_record_id: row.id.to_string(),
                service_record_version: version,
                client_id: client_id.to_string(),
                service_id: row.service_id.to_string(),
                service_date: Some(date(row.service_date)),
                units: units.normalize().to_string(),
                hold_id: hold_id.to_string(),
            },
            CALLER,
            tenant,
            HOLD_UNITS,
        )?;
        match self.client.clone().reserve_units(request).await {
            Ok(_) => Ok(Some(Hold {
                authorization_id,
                record_id: row.id,
                version,
                hold_id,
            })),
            Err(status) => Err(match status.code() {
                tonic::Code::FailedPrecondition => Error::precondition(
                    rule(&status),
                    format!("authorizations/{authorization_id}"),
                    status.message(),
                ),
                tonic::Code::NotFound => {
                    Error::invalid(field, "does not name an authorization of this tenant")
                }
                tonic::Code::InvalidArgument => Error::invalid(field, status.message()),
                // Another change of the record from the same version is being stored.
                _ => Error::from_peer("authorizations", &status),
            }),
        }
    }

    /// Gives back holds whose records were not stored. Best effort: a hold that cannot be
    /// given back stays counted, so an authorization is never overspent, only under-used.
    pub async fn release(&self, tenant: TenantId, holds: &[Hold]) {
        for hold in holds {
            let request = self.identity.request(
                pb::ReleaseUnitsRequest {
                    authorization_id: hold.authorization_id.to_string(),
                    service_record_id: hold.record_id.to_string(),
                    service_record_version: hold.version,
                    hold_id: hold.hold_id.to_string(),
                },
                CALLER,
                tenant,
                HOLD_UNITS,
            );
            let answer = match request {
                Ok(request) => self.client.clone().release_units(request).await,
                Err(error) => Err(tonic::Status::from(error)),
            };
            if let Err(status) = answer {
                tracing::warn!(
                    authorization_id = %hold.authorization_id,
                    record_id = %hold.record_id,
                    error = %status.message(),
                    "could not give back held units"
                );
            }
        }
    }
}
