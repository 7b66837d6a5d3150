//! Who is calling: the principal the auth layer verified, the tenant its token is bound to,
//! and the credentials forwarded when another service is asked on its behalf. Every handler
//! starts from one of these; the use cases take it instead of a request.

use std::sync::Arc;

use crate::auth::{Authorization, Principal, Role, authorization_of, on_behalf_of, principal};
use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;
use crate::validate::parse_id;

#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub tenant: TenantId,
    /// The caller's `authorization` metadata, forwarded on calls made on its behalf.
    pub authorization: Option<Authorization>,
    /// The caller asked for a read of PostgreSQL, not of a replica's cache (`cache-control:
    /// no-cache` metadata; see [`ask_fresh`]).
    pub fresh: bool,
}

/// The metadata by which a caller asks for what is stored now rather than what a replica's
/// cache holds (docs/api.md).
pub const CACHE_CONTROL: &str = "cache-control";

/// Whether `request` asks for a fresh read (`cache-control: no-cache`).
fn wants_fresh<T>(request: &tonic::Request<T>) -> bool {
    request
        .metadata()
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|directive| directive.trim().eq_ignore_ascii_case("no-cache"))
        })
}

/// Asks the service `request` goes to for a fresh read: a peer filling a cache of its own must
/// not fill it from another replica's cache, which may not yet have heard the change the
/// peer's own cache just dropped.
pub fn ask_fresh<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request.metadata_mut().insert(
        CACHE_CONTROL,
        tonic::metadata::MetadataValue::from_static("no-cache"),
    );
    request
}

impl Caller {
    /// The verified caller of `request`; UNAUTHENTICATED without a principal, PERMISSION_DENIED
    /// (`TENANT_MISSING`) when its token is not bound to a tenant.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller> {
        let principal = principal(request)?;
        let tenant = principal.tenant()?;
        Ok(Caller {
            authorization: authorization_of(request),
            principal,
            tenant,
            fresh: wants_fresh(request),
        })
    }

    /// The caller of a request that may name the tenant it acts on (`tenant_id`): empty, the
    /// caller's own tenant as in [`Caller::of`]; set, only by a platform administrator, who
    /// holds no tenant and manages the one named (INVALID_ARGUMENT when it is not an id,
    /// PERMISSION_DENIED for anyone else). Whether that tenant exists is the use case's to say.
    pub fn acting_for<T>(request: &tonic::Request<T>, tenant_id: &str) -> Result<Caller> {
        if tenant_id.is_empty() {
            return Caller::of(request);
        }
        let principal = principal(request)?;
        if principal.tenant_id.is_some() || !principal.has_role(Role::PlatformAdmin) {
            return Err(Error::denied(
                Reason::RoleNotPermitted,
                "only a platform administrator names the tenant to act on (tenant_id)",
            ));
        }
        let tenant = TenantId(parse_id("tenant_id", tenant_id)?);
        Ok(Caller {
            authorization: authorization_of(request),
            principal,
            tenant,
            fresh: wants_fresh(request),
        })
    }

    /// `message` as a request to another service carrying this caller's credentials.
    pub fn forward<T>(&self, message: T) -> tonic::Request<T> {
        on_behalf_of(message, self.authorization.as_ref())
    }
}
