//! Authentication: Ed25519-signed JWTs verified into a [`Principal`] (tenant, user, security
//! organizations, roles). Verification results are cached until the token expires, so a hot
//! path pays for a signature check once per token, not once per call.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ids::TenantId;

/// A role claim. Authorization is checked once per RPC against these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Caseworker,
    Supervisor,
    /// The tenant's local system administrator.
    TenantAdmin,
    /// The hosting provider's support desk.
    SupportAgent,
    /// The hosting provider's tenant lifecycle administrator.
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Caseworker,
        Role::Supervisor,
        Role::TenantAdmin,
        Role::SupportAgent,
        Role::PlatformAdmin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Caseworker => "caseworker",
            Role::Supervisor => "supervisor",
            Role::TenantAdmin => "tenant_admin",
            Role::SupportAgent => "support_agent",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Who is calling, from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// None for the hosting provider's own staff (platform_admin, support_agent).
    pub tenant_id: Option<TenantId>,
    pub organization_ids: Vec<Uuid>,
    pub roles: Vec<Role>,
    /// Fine-grained grants beyond roles, e.g. `clients.read_ssn`.
    pub permissions: Vec<String>,
}

impl Principal {
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The caller's tenant; PERMISSION_DENIED for a token bound to none.
    pub fn tenant(&self) -> Result<TenantId> {
        self.tenant_id
            .ok_or_else(|| Error::PermissionDenied("the token is not bound to a tenant".into()))
    }

    /// PERMISSION_DENIED unless the caller holds one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<()> {
        if roles.iter().any(|r| self.has_role(*r)) {
            return Ok(());
        }
        let wanted: Vec<_> = roles.iter().map(Role::as_str).collect();
        Err(Error::PermissionDenied(format!(
            "requires role {}",
            wanted.join(" or ")
        )))
    }

    /// The caller's tenant, provided the caller holds one of `roles` (any role when empty).
    pub fn tenant_with(&self, roles: &[Role]) -> Result<TenantId> {
        let tenant = self.tenant()?;
        if !roles.is_empty() {
            self.require_any(roles)?;
        }
        Ok(tenant)
    }
}

/// The caller's `authorization` metadata, to forward on calls made on its behalf.
pub type Authorization = tonic::metadata::MetadataValue<tonic::metadata::Ascii>;

pub fn authorization_of<T>(request: &tonic::Request<T>) -> Option<Authorization> {
    request.metadata().get("authorization").cloned()
}

/// A request to another service carrying the caller's own credentials, so the callee applies
/// the caller's tenant and roles.
pub fn on_behalf_of<T>(message: T, authorization: Option<&Authorization>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
    }
    request
}

/// Reads the principal the auth layer put on a request.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("missing bearer token".into()))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub orgs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

const CACHE_LIMIT: usize = 100_000;

pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    verified: Mutex<HashMap<String, (Arc<Principal>, i64)>>,
}

impl TokenVerifier {
    pub fn from_pem(public_pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(public_pem).context("reading the JWT public key")?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(TokenVerifier {
            key,
            validation,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn from_file(path: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading JWT public key {}", path.display()))?;
        Self::from_pem(&pem, issuer, audience)
    }

    /// Verifies a bearer token; UNAUTHENTICATED with the reason when it is not acceptable.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>> {
        let now = chrono::Utc::now().timestamp();
        if let Some((principal, exp)) = self.lock().get(token)
            && *exp > now
        {
            return Ok(principal.clone());
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| Error::Unauthenticated(format!("invalid token: {e}")))?;
        let principal = Arc::new(principal_from_claims(&data.claims)?);
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, (_, exp)| *exp > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), (principal.clone(), data.claims.exp));
        Ok(principal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Principal>, i64)>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn principal_from_claims(claims: &Claims) -> Result<Principal> {
    let bad = |what: &str| Error::Unauthenticated(format!("invalid token: {what}"));
    let tenant_id = match &claims.tenant {
        Some(t) => Some(t.parse().map_err(|_| bad("tenant is not a UUID"))?),
        None => None,
    };
    let organization_ids = claims
        .orgs
        .iter()
        .map(|o| Uuid::parse_str(o).map_err(|_| bad("orgs must be UUIDs")))
        .collect::<Result<Vec<_>>>()?;
    // Unknown roles are ignored: a newer issuer may know roles this build does not.
    let roles = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
    Ok(Principal {
        user_id: claims.sub.clone(),
        tenant_id,
        organization_ids,
        roles,
        permissions: claims.perms.clone(),
    })
}

/// Signs development and service tokens.
pub struct TokenIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl TokenIssuer {
    pub fn from_pem(private_pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        Ok(TokenIssuer {
            key: EncodingKey::from_ed_pem(private_pem).context("reading the JWT private key")?,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    pub fn from_file(path: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading JWT private key {}", path.display()))?;
        Self::from_pem(&pem, issuer, audience)
    }

    pub fn issue(
        &self,
        user_id: &str,
        tenant: Option<TenantId>,
        roles: &[Role],
        organization_ids: &[Uuid],
        lifetime: chrono::Duration,
    ) -> anyhow::Result<String> {
        self.issue_with_permissions(user_id, tenant, roles, organization_ids, &[], lifetime)
    }

    pub fn issue_with_permissions(
        &self,
        user_id: &str,
        tenant: Option<TenantId>,
        roles: &[Role],
        organization_ids: &[Uuid],
        permissions: &[&str],
        lifetime: chrono::Duration,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.into(),
            tenant: tenant.map(|t| t.to_string()),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            orgs: organization_ids.iter().map(|o| o.to_string()).collect(),
            perms: permissions.iter().map(|p| p.to_string()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + lifetime.num_seconds(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )?)
    }
}

/// A new Ed25519 key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_key_pair() -> anyhow::Result<(String, String)> {
    let secret: [u8; 32] = rand::random();
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding private key")?
        .to_string();
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding public key")?;
    Ok((private, public))
}

/// Writes a key pair into `dir` unless one is there already.
pub fn ensure_key_pair(private_path: &Path, public_path: &Path) -> anyhow::Result<()> {
    if private_path.exists() && public_path.exists() {
        return Ok(());
    }
    if let Some(dir) = private_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Some(dir) = public_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (private, public) = generate_key_pair()?;
    std::fs::write(private_path, private)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(private_path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(public_path, public)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TokenIssuer, TokenVerifier) {
        let (private, public) = generate_key_pair().unwrap();
        (
            TokenIssuer::from_pem(private.as_bytes(), "caseway", "caseway").unwrap(),
            TokenVerifier::from_pem(public.as_bytes(), "caseway", "caseway").unwrap(),
        )
    }

    #[test]
    fn issued_token_verifies_into_principal() {
        let (issuer, verifier) = pair();
        let tenant = TenantId::new();
        let org = Uuid::now_v7();
        let token = issuer
            .issue(
                "ana",
                Some(tenant),
                &[Role::Caseworker],
                &[org],
                chrono::Duration::hours(1),
            )
            .unwrap();
        let principal = verifier.verify(&token).unwrap();
        assert_eq!(principal.tenant_id, Some(tenant));
        assert_eq!(principal.organization_ids, vec![org]);
        assert!(principal.has_role(Role::Caseworker));
        assert!(!principal.has_role(Role::TenantAdmin));
    }

    #[test]
    fn token_signed_by_another_key_is_refused() {
        let (issuer, _) = pair();
        let (_, verifier) = pair();
        let token = issuer
            .issue("ana", None, &[], &[], chrono::Duration::hours(1))
            .unwrap();
        assert!(matches!(
            verifier.verify(&token),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn expired_token_is_refused() {
        let (issuer, verifier) = pair();
        let token = issuer
            .issue("ana", None, &[], &[], chrono::Duration::hours(-1))
            .unwrap();
        assert!(matches!(
            verifier.verify(&token),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn garbage_is_refused() {
        let (_, verifier) = pair();
        assert!(matches!(
            verifier.verify("not.a.jwt"),
            Err(Error::Unauthenticated(_))
        ));
    }
}
