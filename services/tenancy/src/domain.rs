//! Tenancy rules and use cases: what a tenant and an organization are, who may change them,
//! and the transactions that change them with their audit rows and events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use uuid::Uuid;

use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::Principal;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::tenant_status::TenantStatusCache;
use caseway_platform::validate::Violations;
use caseway_platform::{Scoped, TenantId};

use crate::{events, store};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> TenantStatus {
        if text == "suspended" {
            TenantStatus::Suspended
        } else {
            TenantStatus::Active
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub status: TenantStatus,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewTenant {
    pub slug: String,
    pub display_name: String,
}

impl NewTenant {
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        let slug_ok = (3..=63).contains(&self.slug.len())
            && self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.slug.starts_with('-')
            && !self.slug.ends_with('-');
        if self.slug.is_empty() {
            violations.add(format!("{field}.slug"), "is required");
        } else if !slug_ok {
            violations.add(
                format!("{field}.slug"),
                "must be 3 to 63 lowercase letters, digits or inner dashes",
            );
        }
        violations.text(&format!("{field}.display_name"), &self.display_name, 1, 200);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The mutable fields of an organization.
#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationFields {
    pub code: String,
    pub name: String,
}

impl OrganizationFields {
    pub const MUTABLE: &'static [&'static str] = &["code", "name"];

    pub fn validate(&self, field: &str, violations: &mut Violations) {
        violations.code(&format!("{field}.code"), &self.code, 32);
        violations.text(&format!("{field}.name"), &self.name, 1, 200);
    }
}

/// The tenancy use cases, shared by the gRPC API and the `caseway tenant` commands.
#[derive(Clone)]
pub struct Tenancy {
    db: Db,
    statuses: Arc<TenantStatusCache>,
}

pub const SOURCE: &str = "caseway/tenancy";

impl Tenancy {
    pub fn new(db: Db, statuses: Arc<TenantStatusCache>) -> Self {
        Tenancy { db, statuses }
    }

    /// Creates a tenant; `request` and `response` let a retry with the same request id replay
    /// the first answer.
    pub async fn create_tenant<Req: Message, Resp: Message + Default>(
        &self,
        actor: &str,
        request_id: &str,
        new: NewTenant,
        request: &Req,
        response: impl Fn(&Tenant) -> Resp,
    ) -> Result<Resp> {
        let mut violations = Violations::new();
        violations.request_id(request_id);
        new.validate("tenant", &mut violations);
        violations.finish()?;
        let mut tx = self.db.system_tx().await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, "CreateTenant", request_id, request).await?
        {
            return Ok(previous);
        }
        if store::tenant_by_slug(tx.conn(), &new.slug).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "a tenant with slug {} exists",
                new.slug
            )));
        }
        let tenant = store::insert_tenant(tx.conn(), TenantId::new(), &new).await?;
        let reply = response(&tenant);
        idempotency::complete(&mut tx, "CreateTenant", request_id, &reply).await?;
        tx.act_for_tenant(tenant.id).await?;
        audit_tenant(&mut tx, actor, "tenancy.tenant.create", &tenant).await?;
        events::tenant_changed(&mut tx, events::TENANT_CREATED, &tenant, "").await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant.id, slug = %tenant.slug, "tenant created");
        Ok(reply)
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

    pub async fn list_tenants(
        &self,
        status: Option<TenantStatus>,
        after_slug: Option<String>,
        limit: i64,
    ) -> Result<Vec<Tenant>> {
        let mut tx = self.db.system_tx().await?;
        let tenants = store::list_tenants(tx.conn(), status, after_slug.as_deref(), limit).await?;
        tx.commit().await?;
        Ok(tenants)
    }

    /// Suspends or resumes a tenant. Setting the status it has already is a no-op.
    pub async fn set_status(
        &self,
        actor: &str,
        id: TenantId,
        status: TenantStatus,
        reason: &str,
    ) -> Result<Tenant> {
        let mut violations = Violations::new();
        violations.text("reason", reason, 0, 1000);
        violations.finish()?;
        let mut tx = self.db.system_tx().await?;
        let current = store::tenant_for_update(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        if current.status == status {
            return Ok(current);
        }
        let tenant = store::set_tenant_status(tx.conn(), id, status).await?;
        tx.act_for_tenant(id).await?;
        let (action, event) = match status {
            TenantStatus::Suspended => ("tenancy.tenant.suspend", events::TENANT_SUSPENDED),
            TenantStatus::Active => ("tenancy.tenant.resume", events::TENANT_RESUMED),
        };
        audit_tenant(&mut tx, actor, action, &tenant).await?;
        events::tenant_changed(&mut tx, event, &tenant, reason).await?;
        tx.commit().await?;
        // This process stops trusting its cache at once; others learn from the event.
        self.statuses.invalidate(id);
        tracing::info!(tenant_id = %id, status = status.as_str(), "tenant status changed");
        Ok(tenant)
    }

    pub async fn create_organization<Req: Message, Resp: Message + Default>(
        &self,
        principal: &Principal,
        tenant: TenantId,
        request_id: &str,
        fields: OrganizationFields,
        request: &Req,
        response: impl Fn(&Organization) -> Resp,
    ) -> Result<Resp> {
        let mut violations = Violations::new();
        violations.request_id(request_id);
        fields.validate("organization", &mut violations);
        violations.finish()?;
        let mut tx = self.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, "CreateOrganization", request_id, request).await?
        {
            return Ok(previous);
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
        let organization = store::insert_organization(tx.conn(), tenant, &fields).await?;
        audit::record(
            &mut tx,
            principal,
            AuditEntry {
                action: "tenancy.organization.create",
                resource_type: "organization",
                resource_id: organization.id,
                changed_fields: &[],
            },
        )
        .await?;
        events::organization_changed(&mut tx, events::ORGANIZATION_CREATED, &organization, &[])
            .await?;
        let reply = response(&organization);
        idempotency::complete(&mut tx, "CreateOrganization", request_id, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get_organization(&self, tenant: TenantId, id: Uuid) -> Result<Organization> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let organization = store::organization(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        tx.commit().await?;
        Ok(organization)
    }

    pub async fn update_organization(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: Uuid,
        expected_version: Option<i64>,
        fields: OrganizationFields,
        mask: &[&'static str],
    ) -> Result<Organization> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let current = store::organization(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        check_version(expected_version, current.version)?;
        let mut next = OrganizationFields {
            code: current.code.clone(),
            name: current.name.clone(),
        };
        let mut changed = Vec::new();
        for field in mask {
            match *field {
                "code" if next.code != fields.code => {
                    next.code = fields.code.clone();
                    changed.push("code".to_string());
                }
                "name" if next.name != fields.name => {
                    next.name = fields.name.clone();
                    changed.push("name".to_string());
                }
                _ => {}
            }
        }
        let mut violations = Violations::new();
        next.validate("organization", &mut violations);
        violations.finish()?;
        if changed.is_empty() {
            return Ok(current);
        }
        if changed.iter().any(|f| f == "code")
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
            principal,
            AuditEntry {
                action: "tenancy.organization.update",
                resource_type: "organization",
                resource_id: id,
                changed_fields: &changed,
            },
        )
        .await?;
        events::organization_changed(
            &mut tx,
            events::ORGANIZATION_UPDATED,
            &organization,
            &changed,
        )
        .await?;
        tx.commit().await?;
        Ok(organization)
    }

    pub async fn delete_organization(
        &self,
        principal: &Principal,
        tenant: TenantId,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let current = store::organization(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("organization", id))?;
        check_version(expected_version, current.version)?;
        store::delete_organization(tx.conn(), id).await?;
        audit::record(
            &mut tx,
            principal,
            AuditEntry {
                action: "tenancy.organization.delete",
                resource_type: "organization",
                resource_id: id,
                changed_fields: &[],
            },
        )
        .await?;
        events::organization_changed(&mut tx, events::ORGANIZATION_DELETED, &current, &[]).await?;
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

async fn audit_tenant(
    tx: &mut impl Scoped,
    actor: &str,
    action: &str,
    tenant: &Tenant,
) -> Result<()> {
    let principal = Principal {
        user_id: actor.to_string(),
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
            changed_fields: &[],
        },
    )
    .await
}
