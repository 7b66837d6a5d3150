//! The catalog use cases: one mechanism for creating, updating, retiring and deleting every
//! kind of entry, each in one transaction with its idempotency key, etag check, audit row and
//! event; the reads (an entry, a page of a list, the restricted services); plus the reference
//! checks a service needs, with the tenant's security organizations asked of tenancy. Each
//! takes the caller and a checked domain input.

use std::future::Future;
use std::sync::Arc;

use sqlx::PgConnection;
use uuid::Uuid;

use caseway_peers::tenancy::Tenancy;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::caller::Caller;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::outbox::{self, Event};
use caseway_platform::paging::Page;
use caseway_platform::validate::Violations;
use caseway_platform::{Scoped, TenantId};

use crate::cache::ServiceCache;
use crate::convert::Created;
use crate::domain::*;
use crate::events::{self, Change, Published};
use crate::store::{self, Deletable, ReferenceTable, Retirable, Stored};

/// An entry that can be retired (every kind but service groups, which are deleted).
pub trait Retire: Entry + Retirable {}

impl<E: Entry + Retirable> Retire for E {}

/// A catalog kind as the mechanism sees it: stored, published, answered, and checked against
/// the rest of the catalog.
pub trait Entry: Stored + Published + Created {
    /// Whether these fields name security organizations, which a create checks against the
    /// tenant's (a restricted service does).
    fn names_organizations(&self) -> bool {
        false
    }

    /// Whether an update with `patch` names security organizations to check.
    fn patch_names_organizations(_patch: &Self::Patch) -> bool {
        false
    }

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

/// The sort key of a list ordered by a text (a code, a name), then by id.
pub type TextCursor = (String, Uuid);
/// The sort key of a code value list: its display order, its code, its id.
pub type CodeValueCursor = (i32, String, Uuid);
/// One page of a list: its entries, and the next page's token (empty on the last page).
pub type Listed<F> = (Vec<Record<F>>, String);

#[derive(Clone)]
pub struct Catalog {
    db: Db,
    cache: Arc<ServiceCache>,
    tenancy: Option<Tenancy>,
}

impl Catalog {
    /// `tenancy` tells the tenant's security organizations, against which those a service
    /// names are checked. Without it they are taken as given: the demo seed, which names the
    /// organizations it has just created, has no tenancy service to ask.
    pub fn new(db: Db, cache: Arc<ServiceCache>, tenancy: Option<Tenancy>) -> Self {
        Catalog { db, cache, tenancy }
    }

    /// The tenant's security organizations, asked of the tenancy service with the caller's
    /// own credentials, when the change names some.
    async fn organizations(&self, caller: &Caller, named: bool) -> Result<Option<Vec<Uuid>>> {
        match (&self.tenancy, named) {
            (Some(tenancy), true) => Ok(Some(tenancy.organization_ids(caller).await?)),
            _ => Ok(None),
        }
    }

    /// Creates an entry. A retry under the same request id gets the first reply.
    pub async fn create<E: Entry>(&self, caller: &Caller, input: Retryable<E>) -> Result<E::Reply> {
        let Retryable {
            request_id,
            fingerprint,
            change: fields,
        } = input;
        let organizations = self
            .organizations(caller, fields.names_organizations())
            .await?;
        let mut violations = Violations::new();
        violations.request_id(&request_id);
        fields.validate(E::KIND, &mut violations);
        violations.finish()?;
        let method = format!("catalog.{}.create", E::KIND);
        let key = Key::new(&method, &request_id, fingerprint);
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim::<E::Reply>(&mut tx, &key).await? {
            return Ok(previous);
        }
        fields
            .check_references(tx.conn(), E::KIND, organizations.as_deref())
            .await?;
        if let Some(conflict) = E::conflict(tx.conn(), &fields, None).await? {
            return Err(Error::AlreadyExists(conflict));
        }
        let record = E::insert(tx.conn(), caller.tenant, &fields).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            audit_entry::<E>(&method, record.id, &[]),
        )
        .await?;
        publish(&mut tx, Change::Created, &record, vec![]).await?;
        let reply = E::reply(&record);
        idempotency::complete(&mut tx, &key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get<E: Entry>(&self, caller: &Caller, id: Uuid) -> Result<Record<E>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let record = E::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        tx.commit().await?;
        Ok(record)
    }

    /// A service, from the cache of services when it holds it (the hot read path), unless the
    /// caller asks for a fresh read.
    pub async fn get_service(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Arc<Record<ServiceFields>>> {
        let record = self
            .cache
            .read(caller, id, || async {
                self.get::<ServiceFields>(caller, id).await.map(Some)
            })
            .await?
            .ok_or_else(|| Error::not_found("service", id))?;
        // A restricted service is invisible outside its organizations: the same answer as
        // for a service that does not exist.
        if !record.fields.visible_to(&caller.principal) {
            return Err(Error::not_found("service", id));
        }
        Ok(record)
    }

    /// Updates the fields the patch gives; an update that changes nothing writes nothing.
    pub async fn update<E: Entry>(
        &self,
        caller: &Caller,
        input: Update<E::Patch>,
    ) -> Result<Record<E>> {
        let Update {
            id,
            expected_version,
            patch,
        } = input;
        let organizations = self
            .organizations(caller, E::patch_names_organizations(&patch))
            .await?;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        let mut next = current.fields.clone();
        let changed = next.merge(&patch);
        let mut violations = Violations::new();
        next.validate(E::KIND, &mut violations);
        violations.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        next.check_references(tx.conn(), E::KIND, organizations.as_deref())
            .await?;
        if let Some(conflict) = E::conflict(tx.conn(), &next, Some(id)).await? {
            return Err(Error::AlreadyExists(conflict));
        }
        let record = E::update(tx.conn(), id, &next).await?;
        let action = format!("catalog.{}.update", E::KIND);
        audit::record(
            &mut tx,
            &caller.principal,
            audit_entry::<E>(&action, id, &changed),
        )
        .await?;
        publish(&mut tx, Change::Updated, &record, changed).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, caller.tenant, id);
        Ok(record)
    }

    /// Retires an entry; retiring a retired entry changes nothing. The reply (`reply` of the
    /// entry as it then stands) is what a retry under `key` answers.
    pub async fn retire<E: Entry + Retirable, R: prost::Message + Default>(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        target: Target,
        reply: impl Fn(&Record<E>) -> R,
    ) -> Result<R> {
        let Target {
            id,
            expected_version,
        } = target;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        if current.state == State::Retired {
            let answer = reply(&current);
            idempotency::complete(&mut tx, key, &answer).await?;
            tx.commit().await?;
            return Ok(answer);
        }
        let record = E::set_state(tx.conn(), id, State::Retired).await?;
        let action = format!("catalog.{}.retire", E::KIND);
        let changed = vec!["state".to_string()];
        audit::record(
            &mut tx,
            &caller.principal,
            audit_entry::<E>(&action, id, &changed),
        )
        .await?;
        publish(&mut tx, Change::Retired, &record, changed).await?;
        let answer = reply(&record);
        idempotency::complete(&mut tx, key, &answer).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, caller.tenant, id);
        Ok(answer)
    }

    pub async fn delete<E: Entry + Deletable>(
        &self,
        caller: &Caller,
        target: Target,
    ) -> Result<()> {
        let Target {
            id,
            expected_version,
        } = target;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let current = E::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found(E::KIND, id))?;
        check_version(expected_version, current.version)?;
        E::delete(tx.conn(), id).await?;
        let action = format!("catalog.{}.delete", E::KIND);
        audit::record(
            &mut tx,
            &caller.principal,
            audit_entry::<E>(&action, id, &[]),
        )
        .await?;
        publish(&mut tx, Change::Deleted, &current, vec![]).await?;
        tx.commit().await?;
        E::after_commit(&self.cache, caller.tenant, id);
        Ok(())
    }

    /// A page of the service groups, by name.
    pub async fn list_service_groups(
        &self,
        caller: &Caller,
        mut page: Page<TextCursor>,
    ) -> Result<Listed<ServiceGroupFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows =
            store::list_service_groups(tx.conn(), page.after.take(), page.limit + 1).await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.name.clone(), r.id));
        Ok((rows, next_page_token))
    }

    /// A page of the services, by code; the filter says which restricted ones the caller sees.
    pub async fn list_services(
        &self,
        caller: &Caller,
        filter: &ServiceFilter,
        mut page: Page<TextCursor>,
    ) -> Result<Listed<ServiceFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows =
            store::list_services(tx.conn(), filter, page.after.take(), page.limit + 1).await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.code.clone(), r.id));
        Ok((rows, next_page_token))
    }

    /// A page of the grants, by code.
    pub async fn list_grants(
        &self,
        caller: &Caller,
        filter: &PeriodFilter,
        mut page: Page<TextCursor>,
    ) -> Result<Listed<GrantFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows = store::list_grants(
            tx.conn(),
            filter.query.as_deref(),
            filter.active_on,
            filter.include_retired,
            page.after.take(),
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.code.clone(), r.id));
        Ok((rows, next_page_token))
    }

    /// A page of the programs, by code.
    pub async fn list_programs(
        &self,
        caller: &Caller,
        filter: &PeriodFilter,
        mut page: Page<TextCursor>,
    ) -> Result<Listed<ProgramFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows = store::list_programs(
            tx.conn(),
            filter.query.as_deref(),
            filter.active_on,
            filter.include_retired,
            page.after.take(),
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.code.clone(), r.id));
        Ok((rows, next_page_token))
    }

    /// A page of the providers, by name.
    pub async fn list_providers(
        &self,
        caller: &Caller,
        filter: &ProviderFilter,
        mut page: Page<TextCursor>,
    ) -> Result<Listed<ProviderFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows = store::list_providers(
            tx.conn(),
            filter.query.as_deref(),
            filter.kind,
            filter.include_retired,
            page.after.take(),
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| (r.fields.name.clone(), r.id));
        Ok((rows, next_page_token))
    }

    /// A page of one code list, in display order.
    pub async fn list_code_values(
        &self,
        caller: &Caller,
        filter: &CodeValueFilter,
        mut page: Page<CodeValueCursor>,
    ) -> Result<Listed<CodeValueFields>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows = store::list_code_values(
            tx.conn(),
            filter.code_list,
            filter.include_retired,
            page.after.take(),
            page.limit + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |r| {
            (r.fields.sort_order, r.fields.code.clone(), r.id)
        });
        Ok((rows, next_page_token))
    }

    /// Every service of the caller's tenant restricted to security organizations, with them.
    pub async fn service_restrictions(&self, caller: &Caller) -> Result<Vec<(Uuid, Vec<Uuid>)>> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let restrictions = store::service_restrictions(tx.conn()).await?;
        tx.commit().await?;
        Ok(restrictions)
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

async fn publish<E: Entry>(
    tx: &mut impl Scoped,
    change: Change,
    record: &Record<E>,
    changed: Vec<String>,
) -> Result<()> {
    let payload = E::payload(record, changed);
    outbox::enqueue(
        tx,
        Event {
            event_type: &events::event_type(E::KIND, change),
            source: events::SOURCE,
            subject: record.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}

impl Entry for ServiceGroupFields {}

impl Entry for ServiceFields {
    fn names_organizations(&self) -> bool {
        !self.organization_ids.is_empty()
    }

    fn patch_names_organizations(patch: &ServicePatch) -> bool {
        patch
            .organization_ids
            .as_ref()
            .is_some_and(|ids| !ids.is_empty())
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

impl Entry for GrantFields {}

impl Entry for ProgramFields {}

impl Entry for ProviderFields {}

impl Entry for CodeValueFields {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_of_a_services_organizations_asks_for_the_tenants() {
        assert!(!ServiceFields::patch_names_organizations(
            &ServicePatch::default()
        ));
        assert!(!ServiceFields::patch_names_organizations(&ServicePatch {
            organization_ids: Some(vec![]),
            ..Default::default()
        }));
        assert!(ServiceFields::patch_names_organizations(&ServicePatch {
            organization_ids: Some(vec![Uuid::now_v7()]),
            ..Default::default()
        }));
    }
}
