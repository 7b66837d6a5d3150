//! TLS of the gRPC server and of calls to other services. With a certificate configured the
//! server speaks TLS only; with a client CA too, internal services take calls only over
//! connections that presented a certificate that CA signed (mutual TLS), while public ones
//! take any. Calls to other services use TLS for `https://` endpoints, checking their
//! certificates against `CASEWAY_PEER_TLS_CA_FILE` (or the system's roots) and presenting this
//! node's certificate, so a deployment without a mesh still encrypts and authenticates its
//! traffic.

use anyhow::Context;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use crate::config::Config;

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
    /// still coming up).
    pub fn channel(&self, endpoint: &str) -> anyhow::Result<Channel> {
        let mut target = Endpoint::from_shared(endpoint.to_string())
            .with_context(|| format!("the endpoint {endpoint}"))?;
        if endpoint.starts_with("https://") {
            target = target.tls_config(self.tls.clone())?;
        }
        Ok(target.connect_lazy())
    }
}
