//! What the tenancy service publishes, through the outbox: `tenancy.tenant_*.v1` with a
//! `TenantChanged` payload and `tenancy.organization_*.v1` with an `OrganizationChanged`
//! payload, each as the API shows the resource. Tenancy consumes no events.

use prost::Message;

use caseway_api::events::v1::{OrganizationChanged, TenantChanged};
use caseway_platform::outbox::Event;

use crate::convert::{organization_to_proto, tenant_to_proto};
use crate::domain::{Organization, Tenant};

/// The CloudEvents `source` of every tenancy event.
pub const SOURCE: &str = "caseway/tenancy";

pub const TENANT_CREATED: &str = "tenancy.tenant_created.v1";
pub const TENANT_SUSPENDED: &str = "tenancy.tenant_suspended.v1";
pub const TENANT_RESUMED: &str = "tenancy.tenant_resumed.v1";
pub const TENANT_UPDATED: &str = "tenancy.tenant_updated.v1";
pub const ORGANIZATION_CREATED: &str = "tenancy.organization_created.v1";
pub const ORGANIZATION_UPDATED: &str = "tenancy.organization_updated.v1";
pub const ORGANIZATION_DELETED: &str = "tenancy.organization_deleted.v1";

/// What happened to a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantEvent {
    Created,
    Suspended,
    Resumed,
    Updated,
}

impl TenantEvent {
    pub fn event_type(self) -> &'static str {
        match self {
            TenantEvent::Created => TENANT_CREATED,
            TenantEvent::Suspended => TENANT_SUSPENDED,
            TenantEvent::Resumed => TENANT_RESUMED,
            TenantEvent::Updated => TENANT_UPDATED,
        }
    }
}

/// What happened to an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrganizationEvent {
    Created,
    Updated,
    Deleted,
}

impl OrganizationEvent {
    pub fn event_type(self) -> &'static str {
        match self {
            OrganizationEvent::Created => ORGANIZATION_CREATED,
            OrganizationEvent::Updated => ORGANIZATION_UPDATED,
            OrganizationEvent::Deleted => ORGANIZATION_DELETED,
        }
    }
}

/// One event to enqueue: its type, subject (the resource id) and payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication<M> {
    pub event_type: &'static str,
    pub subject: String,
    pub payload: M,
}

impl<M: Message> Publication<M> {
    /// The event as the outbox takes it.
    pub fn event(&self) -> Event<'_, M> {
        Event {
            event_type: self.event_type,
            source: SOURCE,
            subject: self.subject.clone(),
            payload: &self.payload,
        }
    }
}

/// The transaction that enqueues it must act for `tenant` itself.
pub fn tenant_changed(
    event: TenantEvent,
    tenant: &Tenant,
    reason: &str,
    changed_fields: &[String],
) -> Publication<TenantChanged> {
    Publication {
        event_type: event.event_type(),
        subject: tenant.id.to_string(),
        payload: TenantChanged {
            tenant: Some(tenant_to_proto(tenant)),
            reason: reason.to_string(),
            changed_fields: changed_fields.to_vec(),
        },
    }
}

pub fn organization_changed(
    event: OrganizationEvent,
    organization: &Organization,
    changed_fields: &[String],
) -> Publication<OrganizationChanged> {
    Publication {
        event_type: event.event_type(),
        subject: organization.id.to_string(),
        payload: OrganizationChanged {
            organization: Some(organization_to_proto(organization)),
            changed_fields: changed_fields.to_vec(),
        },
    }
}
