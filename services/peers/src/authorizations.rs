//! The authorizations service, as the records service asks it with its own identity (never
//! the user's token) for the caller's tenant: hold the units of a record about to be stored
//! (refused when the authorization does not cover it or no longer has them), and give back
//! the holds of records that were not stored. Both calls are keyed by the hold, so a repeat
//! changes nothing and both may be retried.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tonic::transport::Channel;

use caseway_api::authorizations::v1 as pb;
use caseway_api::authorizations::v1::authorizations_internal_service_client::AuthorizationsInternalServiceClient;
use caseway_platform::access::HOLD_UNITS;
use caseway_platform::auth::ServiceIdentity;
use caseway_platform::convert::date;
use caseway_platform::error::{Error, Result, Rule};
use caseway_platform::server::Platform;
use caseway_platform::{AuthorizationId, ClientId, HoldId, RecordId, ServiceId, TenantId};

use crate::call::{Failure, Retry, call};

const PEER: &str = "authorizations";

/// Who the authorizations service sees calling.
const CALLER: &str = "records";

/// The rules the authorizations service names when it refuses a hold, as the records service
/// reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldRule {
    Approved,
    Client,
    Service,
    Period,
    UnitsRemaining,
    /// Any other refusal of the drawdown.
    Drawdown,
}

impl Rule for HoldRule {
    fn name(self) -> &'static str {
        match self {
            HoldRule::Approved => "authorization_approved",
            HoldRule::Client => "authorization_client",
            HoldRule::Service => "authorization_service",
            HoldRule::Period => "authorization_period",
            HoldRule::UnitsRemaining => "authorization_units_remaining",
            HoldRule::Drawdown => "authorization_drawdown",
        }
    }
}

impl HoldRule {
    fn named(rule: &str) -> HoldRule {
        [
            HoldRule::Approved,
            HoldRule::Client,
            HoldRule::Service,
            HoldRule::Period,
            HoldRule::UnitsRemaining,
        ]
        .into_iter()
        .find(|known| known.name() == rule)
        .unwrap_or(HoldRule::Drawdown)
    }
}

/// What a record draws on an authorization, at one version.
#[derive(Clone, Debug)]
pub struct Draw {
    pub authorization_id: AuthorizationId,
    pub record_id: RecordId,
    pub version: i64,
    pub client_id: ClientId,
    pub service_id: ServiceId,
    pub service_date: NaiveDate,
    pub units: Decimal,
}

/// Units held for one version of one record, by one attempt to store it.
#[derive(Clone, Debug)]
pub struct Hold {
    pub authorization_id: AuthorizationId,
    pub record_id: RecordId,
    pub version: i64,
    pub hold_id: HoldId,
}

pub struct Authorizations {
    client: AuthorizationsInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
}

impl Authorizations {
    pub fn new(platform: &Platform, endpoint: &str) -> anyhow::Result<Self> {
        Ok(Authorizations {
            client: AuthorizationsInternalServiceClient::new(platform.peers.channel(endpoint)?),
            identity: platform.service_identity.clone(),
        })
    }

    /// Holds the units of `draw`; refusals name `field` (INVALID_ARGUMENT) or the
    /// authorization's rule (FAILED_PRECONDITION).
    pub async fn hold(&self, tenant: TenantId, draw: &Draw, field: &str) -> Result<Hold> {
        let hold_id = HoldId::new();
        let answer = call(
            PEER,
            Retry::Idempotent,
            || {
                self.identity.request(
                    pb::ReserveUnitsRequest {
                        authorization_id: draw.authorization_id.to_string(),
                        service_record_id: draw.record_id.to_string(),
                        service_record_version: draw.version,
                        client_id: draw.client_id.to_string(),
                        service_id: draw.service_id.to_string(),
                        service_date: Some(date(draw.service_date)),
                        units: draw.units.normalize().to_string(),
                        hold_id: hold_id.to_string(),
                    },
                    CALLER,
                    tenant,
                    HOLD_UNITS,
                )
            },
            |request| {
                let mut client = self.client.clone();
                async move { client.reserve_units(request).await }
            },
        )
        .await;
        match answer {
            Ok(_) => Ok(Hold {
                authorization_id: draw.authorization_id,
                record_id: draw.record_id,
                version: draw.version,
                hold_id,
            }),
            Err(Failure::Rule { rule, message }) => Err(Error::precondition(
                HoldRule::named(&rule),
                format!("authorizations/{}", draw.authorization_id),
                message,
            )),
            Err(Failure::NotFound) => Err(Error::invalid(
                field,
                "does not name an authorization of this tenant",
            )),
            Err(Failure::Invalid(message)) => Err(Error::invalid(field, message)),
            // Another change of the record from the same version is being stored, or the
            // service cannot be reached.
            Err(Failure::Other(error)) => Err(error),
        }
    }

    /// Gives back holds whose records were not stored. Best effort: a hold that cannot be
    /// given back stays counted, so an authorization is never overspent, only under-used.
    pub async fn release(&self, tenant: TenantId, holds: &[Hold]) {
        for hold in holds {
            let answer = call(
                PEER,
                Retry::Idempotent,
                || {
                    self.identity.request(
                        pb::ReleaseUnitsRequest {
                            authorization_id: hold.authorization_id.to_string(),
                            service_record_id: hold.record_id.to_string(),
                            service_record_version: hold.version,
                            hold_id: hold.hold_id.to_string(),
                        },
                        CALLER,
                        tenant,
                        HOLD_UNITS,
                    )
                },
                |request| {
                    let mut client = self.client.clone();
                    async move { client.release_units(request).await }
                },
            )
            .await;
            if let Err(failure) = answer {
                tracing::warn!(
                    authorization_id = %hold.authorization_id,
                    record_id = %hold.record_id,
                    error = %failure.into_error(PEER),
                    "could not give back held units"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_rule_the_authorizations_service_gave() {
        assert_eq!(HoldRule::named("authorization_period"), HoldRule::Period);
        assert_eq!(HoldRule::named("something_new"), HoldRule::Drawdown);
    }
}
