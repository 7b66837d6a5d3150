//! The service room of barriers: their use cases, one function per operation, each owning its
//! transaction, idempotency, audit and the events it enqueues. A barrier's type is asked of
//! the catalog with the caller's credentials.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use caseway_api::catalog::v1::CodeList;
use caseway_api::clients::v1 as pb;
use caseway_peers::catalog::Catalog;
use caseway_platform::Scoped;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::Principal;
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Fingerprint, Key};
use caseway_platform::outbox;
use caseway_platform::server::Platform;
use caseway_platform::validate::Violations;

use super::convert;
use super::domain::{Barrier, BarrierList, BarrierUpdate, NewBarrier, Rule};
use super::events;
use super::store::{self, BarrierInsert};
use crate::domain::Listed;
use crate::service::{Outcome, client_must_exist, ensure_client};

/// Audits a change of a barrier and enqueues its event.
async fn record_change(
    tx: &mut impl Scoped,
    caller: &Principal,
    action: &str,
    barrier: &Barrier,
    changed_fields: Vec<String>,
) -> Result<()> {
    audit::record(
        tx,
        caller,
        AuditEntry {
            action,
            resource_type: "barrier",
            resource_id: barrier.id,
            changed_fields: &changed_fields,
        },
    )
    .await?;
    outbox::enqueue(tx, events::barrier_changed(barrier, changed_fields).event()).await?;
    Ok(())
}

pub struct Barriers {
    platform: Arc<Platform>,
    catalog: Arc<Catalog>,
}

impl Barriers {
    pub fn new(platform: Arc<Platform>, catalog: Arc<Catalog>) -> Self {
        Barriers { platform, catalog }
    }

    /// The code of an active BARRIER_TYPE code value of the caller's tenant, asked of the
    /// catalog with the caller's own credentials.
    async fn barrier_type_code(&self, caller: &Caller, field: &str, id: Uuid) -> Result<String> {
        let Some(value) = self.catalog.code_value(caller, id).await? else {
            return Err(Error::invalid(
                field,
                "does not name a code value of this tenant",
            ));
        };
        if value.code_list != CodeList::BarrierType {
            return Err(Error::invalid(
                field,
                "is not a code of the BARRIER_TYPE list",
            ));
        }
        if !value.active {
            return Err(Error::precondition(
                Rule::BarrierTypeActive,
                format!("code_values/{id}"),
                "the barrier type is retired",
            ));
        }
        Ok(value.code.clone())
    }

    /// Identifies a barrier of a client, of an active barrier type.
    pub async fn create(
        &self,
        caller: &Caller,
        input: NewBarrier,
    ) -> Result<Outcome<Barrier, pb::CreateBarrierResponse>> {
        let tenant = caller.tenant;
        let code = self
            .barrier_type_code(caller, "barrier.barrier_type_id", input.barrier_type_id)
            .await?;
        let method = "clients.barrier.create";
        let key = Key::new(
            method,
            &input.asked.request_id,
            Fingerprint::of_bytes(&input.asked.request),
        );
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(Outcome::Replay(previous));
        }
        client_must_exist(&mut tx, "barrier.client_id", input.client_id).await?;
        let barrier = store::insert(
            tx.conn(),
            tenant,
            BarrierInsert {
                client_id: input.client_id,
                barrier_type_id: input.barrier_type_id,
                barrier_type_code: &code,
                fields: &input.fields,
            },
        )
        .await?;
        record_change(&mut tx, &caller.principal, method, &barrier, vec![]).await?;
        idempotency::complete(&mut tx, &key, &convert::barrier_created(&barrier)).await?;
        tx.commit().await?;
        Ok(Outcome::Done(barrier))
    }

    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Barrier> {
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let barrier = store::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("barrier", id))?;
        tx.commit().await?;
        Ok(barrier)
    }

    /// Changes the masked fields of a barrier; the stored barrier when nothing changes.
    pub async fn update(&self, caller: &Caller, input: BarrierUpdate) -> Result<Barrier> {
        let id = input.id;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let current = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("barrier", id))?;
        check_version(input.expected, current.version)?;
        let requested = input.requested(&current.fields);
        let mut next = current.fields.clone();
        let changed = next.merge(&requested, &input.mask);
        let mut v = Violations::new();
        next.validate("barrier", Utc::now().date_naive(), &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        let barrier = store::update(tx.conn(), id, &next).await?;
        record_change(
            &mut tx,
            &caller.principal,
            "clients.barrier.update",
            &barrier,
            changed,
        )
        .await?;
        tx.commit().await?;
        Ok(barrier)
    }

    /// A page of a client's barriers, latest identified first, of one status if given.
    pub async fn list(&self, caller: &Caller, input: BarrierList) -> Result<Listed<Barrier>> {
        let tenant = caller.tenant;
        let page = self.platform.page_tokens.page::<(NaiveDate, Uuid)>(
            tenant,
            &input.filter,
            input.page.size,
            &input.page.token,
        )?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, input.client_id).await?;
        let mut rows = store::list(
            tx.conn(),
            input.client_id,
            input.status,
            page.after,
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.identified_date, r.id));
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }
}
