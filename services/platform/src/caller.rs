//! Who is calling: the principal the auth layer verified, the tenant its token is bound to,
//! and the credentials forwarded when another service is asked on its behalf. Every handler
//! starts from one of these; the use cases take it instead of a request.

use std::sync::Arc;

use crate::auth::{Authorization, Principal, authorization_of, on_behalf_of, principal};
use crate::error::Result;
use crate::ids::TenantId;

#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub tenant: TenantId,
    /// The caller's `authorization` metadata, forwarded on calls made on its behalf.
    pub authorization: Option<Authorization>,
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
        })
    }

    /// `message` as a request to another service carrying this caller's credentials.
    pub fn forward<T>(&self, message: T) -> tonic::Request<T> {
        on_behalf_of(message, self.authorization.as_ref())
    }
}
