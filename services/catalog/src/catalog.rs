//! The catalog use cases: one mechanism for creating, updating, retiring and deleting every
//! kind of entry, each in one transaction with its idempotency key, etag check, audit row and
//! event; plus the reference checks a service needs.

use std::future::Future;
use std::sync::Arc;

use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use caseway_api::events::v1 as events_pb;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::Principal;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event};
use caseway_platform::validate::Violations;
use caseway_platform::{Scoped, TenantId};

use crate::api::{
    code_value_to_proto, grant_to_proto, program_to_proto, provider_to_proto,
    service_group_to_proto, service_to_proto,
};
use crate::cache::ServiceCache;
use crate::domain::*;
use crate::store::{self, Deletable, ReferenceTable, Retirable, Stored};

pub const SOURCE: &str = "caseway/catalog";

/// A catalog kind as the mechanism sees it: stored, published, and checked against the rest
/// of the catalog.
pub trait Entry: Stored {
    type Event: Message;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event;

    /// INVALID_ARGUMENT for references to entries the tenant does not have. `organizations`
    /// lists the tenant's security organizations when the change names any (None: the
    /// organizations are not being changed).
    fn check_references(
        &self,
        _conn: &mut PgConnection,
        _prefix: &str,
        _organizations: Option<&[Uuid]>,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Called after a change commits (the service cache drops its copy).
    fn after_commit(_cache: &ServiceCache, _tenant: TenantId, _id: Uuid) {}
}

#[derive(Clone)]
pub struct Catalog {
    db: Db,
    cache: Arc<ServiceCache>,
}

impl Catalog {
    pub fn new(db: Db, cache: Arc<ServiceCache>) -> Self {
        Catalog { db, cache }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn cache(&self) -> &ServiceCache {
        &self.cache
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create<E: Entry, Req: Message, Resp: Message + Default>(
        &self,
        principal: &Principal,
        tenant: TenantId,
        request_id: &str,
        fields: E,
        organizations: Option<&[Uuid]>,
        request: &Req,
        respond: impl Fn(&Record<E>) -> Resp,
    ) -> Result<Resp> {
        let mut violations = Violations::new();
        violations.request_id(request_id);
        fields.validate(E::KIND, &mut violations);
        violations.finish()?;
        let method = format!("catalog.{}.create", E::KIND);
        let mut tx = self.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, &method, request_id, request).await?
        {
            return Ok(previous);
        }
        fields
            .check_references(tx.conn(), E::KIND, organizations)
            .await?;
        if let Some(conflict) = E::conflict(tx.conn(), &fields, None).await? {
            return Err(Error::AlreadyExists(conflict));
        }
        let record = E::insert(tx.conn(), tenant, &fields).await?;
        audit::record(
            &mut tx,
            principal,
            audit_entry::<E>(&method, record.id, &[]),
        )
        .await?;
        publish(&mut tx, "created", &record, vec![]).await?;
        let reply = respond(&record);
        idempotency::complete(&mut tx, &method, request_id, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get<E: Entry>(&self, tenant: TenantId, id: Uuid) -> Result<Record<E>> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let record = E::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        tx.commit().await?;
        Ok(record)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update<E: Entry>(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: Uuid,
        expected_version: Option<i64>,
        input: E,
        mask: &[&'static str],
        organizations: Option<&[Uuid]>,
    ) -> Result<Record<E>> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        let mut next = current.fields.clone();
        let changed = next.merge(&input, mask);
        let mut violations = Violations::new();
        next.validate(E::KIND, &mut violations);
        violations.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        next.check_references(tx.conn(), E::KIND, organizations)
            .await?;
        if let Some(conflict) = E::conflict(tx.conn(), &next, Some(id)).await? {
            return Err(Error::AlreadyExists(conflict));
        }
        let record = E::update(tx.conn(), id, &next).await?;
        let action = format!("catalog.{}.update", E::KIND);
        audit::record(&mut tx, principal, audit_entry::<E>(&action, id, &changed)).await?;
        publish(&mut tx, "updated", &record, changed).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, tenant, id);
        Ok(record)
    }

    /// Retires an entry; retiring a retired entry changes nothing.
    pub async fn retire<E: Entry + Retirable>(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<Record<E>> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        if current.state == State::Retired {
            return Ok(current);
        }
        let record = E::set_state(tx.conn(), id, State::Retired).await?;
        let action = format!("catalog.{}.retire", E::KIND);
        let changed = vec!["state".to_string()];
        audit::record(&mut tx, principal, audit_entry::<E>(&action, id, &changed)).await?;
        publish(&mut tx, "retired", &record, changed).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, tenant, id);
        Ok(record)
    }

    pub async fn delete<E: Entry + Deletable>(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        E::delete(tx.conn(), id).await?;
        let action = format!("catalog.{}.delete", E::KIND);
        audit::record(&mut tx, principal, audit_entry::<E>(&action, id, &[])).await?;
        publish(&mut tx, "deleted", &current, vec![]).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, tenant, id);
        Ok(())
    }
}

fn audit_entry<'a, E: Entry>(action: &'a str, id: Uuid, changed: &'a [String]) -> AuditEntry<'a> {
    AuditEntry {
        action,
        resource_type: E::KIND,
        resource_id: id,
        changed_fields: changed,
    }
}

/// The event type of a change: `catalog.service_created.v1`.
pub fn event_type(kind: &str, verb: &str) -> String {
    format!("catalog.{kind}_{verb}.v1")
}

async fn publish<E: Entry>(
    tx: &mut impl Scoped,
    verb: &str,
    record: &Record<E>,
    changed: Vec<String>,
) -> Result<()> {
    let payload = E::event(record, changed);
    outbox::enqueue(
        tx,
        Event {
            event_type: &event_type(E::KIND, verb),
            source: SOURCE,
            subject: record.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}

impl Entry for ServiceGroupFields {
    type Event = events_pb::ServiceGroupChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::ServiceGroupChanged {
            service_group: Some(service_group_to_proto(record)),
            changed_fields,
        }
    }
}

impl Entry for ServiceFields {
    type Event = events_pb::ServiceChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::ServiceChanged {
            service: Some(service_to_proto(record)),
            changed_fields,
        }
    }

    async fn check_references(
        &self,
        conn: &mut PgConnection,
        prefix: &str,
        organizations: Option<&[Uuid]>,
    ) -> Result<()> {
        let mut violations = Violations::new();
        if let Some(group) = self.service_group_id {
            let found = store::existing_ids(conn, ReferenceTable::ServiceGroups, &[group]).await?;
            if found.is_empty() {
                violations.add(
                    format!("{prefix}.service_group_id"),
                    "does not name a service group of this tenant",
                );
            }
        }
        for (table, ids, field, what) in [
            (
                ReferenceTable::Grants,
                &self.grant_ids,
                "grant_ids",
                "grant",
            ),
            (
                ReferenceTable::Programs,
                &self.program_ids,
                "program_ids",
                "program",
            ),
        ] {
            if ids.is_empty() {
                continue;
            }
            let found = store::existing_ids(conn, table, ids).await?;
            for (index, id) in ids.iter().enumerate() {
                if !found.contains(id) {
                    violations.add(
                        format!("{prefix}.{field}[{index}]"),
                        format!("does not name a {what} of this tenant"),
                    );
                }
            }
        }
        if let Some(known) = organizations {
            for (index, id) in self.organization_ids.iter().enumerate() {
                if !known.contains(id) {
                    violations.add(
                        format!("{prefix}.organization_ids[{index}]"),
                        "does not name a security organization of this tenant",
                    );
                }
            }
        }
        violations.finish()
    }

    fn after_commit(cache: &ServiceCache, tenant: TenantId, id: Uuid) {
        cache.invalidate(tenant, id);
    }
}

impl Entry for GrantFields {
    type Event = events_pb::GrantChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::GrantChanged {
            grant: Some(grant_to_proto(record)),
            changed_fields,
        }
    }
}

impl Entry for ProgramFields {
    type Event = events_pb::ProgramChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::ProgramChanged {
            program: Some(program_to_proto(record)),
            changed_fields,
        }
    }
}

impl Entry for ProviderFields {
    type Event = events_pb::ProviderChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::ProviderChanged {
            provider: Some(provider_to_proto(record)),
            changed_fields,
        }
    }
}

impl Entry for CodeValueFields {
    type Event = events_pb::CodeValueChanged;

    fn event(record: &Record<Self>, changed_fields: Vec<String>) -> Self::Event {
        events_pb::CodeValueChanged {
            code_value: Some(code_value_to_proto(record)),
            changed_fields,
        }
    }
}
