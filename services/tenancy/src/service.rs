//! The tenancy use cases, one function per operation, each owning its transaction, its
//! idempotency key, its audit rows and the events it enqueues: the tenant lifecycle for the
//! hosting provider (platform transactions, acting for the tenant changed) and a tenant's
//! security organizations (the tenant's own transactions).

use std::sync::Arc;

use uuid::Uuid;

use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::Principal;
use caseway_platform::caller::Caller;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::outbox;
use caseway_platform::tenant_status::TenantStatusCache;
use caseway_platform::validate::Violations;
use caseway_platform::{Scoped, TenantId};

use crate::convert;
use crate::domain::{
    NewTenant, Organization, OrganizationDeletion, OrganizationField, OrganizationFields,
    OrganizationUpdate, Retryable, Rule, Tenant, TenantStatus, TenantStatusChange, TenantUpdate,
};
use crate::events::{self, OrganizationEvent, TenantEvent};
use crate::store;

/// The tenancy use cases, shared by the gRPC API and the `caseway tenant` commands.
#[derive(Clone)]
pub struct Tenancy {
    db: Db,
    statuses: Arc<TenantStatusCache>,
}

impl Tenancy {
    pub fn new(db: Db, statuses: Arc<TenantStatusCache>) -> Self {
        Tenancy { db, statuses }
    }

    /// Creates a tenant; a retry with the same request id replays the first answer.
    pub async fn create_tenant(
        &self,
        actor: &Principal,
        create: Retryable<NewTenant>,
    ) -> Result<Tenant> {
        let Retryable {
            request_id,
            fingerprint,
            change: new,
        } = create;
        let key = Key::new("CreateTenant", &request_id, fingerprint);
        let mut tx = self.db.system_tx().await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return convert::tenant_of_reply(previous);
        }
        if store::tenant_by_slug(tx.conn(), &new.slug).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "a tenant with slug {} exists",
                new.slug
            )));
        }
        let tenant = store::insert_tenant(tx.conn(), TenantId::new(), &new).await?;
        // The key is the platform's: stored before the transaction acts for the new tenant.
        idempotency::complete(&mut tx, &key, &convert::create_tenant_reply(&tenant)).await?;
        tx.act_for_tenant(tenant.id).await?;
        audit_tenant(&mut tx, actor, "tenancy.tenant.create", &tenant, &[]).await?;
        let event = events::tenant_changed(TenantEvent::Created, &tenant, "", &[]);
        outbox::enqueue(&mut tx, event.event()).await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant.id, slug = %tenant.slug, "tenant created");
        Ok(tenant)
    }

    /// Any tenant, for the platform.
    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let mut tx = self.db.system_tx().await?;
        let tenant = store::tenant(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// The caller's own tenant (row-level security shows no other).
    pub async fn get_own_tenant(&self, own: TenantId, id: TenantId) -> Result<Tenant> {
        let mut tx = self.db.tenant_tx(own).await?;
        let tenant = store::own_tenant(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        tx.commit().await?;
        Ok(tenant)
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant> {
        let mut tx = self.db.system_tx().await?;
        let tenant = store::tenant_by_slug(tx.conn(), slug)
            .await?
            .ok_or_else(|| Error::not_found("tenant", slug))?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Tenants by slug after `after_slug`: those in `status` when given, the one of `slug`
    /// when given.
    pub async fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        slug: Option<&str>,
        after_slug: Option<String>,
        limit: i64,
    ) -> Result<Vec<Tenant>> {
        let mut tx = self.db.system_tx().await?;
        let tenants = match slug {
            Some(slug) => store::tenant_by_slug(tx.conn(), slug)
                .await?
                .into_iter()
                .filter(|t| status.is_none_or(|s| t.status == s))
                .filter(|t| after_slug.as_ref().is_none_or(|after| t.slug > *after))
                .collect(),
            None => store::list_tenants(tx.conn(), status, after_slug.as_deref(), limit).await?,
        };
        tx.commit().await?;
        Ok(tenants)
    }

    /// Suspends or resumes a tenant. Setting the status it has already is a no-op; a retry
    /// under the same request id answers with the first reply.
    pub async fn set_status(
        &self,
        actor: &Principal,
        change: Retryable<TenantStatusChange>,
    ) -> Result<Tenant> {
        let Retryable {
            request_id,
            fingerprint,
            change:
                TenantStatusChange {
                    tenant: id,
                    status,
                    reason,
                },
        } = change;
        let method = match status {
            TenantStatus::Suspended => "SuspendTenant",
            TenantStatus::Active => "ResumeTenant",
        };
        let key = Key::new(method, &request_id, fingerprint);
        let mut tx = self.db.system_tx().await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return convert::tenant_of_stored(method, previous);
        }
        let current = store::tenant_for_update(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        if current.purged_at.is_some() && status == TenantStatus::Active {
            return Err(Error::precondition(
                Rule::TenantPurged,
                format!("tenants/{id}"),
                "the tenant's data was purged; it stays suspended",
            ));
        }
        if current.status == status {
            idempotency::complete(&mut tx, &key, &convert::tenant_to_proto(&current)).await?;
            tx.commit().await?;
            return Ok(current);
        }
        let tenant = store::set_tenant_status(tx.conn(), id, status).await?;
        // The key is the platform's: stored before the transaction acts for the tenant.
        idempotency::complete(&mut tx, &key, &convert::tenant_to_proto(&tenant)).await?;
        tx.act_for_tenant(id).await?;
        let (action, event) = match status {
            TenantStatus::Suspended => ("tenancy.tenant.suspend", TenantEvent::Suspended),
            TenantStatus::Active => ("tenancy.tenant.resume", TenantEvent::Resumed),
        };
        audit_tenant(&mut tx, actor, action, &tenant, &[]).await?;
        let event = events::tenant_changed(event, &tenant, &reason, &[]);
        outbox::enqueue(&mut tx, event.event()).await?;
        tx.commit().await?;
        // This process stops trusting its cache at once; others learn from the event.
        self.statuses.invalidate(id);
        tracing::info!(tenant_id = %id, status = status.as_str(), "tenant status changed");
        Ok(tenant)
    }

    /// Changes the masked fields of a tenant (its display name, its limits); the merged
    /// fields are checked, and an update that changes nothing writes nothing.
    pub async fn update_tenant(&self, actor: &Principal, update: TenantUpdate) -> Result<Tenant> {
        let TenantUpdate {
            id,
            expected_version,
            fields,
            mask,
        } = update;
        let mut tx = self.db.system_tx().await?;
        let current = store::tenant_for_update(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        check_version(expected_version, current.version)?;
        let (next, changed) = current.fields().updated(&fields, &mask);
        let mut violations = Violations::new();
        next.validate("tenant", &mut violations);
        violations.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        let tenant = store::update_tenant(tx.conn(), id, &next).await?;
        tx.act_for_tenant(id).await?;
        audit_tenant(&mut tx, actor, "tenancy.tenant.update", &tenant, &changed).await?;
        let event = events::tenant_changed(TenantEvent::Updated, &tenant, "", &changed);
        outbox::enqueue(&mut tx, event.event()).await?;
        tx.commit().await?;
        // A new limit holds here at once; other processes learn it from the event.
        self.statuses.invalidate(id);
        tracing::info!(tenant_id = %id, changed = ?changed, "tenant updated");
        Ok(tenant)
    }

    /// Fails NOT_FOUND unless the tenant exists: a platform administrator names the tenant
    /// whose organizations it manages, and a tenant transaction alone would not say.
    pub async fn require_tenant(&self, id: TenantId) -> Result<()> {
        self.get_tenant(id).await.map(|_| ())
    }

    /// Creates an organization in the caller's tenant; a retry with the same request id
    /// replays the first answer.
    pub async fn create_organization(
        &self,
        caller: &Caller,
        create: Retryable<OrganizationFields>,
    ) -> Result<Organization> {
        let Retryable {
            request_id,
            fingerprint,
            change: fields,
        } = create;
        let key = Key::new("CreateOrganization", &request_id, fingerprint);
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return convert::organization_of_reply(previous);
        }
        if store::organization_by_code(tx.conn(), &fields.code)
            .await?
            .is_some()
        {
            return Err(Error::AlreadyExists(format!(
                "an organization with code {} exists",
                fields.code
            )));
        }
        let organization = store::insert_organization(tx.conn(), caller.tenant, &fields).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "tenancy.organization.create",
                resource_type: "organization",
                resource_id: organization.id,
                changed_fields: &[],
            },
        )
        .await?;
        let event = events::organization_changed(OrganizationEvent::Created, &organization, &[]);
        outbox::enqueue(&mut tx, event.event()).await?;
        let reply = convert::create_organization_reply(&organization);
        idempotency::complete(&mut tx, &key, &reply).await?;
        tx.commit().await?;
        Ok(organization)
    }

    pub async fn get_organization(&self, tenant: TenantId, id: Uuid) -> Result<Organization> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let organization = store::organization(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        tx.commit().await?;
        Ok(organization)
    }

    /// Updates the masked fields of an organization of the caller's tenant; the merged fields
    /// are checked, and an update that changes nothing writes nothing.
    pub async fn update_organization(
        &self,
        caller: &Caller,
        update: OrganizationUpdate,
    ) -> Result<Organization> {
        let OrganizationUpdate {
            id,
            expected_version,
            fields,
            mask,
        } = update;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let current = store::organization(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        check_version(expected_version, current.version)?;
        let (next, changed) = current.fields().updated(&fields, &mask);
        let mut violations = Violations::new();
        next.validate("organization", &mut violations);
        violations.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        if changed.iter().any(|f| f == OrganizationField::Code.name())
            && store::organization_by_code(tx.conn(), &next.code)
                .await?
                .is_some()
        {
            return Err(Error::AlreadyExists(format!(
                "an organization with code {} exists",
                next.code
            )));
        }
        let organization = store::update_organization(tx.conn(), id, &next).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "tenancy.organization.update",
                resource_type: "organization",
                resource_id: id,
                changed_fields: &changed,
            },
        )
        .await?;
        let event =
            events::organization_changed(OrganizationEvent::Updated, &organization, &changed);
        outbox::enqueue(&mut tx, event.event()).await?;
        tx.commit().await?;
        Ok(organization)
    }

    /// Soft-deletes an organization of the caller's tenant.
    pub async fn delete_organization(
        &self,
        caller: &Caller,
        deletion: OrganizationDeletion,
    ) -> Result<()> {
        let OrganizationDeletion {
            id,
            expected_version,
        } = deletion;
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let current = store::organization(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        check_version(expected_version, current.version)?;
        store::delete_organization(tx.conn(), id).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "tenancy.organization.delete",
                resource_type: "organization",
                resource_id: id,
                changed_fields: &[],
            },
        )
        .await?;
        let event = events::organization_changed(OrganizationEvent::Deleted, &current, &[]);
        outbox::enqueue(&mut tx, event.event()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_organizations(
        &self,
        tenant: TenantId,
        after_code: Option<String>,
        limit: i64,
    ) -> Result<Vec<Organization>> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let organizations =
            store::list_organizations(tx.conn(), after_code.as_deref(), limit).await?;
        tx.commit().await?;
        Ok(organizations)
    }
}

/// The audit row of a tenant's lifecycle, under the acting user's id alone (the hosting
/// provider's staff hold no tenant).
async fn audit_tenant(
    tx: &mut impl Scoped,
    actor: &Principal,
    action: &str,
    tenant: &Tenant,
    changed_fields: &[String],
) -> Result<()> {
    let principal = Principal {
        user_id: actor.user_id.clone(),
        tenant_id: None,
        organization_ids: vec![],
        roles: vec![],
        permissions: vec![],
        service: None,
    };
    audit::record(
        tx,
        &principal,
        AuditEntry {
            action,
            resource_type: "tenant",
            resource_id: tenant.id.as_uuid(),
            changed_fields,
        },
    )
    .await
}
