//! Typed configuration, loaded in layers: defaults that reach the local servers, then an
//! optional TOML file (`CASEWAY_CONFIG_FILE`), then `CASEWAY_*` environment variables. All
//! environment parsing lives in this file. Secrets come from files, and `Debug` never prints them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the gRPC server listens (`CASEWAY_GRPC_LISTEN`).
    pub grpc_listen: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`CASEWAY_METRICS_LISTEN`).
    pub metrics_listen: SocketAddr,
    /// The largest request message the server decodes, in bytes
    /// (`CASEWAY_GRPC_MAX_MESSAGE_BYTES`); a larger one is refused OUT_OF_RANGE.
    pub grpc_max_message_bytes: usize,
    /// Concurrent calls (HTTP/2 streams) one connection may have open
    /// (`CASEWAY_GRPC_MAX_CONCURRENT_STREAMS`).
    pub grpc_max_concurrent_streams: u32,
    /// The largest header list (metadata) a call may send, in bytes
    /// (`CASEWAY_GRPC_MAX_HEADER_BYTES`).
    pub grpc_max_header_bytes: u32,
    /// The longest a call may run, whatever deadline the caller set; past it the call ends
    /// DEADLINE_EXCEEDED. A caller's earlier deadline (its `grpc-timeout`) ends it sooner, and
    /// bounds the calls made to other services for it (`CASEWAY_GRPC_MAX_CALL_SECONDS`).
    #[serde(with = "seconds")]
    pub grpc_max_call_duration: Duration,
    /// PEM certificate chain the gRPC server presents; with the key, the server speaks TLS
    /// only (`CASEWAY_GRPC_TLS_CERT_FILE`). It also identifies this node when it calls other
    /// services over TLS, so it should allow client authentication too, and name `localhost`
    /// for a node to call itself.
    pub grpc_tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (`CASEWAY_GRPC_TLS_KEY_FILE`).
    pub grpc_tls_key_file: Option<PathBuf>,
    /// PEM certificate authorities client certificates are checked against: with it, the
    /// internal services take calls only over connections that presented a certificate it
    /// signed (mutual TLS); public services need none (`CASEWAY_GRPC_TLS_CLIENT_CA_FILE`).
    pub grpc_tls_client_ca_file: Option<PathBuf>,
    /// PEM certificate authorities the certificates of other services (`https://` endpoints)
    /// are checked against, instead of the system's (`CASEWAY_PEER_TLS_CA_FILE`).
    pub peer_tls_ca_file: Option<PathBuf>,
    /// Connection for the services: a role that owns no table and has no BYPASSRLS
    /// (`CASEWAY_DATABASE_URL`).
    pub database_url: String,
    /// Connection of the schema owner, used only by `caseway migrate` (`CASEWAY_MIGRATION_DATABASE_URL`).
    pub migration_database_url: String,
    /// File holding the password `caseway migrate` gives the services' role, `caseway_app`
    /// (`CASEWAY_APP_ROLE_PASSWORD_FILE`); unset leaves the role as it is, which logs in only
    /// where PostgreSQL trusts it.
    pub app_role_password_file: Option<PathBuf>,
    /// Pool size per process (`CASEWAY_DATABASE_MAX_CONNECTIONS`); the outbox relay's
    /// notification listener holds one connection more.
    pub database_max_connections: u32,
    /// Connections of the pool one tenant's calls may hold at once, so a tenant of slow calls
    /// leaves the rest to the others; 0 for no cap, otherwise at least 4
    /// (`CASEWAY_TENANT_MAX_CONNECTIONS`). Keep it below `CASEWAY_DATABASE_MAX_CONNECTIONS`.
    pub tenant_max_connections: u32,
    /// `CASEWAY_REDIS_URL`; `rediss://` connects over TLS.
    pub redis_url: String,
    /// PEM file of the certificate authorities a `rediss://` server's certificate is checked
    /// against, instead of the system's (`CASEWAY_REDIS_CA_FILE`).
    pub redis_ca_file: Option<PathBuf>,
    /// Calls per second each tenant may make, across every replica; 0 for no limit
    /// (`CASEWAY_TENANT_RATE_LIMIT`).
    pub tenant_rate_limit: u32,
    /// Whole-SSN searches that find no one a user may make per hour, across every replica;
    /// past it, RESOURCE_EXHAUSTED until the hour ends (`CASEWAY_SSN_SEARCH_MISSES_PER_HOUR`).
    pub ssn_search_misses_per_hour: u32,
    /// `CASEWAY_AMQP_URL`; `amqps://` connects over TLS. Connections propose 8 KiB frames unless
    /// the URL names a `frame_max`.
    pub amqp_url: String,
    /// PEM certificate authorities an `amqps://` broker's certificate is checked against,
    /// instead of the system's (`CASEWAY_AMQP_CA_FILE`).
    pub amqp_ca_file: Option<PathBuf>,
    /// The topic exchange events go to (`CASEWAY_EVENTS_EXCHANGE`).
    pub events_exchange: String,
    /// PEM file of the Ed25519 public key tokens are verified with (`CASEWAY_JWT_PUBLIC_KEY_FILE`).
    pub jwt_public_key_file: PathBuf,
    /// PEM file of the private key user tokens are signed with; only `caseway token` and
    /// `caseway dev` read it, and serving nodes need not hold it (`CASEWAY_JWT_PRIVATE_KEY_FILE`).
    pub jwt_private_key_file: PathBuf,
    /// The longest lifetime (`exp - iat`) a token may have; longer ones are refused
    /// (`CASEWAY_JWT_MAX_LIFETIME_SECONDS`).
    #[serde(with = "seconds")]
    pub jwt_max_lifetime: Duration,
    /// PEM file of the Ed25519 private key services sign their own identity tokens with for
    /// internal calls; its public half verifies them. Every serving node holds it; it cannot
    /// sign user tokens (`CASEWAY_SERVICE_KEY_FILE`).
    pub service_key_file: PathBuf,
    /// Expected `iss` claim (`CASEWAY_JWT_ISSUER`).
    pub jwt_issuer: String,
    /// Expected `aud` claim (`CASEWAY_JWT_AUDIENCE`).
    pub jwt_audience: String,
    /// Keys that protect personal identifiers (`CASEWAY_PII_KEYS_FILE`); see `pii.rs`.
    pub pii_keys_file: PathBuf,
    /// Where each tenant's own PII key is kept, wrapped by the deployment's
    /// (`CASEWAY_PII_TENANT_KEYS`): empty for a folder `tenant-keys` in the data folder,
    /// `file:///a/folder`, or `s3://bucket/prefix` (configured by the standard `AWS_*`
    /// variables). Outside the database, so a restored backup of it cannot open the SSNs of a
    /// purged tenant, whose key the purge destroys; every replica must share it.
    pub pii_tenant_keys: String,
    /// Where the HUD HMIS CSV exports' files are kept until downloaded (`CASEWAY_HMIS_EXPORTS`):
    /// empty for a folder `hmis-exports` in the data folder, `file:///a/folder`, or
    /// `s3://bucket/prefix`; every replica serving hmis must share it.
    pub hmis_exports: String,
    /// File holding the secret (at least 32 bytes) that signs page tokens, the same on every
    /// replica (`CASEWAY_PAGE_TOKEN_SECRET_FILE`). Required to serve; `caseway dev` writes one.
    pub page_token_secret_file: Option<PathBuf>,
    /// Local data folder for `caseway dev` (`CASEWAY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// OTLP/gRPC collector (`CASEWAY_OTLP_ENDPOINT`); when unset, the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, and no export
    /// without any; `https://` exports over TLS.
    pub otlp_endpoint: Option<String>,
    /// PEM certificate authorities an `https://` collector's certificate is checked against,
    /// instead of the system's (`CASEWAY_OTLP_CA_FILE`).
    pub otlp_ca_file: Option<PathBuf>,
    /// `json` or `text` (`CASEWAY_LOG_FORMAT`).
    pub log_format: String,
    /// Endpoint of the tenancy service for other services (`CASEWAY_TENANCY_ENDPOINT`); when
    /// unset, this process, which must then serve it (a process that does not refuses to start).
    pub tenancy_endpoint: Option<String>,
    /// Endpoint of the catalog service (`CASEWAY_CATALOG_ENDPOINT`); when unset, this process,
    /// which must then serve it.
    pub catalog_endpoint: Option<String>,
    /// Endpoint of the clients service (`CASEWAY_CLIENTS_ENDPOINT`); when unset, this process,
    /// which must then serve it.
    pub clients_endpoint: Option<String>,
    /// Endpoint of the authorizations service (`CASEWAY_AUTHORIZATIONS_ENDPOINT`); when unset,
    /// this process, which must then serve it.
    pub authorizations_endpoint: Option<String>,
    /// Endpoint of the records service (`CASEWAY_RECORDS_ENDPOINT`); when unset, this process,
    /// which must then serve it.
    pub records_endpoint: Option<String>,
    /// Endpoint of the eligibility service (`CASEWAY_ELIGIBILITY_ENDPOINT`), which records and
    /// authorizations ask where a rule is REQUIRED; when unset, this process, which must then
    /// serve it.
    pub eligibility_endpoint: Option<String>,
    /// The support desk's triage matrix (`CASEWAY_TICKETING_TIER_MATRIX`): comma-separated
    /// `criteria:tier` lines, the first a ticket matches giving its tier, each criterion
    /// `severity>=V`, `complexity>=V` or `priority>=V` (joined by `&`) or `*`; empty for the
    /// default of docs/ticketing.md.
    pub ticketing_tier_matrix: String,
    /// The support desk's service levels (`CASEWAY_TICKETING_SLA`): comma-separated
    /// `criteria:FIRST/RESOLUTION` lines, the first a ticket matches giving its targets, each
    /// criterion `tier>=N` or `priority>=V` (joined by `&`) or `*`, the targets durations
    /// (`30m`, `4h`, `2d`); empty for the default of docs/ticketing.md.
    pub ticketing_sla: String,
    /// The business hours the service levels count (`CASEWAY_TICKETING_SLA_CALENDAR`):
    /// `24x7` (or empty) or `DAYS HH:MM-HH:MM ZONE`, as `Mon-Fri 09:00-17:00 America/Chicago`.
    pub ticketing_sla_calendar: String,
    /// Days after which a resolved ticket that was not reopened closes
    /// (`CASEWAY_TICKETING_CLOSE_AFTER_DAYS`).
    pub ticketing_close_after_days: u32,
    /// How often one replica looks for run-out service levels and tickets to close
    /// (`CASEWAY_TICKETING_SWEEP_MILLIS`).
    #[serde(with = "millis")]
    pub ticketing_sweep_interval: Duration,
    /// How often one replica closes ended authorizations and looks for holds never settled
    /// (`CASEWAY_AUTHORIZATIONS_SWEEP_MILLIS`).
    #[serde(with = "millis")]
    pub authorizations_sweep_interval: Duration,
    /// How long a hold waits for its record's event before the records service is asked
    /// whether the record was ever stored (`CASEWAY_AUTHORIZATIONS_UNSETTLED_AFTER_SECONDS`).
    #[serde(with = "seconds")]
    pub authorizations_unsettled_after: Duration,
    /// Where attachments' images are kept (`CASEWAY_TICKETING_ATTACHMENTS`): empty for a
    /// folder `attachments` in the data folder, `file:///a/folder`, or `s3://bucket`.
    pub ticketing_attachments: String,
    /// The S3-compatible store's endpoint (`CASEWAY_TICKETING_ATTACHMENTS_S3_ENDPOINT`); empty
    /// for AWS.
    pub ticketing_attachments_s3_endpoint: String,
    /// Its region (`CASEWAY_TICKETING_ATTACHMENTS_S3_REGION`).
    pub ticketing_attachments_s3_region: String,
    /// Its access key id (`CASEWAY_TICKETING_ATTACHMENTS_S3_ACCESS_KEY_ID`).
    pub ticketing_attachments_s3_access_key_id: String,
    /// A file holding its secret access key
    /// (`CASEWAY_TICKETING_ATTACHMENTS_S3_SECRET_ACCESS_KEY_FILE`).
    pub ticketing_attachments_s3_secret_access_key_file: Option<PathBuf>,
    /// How long a tenant's status is trusted without an event (`CASEWAY_TENANT_STATUS_TTL_SECONDS`).
    #[serde(with = "seconds")]
    pub tenant_status_ttl: Duration,
    /// How often the outbox relay polls when no notification wakes it (`CASEWAY_OUTBOX_POLL_MILLIS`).
    #[serde(with = "millis")]
    pub outbox_poll_interval: Duration,
    /// Time between NOT_SERVING and closing the listener, for load balancers to notice
    /// (`CASEWAY_SHUTDOWN_DELAY_MILLIS`).
    #[serde(with = "millis")]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight calls and workers at shutdown (`CASEWAY_SHUTDOWN_GRACE_SECONDS`).
    #[serde(with = "seconds")]
    pub shutdown_grace: Duration,
}

/// The smallest cap on one tenant's connections (`CASEWAY_TENANT_MAX_CONNECTIONS`) other than
/// none: an HMIS export holds its snapshot, a progress report and a heartbeat at once, and a
/// tenant may run two exports.
pub const MIN_TENANT_CONNECTIONS: u32 = 4;

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_listen: "127.0.0.1:50051".parse().expect("valid address"),
            metrics_listen: "127.0.0.1:9464".parse().expect("valid address"),
            grpc_max_message_bytes: 4 * 1024 * 1024,
            grpc_max_concurrent_streams: 256,
            grpc_max_header_bytes: 16 * 1024,
            grpc_max_call_duration: Duration::from_secs(30),
            grpc_tls_cert_file: None,
            grpc_tls_key_file: None,
            grpc_tls_client_ca_file: None,
            peer_tls_ca_file: None,
            database_url: "postgres://caseway_app@127.0.0.1:5432/caseway".into(),
            migration_database_url: "postgres://postgres@127.0.0.1:5432/caseway".into(),
            app_role_password_file: None,
            database_max_connections: 16,
            tenant_max_connections: 8,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_ca_file: None,
            tenant_rate_limit: 2000,
            ssn_search_misses_per_hour: 20,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_ca_file: None,
            events_exchange: "caseway.events".into(),
            jwt_public_key_file: PathBuf::from(".caseway/jwt-public.pem"),
            jwt_private_key_file: PathBuf::from(".caseway/jwt-private.pem"),
            jwt_max_lifetime: Duration::from_secs(crate::auth::DEFAULT_MAX_LIFETIME_SECONDS),
            service_key_file: PathBuf::from(".caseway/service-key.pem"),
            jwt_issuer: "caseway".into(),
            jwt_audience: "caseway".into(),
            pii_keys_file: PathBuf::from(".caseway/pii-keys"),
            pii_tenant_keys: String::new(),
            hmis_exports: String::new(),
            page_token_secret_file: None,
            data_dir: PathBuf::from(".caseway"),
            otlp_endpoint: None,
            otlp_ca_file: None,
            log_format: "text".into(),
            tenancy_endpoint: None,
            catalog_endpoint: None,
            clients_endpoint: None,
            authorizations_endpoint: None,
            eligibility_endpoint: None,
            records_endpoint: None,
            ticketing_tier_matrix: String::new(),
            ticketing_sla: String::new(),
            ticketing_sla_calendar: String::new(),
            ticketing_close_after_days: 7,
            ticketing_sweep_interval: Duration::from_secs(30),
            authorizations_sweep_interval: Duration::from_secs(300),
            authorizations_unsettled_after: Duration::from_secs(600),
            ticketing_attachments: String::new(),
            ticketing_attachments_s3_endpoint: String::new(),
            ticketing_attachments_s3_region: "us-east-1".into(),
            ticketing_attachments_s3_access_key_id: String::new(),
            ticketing_attachments_s3_secret_access_key_file: None,
            tenant_status_ttl: Duration::from_secs(30),
            outbox_poll_interval: Duration::from_millis(1000),
            shutdown_delay: Duration::from_millis(0),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("grpc_listen", &self.grpc_listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("events_exchange", &self.events_exchange)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a connection URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Defaults, then the file named by `CASEWAY_CONFIG_FILE`, then `CASEWAY_*` variables.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(|name| std::env::var(name).ok())
    }

    pub fn load_from(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut config = match env("CASEWAY_CONFIG_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading config file {path}"))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {path}"))?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        if (1..MIN_TENANT_CONNECTIONS).contains(&config.tenant_max_connections) {
            anyhow::bail!(
                "CASEWAY_TENANT_MAX_CONNECTIONS is {}: it must be 0 (no cap) or at least \
                 {MIN_TENANT_CONNECTIONS}, since an HMIS export holds up to three of its tenant's \
                 connections at once and a tenant may run two",
                config.tenant_max_connections
            );
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e| anyhow::anyhow!("{name}: {e}"))
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(v) = var("CASEWAY_GRPC_LISTEN") {
            self.grpc_listen = parse("CASEWAY_GRPC_LISTEN", &v)?;
        }
        if let Some(v) = var("CASEWAY_METRICS_LISTEN") {
            self.metrics_listen = parse("CASEWAY_METRICS_LISTEN", &v)?;
        }
        if let Some(v) = var("CASEWAY_GRPC_MAX_MESSAGE_BYTES") {
            self.grpc_max_message_bytes = parse("CASEWAY_GRPC_MAX_MESSAGE_BYTES", &v)?;
        }
        if let Some(v) = var("CASEWAY_GRPC_MAX_CONCURRENT_STREAMS") {
            self.grpc_max_concurrent_streams = parse("CASEWAY_GRPC_MAX_CONCURRENT_STREAMS", &v)?;
        }
        if let Some(v) = var("CASEWAY_GRPC_MAX_HEADER_BYTES") {
            self.grpc_max_header_bytes = parse("CASEWAY_GRPC_MAX_HEADER_BYTES", &v)?;
        }
        if let Some(v) = var("CASEWAY_GRPC_MAX_CALL_SECONDS") {
            self.grpc_max_call_duration =
                Duration::from_secs(parse("CASEWAY_GRPC_MAX_CALL_SECONDS", &v)?);
        }
        for (name, field) in [
            ("CASEWAY_GRPC_TLS_CERT_FILE", &mut self.grpc_tls_cert_file),
            ("CASEWAY_GRPC_TLS_KEY_FILE", &mut self.grpc_tls_key_file),
            (
                "CASEWAY_GRPC_TLS_CLIENT_CA_FILE",
                &mut self.grpc_tls_client_ca_file,
            ),
            ("CASEWAY_PEER_TLS_CA_FILE", &mut self.peer_tls_ca_file),
            ("CASEWAY_AMQP_CA_FILE", &mut self.amqp_ca_file),
            ("CASEWAY_OTLP_CA_FILE", &mut self.otlp_ca_file),
        ] {
            if let Some(v) = var(name) {
                *field = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = var("CASEWAY_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("CASEWAY_MIGRATION_DATABASE_URL") {
            self.migration_database_url = v;
        }
        if let Some(v) = var("CASEWAY_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = parse("CASEWAY_DATABASE_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = var("CASEWAY_TENANT_MAX_CONNECTIONS") {
            self.tenant_max_connections = parse("CASEWAY_TENANT_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = var("CASEWAY_REDIS_URL") {
            self.redis_url = v;
        }
        if let Some(v) = var("CASEWAY_REDIS_CA_FILE") {
            self.redis_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CASEWAY_TENANT_RATE_LIMIT") {
            self.tenant_rate_limit = parse("CASEWAY_TENANT_RATE_LIMIT", &v)?;
        }
        if let Some(v) = var("CASEWAY_SSN_SEARCH_MISSES_PER_HOUR") {
            self.ssn_search_misses_per_hour = parse("CASEWAY_SSN_SEARCH_MISSES_PER_HOUR", &v)?;
        }
        if let Some(v) = var("CASEWAY_AMQP_URL") {
            self.amqp_url = v;
        }
        if let Some(v) = var("CASEWAY_EVENTS_EXCHANGE") {
            self.events_exchange = v;
        }
        if let Some(v) = var("CASEWAY_DATA_DIR") {
            self.data_dir = PathBuf::from(&v);
            self.jwt_public_key_file = self.data_dir.join("jwt-public.pem");
            self.jwt_private_key_file = self.data_dir.join("jwt-private.pem");
            self.pii_keys_file = self.data_dir.join("pii-keys");
            self.service_key_file = self.data_dir.join("service-key.pem");
        }
        if let Some(v) = var("CASEWAY_PII_KEYS_FILE") {
            self.pii_keys_file = PathBuf::from(v);
        }
        if let Some(v) = var("CASEWAY_JWT_PUBLIC_KEY_FILE") {
            self.jwt_public_key_file = PathBuf::from(v);
        }
        if let Some(v) = var("CASEWAY_JWT_PRIVATE_KEY_FILE") {
            self.jwt_private_key_file = PathBuf::from(v);
        }
        if let Some(v) = var("CASEWAY_JWT_MAX_LIFETIME_SECONDS") {
            self.jwt_max_lifetime =
                Duration::from_secs(parse("CASEWAY_JWT_MAX_LIFETIME_SECONDS", &v)?);
        }
        if let Some(v) = var("CASEWAY_SERVICE_KEY_FILE") {
            self.service_key_file = PathBuf::from(v);
        }
        if let Some(v) = var("CASEWAY_JWT_ISSUER") {
            self.jwt_issuer = v;
        }
        if let Some(v) = var("CASEWAY_JWT_AUDIENCE") {
            self.jwt_audience = v;
        }
        if let Some(v) = var("CASEWAY_APP_ROLE_PASSWORD_FILE") {
            self.app_role_password_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CASEWAY_PAGE_TOKEN_SECRET_FILE") {
            self.page_token_secret_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CASEWAY_OTLP_ENDPOINT") {
            self.otlp_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_LOG_FORMAT") {
            self.log_format = v;
        }
        if let Some(v) = var("CASEWAY_TENANCY_ENDPOINT") {
            self.tenancy_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_CATALOG_ENDPOINT") {
            self.catalog_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_CLIENTS_ENDPOINT") {
            self.clients_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_AUTHORIZATIONS_ENDPOINT") {
            self.authorizations_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_RECORDS_ENDPOINT") {
            self.records_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_ELIGIBILITY_ENDPOINT") {
            self.eligibility_endpoint = Some(v);
        }
        if let Some(v) = var("CASEWAY_TICKETING_TIER_MATRIX") {
            self.ticketing_tier_matrix = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_SLA") {
            self.ticketing_sla = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_SLA_CALENDAR") {
            self.ticketing_sla_calendar = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_CLOSE_AFTER_DAYS") {
            self.ticketing_close_after_days = parse("CASEWAY_TICKETING_CLOSE_AFTER_DAYS", &v)?;
        }
        if let Some(v) = var("CASEWAY_PII_TENANT_KEYS") {
            self.pii_tenant_keys = v;
        }
        if let Some(v) = var("CASEWAY_HMIS_EXPORTS") {
            self.hmis_exports = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_ATTACHMENTS") {
            self.ticketing_attachments = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_ATTACHMENTS_S3_ENDPOINT") {
            self.ticketing_attachments_s3_endpoint = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_ATTACHMENTS_S3_REGION") {
            self.ticketing_attachments_s3_region = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_ATTACHMENTS_S3_ACCESS_KEY_ID") {
            self.ticketing_attachments_s3_access_key_id = v;
        }
        if let Some(v) = var("CASEWAY_TICKETING_ATTACHMENTS_S3_SECRET_ACCESS_KEY_FILE") {
            self.ticketing_attachments_s3_secret_access_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CASEWAY_TICKETING_SWEEP_MILLIS") {
            self.ticketing_sweep_interval =
                Duration::from_millis(parse("CASEWAY_TICKETING_SWEEP_MILLIS", &v)?);
        }
        if let Some(v) = var("CASEWAY_AUTHORIZATIONS_SWEEP_MILLIS") {
            self.authorizations_sweep_interval =
                Duration::from_millis(parse("CASEWAY_AUTHORIZATIONS_SWEEP_MILLIS", &v)?);
        }
        if let Some(v) = var("CASEWAY_AUTHORIZATIONS_UNSETTLED_AFTER_SECONDS") {
            self.authorizations_unsettled_after =
                Duration::from_secs(parse("CASEWAY_AUTHORIZATIONS_UNSETTLED_AFTER_SECONDS", &v)?);
        }
        if let Some(v) = var("CASEWAY_TENANT_STATUS_TTL_SECONDS") {
            self.tenant_status_ttl =
                Duration::from_secs(parse("CASEWAY_TENANT_STATUS_TTL_SECONDS", &v)?);
        }
        if let Some(v) = var("CASEWAY_OUTBOX_POLL_MILLIS") {
            self.outbox_poll_interval =
                Duration::from_millis(parse("CASEWAY_OUTBOX_POLL_MILLIS", &v)?);
        }
        if let Some(v) = var("CASEWAY_SHUTDOWN_DELAY_MILLIS") {
            self.shutdown_delay =
                Duration::from_millis(parse("CASEWAY_SHUTDOWN_DELAY_MILLIS", &v)?);
        }
        if let Some(v) = var("CASEWAY_SHUTDOWN_GRACE_SECONDS") {
            self.shutdown_grace = Duration::from_secs(parse("CASEWAY_SHUTDOWN_GRACE_SECONDS", &v)?);
        }
        Ok(())
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `docs/configuration.md`, written from this file: each setting's TOML key, its variable,
/// its default and its doc comment. `caseway config reference` prints it; a test fails when
/// the checked-in page differs.
pub fn reference() -> String {
    let source = include_str!("config.rs");
    let body = source
        .split_once("pub struct Config {")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(body, _)| body)
        .unwrap_or_default();
    let defaults = toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Integer(0));
    let mut page = String::from(
        "# Configuration\n\n\
         <!-- Written by `caseway config reference > docs/configuration.md` from the doc comments \
         of `services/platform/src/config.rs`; a test fails when this page differs. -->\n\n\
         Defaults reach the local servers; a TOML file named by `CASEWAY_CONFIG_FILE` overrides \
         them (its keys are the first column), and `CASEWAY_*` variables override both. \
         Secrets are read from files, never from the environment or the TOML itself; \
         `CASEWAY_LOG` filters the log (`info`, `caseway_records=debug`).\n\n\
         | key | variable | default | meaning |\n| --- | --- | --- | --- |\n",
    );
    let mut doc = Vec::new();
    for line in body.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim().to_string());
        } else if let Some(field) = line.strip_prefix("pub ") {
            let name = field.split(':').next().unwrap_or_default().trim();
            let meaning = doc.join(" ");
            let variable = meaning
                .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .find(|word| word.starts_with("CASEWAY_"))
                .unwrap_or("");
            let default = match defaults.get(name) {
                None => "unset".to_string(),
                Some(toml::Value::String(text)) if text.is_empty() => "empty".to_string(),
                Some(toml::Value::String(text)) => format!("`{text}`"),
                Some(value) => format!("`{value}`"),
            };
            // The variable has its own column.
            let meaning = meaning.replace(&format!(" (`{variable}`)"), "");
            let variable = if variable.is_empty() {
                String::new()
            } else {
                format!("`{variable}`")
            };
            page.push_str(&format!(
                "| `{name}` | {variable} | {default} | {} |\n",
                meaning.replace('|', "\\|")
            ));
            doc.clear();
        }
    }
    page.push_str(
        "\nOn SIGTERM a node reports NOT_SERVING, waits the shutdown delay, stops accepting, \
         drains in-flight calls, lets the relay publish what committed, then stops its workers.\n",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_page_is_written_from_this_file() {
        let checked_in = include_str!("../../../docs/configuration.md");
        assert!(
            checked_in == reference(),
            "docs/configuration.md differs from the doc comments of config.rs: \
             run `cargo run -p caseway -- config reference > docs/configuration.md`"
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = Config::load_from(|name| match name {
            "CASEWAY_GRPC_LISTEN" => Some("0.0.0.0:6000".into()),
            "CASEWAY_DATA_DIR" => Some("/srv/caseway".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.grpc_listen.port(), 6000);
        assert_eq!(
            config.jwt_public_key_file,
            PathBuf::from("/srv/caseway/jwt-public.pem")
        );
        assert_eq!(config.redis_url, Config::default().redis_url);
    }

    #[test]
    fn bad_environment_value_is_an_error_naming_the_variable() {
        let error = Config::load_from(|name| {
            (name == "CASEWAY_DATABASE_MAX_CONNECTIONS").then(|| "many".to_string())
        })
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("CASEWAY_DATABASE_MAX_CONNECTIONS")
        );
    }

    #[test]
    fn a_cap_on_a_tenants_connections_too_small_for_its_exports_is_refused() {
        let cap = |value: &str| {
            let value = value.to_string();
            Config::load_from(move |name| {
                (name == "CASEWAY_TENANT_MAX_CONNECTIONS").then(|| value.clone())
            })
        };
        for refused in ["1", "3"] {
            let error = cap(refused).unwrap_err().to_string();
            assert!(error.contains("CASEWAY_TENANT_MAX_CONNECTIONS"), "{error}");
        }
        assert_eq!(cap("0").unwrap().tenant_max_connections, 0);
        assert_eq!(cap("4").unwrap().tenant_max_connections, 4);
    }

    #[test]
    fn debug_output_hides_passwords() {
        let config = Config {
            database_url: "postgres://app:secret@db:5432/caseway".into(),
            ..Config::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("app:***@db"));
    }
}
