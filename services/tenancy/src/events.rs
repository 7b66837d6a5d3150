//! What the tenancy service publishes, through the outbox.

use caseway_api::events::v1::{OrganizationChanged, TenantChanged};
use caseway_platform::Scoped;
use caseway_platform::error::Result;
use caseway_platform::outbox::{self, Event};

use crate::api::{organization_to_proto, tenant_to_proto};
use crate::domain::{Organization, SOURCE, Tenant};

pub const TENANT_CREATED: &str = "tenancy.tenant_created.v1";
pub const TENANT_SUSPENDED: &str = "tenancy.tenant_suspended.v1";
pub const TENANT_RESUMED: &str = "tenancy.tenant_resumed.v1";
pub const ORGANIZATION_CREATED: &str = "tenancy.organization_created.v1";
pub const ORGANIZATION_UPDATED: &str = "tenancy.organization_updated.v1";
pub const ORGANIZATION_DELETED: &str = "tenancy.organization_deleted.v1";

/// The transaction must act for `tenant` itself.
pub async fn tenant_changed(
    tx: &mut impl Scoped,
    event_type: &str,
    tenant: &Tenant,
    reason: &str,
) -> Result<()> {
    let payload = TenantChanged {
        tenant: Some(tenant_to_proto(tenant)),
        reason: reason.to_string(),
    };
    outbox::enqueue(
        tx,
        Event {
            event_type,
            source: SOURCE,
            subject: tenant.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}

pub async fn organization_changed(
    tx: &mut impl Scoped,
    event_type: &str,
    organization: &Organization,
    changed_fields: &[String],
) -> Result<()> {
    let payload = OrganizationChanged {
        organization: Some(organization_to_proto(organization)),
        changed_fields: changed_fields.to_vec(),
    };
    outbox::enqueue(
        tx,
        Event {
            event_type,
            source: SOURCE,
            subject: organization.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}
