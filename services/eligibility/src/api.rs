//! The eligibility service's gRPC handlers: each decodes its request (`convert`), takes the
//! verified caller, calls its use case (`service`) and encodes the reply. The access table
//! (`caseway_platform::access`) decided before a handler runs that the caller's roles may call
//! it: tenant administrators define and test rules, case workers and supervisors check.

use std::sync::Arc;

use tonic::codegen::BoxFuture;
use tonic::server::UnaryService;
use tonic::{Request, Response, Status};

use caseway_api::eligibility::v1 as pb;
use caseway_api::eligibility::v1::eligibility_internal_service_server::EligibilityInternalService;
use caseway_api::eligibility::v1::eligibility_service_server::EligibilityService;
use caseway_api::encoded::Encoded;
use caseway_platform::caller::Caller;
use caseway_platform::etag;
use caseway_platform::idempotency::Key;
use caseway_platform::server::Platform;
use caseway_platform::validate::{Violations, parse_id};
use caseway_platform::{RuleId, ServiceId};

use crate::convert::{
    self, FactList, check_response, decision_in_view, decision_to_proto, rule_to_proto,
    schema_to_proto, version_to_proto,
};
use crate::domain::Outcome;
use crate::service::Eligibility;

pub struct EligibilityApi {
    platform: Arc<Platform>,
    eligibility: Arc<Eligibility>,
}

impl EligibilityApi {
    pub fn new(platform: Arc<Platform>, eligibility: Arc<Eligibility>) -> Self {
        EligibilityApi {
            platform,
            eligibility,
        }
    }

    /// CheckEligibility: a check of every service is answered with its reply kept with the
    /// check (encoded once per view); naming services narrows the reply, built for the call.
    pub async fn check_reply(
        &self,
        request: Request<pb::CheckEligibilityRequest>,
    ) -> Result<Response<Encoded<pb::CheckEligibilityResponse>>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let (client, as_of, view) =
            convert::check_of(&message.client_id, message.as_of.as_ref(), message.view)?;
        if message.service_ids.is_empty() {
            let reply = self
                .eligibility
                .check_reply(&caller, client, as_of, view)
                .await?;
            return Ok(Response::new(Encoded::Bytes(reply)));
        }
        let mut v = Violations::new();
        let ids: Vec<ServiceId> = v
            .ids("service_ids", &message.service_ids, 500)
            .into_iter()
            .map(ServiceId)
            .collect();
        v.finish()?;
        let decisions = self
            .eligibility
            .check(&caller, client, Some(ids), as_of)
            .await?;
        Ok(Response::new(Encoded::Message(check_response(
            &decisions, view,
        ))))
    }
}

/// CheckEligibility's handler, whose replies may be sent as encoded before
/// (`caseway_api::encoded::EncodedReplies`).
#[derive(Clone)]
pub struct CheckReplies(pub Arc<EligibilityApi>);

impl CheckReplies {
    /// The method it serves.
    pub const PATH: &'static str = "/caseway.eligibility.v1.EligibilityService/CheckEligibility";
}

impl UnaryService<pb::CheckEligibilityRequest> for CheckReplies {
    type Response = Encoded<pb::CheckEligibilityResponse>;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<pb::CheckEligibilityRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.check_reply(request).await })
    }
}

#[tonic::async_trait]
impl EligibilityService for EligibilityApi {
    async fn create_rule(
        &self,
        request: Request<pb::CreateRuleRequest>,
    ) -> Result<Response<pb::CreateRuleResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let creation = convert::creation(&message, &mut v)?;
        let key = Key::of("eligibility.rule.create", &message.request_id, &message);
        let reply = self
            .eligibility
            .create_rule(&caller, &key, creation, v)
            .await?;
        Ok(Response::new(reply))
    }

    async fn get_rule(
        &self,
        request: Request<pb::GetRuleRequest>,
    ) -> Result<Response<pb::GetRuleResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let rule = self.eligibility.get_rule(&caller, id).await?;
        Ok(Response::new(pb::GetRuleResponse {
            rule: Some(rule_to_proto(&rule)),
        }))
    }

    async fn update_rule(
        &self,
        request: Request<pb::UpdateRuleRequest>,
    ) -> Result<Response<pb::UpdateRuleResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut v = Violations::new();
        let change = convert::change(request.get_ref(), &mut v)?;
        let rule = self.eligibility.update_rule(&caller, change, v).await?;
        Ok(Response::new(pb::UpdateRuleResponse {
            rule: Some(rule_to_proto(&rule)),
        }))
    }

    async fn publish_rule(
        &self,
        request: Request<pb::PublishRuleRequest>,
    ) -> Result<Response<pb::PublishRuleResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let id: Option<RuleId> = v.id("id", &message.id);
        let id = v.finish_with(id)?;
        let expected = etag::parse("etag", &message.etag)?;
        let key = Key::of("eligibility.rule.publish", &message.request_id, &message);
        let reply = self
            .eligibility
            .publish_rule(&caller, &key, id, expected)
            .await?;
        Ok(Response::new(reply))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.into_inner();
        let page = self.platform.page_tokens.page(
            caller.tenant,
            b"eligibility.rules",
            message.page_size,
            &message.page_token,
        )?;
        let (rules, next_page_token) = self.eligibility.list_rules(&caller, page).await?;
        Ok(Response::new(pb::ListRulesResponse {
            rules: rules.iter().map(rule_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_rule_version(
        &self,
        request: Request<pb::GetRuleVersionRequest>,
    ) -> Result<Response<pb::GetRuleVersionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let id = parse_id("rule_id", &message.rule_id)?;
        if message.version < 1 {
            return Err(caseway_platform::Error::invalid("version", "must be 1 or more").into());
        }
        let version = self
            .eligibility
            .rule_version(&caller, id, message.version)
            .await?;
        Ok(Response::new(pb::GetRuleVersionResponse {
            version: Some(version_to_proto(&version)),
        }))
    }

    async fn test_rule(
        &self,
        request: Request<pb::TestRuleRequest>,
    ) -> Result<Response<pb::TestRuleResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let mut v = Violations::new();
        let id: Option<RuleId> = v.id("rule_id", &message.rule_id);
        if message.version < 0 {
            v.add("version", "must be 0 (the draft) or a published version");
        }
        let id = v.finish_with(id)?;
        let (client, as_of) = convert::client_on(&message.client_id, message.as_of.as_ref())?;
        let decision = self
            .eligibility
            .test_rule(&caller, id, message.version, client, as_of)
            .await?;
        let mut facts = FactList::default();
        Ok(Response::new(pb::TestRuleResponse {
            decision: Some(decision_to_proto(&decision, &mut facts)),
            facts: facts.into_proto(),
        }))
    }

    async fn get_fact_schema(
        &self,
        request: Request<pb::GetFactSchemaRequest>,
    ) -> Result<Response<pb::GetFactSchemaResponse>, Status> {
        let caller = Caller::of(&request)?;
        let schema = self.eligibility.fact_schema(&caller).await?;
        Ok(Response::new(pb::GetFactSchemaResponse {
            facts: schema_to_proto(&schema),
        }))
    }

    /// Served by [`CheckReplies`] (lib.rs), which sends a reply kept from before as it was
    /// encoded; this answers the same reply as a message.
    async fn check_eligibility(
        &self,
        request: Request<pb::CheckEligibilityRequest>,
    ) -> Result<Response<pb::CheckEligibilityResponse>, Status> {
        let reply = self.check_reply(request).await?;
        let (metadata, reply, extensions) = reply.into_parts();
        Ok(Response::from_parts(
            metadata,
            reply.into_message()?,
            extensions,
        ))
    }

    async fn list_eligible_services(
        &self,
        request: Request<pb::ListEligibleServicesRequest>,
    ) -> Result<Response<pb::ListEligibleServicesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let (client, as_of, view) =
            convert::check_of(&message.client_id, message.as_of.as_ref(), message.view)?;
        let decisions = self.eligibility.check(&caller, client, None, as_of).await?;
        let mut facts = FactList::default();
        let mut of = |outcome: Outcome| {
            decisions
                .iter()
                .filter(|d| d.outcome == outcome)
                .map(|d| decision_in_view(d, view, &mut facts))
                .collect()
        };
        let eligible = of(Outcome::Eligible);
        let needs_information = of(Outcome::Undetermined);
        Ok(Response::new(pb::ListEligibleServicesResponse {
            eligible,
            needs_information,
            facts: facts.into_proto(),
        }))
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::GetDecisionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let decision = self.eligibility.decision(&caller, id).await?;
        let mut facts = FactList::default();
        Ok(Response::new(pb::GetDecisionResponse {
            decision: Some(decision_to_proto(&decision, &mut facts)),
            facts: facts.into_proto(),
        }))
    }

    async fn replay_decision(
        &self,
        request: Request<pb::ReplayDecisionRequest>,
    ) -> Result<Response<pb::ReplayDecisionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (decision, replayed) = self.eligibility.replay(&caller, id).await?;
        let same = decision.outcome == replayed.outcome
            && decision
                .results
                .iter()
                .map(|r| r.outcome)
                .eq(replayed.results.iter().map(|r| r.outcome));
        let mut facts = FactList::default();
        Ok(Response::new(pb::ReplayDecisionResponse {
            decision: Some(decision_to_proto(&decision, &mut facts)),
            replayed: Some(decision_to_proto(&replayed, &mut facts)),
            same,
            facts: facts.into_proto(),
        }))
    }
}

/// The eligibility service's internal methods, for the services that record and authorize.
pub struct EligibilityInternalApi {
    eligibility: Arc<Eligibility>,
}

impl EligibilityInternalApi {
    pub fn new(eligibility: Arc<Eligibility>) -> Self {
        EligibilityInternalApi { eligibility }
    }
}

#[tonic::async_trait]
impl EligibilityInternalService for EligibilityInternalApi {
    async fn enforce_eligibility(
        &self,
        request: Request<pb::EnforceEligibilityRequest>,
    ) -> Result<Response<pb::EnforceEligibilityResponse>, Status> {
        let caller = Caller::of(&request)?;
        let message = request.get_ref();
        let mut v = Violations::new();
        let client = v.id("client_id", &message.client_id);
        let service: Option<ServiceId> = v.id("service_id", &message.service_id);
        let as_of = caseway_platform::validate::date(&mut v, "as_of", message.as_of.as_ref(), true);
        let (client, service, as_of) = v
            .finish_with(client.zip(service).zip(as_of))
            .map(|((c, s), d)| (c, s, d))?;
        let decision = self
            .eligibility
            .enforce(&caller, client, service, as_of)
            .await?;
        let mut facts = FactList::default();
        Ok(Response::new(pb::EnforceEligibilityResponse {
            required: decision.is_some(),
            decision: decision.as_ref().map(|d| decision_to_proto(d, &mut facts)),
            facts: facts.into_proto(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use caseway_api::eligibility::v1::eligibility_service_server::SERVICE_NAME;

    use super::CheckReplies;

    #[test]
    fn check_replies_serve_the_check_eligibility_method() {
        assert_eq!(
            CheckReplies::PATH,
            format!("/{SERVICE_NAME}/CheckEligibility")
        );
    }
}
