//! The tenancy service as the operator calls it: over its gRPC API (never the database), as a
//! platform administrator whose bearer token the hosting provider issues, each call under a
//! deadline.

use std::path::PathBuf;
use std::time::Duration;

use caseway_api::tenancy::v1 as pb;
use caseway_api::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use tonic::transport::Channel;

/// How long the tenancy service has to answer one call.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Where the operator's bearer token comes from.
#[derive(Clone, Debug)]
pub enum Token {
    /// A token given as is (tests, development).
    Static(String),
    /// A file read at every call, so a rotated secret is picked up without a restart.
    File(PathBuf),
}

/// Why a call to the tenancy service failed.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// Not reached, or it did not answer in time: worth retrying.
    #[error("the tenancy service is unreachable: {0}")]
    Unavailable(String),
    /// The spec is not a valid tenant (INVALID_ARGUMENT, FAILED_PRECONDITION): retrying the
    /// same spec will not help.
    #[error("the tenancy service refused the spec: {0}")]
    Invalid(String),
    /// What was to be created exists (ALREADY_EXISTS).
    #[error("the tenancy service has it already: {0}")]
    Exists(String),
    /// Anything else the service answered (refused credentials included).
    #[error("the tenancy service failed: {0}")]
    Failed(String),
}

impl TenancyError {
    fn of(status: tonic::Status) -> TenancyError {
        use tonic::Code::*;
        let message = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Unavailable | DeadlineExceeded | Cancelled => TenancyError::Unavailable(message),
            InvalidArgument | FailedPrecondition => TenancyError::Invalid(message),
            AlreadyExists => TenancyError::Exists(message),
            _ => TenancyError::Failed(message),
        }
    }

    /// The condition reason it is reported under.
    pub fn reason(&self) -> &'static str {
        match self {
            TenancyError::Unavailable(_) => "TenancyUnavailable",
            TenancyError::Invalid(_) | TenancyError::Exists(_) => "InvalidSpec",
            TenancyError::Failed(_) => "TenancyFailed",
        }
    }
}

#[derive(Clone)]
pub struct Tenancy {
    client: TenancyServiceClient<Channel>,
    token: Token,
}

type Result<T> = std::result::Result<T, TenancyError>;

impl Tenancy {
    /// A client of the tenancy service at `endpoint`, connected on first use; over TLS when
    /// the endpoint is `https://`, checked against `ca_file` (PEM) or the system's roots.
    pub fn new(
        endpoint: &str,
        token: Token,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Tenancy> {
        let mut target = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(DEADLINE);
        if endpoint.starts_with("https://") {
            let tls = match ca_file {
                Some(path) => tonic::transport::ClientTlsConfig::new().ca_certificate(
                    tonic::transport::Certificate::from_pem(std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("reading the CA file {}: {e}", path.display())
                    })?),
                ),
                None => tonic::transport::ClientTlsConfig::new().with_native_roots(),
            };
            target = target.tls_config(tls)?;
        } else if ca_file.is_some() {
            anyhow::bail!("a CA file is given for {endpoint}, which is not https://");
        }
        let channel = target.connect_lazy();
        Ok(Tenancy {
            client: TenancyServiceClient::new(channel),
            token,
        })
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let token = match &self.token {
            Token::Static(token) => token.clone(),
            Token::File(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    TenancyError::Failed(format!("reading the token {}: {e}", path.display()))
                })?
                .trim()
                .to_string(),
        };
        let mut request = tonic::Request::new(message);
        request.set_timeout(DEADLINE);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| TenancyError::Failed("the token is not a header value".into()))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// Runs one call, bounded by [`DEADLINE`] even when the peer never answers.
    async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(DEADLINE, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(TenancyError::of(status)),
            Err(_) => Err(TenancyError::Unavailable(format!(
                "no answer within {} s",
                DEADLINE.as_secs()
            ))),
        }
    }

    /// The tenant of `slug`, if there is one.
    pub async fn find(&self, slug: &str) -> Result<Option<pb::Tenant>> {
        let request = self.request(pb::ListTenantsRequest {
            slug: slug.to_string(),
            page_size: 1,
            ..Default::default()
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.list_tenants(request)).await?;
        Ok(reply.tenants.into_iter().find(|t| t.slug == slug))
    }

    /// The tenant of `id`, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<pb::Tenant>> {
        let request = self.request(pb::GetTenantRequest { id: id.to_string() })?;
        let mut client = self.client.clone();
        match self.call(client.get_tenant(request)).await {
            Ok(reply) => Ok(reply.tenant),
            Err(TenancyError::Failed(message)) if message.starts_with("NotFound") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Creates a tenant; `request_id` makes a retry return the first answer.
    pub async fn create(
        &self,
        request_id: &str,
        slug: &str,
        display_name: &str,
    ) -> Result<pb::Tenant> {
        let request = self.request(pb::CreateTenantRequest {
            request_id: request_id.to_string(),
            tenant: Some(pb::Tenant {
                slug: slug.to_string(),
                display_name: display_name.to_string(),
                ..Default::default()
            }),
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.create_tenant(request)).await?;
        reply
            .tenant
            .ok_or_else(|| TenancyError::Failed("CreateTenant answered no tenant".into()))
    }

    /// Sets a tenant's display name and limits, if it is still at `etag`.
    pub async fn update(
        &self,
        current: &pb::Tenant,
        display_name: &str,
        calls_per_second: i32,
    ) -> Result<pb::Tenant> {
        let request = self.request(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                id: current.id.clone(),
                etag: current.etag.clone(),
                display_name: display_name.to_string(),
                limits: Some(pb::TenantLimits { calls_per_second }),
                ..Default::default()
            }),
            update_mask: Some(field_mask(&["display_name", "limits"])),
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.update_tenant(request)).await?;
        reply
            .tenant
            .ok_or_else(|| TenancyError::Failed("UpdateTenant answered no tenant".into()))
    }

    pub async fn suspend(&self, id: &str, reason: &str, request_id: &str) -> Result<pb::Tenant> {
        let request = self.request(pb::SuspendTenantRequest {
            id: id.to_string(),
            reason: reason.to_string(),
            request_id: request_id.to_string(),
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.suspend_tenant(request)).await?;
        reply
            .tenant
            .ok_or_else(|| TenancyError::Failed("SuspendTenant answered no tenant".into()))
    }

    pub async fn resume(&self, id: &str, request_id: &str) -> Result<pb::Tenant> {
        let request = self.request(pb::ResumeTenantRequest {
            id: id.to_string(),
            request_id: request_id.to_string(),
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.resume_tenant(request)).await?;
        reply
            .tenant
            .ok_or_else(|| TenancyError::Failed("ResumeTenant answered no tenant".into()))
    }

    /// Every security organization of the tenant.
    pub async fn organizations(&self, tenant_id: &str) -> Result<Vec<pb::Organization>> {
        let mut organizations = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.request(pb::ListOrganizationsRequest {
                page_size: 500,
                page_token: page_token.clone(),
                tenant_id: tenant_id.to_string(),
            })?;
            let mut client = self.client.clone();
            let reply = self.call(client.list_organizations(request)).await?;
            organizations.extend(reply.organizations);
            if reply.next_page_token.is_empty() {
                return Ok(organizations);
            }
            page_token = reply.next_page_token;
        }
    }

    /// Creates an organization; None when its code is taken already (a create whose answer was
    /// lost, or a tenant administrator's): the next pass reads it like any other. The code's
    /// uniqueness is what makes a retry safe, so no request id is sent (one would replay a
    /// create of an organization deleted since).
    pub async fn create_organization(
        &self,
        tenant_id: &str,
        code: &str,
        name: &str,
    ) -> Result<Option<pb::Organization>> {
        let request = self.request(pb::CreateOrganizationRequest {
            request_id: String::new(),
            organization: Some(pb::Organization {
                code: code.to_string(),
                name: name.to_string(),
                ..Default::default()
            }),
            tenant_id: tenant_id.to_string(),
        })?;
        let mut client = self.client.clone();
        match self.call(client.create_organization(request)).await {
            Ok(reply) => Ok(reply.organization),
            Err(TenancyError::Exists(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Renames an organization, if it is still at its etag.
    pub async fn rename_organization(
        &self,
        tenant_id: &str,
        current: &pb::Organization,
        name: &str,
    ) -> Result<pb::Organization> {
        let request = self.request(pb::UpdateOrganizationRequest {
            organization: Some(pb::Organization {
                id: current.id.clone(),
                etag: current.etag.clone(),
                name: name.to_string(),
                ..Default::default()
            }),
            update_mask: Some(field_mask(&["name"])),
            tenant_id: tenant_id.to_string(),
        })?;
        let mut client = self.client.clone();
        let reply = self.call(client.update_organization(request)).await?;
        reply
            .organization
            .ok_or_else(|| TenancyError::Failed("UpdateOrganization answered none".into()))
    }
}

fn field_mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}
