//! Whole-system test support: a Caseway node started in-process on an ephemeral port against
//! the real PostgreSQL (a fresh database) and RabbitMQ (a private exchange), called over real
//! gRPC as a gateway would.

pub mod population;
pub mod stalls;
pub mod tenants;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway::Target;
use caseway_api::authorizations::v1::authorizations_internal_service_client::AuthorizationsInternalServiceClient;
use caseway_api::authorizations::v1::authorizations_service_client::AuthorizationsServiceClient;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1::assessments_service_client::AssessmentsServiceClient;
use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::eligibility::v1::eligibility_service_client::EligibilityServiceClient;
use caseway_api::records::v1::records_service_client::RecordsServiceClient;
use caseway_api::tenancy::v1::tenancy_service_client::TenancyServiceClient;
use caseway_api::ticketing::v1::ticketing_service_client::TicketingServiceClient;
pub use caseway_fixtures::{Fixtures, criterion, date};
use caseway_platform::auth::{Role, ServiceIdentity, TokenIssuer, generate_key_pair};
use caseway_platform::server::RunningNode;
use caseway_platform::{Config, TenantId};
pub use caseway_test_support::authed;
use caseway_test_support::{TestBus, TestDb};

/// Keys and configuration shared by the nodes of one test.
pub struct TestEnv {
    pub db: TestDb,
    pub bus: TestBus,
    pub issuer: Arc<TokenIssuer>,
    /// The deployment's service identity, as a service of the node calls internal methods.
    pub services: Arc<ServiceIdentity>,
    dir: PathBuf,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        // Spans carry trace context into events, as in production (no export in tests).
        std::mem::forget(caseway_platform::telemetry::init(
            "caseway-test",
            &Config::default(),
        ));
        let db = TestDb::create(&caseway::migrators()).await;
        let dir = std::env::temp_dir().join(format!("caseway-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (private, public) = generate_key_pair().expect("key pair");
        std::fs::write(dir.join("jwt-private.pem"), &private).expect("private key");
        std::fs::write(dir.join("jwt-public.pem"), &public).expect("public key");
        caseway_clients::pii::ensure_key_file(&dir.join("pii-keys")).expect("PII keys");
        caseway_platform::auth::ensure_private_key(&dir.join("service-key.pem"))
            .expect("service key");
        caseway_platform::secrets::ensure_random(&dir.join("page-token-secret"))
            .expect("page token secret");
        let issuer =
            TokenIssuer::from_pem(private.as_bytes(), "caseway", "caseway").expect("issuer");
        let service_key = std::fs::read(dir.join("service-key.pem")).expect("service key");
        let services =
            ServiceIdentity::from_pem(&service_key, "caseway", "caseway").expect("service key");
        TestEnv {
            db,
            bus: TestBus::new(),
            issuer: Arc::new(issuer),
            services: Arc::new(services),
            dir,
        }
    }

    /// The configuration a node of this test runs with.
    pub fn config(&self) -> Config {
        Config {
            database_url: self.db.app_url.clone(),
            migration_database_url: self.db.owner_url.clone(),
            database_max_connections: 8,
            events_exchange: self.bus.exchange().to_string(),
            jwt_public_key_file: self.dir.join("jwt-public.pem"),
            jwt_private_key_file: self.dir.join("jwt-private.pem"),
            pii_keys_file: self.dir.join("pii-keys"),
            service_key_file: self.dir.join("service-key.pem"),
            page_token_secret_file: Some(self.dir.join("page-token-secret")),
            data_dir: self.dir.clone(),
            outbox_poll_interval: Duration::from_millis(250),
            shutdown_grace: Duration::from_secs(5),
            ..Config::default()
        }
    }

    /// Gathers the planner's statistics of every table of the test database, as autovacuum's
    /// analyze keeps them on a running deployment. A benchmark calls it once its data is in
    /// place: without statistics (a table never analyzed, as every table of a database a few
    /// seconds old is) the planner guesses a row or two a table, and a join over a few dozen
    /// rows can run as a nested loop scanning one side again for every row of the other.
    pub async fn analyze(&self) {
        let mut owner = self.db.owner().await;
        sqlx::query("ANALYZE")
            .execute(&mut owner)
            .await
            .expect("ANALYZE");
    }

    pub async fn start(&self, targets: &[Target]) -> TestNode {
        self.start_with(self.config(), targets).await
    }

    pub async fn start_with(&self, config: Config, targets: &[Target]) -> TestNode {
        // As the binary runs its node: without transparent huge pages.
        caseway::no_transparent_huge_pages();
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("grpc port");
        let metrics = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("metrics port");
        let config_tls = config.grpc_tls_cert_file.as_ref().map(|_| {
            config
                .peer_tls_ca_file
                .clone()
                .expect("a CA to check the node with")
        });
        let bus = caseway_platform::bus::Bus::new(&config.amqp_url, &config.events_exchange);
        // Every node follows the tenants' suspensions on a queue of its own: one more follower
        // than before this start is this node's.
        let suspensions = caseway_platform::tenant_status::TENANT_SUSPENDED;
        let followers = bus.followers_of(suspensions);
        let node = caseway::start(config, targets, grpc, metrics, CancellationToken::new())
            .await
            .expect("node starts");
        // A test's first changes come a moment after the start: wait until the durable
        // queues of the node's consumers are bound, so none of their events is missed (a
        // deployment's queues outlive its restarts).
        let consumers: Vec<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Authorizations => Some(caseway_authorizations::events::CONSUMER),
                Target::Eligibility => Some(caseway_eligibility::events::CONSUMER),
                _ => None,
            })
            .collect();
        caseway_test_support::eventually(
            "the consumers' queues bound",
            Duration::from_secs(10),
            || async {
                match consumers.iter().find(|c| !bus.is_bound(c)) {
                    Some(unbound) => Err(*unbound),
                    None if bus.followers_of(suspensions) <= followers => Err("tenant-status"),
                    None => Ok(()),
                }
            },
        )
        .await;
        let channel = match &config_tls {
            // A node serving TLS is called as a gateway would: over TLS, checking its
            // certificate, without a certificate of its own.
            Some(ca) => {
                Channel::from_shared(format!("https://localhost:{}", node.grpc_addr.port()))
                    .expect("endpoint")
                    .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(
                        tonic::transport::Certificate::from_pem(std::fs::read(ca).expect("CA")),
                    ))
                    .expect("TLS")
                    .connect()
                    .await
                    .expect("connects")
            }
            None => Channel::from_shared(format!("http://{}", node.grpc_addr))
                .expect("endpoint")
                .connect()
                .await
                .expect("connects"),
        };
        TestNode {
            catalog: CatalogServiceClient::new(channel.clone()),
            clients: ClientsServiceClient::new(channel.clone()),
            assessments: AssessmentsServiceClient::new(channel.clone()),
            barriers: BarriersServiceClient::new(channel.clone()),
            records: RecordsServiceClient::new(channel.clone()),
            authorizations: AuthorizationsServiceClient::new(channel.clone()),
            authorizations_internal: AuthorizationsInternalServiceClient::new(channel.clone()),
            eligibility: EligibilityServiceClient::new(channel.clone()),
            ticketing: TicketingServiceClient::new(channel.clone()),
            tenancy: TenancyServiceClient::new(channel.clone()),
            channel,
            node: Some(node),
        }
    }

    /// A service identity token: `service` calling, for `tenant`, a method needing
    /// `permission`.
    pub fn service_token(
        &self,
        service: &'static str,
        tenant: TenantId,
        permission: &'static str,
    ) -> String {
        let bearer = self
            .services
            .bearer(service, tenant, permission)
            .expect("service token");
        bearer
            .to_str()
            .expect("ascii")
            .trim_start_matches("Bearer ")
            .to_string()
    }

    /// A token of the support agent `subject`: the hosting provider's staff, bound to no
    /// tenant.
    pub fn support_token(&self, subject: &str) -> String {
        self.issuer
            .issue(
                subject,
                None,
                &[Role::SupportAgent],
                &[],
                chrono::Duration::hours(1),
            )
            .expect("token")
    }

    pub fn platform_admin_token(&self) -> String {
        self.issuer
            .issue(
                "root",
                None,
                &[Role::PlatformAdmin],
                &[],
                chrono::Duration::hours(1),
            )
            .expect("token")
    }

    pub fn token_with_permissions(
        &self,
        tenant: TenantId,
        roles: &[Role],
        orgs: &[Uuid],
        permissions: &[&str],
    ) -> String {
        self.issuer
            .issue_with_permissions(
                "user-1",
                Some(tenant),
                roles,
                orgs,
                permissions,
                chrono::Duration::hours(1),
            )
            .expect("token")
    }

    /// A token of the user `subject` (two people with the same roles differ by it).
    pub fn token_for(
        &self,
        subject: &str,
        tenant: TenantId,
        roles: &[Role],
        orgs: &[Uuid],
    ) -> String {
        self.issuer
            .issue(
                subject,
                Some(tenant),
                roles,
                orgs,
                chrono::Duration::hours(1),
            )
            .expect("token")
    }

    pub fn token(&self, tenant: TenantId, roles: &[Role], orgs: &[Uuid]) -> String {
        self.issuer
            .issue(
                "user-1",
                Some(tenant),
                roles,
                orgs,
                chrono::Duration::hours(1),
            )
            .expect("token")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct TestNode {
    pub catalog: CatalogServiceClient<Channel>,
    pub clients: ClientsServiceClient<Channel>,
    pub assessments: AssessmentsServiceClient<Channel>,
    pub barriers: BarriersServiceClient<Channel>,
    pub records: RecordsServiceClient<Channel>,
    pub authorizations: AuthorizationsServiceClient<Channel>,
    pub authorizations_internal: AuthorizationsInternalServiceClient<Channel>,
    pub eligibility: EligibilityServiceClient<Channel>,
    pub ticketing: TicketingServiceClient<Channel>,
    pub tenancy: TenancyServiceClient<Channel>,
    pub channel: Channel,
    node: Option<RunningNode>,
}

impl TestNode {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.node.as_ref().expect("running").grpc_addr
    }

    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.node.as_ref().expect("running").metrics_addr
    }

    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.expect("clean shutdown");
        }
    }

    /// The node's public API, called as the holder of `token`: the fixtures' way in.
    pub fn fixtures(&self, token: &str) -> Fixtures {
        Fixtures::new(self.channel.clone(), token).expect("a token is visible ASCII")
    }

    /// Creates a tenant through the API, as the hosting provider would.
    pub async fn create_tenant(&self, env: &TestEnv, slug: &str) -> TenantId {
        self.fixtures(&env.platform_admin_token())
            .tenant(slug, &format!("Tenant {slug}"))
            .await
            .expect("tenant created")
            .id
            .parse()
            .expect("uuid")
    }

    /// Creates a security organization as the tenant's administrator.
    pub async fn create_organization(&self, admin_token: &str, code: &str) -> Uuid {
        self.fixtures(admin_token)
            .organization(code, &format!("Organization {code}"))
            .await
            .expect("organization created")
            .parse()
            .expect("uuid")
    }

    /// A tenant with its administrator and two security organizations, NORTH and SOUTH: where
    /// every suite's own catalog and clients start.
    pub async fn test_tenant(&self, env: &TestEnv, slug: &str) -> TestTenant {
        let id = self.create_tenant(env, slug).await;
        let admin = env.token_for("admin", id, &[Role::TenantAdmin], &[]);
        let north = self.create_organization(&admin, "NORTH").await;
        let south = self.create_organization(&admin, "SOUTH").await;
        TestTenant {
            id,
            make: self.fixtures(&admin),
            admin,
            north,
            south,
        }
    }
}

/// A tenant made by [`TestNode::test_tenant`].
pub struct TestTenant {
    pub id: TenantId,
    /// The tenant administrator's token.
    pub admin: String,
    pub north: Uuid,
    pub south: Uuid,
    /// Fixtures made as the administrator; [`Fixtures::acting_as`] for anyone else.
    pub make: Fixtures,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(node) = self.node.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Stop the node's tasks; the test's runtime is going away anyway.
            runtime.spawn(async move {
                let _ = node.shutdown().await;
            });
        }
    }
}

/// An UpdateServiceRecord request that changes `record`'s fields named in `paths` (its id
/// says which record, its etag, when set, which version).
pub fn record_update(
    record: caseway_api::records::v1::ServiceRecord,
    paths: &[&str],
) -> caseway_api::records::v1::UpdateServiceRecordRequest {
    caseway_api::records::v1::UpdateServiceRecordRequest {
        record: Some(record),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    }
}

/// The rule a FAILED_PRECONDITION names (its `google.rpc.PreconditionFailure`'s type).
pub fn rule_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    status
        .get_details_precondition_failure()
        .expect("precondition details")
        .violations[0]
        .r#type
        .clone()
}

/// The field paths of an INVALID_ARGUMENT's `google.rpc.BadRequest`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A bulk row's `google.rpc.Status` as a call's status, to read its details the same way.
pub fn row_status(row: &tonic_types::Status) -> tonic::Status {
    tonic::Status::with_details(
        tonic::Code::from_i32(row.code),
        row.message.clone(),
        prost::Message::encode_to_vec(row).into(),
    )
}

/// The `reason` of a status's `google.rpc.ErrorInfo`, checking that Caseway sent it.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    assert_eq!(info.domain, caseway_api::ERROR_DOMAIN, "{status:?}");
    info.reason
}

/// Stores the first decision of the tenant's first stored check again as decisions were
/// stored before checks were stored whole: one to a row of `eligibility.decisions`, with its
/// own copy of the facts and its criteria's outcomes, under a new id (the owner writes past
/// row-level security). Gives the new id and the id the check names the decision by.
pub async fn store_as_a_decision_row(
    owner: &mut sqlx::PgConnection,
    tenant: TenantId,
) -> (Uuid, Uuid) {
    let (stored, check): (Uuid, Uuid) = sqlx::query_as(
        "WITH c AS (SELECT * FROM eligibility.checks WHERE tenant_id = $1 ORDER BY id LIMIT 1) \
         INSERT INTO eligibility.decisions (tenant_id, id, client_id, service_id, rule_id, \
           rule_version, as_of, outcome, results, facts, decided_by, decided_at, digest) \
         SELECT c.tenant_id, gen_random_uuid(), c.client_id, c.service_ids[1], c.rule_ids[1], \
           c.rule_versions[1], c.as_of, c.outcomes[1], c.results -> 0, f.facts, c.decided_by, \
           c.decided_at, c.digest \
         FROM c JOIN eligibility.fact_snapshots f \
           ON f.tenant_id = c.tenant_id AND f.digest = c.facts_digest \
         RETURNING id, (SELECT id FROM c)",
    )
    .bind(tenant.as_uuid())
    .fetch_one(owner)
    .await
    .expect("a check to store as a decision row");
    let mut first = *check.as_bytes();
    first[15] = 1;
    (stored, Uuid::from_bytes(first))
}

/// GET `path` from a node's metrics port: the status code and the whole response.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A codec of encoded messages as they are, to call any method by its path.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawCoder;

impl tonic::codec::Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

/// Calls the method at `path` (`/caseway.catalog.v1.CatalogService/GetService`) with an
/// encoded request, as a bearer of `token` (none when empty): a unary method's answer, or a
/// server-streaming method's first message (empty when none comes within half a second).
pub async fn call_raw(
    channel: &Channel,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(body);
    if !token.is_empty() {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
    }
    let path = http::uri::PathAndQuery::try_from(path.to_string())
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    // As a stream, so a server-streaming method answers too: its refusal comes at once, its
    // acceptance with the response's headers, and its first message may be long in coming (a
    // unary method's follows its headers at once).
    let mut stream = grpc
        .server_streaming(request, path, RawCodec)
        .await?
        .into_inner();
    match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
        Ok(message) => Ok(message?.unwrap_or_default()),
        Err(_) => Ok(Vec::new()),
    }
}

/// Certificates a test makes with the `openssl` command: a certificate authority, a
/// certificate it signed for `localhost` and 127.0.0.1 (for servers and clients alike), and
/// an unrelated authority that signed nothing here. Removed on drop.
pub struct TestCerts {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        let dir = std::env::temp_dir().join(format!("caseway-certs-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cert folder");
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ca = |name: &str| {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=Caseway test {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        };
        ca("ca");
        ca("other-ca");
        std::fs::write(
            dir.join("node.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("extensions");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "node.pem",
            "-days",
            "2",
            "-extfile",
            "node.ext",
        ]);
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
            other_ca: dir.join("other-ca.pem"),
            dir,
        }
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Uploads `bytes` as an attachment of `ticket_id` in chunks of `chunk` bytes, as a bearer of
/// `token`.
pub async fn upload_attachment(
    node: &TestNode,
    token: &str,
    ticket_id: &str,
    file_name: &str,
    bytes: &[u8],
    chunk: usize,
) -> Result<caseway_api::ticketing::v1::TicketAttachment, tonic::Status> {
    use caseway_api::ticketing::v1 as pb;
    use pb::upload_ticket_attachment_request::Part;
    let mut parts = vec![pb::UploadTicketAttachmentRequest {
        part: Some(Part::Header(pb::AttachmentHeader {
            ticket_id: ticket_id.into(),
            file_name: file_name.into(),
            request_id: String::new(),
        })),
    }];
    parts.extend(
        bytes
            .chunks(chunk)
            .map(|c| pb::UploadTicketAttachmentRequest {
                part: Some(Part::Chunk(c.to_vec())),
            }),
    );
    node.ticketing
        .clone()
        .upload_ticket_attachment(authed(token, futures::stream::iter(parts)))
        .await
        .map(|r| r.into_inner().attachment.expect("the attachment"))
}

/// Downloads an attachment whole: the attachment and its image.
pub async fn download_attachment(
    node: &TestNode,
    token: &str,
    id: &str,
) -> Result<(caseway_api::ticketing::v1::TicketAttachment, Vec<u8>), tonic::Status> {
    use caseway_api::ticketing::v1 as pb;
    let mut stream = node
        .ticketing
        .clone()
        .download_ticket_attachment(authed(
            token,
            pb::DownloadTicketAttachmentRequest { id: id.into() },
        ))
        .await?
        .into_inner();
    let (mut attachment, mut bytes) = (None, Vec::new());
    while let Some(part) = stream.message().await? {
        assert!(part.chunk.len() <= 64 * 1024, "chunks of at most 64 KiB");
        if part.attachment.is_some() {
            assert!(attachment.is_none(), "the attachment comes once");
            attachment = part.attachment;
        }
        bytes.extend_from_slice(&part.chunk);
    }
    Ok((attachment.expect("the attachment first"), bytes))
}

/// An S3-compatible server of its own (moto's server mode, from PyPI), stopped on drop.
pub struct S3Server {
    pub endpoint: String,
    child: std::process::Child,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto's server starts (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return S3Server { endpoint, child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto's server did not listen on {port}");
    }

    /// Sends one unsigned request (moto does not check signatures) and returns the answer's
    /// status line and body.
    pub async fn request(&self, method: &str, path: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.expect("moto");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer.lines().next().unwrap_or_default().to_string();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl S3Server {
    /// A bucket of this server (made beforehand), as object_store reaches it, objects under
    /// `prefix`.
    pub fn bucket(&self, name: &str, prefix: &str) -> caseway_platform::objects::Objects {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(name)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_access_key_id("moto")
            .with_secret_access_key("moto-secret")
            .build()
            .expect("an S3 client of moto");
        caseway_platform::objects::Objects {
            store: Arc::new(store),
            prefix: object_store::path::Path::from(prefix),
            location: format!("s3://{name}/{prefix}"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user's ticket as a test submits it: an issue with where it happened and how to reach
/// its submitter.
pub fn ticket_submission(title: &str) -> caseway_api::ticketing::v1::SubmitTicketRequest {
    use caseway_api::ticketing::v1 as pb;
    pb::SubmitTicketRequest {
        request_id: String::new(),
        ticket: Some(pb::Ticket {
            kind: pb::TicketKind::Issue as i32,
            title: title.into(),
            description: "Saving Quick Services fails with an error.".into(),
            context: Some(pb::TicketContext {
                area: "Services > Quick Services".into(),
                rpc: "caseway.records.v1.RecordsService/RecordQuickServices".into(),
                trace_id: "4BF92F3577B34DA6A3CE929D0E0E4736".into(),
                client_application: "caseway-web".into(),
                client_version: "4.2.1".into(),
                ..Default::default()
            }),
            contact: Some(pb::TicketContact {
                name: "Ana Case".into(),
                email: "ana@example.org".into(),
                preferred: pb::ContactMethod::Email as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Submits [`ticket_submission`] as a bearer of `token`: the ticket.
pub async fn submit_ticket(
    node: &TestNode,
    token: &str,
    title: &str,
) -> caseway_api::ticketing::v1::Ticket {
    node.ticketing
        .clone()
        .submit_ticket(authed(token, ticket_submission(title)))
        .await
        .expect("the ticket is submitted")
        .into_inner()
        .ticket
        .expect("the ticket")
}
