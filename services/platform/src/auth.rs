//! Authentication: Ed25519-signed JWTs verified into a [`Principal`] (tenant, user, security
//! organizations, roles), and the service identity services call internal methods with.
//! Verification results are cached until the token expires, so a hot path pays for a
//! signature check once per token, not once per call; a revocation is checked on every call.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;
use crate::revocation::Revocations;

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

/// Who is calling, from a verified token: a user (roles in a tenant, or the hosting
/// provider's staff), or a service of this deployment calling an internal method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject; for a service identity, `caseway/<service>`.
    pub user_id: String,
    /// None for the hosting provider's own staff (platform_admin, support_agent).
    pub tenant_id: Option<TenantId>,
    pub organization_ids: Vec<Uuid>,
    pub roles: Vec<Role>,
    /// Fine-grained grants beyond roles, e.g. `clients.read_ssn`; for a service identity, the
    /// one internal permission its call needs.
    pub permissions: Vec<String>,
    /// The calling service (`records`) when the token is a service identity's, signed with the
    /// service key; such a principal holds no role and may call only internal methods.
    pub service: Option<String>,
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
        self.tenant_id.ok_or_else(|| {
            Error::denied(Reason::TenantMissing, "the token is not bound to a tenant")
        })
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
        .ok_or_else(|| Error::unauthenticated(Reason::TokenMissing, "missing bearer token"))
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's id, by which it can be revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// The `kid` header of service identity tokens: they are verified with the service key only,
/// and a token without it is verified with the user key only.
pub const SERVICE_KEY_ID: &str = "caseway-service";

/// The most verified tokens kept; past it, the expired go, and if that is not enough, all.
const CACHE_LIMIT: usize = 100_000;
/// Clock skew allowed between the issuer and this node, in seconds.
const LEEWAY: i64 = 30;

/// What the verifier needs to know beyond the keys.
#[derive(Clone, Debug)]
pub struct VerifierSettings {
    pub issuer: String,
    pub audience: String,
    /// The longest lifetime (`exp - iat`) a token may have, in seconds.
    pub max_lifetime: i64,
}

impl VerifierSettings {
    pub fn new(issuer: &str, audience: &str, max_lifetime: std::time::Duration) -> Self {
        VerifierSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            max_lifetime: max_lifetime.as_secs() as i64,
        }
    }
}

struct Verified {
    principal: Arc<Principal>,
    expires: i64,
    issued: i64,
    token_id: Option<String>,
}

pub struct TokenVerifier {
    user_key: DecodingKey,
    service_key: Option<DecodingKey>,
    validation: Validation,
    max_lifetime: i64,
    revocations: Arc<Revocations>,
    verified: Mutex<HashMap<String, Verified>>,
}

impl TokenVerifier {
    /// A verifier of user tokens signed with `public_pem` and, when `service_public_pem` is
    /// given, of service identity tokens signed with the service key.
    pub fn new(
        public_pem: &[u8],
        service_public_pem: Option<&[u8]>,
        settings: &VerifierSettings,
        revocations: Arc<Revocations>,
    ) -> anyhow::Result<Self> {
        let user_key =
            DecodingKey::from_ed_pem(public_pem).context("reading the JWT public key")?;
        let service_key = service_public_pem
            .map(|pem| DecodingKey::from_ed_pem(pem).context("reading the service public key"))
            .transpose()?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY as u64;
        Ok(TokenVerifier {
            user_key,
            service_key,
            validation,
            max_lifetime: settings.max_lifetime,
            revocations,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// A verifier of user tokens only, with no revocations (tools and tests).
    pub fn from_pem(public_pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let settings = VerifierSettings::new(
            issuer,
            audience,
            std::time::Duration::from_secs(DEFAULT_MAX_LIFETIME_SECONDS),
        );
        Self::new(
            public_pem,
            None,
            &settings,
            Arc::new(Revocations::default()),
        )
    }

    pub fn from_file(path: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading JWT public key {}", path.display()))?;
        Self::from_pem(&pem, issuer, audience)
    }

    /// Verifies a bearer token; UNAUTHENTICATED with the reason when it is not acceptable: a
    /// bad signature, a wrong issuer or audience, expired or not yet valid, issued in the
    /// future or for longer than the configured maximum, or revoked.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>> {
        let now = chrono::Utc::now().timestamp();
        if let Some(hit) = self.lock().get(token)
            && hit.expires > now
        {
            self.check_not_revoked(&hit.principal, hit.issued, hit.token_id.as_deref())?;
            return Ok(hit.principal.clone());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            Error::unauthenticated(Reason::TokenInvalid, format!("invalid token: {e}"))
        })?;
        let service = header.kid.as_deref() == Some(SERVICE_KEY_ID);
        let key = if service {
            self.service_key.as_ref().ok_or_else(|| {
                Error::unauthenticated(
                    Reason::TokenInvalid,
                    "invalid token: service identities are not accepted",
                )
            })?
        } else {
            &self.user_key
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            Error::unauthenticated(Reason::TokenInvalid, format!("invalid token: {e}"))
        })?;
        let claims = data.claims;
        if claims.iat > now + LEEWAY {
            return Err(Error::unauthenticated(
                Reason::TokenInvalid,
                "invalid token: issued in the future",
            ));
        }
        if claims.exp - claims.iat > self.max_lifetime {
            return Err(Error::unauthenticated(
                Reason::TokenInvalid,
                format!(
                    "invalid token: it lives longer than the {} s this deployment accepts",
                    self.max_lifetime
                ),
            ));
        }
        let principal = Arc::new(principal_from_claims(&claims, service)?);
        self.check_not_revoked(&principal, claims.iat, claims.jti.as_deref())?;
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, hit| hit.expires > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(
            token.to_string(),
            Verified {
                principal: principal.clone(),
                expires: claims.exp,
                issued: claims.iat,
                token_id: claims.jti,
            },
        );
        Ok(principal)
    }

    fn check_not_revoked(
        &self,
        principal: &Principal,
        issued: i64,
        token_id: Option<&str>,
    ) -> Result<()> {
        if self
            .revocations
            .revoked(principal.tenant_id, &principal.user_id, issued, token_id)
        {
            return Err(Error::unauthenticated(
                Reason::TokenRevoked,
                "the token has been revoked",
            ));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The default of `CASEWAY_JWT_MAX_LIFETIME_SECONDS`: 12 hours, a working day.
pub const DEFAULT_MAX_LIFETIME_SECONDS: u64 = 12 * 3600;

fn principal_from_claims(claims: &Claims, service: bool) -> Result<Principal> {
    let bad =
        |what: &str| Error::unauthenticated(Reason::TokenInvalid, format!("invalid token: {what}"));
    let tenant_id = match &claims.tenant {
        Some(t) => Some(t.parse().map_err(|_| bad("tenant is not a UUID"))?),
        None => None,
    };
    if service {
        // A service identity holds permissions, never roles or organizations.
        return Ok(Principal {
            user_id: format!("caseway/{}", claims.sub),
            tenant_id,
            organization_ids: Vec::new(),
            roles: Vec::new(),
            permissions: claims.perms.clone(),
            service: Some(claims.sub.clone()),
        });
    }
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
        service: None,
    })
}

/// Signs user tokens: `caseway token issue` and `caseway dev` (the key lives only where tokens
/// are issued; serving nodes hold the public key).
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
        self.sign(Claims {
            sub: user_id.into(),
            tenant: tenant.map(|t| t.to_string()),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            orgs: organization_ids.iter().map(|o| o.to_string()).collect(),
            perms: permissions.iter().map(|p| p.to_string()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + lifetime.num_seconds(),
            nbf: None,
            jti: Some(Uuid::now_v7().to_string()),
        })
    }

    /// Signs claims as given (tests of the verifier's checks use it for odd tokens).
    pub fn sign(&self, claims: Claims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )?)
    }
}

/// How long a service identity token lives; a caller signs a new one a minute before.
const SERVICE_TOKEN_LIFETIME: i64 = 300;

/// The identity a service of this deployment calls internal methods with: tokens signed with
/// the service key (not the key of user tokens, which serving nodes do not hold), carrying
/// the calling service as subject, the tenant the call acts for and the one permission it
/// needs. They are cached until a minute before they expire.
pub struct ServiceIdentity {
    key: EncodingKey,
    issuer: String,
    audience: String,
    bearers: Mutex<HashMap<BearerKey, (Authorization, i64)>>,
}

/// A service identity token is for one calling service, tenant and permission.
type BearerKey = (&'static str, TenantId, &'static str);

impl ServiceIdentity {
    pub fn from_pem(private_pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        Ok(ServiceIdentity {
            key: EncodingKey::from_ed_pem(private_pem).context("reading the service key")?,
            issuer: issuer.into(),
            audience: audience.into(),
            bearers: Mutex::new(HashMap::new()),
        })
    }

    /// The `authorization` value with which `service` calls, for `tenant`, a method needing
    /// `permission`.
    pub fn bearer(
        &self,
        service: &'static str,
        tenant: TenantId,
        permission: &'static str,
    ) -> Result<Authorization> {
        let now = chrono::Utc::now().timestamp();
        let key = (service, tenant, permission);
        let mut bearers = self.bearers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((bearer, expires)) = bearers.get(&key)
            && *expires - 60 > now
        {
            return Ok(bearer.clone());
        }
        let claims = Claims {
            sub: service.into(),
            tenant: Some(tenant.to_string()),
            roles: Vec::new(),
            orgs: Vec::new(),
            perms: vec![permission.into()],
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + SERVICE_TOKEN_LIFETIME,
            nbf: None,
            jti: None,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(SERVICE_KEY_ID.into());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(Error::internal)?;
        let bearer: Authorization = format!("Bearer {token}").parse().map_err(Error::internal)?;
        if bearers.len() > 10_000 {
            bearers.clear();
        }
        bearers.insert(key, (bearer.clone(), claims.exp));
        Ok(bearer)
    }

    /// A request to an internal method, made by `service` for `tenant` with `permission`.
    pub fn request<T>(
        &self,
        message: T,
        service: &'static str,
        tenant: TenantId,
        permission: &'static str,
    ) -> Result<tonic::Request<T>> {
        let bearer = self.bearer(service, tenant, permission)?;
        Ok(on_behalf_of(message, Some(&bearer)))
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

/// The public key (SPKI PEM) of a private key (PKCS#8 PEM): a node holding the service key
/// verifies service tokens with its public half.
pub fn public_key_of(private_pem: &str) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let signing =
        ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem).context("reading a private key")?;
    signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding public key")
}

/// Writes a key pair unless one is there already (owner-only files, see [`crate::secrets`]).
pub fn ensure_key_pair(private_path: &Path, public_path: &Path) -> anyhow::Result<()> {
    if private_path.exists() && public_path.exists() {
        return Ok(());
    }
    let (private, public) = generate_key_pair()?;
    crate::secrets::write_new(private_path, private.as_bytes())?;
    crate::secrets::write_new(public_path, public.as_bytes())?;
    Ok(())
}

/// Writes a private key unless one is there already (the service key, whose public half is
/// derived from it).
pub fn ensure_private_key(path: &Path) -> anyhow::Result<()> {
    let (private, _) = generate_key_pair()?;
    crate::secrets::ensure(path, || private.into_bytes())
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
            Err(Error::Unauthenticated { .. })
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
            Err(Error::Unauthenticated { .. })
        ));
    }

    #[test]
    fn garbage_is_refused() {
        let (_, verifier) = pair();
        assert!(matches!(
            verifier.verify("not.a.jwt"),
            Err(Error::Unauthenticated { .. })
        ));
    }

    fn claims(lifetime: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "ana".into(),
            tenant: None,
            roles: vec!["caseworker".into()],
            orgs: vec![],
            perms: vec![],
            iss: "caseway".into(),
            aud: "caseway".into(),
            iat: now,
            exp: now + lifetime,
            nbf: None,
            jti: None,
        }
    }

    fn refused(verifier: &TokenVerifier, token: &str) -> String {
        match verifier.verify(token) {
            Err(Error::Unauthenticated {
                description: reason,
                ..
            }) => reason,
            other => panic!("expected UNAUTHENTICATED, got {other:?}"),
        }
    }

    #[test]
    fn a_token_not_yet_valid_or_issued_in_the_future_is_refused() {
        let (issuer, verifier) = pair();
        let mut early = claims(3600);
        early.nbf = Some(early.iat + 600);
        refused(&verifier, &issuer.sign(early).unwrap());
        let mut future = claims(3600);
        future.iat += 600;
        future.exp += 600;
        assert!(refused(&verifier, &issuer.sign(future).unwrap()).contains("future"));
        // Within the allowed clock skew both pass.
        let mut skewed = claims(3600);
        skewed.nbf = Some(skewed.iat + 5);
        skewed.iat += 5;
        assert!(verifier.verify(&issuer.sign(skewed).unwrap()).is_ok());
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let (private, public) = generate_key_pair().unwrap();
        let issuer = TokenIssuer::from_pem(private.as_bytes(), "caseway", "caseway").unwrap();
        let settings =
            VerifierSettings::new("caseway", "caseway", std::time::Duration::from_secs(3600));
        let verifier =
            TokenVerifier::new(public.as_bytes(), None, &settings, Arc::default()).unwrap();
        assert!(verifier.verify(&issuer.sign(claims(3600)).unwrap()).is_ok());
        assert!(refused(&verifier, &issuer.sign(claims(3601)).unwrap()).contains("longer"));
        // A token with no issue time at all is not a token of ours.
        let mut value = serde_json::to_value(claims(60)).unwrap();
        value.as_object_mut().unwrap().remove("iat");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &value,
            &EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        refused(&verifier, &token);
    }

    #[test]
    fn service_identities_are_told_apart_by_their_key() {
        let (user_private, user_public) = generate_key_pair().unwrap();
        let (service_private, _) = generate_key_pair().unwrap();
        let service_public = public_key_of(&service_private).unwrap();
        let settings =
            VerifierSettings::new("caseway", "caseway", std::time::Duration::from_secs(3600));
        let verifier = TokenVerifier::new(
            user_public.as_bytes(),
            Some(service_public.as_bytes()),
            &settings,
            Arc::default(),
        )
        .unwrap();
        let identity =
            ServiceIdentity::from_pem(service_private.as_bytes(), "caseway", "caseway").unwrap();
        let tenant = TenantId::new();
        let bearer = identity.bearer("records", tenant, "x.y").unwrap();
        let token = bearer.to_str().unwrap().trim_start_matches("Bearer ");
        let principal = verifier.verify(token).unwrap();
        assert_eq!(principal.service.as_deref(), Some("records"));
        assert_eq!(principal.tenant_id, Some(tenant));
        assert!(principal.roles.is_empty() && principal.has_permission("x.y"));
        // A user token is a user's, even on a verifier that knows the service key.
        let user = TokenIssuer::from_pem(user_private.as_bytes(), "caseway", "caseway").unwrap();
        let principal = verifier.verify(&user.sign(claims(60)).unwrap()).unwrap();
        assert_eq!(principal.service, None);
        // The service key signs no user tokens: without the service header it is not trusted.
        let impostor =
            TokenIssuer::from_pem(service_private.as_bytes(), "caseway", "caseway").unwrap();
        refused(&verifier, &impostor.sign(claims(60)).unwrap());
        // And a verifier without the service key takes no service identity.
        let (_, plain) = pair();
        refused(&plain, token);
    }
}
