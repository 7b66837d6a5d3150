//! The eligibility service, as the records and authorizations services ask it with their own
//! identity for the caller's tenant: whether a client may receive a service whose published
//! rule is REQUIRED, as of the service's date. Which services have no REQUIRED rule is cached
//! (they are most), until `eligibility.rule_published.v1` says a service's rule changed, so a
//! record of such a service costs no call.

use std::sync::Arc;

use chrono::NaiveDate;
use prost::Message;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::eligibility::v1 as pb;
use caseway_api::eligibility::v1::eligibility_internal_service_client::EligibilityInternalServiceClient;
use caseway_api::events::v1::RuleChanged;
use caseway_platform::access::ENFORCE_ELIGIBILITY;
use caseway_platform::auth::ServiceIdentity;
use caseway_platform::bus::Bus;
use caseway_platform::cache::KeyedCache;
use caseway_platform::convert::date;
use caseway_platform::error::{Error, Result, Rule};
use caseway_platform::server::{NodeBuilder, Platform};
use caseway_platform::{ClientId, ServiceId, TenantId};

use crate::call::{Failure, Retry, call};

const PEER: &str = "eligibility";

/// The event after which a service's rule may bind differently.
pub const RULE_PUBLISHED: &str = "eligibility.rule_published.v1";

/// The rule a refusal names: a REQUIRED rule found the client NOT_ELIGIBLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEligibility;

impl Rule for ServiceEligibility {
    fn name(self) -> &'static str {
        "service_eligibility"
    }
}

pub struct Eligibility {
    client: EligibilityInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
    /// Services known to have no REQUIRED rule (the value is always `false`: a service whose
    /// rule binds is asked every time, so each decision is taken and stored).
    unbound: Arc<KeyedCache<bool>>,
    caller: &'static str,
}

impl Eligibility {
    /// `caller` is the service asking (`records`, `authorizations`), naming its worker.
    pub fn new(platform: &Platform, endpoint: &str, caller: &'static str) -> anyhow::Result<Self> {
        Ok(Eligibility {
            client: EligibilityInternalServiceClient::new(platform.peers.channel(endpoint)?),
            identity: platform.service_identity.clone(),
            unbound: Arc::new(KeyedCache::new()),
            caller,
        })
    }

    /// A worker that forgets what it knew of a service's rule when one is published. It must
    /// run: without it a rule made REQUIRED would not bind until this process restarts.
    pub fn follow_events(&self, bus: &Bus, node: &mut NodeBuilder) {
        let (cache, bus) = (self.unbound.clone(), bus.clone());
        let name: &'static str =
            Box::leak(format!("{}-eligibility-cache", self.caller).into_boxed_str());
        node.add_worker(name, move |shutdown| {
            cache.follow_with(bus, vec![RULE_PUBLISHED.into()], shutdown, |envelope| {
                let change = RuleChanged::decode(envelope.payload.as_slice())?;
                Ok(change
                    .rule
                    .and_then(|r| Uuid::parse_str(&r.service_id).ok()))
            })
        });
    }

    /// Refuses (FAILED_PRECONDITION `service_eligibility`, naming the failed criteria and the
    /// decision) a client the service's REQUIRED rule finds NOT_ELIGIBLE as of `as_of`; an
    /// ADVISORY rule, no rule or an UNDETERMINED outcome lets it through.
    pub async fn enforce(
        &self,
        tenant: TenantId,
        client: ClientId,
        service: ServiceId,
        as_of: NaiveDate,
    ) -> Result<()> {
        if self.unbound.get(tenant, service.0).is_some() {
            return Ok(());
        }
        let generation = self.unbound.generation();
        // A repeat only stores the decision again.
        let answer = call(
            PEER,
            Retry::Idempotent,
            || {
                // An answer of no REQUIRED rule is cached here: it must come from the rules
                // as stored, not from the eligibility replica's own cache of them.
                self.identity
                    .request(
                        pb::EnforceEligibilityRequest {
                            client_id: client.to_string(),
                            service_id: service.to_string(),
                            as_of: Some(date(as_of)),
                        },
                        self.caller,
                        tenant,
                        ENFORCE_ELIGIBILITY,
                    )
                    .map(caseway_platform::caller::ask_fresh)
            },
            |request| {
                let mut client = self.client.clone();
                async move { client.enforce_eligibility(request).await }
            },
        )
        .await
        .map_err(|failure: Failure| failure.into_error(PEER))?;
        let Some(decision) = answer.decision.filter(|_| answer.required) else {
            self.unbound
                .insert(tenant, service.0, Arc::new(false), generation);
            return Ok(());
        };
        if decision.outcome != pb::Outcome::NotEligible as i32 {
            return Ok(());
        }
        let failed: Vec<&str> = decision
            .criteria
            .iter()
            .filter(|c| c.outcome == pb::Outcome::NotEligible as i32)
            .map(|c| c.name.as_str())
            .collect();
        Err(Error::precondition(
            ServiceEligibility,
            format!("clients/{client}"),
            format!(
                "the client is not eligible for {} on {as_of}: {} (decision {})",
                decision.service_code,
                failed.join(", "),
                decision.id
            ),
        ))
    }
}
