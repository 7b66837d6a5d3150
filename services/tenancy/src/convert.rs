//! Tenancy proto <-> domain: each request of `caseway.tenancy.v1` parsed into a checked domain
//! input (or INVALID_ARGUMENT with the violations), tenants and organizations encoded as the
//! API and the events show them, and a stored create reply decoded back for its replay.

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use caseway_api::tenancy::v1 as pb;
use caseway_platform::convert::timestamp;
use caseway_platform::error::{Error, Result};
use caseway_platform::idempotency::Fingerprint;
use caseway_platform::validate::{self, Violations, parse_id};
use caseway_platform::{TenantId, etag};

use crate::domain::{
    NewTenant, Organization, OrganizationDeletion, OrganizationField, OrganizationFields,
    OrganizationUpdate, Retryable, Tenant, TenantField, TenantFields, TenantStatus,
    TenantStatusChange, TenantUpdate,
};

pub fn tenant_to_proto(tenant: &Tenant) -> pb::Tenant {
    pb::Tenant {
        id: tenant.id.to_string(),
        slug: tenant.slug.clone(),
        display_name: tenant.display_name.clone(),
        status: status_to_proto(tenant.status) as i32,
        limits: Some(pb::TenantLimits {
            calls_per_second: tenant
                .calls_per_second
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(0),
        }),
        etag: etag::format(tenant.version),
        create_time: Some(timestamp(tenant.created_at)),
        update_time: Some(timestamp(tenant.updated_at)),
        purge_time: tenant.purged_at.map(timestamp),
    }
}

pub fn organization_to_proto(organization: &Organization) -> pb::Organization {
    pb::Organization {
        id: organization.id.to_string(),
        code: organization.code.clone(),
        name: organization.name.clone(),
        etag: etag::format(organization.version),
        create_time: Some(timestamp(organization.created_at)),
        update_time: Some(timestamp(organization.updated_at)),
    }
}

fn status_to_proto(status: TenantStatus) -> pb::TenantStatus {
    match status {
        TenantStatus::Active => pb::TenantStatus::Active,
        TenantStatus::Suspended => pb::TenantStatus::Suspended,
    }
}

/// What a `ListTenants` asks: the status (None for every status) and the filter its page
/// tokens are bound to (the request without its paging).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantQuery {
    pub status: Option<TenantStatus>,
    /// The one slug asked for, when set.
    pub slug: Option<String>,
    pub filter: Vec<u8>,
}

/// What the page tokens of `ListOrganizations` are bound to: nothing narrows that list.
pub const ORGANIZATIONS_FILTER: &[u8] = b"organizations";

fn tenant_id(field: &str, value: &str) -> Result<TenantId> {
    Ok(TenantId(parse_id(field, value)?))
}

fn status_filter(value: i32) -> Result<Option<TenantStatus>> {
    match pb::TenantStatus::try_from(value) {
        Ok(pb::TenantStatus::Unspecified) => Ok(None),
        Ok(pb::TenantStatus::Active) => Ok(Some(TenantStatus::Active)),
        Ok(pb::TenantStatus::Suspended) => Ok(Some(TenantStatus::Suspended)),
        Err(_) => Err(Error::invalid("status", "is not a tenant status")),
    }
}

pub fn create_tenant_request(message: &pb::CreateTenantRequest) -> Result<Retryable<NewTenant>> {
    let new = message
        .tenant
        .as_ref()
        .map(|t| NewTenant {
            slug: t.slug.clone(),
            display_name: t.display_name.clone(),
        })
        .unwrap_or(NewTenant {
            slug: String::new(),
            display_name: String::new(),
        });
    let mut violations = Violations::new();
    violations.request_id(&message.request_id);
    new.validate("tenant", &mut violations);
    violations.finish()?;
    Ok(Retryable {
        request_id: message.request_id.clone(),
        fingerprint: Fingerprint::of(message),
        change: new,
    })
}

/// The reply to `CreateTenant`, as answered and as stored for a retry.
pub fn create_tenant_reply(tenant: &Tenant) -> pb::CreateTenantResponse {
    pb::CreateTenantResponse {
        tenant: Some(tenant_to_proto(tenant)),
    }
}

/// The tenant of a stored `CreateTenant` reply, for its replay.
pub fn tenant_of_reply(reply: pb::CreateTenantResponse) -> Result<Tenant> {
    let what = "CreateTenant";
    tenant_of_stored(what, reply.tenant.ok_or_else(|| stored(what, "no tenant"))?)
}

/// A tenant as a stored reply of `what` holds it, for its replay.
pub fn tenant_of_stored(what: &str, tenant: pb::Tenant) -> Result<Tenant> {
    Ok(Tenant {
        id: tenant
            .id
            .parse()
            .map_err(|_| stored(what, "a tenant id that is not a UUID"))?,
        slug: tenant.slug,
        display_name: tenant.display_name,
        status: match pb::TenantStatus::try_from(tenant.status) {
            Ok(pb::TenantStatus::Active) => TenantStatus::Active,
            Ok(pb::TenantStatus::Suspended) => TenantStatus::Suspended,
            _ => return Err(stored(what, "an unknown tenant status")),
        },
        calls_per_second: tenant
            .limits
            .and_then(|l| u32::try_from(l.calls_per_second).ok())
            .filter(|c| *c > 0),
        version: stored_version(what, &tenant.etag)?,
        created_at: stored_time(what, tenant.create_time)?,
        updated_at: stored_time(what, tenant.update_time)?,
        purged_at: tenant
            .purge_time
            .map(|t| stored_time(what, Some(t)))
            .transpose()?,
    })
}

pub fn get_tenant_request(message: &pb::GetTenantRequest) -> Result<TenantId> {
    tenant_id("id", &message.id)
}

/// The page itself is read from the request by `PageTokens::page`; its size is checked here
/// too, so that a bad size is reported before a bad status.
pub fn list_tenants_request(message: &pb::ListTenantsRequest) -> Result<TenantQuery> {
    validate::page_size(message.page_size)?;
    let status = status_filter(message.status)?;
    let filter = pb::ListTenantsRequest {
        page_size: 0,
        page_token: String::new(),
        ..message.clone()
    };
    Ok(TenantQuery {
        status,
        slug: (!message.slug.is_empty()).then(|| message.slug.clone()),
        filter: prost::Message::encode_to_vec(&filter),
    })
}

pub fn list_tenants_reply(tenants: &[Tenant], next_page_token: String) -> pb::ListTenantsResponse {
    pb::ListTenantsResponse {
        tenants: tenants.iter().map(tenant_to_proto).collect(),
        next_page_token,
    }
}

/// An update's fields are checked by the use case once merged with the stored ones.
pub fn update_tenant_request(message: pb::UpdateTenantRequest) -> Result<TenantUpdate> {
    let tenant = message
        .tenant
        .ok_or_else(|| Error::invalid("tenant", "is required"))?;
    let id = tenant_id("tenant.id", &tenant.id)?;
    let expected_version = etag::parse("tenant.etag", &tenant.etag)?;
    let calls_per_second = match tenant.limits.as_ref().map_or(0, |l| l.calls_per_second) {
        0 => None,
        limit => Some(u32::try_from(limit).map_err(|_| {
            Error::invalid(
                "tenant.limits.calls_per_second",
                "must be 0 (the default) or more",
            )
        })?),
    };
    let mutable = TenantField::ALL.map(TenantField::name);
    // AIP-134: an empty mask names the fields the request sets; `*` names every one.
    let set: Vec<&'static str> = [
        ("display_name", !tenant.display_name.is_empty()),
        ("limits", tenant.limits.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let mask = validate::update_mask(message.update_mask.as_ref(), &mutable, &set)?
        .into_iter()
        .map(|name| {
            TenantField::parse(name)
                .ok_or_else(|| Error::internal(anyhow!("update mask gave unknown field {name}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TenantUpdate {
        id,
        expected_version,
        fields: TenantFields {
            display_name: tenant.display_name,
            calls_per_second,
        },
        mask,
    })
}

pub fn suspend_tenant_request(
    message: &pb::SuspendTenantRequest,
) -> Result<Retryable<TenantStatusChange>> {
    let change = TenantStatusChange {
        tenant: tenant_id("id", &message.id)?,
        status: TenantStatus::Suspended,
        reason: message.reason.clone(),
    };
    let mut violations = Violations::new();
    violations.request_id(&message.request_id);
    change.validate(&mut violations);
    violations.finish()?;
    Ok(Retryable {
        request_id: message.request_id.clone(),
        fingerprint: Fingerprint::of(message),
        change,
    })
}

pub fn resume_tenant_request(
    message: &pb::ResumeTenantRequest,
) -> Result<Retryable<TenantStatusChange>> {
    let change = TenantStatusChange {
        tenant: tenant_id("id", &message.id)?,
        status: TenantStatus::Active,
        reason: String::new(),
    };
    let mut violations = Violations::new();
    violations.request_id(&message.request_id);
    violations.finish()?;
    Ok(Retryable {
        request_id: message.request_id.clone(),
        fingerprint: Fingerprint::of(message),
        change,
    })
}

pub fn create_organization_request(
    message: &pb::CreateOrganizationRequest,
) -> Result<Retryable<OrganizationFields>> {
    let fields = message
        .organization
        .as_ref()
        .map(|o| OrganizationFields {
            code: o.code.clone(),
            name: o.name.clone(),
        })
        .unwrap_or(OrganizationFields {
            code: String::new(),
            name: String::new(),
        });
    let mut violations = Violations::new();
    violations.request_id(&message.request_id);
    fields.validate("organization", &mut violations);
    violations.finish()?;
    Ok(Retryable {
        request_id: message.request_id.clone(),
        fingerprint: Fingerprint::of(message),
        change: fields,
    })
}

/// The reply to `CreateOrganization`, as answered and as stored for a retry.
pub fn create_organization_reply(organization: &Organization) -> pb::CreateOrganizationResponse {
    pb::CreateOrganizationResponse {
        organization: Some(organization_to_proto(organization)),
    }
}

/// The organization of a stored `CreateOrganization` reply, for its replay.
pub fn organization_of_reply(reply: pb::CreateOrganizationResponse) -> Result<Organization> {
    let what = "CreateOrganization";
    let organization = reply
        .organization
        .ok_or_else(|| stored(what, "no organization"))?;
    Ok(Organization {
        id: organization
            .id
            .parse()
            .map_err(|_| stored(what, "an organization id that is not a UUID"))?,
        code: organization.code,
        name: organization.name,
        version: stored_version(what, &organization.etag)?,
        created_at: stored_time(what, organization.create_time)?,
        updated_at: stored_time(what, organization.update_time)?,
    })
}

pub fn get_organization_request(message: &pb::GetOrganizationRequest) -> Result<uuid::Uuid> {
    parse_id("id", &message.id)
}

/// An update's fields are checked by the use case once merged with the stored ones (a stored
/// field outside the mask is not the caller's to fix).
pub fn update_organization_request(
    message: pb::UpdateOrganizationRequest,
) -> Result<OrganizationUpdate> {
    let organization = message
        .organization
        .ok_or_else(|| Error::invalid("organization", "is required"))?;
    let id = parse_id("organization.id", &organization.id)?;
    let expected_version = etag::parse("organization.etag", &organization.etag)?;
    let mutable = OrganizationField::ALL.map(OrganizationField::name);
    // AIP-134: an empty mask names the fields the request sets; `*` names every one (an
    // unset code is then refused, not kept).
    let set: Vec<&'static str> = [
        ("code", !organization.code.is_empty()),
        ("name", !organization.name.is_empty()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let mask = validate::update_mask(message.update_mask.as_ref(), &mutable, &set)?
        .into_iter()
        .map(|name| {
            OrganizationField::parse(name)
                .ok_or_else(|| Error::internal(anyhow!("update mask gave unknown field {name}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(OrganizationUpdate {
        id,
        expected_version,
        fields: OrganizationFields {
            code: organization.code,
            name: organization.name,
        },
        mask,
    })
}

pub fn delete_organization_request(
    message: &pb::DeleteOrganizationRequest,
) -> Result<OrganizationDeletion> {
    Ok(OrganizationDeletion {
        id: parse_id("id", &message.id)?,
        expected_version: etag::parse("etag", &message.etag)?,
    })
}

pub fn list_organizations_reply(
    organizations: &[Organization],
    next_page_token: String,
) -> pb::ListOrganizationsResponse {
    pb::ListOrganizationsResponse {
        organizations: organizations.iter().map(organization_to_proto).collect(),
        next_page_token,
    }
}

/// INTERNAL: a reply this service stored does not decode.
fn stored(method: &str, what: &str) -> Error {
    Error::internal(anyhow!("the stored {method} reply has {what}"))
}

fn stored_version(method: &str, value: &str) -> Result<i64> {
    etag::parse("etag", value)
        .ok()
        .flatten()
        .ok_or_else(|| stored(method, "no etag issued by this server"))
}

fn stored_time(method: &str, value: Option<prost_types::Timestamp>) -> Result<DateTime<Utc>> {
    value
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| stored(method, "a missing or invalid time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violated(error: Error) -> Vec<String> {
        match error {
            Error::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other}"),
        }
    }

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId::new(),
            slug: "agency-one".into(),
            display_name: "Agency One".into(),
            status: TenantStatus::Suspended,
            calls_per_second: Some(40),
            version: 3,
            created_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            updated_at: DateTime::from_timestamp(1_700_000_100, 0).unwrap(),
            purged_at: DateTime::from_timestamp(1_700_000_200, 0),
        }
    }

    #[test]
    fn a_stored_create_reply_replays_as_it_was_answered() {
        let tenant = tenant();
        let reply = create_tenant_reply(&tenant);
        let replayed = tenant_of_reply(reply.clone()).unwrap();
        assert_eq!(replayed, tenant);
        assert_eq!(create_tenant_reply(&replayed), reply);

        let organization = Organization {
            id: uuid::Uuid::now_v7(),
            code: "NORTH".into(),
            name: "North Family Center".into(),
            version: 1,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        };
        let reply = create_organization_reply(&organization);
        let replayed = organization_of_reply(reply.clone()).unwrap();
        assert_eq!(replayed, organization);
        assert_eq!(create_organization_reply(&replayed), reply);
    }

    #[test]
    fn a_stored_reply_that_does_not_decode_is_internal() {
        let mut reply = create_tenant_reply(&tenant());
        if let Some(t) = reply.tenant.as_mut() {
            t.status = pb::TenantStatus::Unspecified as i32;
        }
        assert!(matches!(tenant_of_reply(reply), Err(Error::Internal(_))));
        let empty = pb::CreateOrganizationResponse::default();
        assert!(matches!(
            organization_of_reply(empty),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn a_create_tenant_request_reports_every_bad_field() {
        let request = pb::CreateTenantRequest {
            request_id: "not visible ascii".into(),
            tenant: Some(pb::Tenant {
                slug: "Not A Slug".into(),
                ..Default::default()
            }),
        };
        assert_eq!(
            violated(create_tenant_request(&request).unwrap_err()),
            vec!["request_id", "tenant.slug", "tenant.display_name"]
        );
        let missing = pb::CreateTenantRequest::default();
        assert_eq!(
            violated(create_tenant_request(&missing).unwrap_err()),
            vec!["tenant.slug", "tenant.display_name"]
        );
    }

    #[test]
    fn a_create_request_is_fingerprinted_whole() {
        let request = pb::CreateOrganizationRequest {
            request_id: "r-1".into(),
            organization: Some(pb::Organization {
                code: "NORTH".into(),
                name: "North".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let create = create_organization_request(&request).unwrap();
        assert_eq!(create.request_id, "r-1");
        assert_eq!(create.fingerprint, Fingerprint::of(&request));
        assert_eq!(create.change.code, "NORTH");
    }

    #[test]
    fn a_suspension_checks_its_id_before_its_reason() {
        let request = pb::SuspendTenantRequest {
            id: "nope".into(),
            reason: "x".repeat(1001),
            ..Default::default()
        };
        assert_eq!(
            violated(suspend_tenant_request(&request).unwrap_err()),
            vec!["id"]
        );
        let request = pb::SuspendTenantRequest {
            id: TenantId::new().to_string(),
            reason: "x".repeat(1001),
            ..Default::default()
        };
        assert_eq!(
            violated(suspend_tenant_request(&request).unwrap_err()),
            vec!["reason"]
        );
    }

    #[test]
    fn an_update_mask_becomes_fields_an_empty_one_those_set_and_a_star_all() {
        let request = |paths: &[&str]| pb::UpdateOrganizationRequest {
            organization: Some(pb::Organization {
                id: uuid::Uuid::now_v7().to_string(),
                etag: "\"2\"".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            ..Default::default()
        };
        let update = update_organization_request(request(&["name"])).unwrap();
        assert_eq!(update.mask, vec![OrganizationField::Name]);
        assert_eq!(update.expected_version, Some(2));
        let update = update_organization_request(request(&["*"])).unwrap();
        assert_eq!(update.mask, OrganizationField::ALL.to_vec());
        // Nothing set, nothing named: an empty mask changes nothing.
        let update = update_organization_request(request(&[])).unwrap();
        assert!(update.mask.is_empty());
        let mut named = request(&[]);
        if let Some(o) = named.organization.as_mut() {
            o.name = "North".into();
        }
        let update = update_organization_request(named).unwrap();
        assert_eq!(update.mask, vec![OrganizationField::Name]);
        assert_eq!(
            violated(update_organization_request(request(&["id"])).unwrap_err()),
            vec!["update_mask"]
        );
    }

    #[test]
    fn a_status_filter_is_a_tenant_status_or_none() {
        let request = |status: i32| pb::ListTenantsRequest {
            status,
            ..Default::default()
        };
        let query = list_tenants_request(&request(0)).unwrap();
        assert_eq!(query.status, None);
        let query = list_tenants_request(&request(pb::TenantStatus::Suspended as i32)).unwrap();
        assert_eq!(query.status, Some(TenantStatus::Suspended));
        assert_eq!(
            violated(list_tenants_request(&request(99)).unwrap_err()),
            vec!["status"]
        );
    }
}
