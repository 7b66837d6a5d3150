//! Barriers (needs) of clients: a type from the catalog's BARRIER_TYPE list, checked with the
//! catalog over gRPC, followed from identification to resolution.

pub mod domain;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::catalog::v1::{CodeList, GetCodeValueRequest};
use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::barriers_service_server::BarriersService;
use caseway_api::common::v1::LifecycleState;
use caseway_api::events::v1::BarrierChanged;
use caseway_platform::Scoped;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Authorization, authorization_of, on_behalf_of, principal};
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::{self, check_version};
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event};
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};

use crate::{SOURCE, client_must_exist, ensure_client};
use domain::{BarrierFields, BarrierStatus};
use store::{BarrierRecord, NewBarrier};

pub struct BarriersApi {
    platform: Arc<Platform>,
    catalog: CatalogServiceClient<Channel>,
}

impl BarriersApi {
    pub fn new(platform: Arc<Platform>, catalog_endpoint: &str) -> anyhow::Result<Self> {
        let channel = platform.peers.channel(catalog_endpoint)?;
        Ok(BarriersApi {
            platform,
            catalog: CatalogServiceClient::new(channel),
        })
    }

    /// The code of an active BARRIER_TYPE code value of the caller's tenant, asked of the
    /// catalog with the caller's own credentials.
    async fn barrier_type_code(
        &self,
        authorization: Option<&Authorization>,
        field: &str,
        id: Uuid,
    ) -> Result<String> {
        let request = on_behalf_of(GetCodeValueRequest { id: id.to_string() }, authorization);
        let value = match self.catalog.clone().get_code_value(request).await {
            Ok(reply) => reply.into_inner().code_value.unwrap_or_default(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(Error::invalid(
                    field,
                    "does not name a code value of this tenant",
                ));
            }
            Err(status) => {
                return Err(Error::Unavailable(format!(
                    "catalog service: {}",
                    status.message()
                )));
            }
        };
        if value.code_list != CodeList::BarrierType as i32 {
            return Err(Error::invalid(
                field,
                "is not a code of the BARRIER_TYPE list",
            ));
        }
        if value.state == LifecycleState::Retired as i32 {
            return Err(Error::precondition(
                "barrier_type_active",
                format!("code_values/{id}"),
                "the barrier type is retired",
            ));
        }
        Ok(value.code)
    }
}

fn status_of(v: &mut Violations, field: &str, value: i32, default: bool) -> BarrierStatus {
    match (BarrierStatus::from_code(value), value) {
        (Some(status), _) => status,
        (None, 0) if default => BarrierStatus::Identified,
        _ => {
            v.add(field, "must be IDENTIFIED, BEING_ADDRESSED or RESOLVED");
            BarrierStatus::Identified
        }
    }
}

/// The written fields of a barrier; `creating` lets the status default to IDENTIFIED.
fn parse_fields(p: &pb::Barrier, creating: bool, v: &mut Violations) -> Option<BarrierFields> {
    let identified = validate::date(
        v,
        "barrier.identified_date",
        p.identified_date.as_ref(),
        true,
    );
    let resolved = validate::date(v, "barrier.resolved_date", p.resolved_date.as_ref(), false);
    let status = status_of(v, "barrier.status", p.status, creating);
    identified.map(|identified_date| BarrierFields {
        identified_date,
        status,
        resolved_date: resolved,
        note: p.note.clone(),
    })
}

pub fn barrier_to_proto(r: &BarrierRecord) -> pb::Barrier {
    pb::Barrier {
        id: r.id.to_string(),
        client_id: r.client_id.to_string(),
        barrier_type_id: r.barrier_type_id.to_string(),
        barrier_type_code: r.barrier_type_code.clone(),
        identified_date: Some(date(r.fields.identified_date)),
        status: r.fields.status as i32,
        resolved_date: r.fields.resolved_date.map(date),
        note: r.fields.note.clone(),
        etag: etag::format(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

async fn record_change(
    tx: &mut impl Scoped,
    caller: &caseway_platform::auth::Principal,
    action: &str,
    record: &BarrierRecord,
    changed_fields: Vec<String>,
) -> Result<()> {
    audit::record(
        tx,
        caller,
        AuditEntry {
            action,
            resource_type: "barrier",
            resource_id: record.id,
            changed_fields: &changed_fields,
        },
    )
    .await?;
    outbox::enqueue(
        tx,
        Event {
            event_type: "clients.barrier_changed.v1",
            source: SOURCE,
            subject: record.id.to_string(),
            payload: &BarrierChanged {
                barrier: Some(barrier_to_proto(record)),
                changed_fields,
            },
        },
    )
    .await?;
    Ok(())
}

#[tonic::async_trait]
impl BarriersService for BarriersApi {
    async fn create_barrier(
        &self,
        request: Request<pb::CreateBarrierRequest>,
    ) -> Result<Response<pb::CreateBarrierResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = authorization_of(&request);
        let message = request.into_inner();
        let input = message
            .barrier
            .as_ref()
            .ok_or_else(|| Error::invalid("barrier", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let client_id = v.id("barrier.client_id", &input.client_id);
        let type_id = v.id("barrier.barrier_type_id", &input.barrier_type_id);
        let fields = parse_fields(input, true, &mut v);
        if let Some(fields) = &fields {
            fields.validate("barrier", Utc::now().date_naive(), &mut v);
        }
        v.finish()?;
        let (client_id, type_id, fields) = (
            client_id.expect("validated"),
            type_id.expect("validated"),
            fields.expect("validated"),
        );
        let code = self
            .barrier_type_code(authorization.as_ref(), "barrier.barrier_type_id", type_id)
            .await?;
        let method = "clients.barrier.create";
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, method, &message.request_id, &message).await?
        {
            return Ok(Response::new(previous));
        }
        client_must_exist(&mut tx, "barrier.client_id", client_id).await?;
        let record = store::insert(
            tx.conn(),
            tenant,
            NewBarrier {
                client_id,
                barrier_type_id: type_id,
                barrier_type_code: &code,
                fields: &fields,
            },
        )
        .await?;
        record_change(&mut tx, &caller, method, &record, vec![]).await?;
        let reply = pb::CreateBarrierResponse {
            barrier: Some(barrier_to_proto(&record)),
        };
        idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn get_barrier(
        &self,
        request: Request<pb::GetBarrierRequest>,
    ) -> Result<Response<pb::GetBarrierResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("barrier", id))?;
        tx.commit().await?;
        Ok(Response::new(pb::GetBarrierResponse {
            barrier: Some(barrier_to_proto(&record)),
        }))
    }

    async fn update_barrier(
        &self,
        request: Request<pb::UpdateBarrierRequest>,
    ) -> Result<Response<pb::UpdateBarrierResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let input = message
            .barrier
            .ok_or_else(|| Error::invalid("barrier", "is required"))?;
        let id = parse_id("barrier.id", &input.id)?;
        let expected = etag::parse("barrier.etag", &input.etag)?;
        let mask = validate::update_mask(message.update_mask.as_ref(), BarrierFields::MUTABLE)?;
        let mut v = Violations::new();
        let identified = validate::date(
            &mut v,
            "barrier.identified_date",
            input.identified_date.as_ref(),
            mask.contains(&"identified_date"),
        );
        let resolved = validate::date(
            &mut v,
            "barrier.resolved_date",
            input.resolved_date.as_ref(),
            false,
        );
        let status = status_of(&mut v, "barrier.status", input.status, false);
        v.retain_masked("barrier", &mask);
        v.finish()?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let current = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("barrier", id))?;
        check_version(expected, current.version)?;
        let requested = BarrierFields {
            identified_date: identified.unwrap_or(current.fields.identified_date),
            status,
            resolved_date: resolved,
            note: input.note,
        };
        let mut next = current.fields.clone();
        let changed = next.merge(&requested, &mask);
        let mut v = Violations::new();
        next.validate("barrier", Utc::now().date_naive(), &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(Response::new(pb::UpdateBarrierResponse {
                barrier: Some(barrier_to_proto(&current)),
            }));
        }
        let record = store::update(tx.conn(), id, &next).await?;
        record_change(&mut tx, &caller, "clients.barrier.update", &record, changed).await?;
        tx.commit().await?;
        Ok(Response::new(pb::UpdateBarrierResponse {
            barrier: Some(barrier_to_proto(&record)),
        }))
    }

    async fn list_barriers(
        &self,
        request: Request<pb::ListBarriersRequest>,
    ) -> Result<Response<pb::ListBarriersResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let mut v = Violations::new();
        let client_id = v.id("client_id", &message.client_id);
        let status =
            (message.status != 0).then(|| status_of(&mut v, "status", message.status, false));
        v.finish()?;
        let client_id = client_id.expect("validated");
        let limit = validate::page_size(message.page_size)?;
        let filter = format!("{}/{}", message.client_id, message.status);
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&message.page_token, tenant, filter.as_bytes())?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, client_id).await?;
        let mut rows = store::list(tx.conn(), client_id, status, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token =
            tokens.finish_page(&mut rows, limit, tenant, filter.as_bytes(), |r| {
                (r.fields.identified_date, r.id)
            });
        Ok(Response::new(pb::ListBarriersResponse {
            barriers: rows.iter().map(barrier_to_proto).collect(),
            next_page_token,
        }))
    }
}
