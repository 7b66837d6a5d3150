//! TLS of the gRPC server and of calls to other services. With a certificate configured the
//! server speaks TLS only; with a client CA too, internal services take calls only over
//! connections that presented a certificate that CA signed (mutual TLS), while public ones
//! take any. Calls to other services use TLS for `https://` endpoints, checking their
//! certificates against `CASEWAY_PEER_TLS_CA_FILE` (or the system's roots) and presenting this
//! node's certificate, so a deployment without a mesh still encrypts and authenticates its
//! traffic.
//!
//! An HTTP/2 connection carries every call for as long as it lives, so a ClusterIP Service
//! would pin a caller to one pod. A peer named by a DNS name (a headless Service) is called
//! over a channel balanced across the addresses the name resolves to, resolved again every
//! few seconds, so calls spread over every replica and follow them as they come and go.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tonic::transport::channel::Change;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig, Uri,
};

use crate::config::Config;

/// How often a peer's name is resolved again for its addresses.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Resolves a host and port to the addresses to call.
pub type Resolve =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The system's resolver (in a cluster, a headless Service's name gives every ready pod).
pub fn system_resolver() -> Resolve {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

fn read(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// This node's certificate and key, when both are configured.
fn identity(config: &Config) -> anyhow::Result<Option<Identity>> {
    match (&config.grpc_tls_cert_file, &config.grpc_tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(
            read(cert, "the gRPC certificate")?,
            read(key, "the gRPC key")?,
        ))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "CASEWAY_GRPC_TLS_CERT_FILE and CASEWAY_GRPC_TLS_KEY_FILE go together: set both or neither"
        ),
    }
}

/// The server's TLS, if a certificate is configured.
pub fn server(config: &Config) -> anyhow::Result<Option<ServerTlsConfig>> {
    let Some(identity) = identity(config)? else {
        anyhow::ensure!(
            config.grpc_tls_client_ca_file.is_none(),
            "CASEWAY_GRPC_TLS_CLIENT_CA_FILE needs the server's own certificate and key"
        );
        return Ok(None);
    };
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.grpc_tls_client_ca_file {
        // Optional at the handshake: public services take callers without certificates; the
        // gateway layer asks for one on internal services.
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca, "the client CA")?))
            .client_auth_optional(true);
    }
    Ok(Some(tls))
}

/// Whether internal services require a client certificate.
pub fn requires_client_certificates(config: &Config) -> bool {
    config.grpc_tls_client_ca_file.is_some()
}

/// The endpoint at which a node reaches its own services: over TLS when it serves TLS (its
/// certificate must then name `localhost`).
pub fn own_endpoint(config: &Config, port: u16) -> String {
    if config.grpc_tls_cert_file.is_some() {
        format!("https://localhost:{port}")
    } else {
        format!("http://127.0.0.1:{port}")
    }
}

/// Channels to other services, over TLS for `https://` endpoints.
#[derive(Clone)]
pub struct Peers {
    tls: ClientTlsConfig,
}

impl Peers {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut tls = match &config.peer_tls_ca_file {
            Some(ca) => ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca, "the peer CA")?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some(identity) = identity(config)? {
            tls = tls.identity(identity);
        }
        Ok(Peers { tls })
    }

    /// A channel to `endpoint`, connected on first use (so a node starts while its peers are
    /// still coming up): balanced over the addresses of its name when it names a host by DNS,
    /// one connection when it names an address or `localhost`.
    pub fn channel(&self, endpoint: &str) -> anyhow::Result<Channel> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("the endpoint {endpoint}"))?;
        let host = uri.host().unwrap_or_default();
        let literal = host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok();
        if literal || host == "localhost" {
            let mut target = Endpoint::from_shared(endpoint.to_string())
                .with_context(|| format!("the endpoint {endpoint}"))?;
            if endpoint.starts_with("https://") {
                target = target.tls_config(self.tls.clone())?;
            }
            return Ok(target.connect_lazy());
        }
        self.balanced(endpoint, system_resolver())
    }

    /// A channel balanced over the addresses `resolve` gives for `endpoint`'s host, kept up to
    /// date every [`RESOLVE_EVERY`] until the channel is dropped. A failed or empty answer
    /// keeps the addresses known, so a DNS blip drops no replica; TLS checks each address's
    /// certificate against the endpoint's host name.
    pub fn balanced(&self, endpoint: &str, resolve: Resolve) -> anyhow::Result<Channel> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("the endpoint {endpoint}"))?;
        let host = uri
            .host()
            .with_context(|| format!("the endpoint {endpoint} names no host"))?
            .to_string();
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let scheme = if tls { "https" } else { "http" };
        let tls_config = self.tls.clone().domain_name(host.clone());
        let at = move |addr: SocketAddr| -> anyhow::Result<Endpoint> {
            let target = Endpoint::from_shared(format!("{scheme}://{addr}"))?;
            Ok(if tls {
                target.tls_config(tls_config.clone())?
            } else {
                target
            })
        };
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        tokio::spawn(async move {
            let mut known = BTreeSet::new();
            let mut warned = false;
            while !changes.is_closed() {
                match resolve(host.clone(), port).await {
                    Ok(found) if !found.is_empty() => {
                        warned = false;
                        let found: BTreeSet<SocketAddr> = found.into_iter().collect();
                        for gone in known.difference(&found) {
                            if changes.send(Change::Remove(*gone)).await.is_err() {
                                return;
                            }
                        }
                        for new in found.difference(&known) {
                            let endpoint = match at(*new) {
                                Ok(endpoint) => endpoint,
                                Err(error) => {
                                    tracing::warn!(%host, %new, %error, "cannot call a peer's address");
                                    continue;
                                }
                            };
                            if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                                return;
                            }
                        }
                        known = found;
                    }
                    answer => {
                        if !warned {
                            let error = answer.err().map(|e| e.to_string());
                            tracing::warn!(%host, ?error, "a peer's name gave no address; keeping those known");
                            warned = true;
                        }
                    }
                }
                tokio::time::sleep(RESOLVE_EVERY).await;
            }
        });
        Ok(channel)
    }
}
