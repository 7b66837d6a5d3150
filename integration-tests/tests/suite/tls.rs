//! Transport security with certificates the tests make: PostgreSQL over TLS (a PostgreSQL of
//! this machine started for the test, checked with verify-full), the gRPC server over TLS with
//! internal services over mutual TLS, and Redis over TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use uuid::Uuid;

use caseway::Target;
use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::catalog::v1::catalog_internal_service_client::CatalogInternalServiceClient;
use caseway_api::records::v1 as records_pb;
use caseway_integration_tests::{TestCerts, TestEnv, authed, date};
use caseway_platform::access::READ_SERVICE_RESTRICTIONS;
use caseway_platform::auth::Role;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command as the `postgres` user when the test runs as root (PostgreSQL refuses root).
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let root = std::env::var("USER").as_deref() == Ok("root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
    let output = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .output()
    } else {
        Command::new(program).args(args).output()
    }
    .expect("runs");
    assert!(
        output.status.success(),
        "{program:?} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A PostgreSQL of this machine's, on a port of its own, serving TLS with the test's
/// certificate; stopped and removed on drop.
struct TlsPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(certs: &TestCerts) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb");
        let data = std::env::temp_dir().join(format!("caseway-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data).unwrap();
        let chown = |path: &Path| {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status();
        };
        chown(&data);
        let pgdata = data.join("pgdata");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        // The key must be the server user's, readable by it alone.
        std::fs::copy(&certs.cert, pgdata.join("server.pem")).unwrap();
        std::fs::copy(&certs.key, pgdata.join("server.key")).unwrap();
        chown(&data);
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                pgdata.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let port = free_port();
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file=server.pem -c ssl_key_file=server.key -c fsync=off",
            dir = data.display()
        );
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-l",
                data.join("log").to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        TlsPostgres { bin, data, port }
    }

    fn url(&self, user: &str, database: &str, ca: &Path) -> String {
        format!(
            "postgres://{user}@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.port,
            ca.display()
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let pgdata = self.data.join("pgdata");
        let _ = std::panic::catch_unwind(|| {
            as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", pgdata.to_str().unwrap(), "-m", "immediate", "stop"],
            )
        });
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[tokio::test]
async fn services_reach_postgresql_over_tls_checked_against_a_given_ca() {
    let certs = TestCerts::new();
    let postgres = TlsPostgres::start(&certs);
    let owner = postgres.url("postgres", "caseway", &certs.ca);
    caseway_platform::db::migrate(&owner, &caseway::migrators())
        .await
        .expect("migrations over TLS");
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.database_url = postgres.url("caseway_app", "caseway", &certs.ca);
    config.migration_database_url = owner.clone();
    let node = env.start_with(config, &[Target::Tenancy]).await;
    let tenant = node.create_tenant(&env, "over-tls").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    node.create_organization(&admin, "NORTH").await;

    use sqlx::Connection;
    let mut check = sqlx::PgConnection::connect(&owner).await.unwrap();
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.usename = 'caseway_app' AND s.ssl",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.usename = 'caseway_app' AND NOT s.ssl",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    assert!(encrypted > 0, "the node's connections use TLS");
    assert_eq!(plain, 0);
    check.close().await.unwrap();
    node.shutdown().await;

    // A server whose certificate another authority signed is not trusted.
    let stranger = caseway_platform::Db::connect_lazy(
        &postgres.url("caseway_app", "caseway", &certs.other_ca),
        1,
    )
    .unwrap();
    let refused = stranger.tenant_tx(tenant).await;
    assert!(
        matches!(refused, Err(caseway_platform::Error::Unavailable(_))),
        "{:?}",
        refused.err()
    );
}

async fn tls_channel(port: u16, ca: &Path, identity: Option<(&Path, &Path)>) -> Channel {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn grpc_serves_tls_and_internal_services_only_over_mutual_tls() {
    let certs = TestCerts::new();
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.grpc_tls_cert_file = Some(certs.cert.clone());
    config.grpc_tls_key_file = Some(certs.key.clone());
    config.grpc_tls_client_ca_file = Some(certs.ca.clone());
    config.peer_tls_ca_file = Some(certs.ca.clone());
    let node = env.start_with(config, &Target::ALL).await;
    let port = node.addr().port();
    // A gateway over TLS, without a certificate: public services answer.
    let tenant = node.create_tenant(&env, "grpc-tls").await;
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    // The records service asks the catalog's internal method over mutual TLS, as this node's
    // own client: the totals need it.
    node.records
        .clone()
        .get_service_totals(authed(
            &worker,
            records_pb::GetServiceTotalsRequest {
                start_date: Some(date(2026, 1, 1)),
                end_date: Some(date(2026, 12, 31)),
                group_by: vec![],
            },
        ))
        .await
        .expect("the node calls its own internal services over mutual TLS");
    // Plain text is not served.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let status = caseway_integration_tests::call_raw(
            &channel,
            "/grpc.health.v1.Health/Check",
            "",
            Vec::new(),
        )
        .await
        .unwrap_err();
        assert_ne!(status.code(), Code::Ok);
    }
    // An internal method over TLS without a client certificate: refused, even with a service
    // identity.
    let service = env.service_token("records", tenant, READ_SERVICE_RESTRICTIONS);
    let mut internal = CatalogInternalServiceClient::new(tls_channel(port, &certs.ca, None).await);
    let status = internal
        .list_service_restrictions(authed(
            &service,
            catalog_pb::ListServiceRestrictionsRequest {},
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("mutual TLS"));
    // With a certificate the client CA signed, it answers.
    let mut internal = CatalogInternalServiceClient::new(
        tls_channel(port, &certs.ca, Some((&certs.cert, &certs.key))).await,
    );
    internal
        .list_service_restrictions(authed(
            &service,
            catalog_pb::ListServiceRestrictionsRequest {},
        ))
        .await
        .unwrap();
    // A client that trusts another authority does not get through the handshake.
    let mismatched = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(&certs.other_ca).unwrap(),
        )))
        .unwrap()
        .connect()
        .await;
    assert!(
        mismatched.is_err(),
        "the server's certificate is not trusted"
    );
    node.shutdown().await;
}

/// A Redis of this machine's serving TLS only, on a port of its own.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
}

impl TlsRedis {
    fn start(certs: &TestCerts) -> TlsRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&certs.cert)
            .arg("--tls-key-file")
            .arg(&certs.key)
            .arg("--tls-ca-cert-file")
            .arg(&certs.ca)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .arg("--dir")
            .arg(&certs.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        TlsRedis { child, port }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_over_tls_is_checked_against_a_given_ca() {
    use caseway_platform::metrics::Metrics;
    use caseway_platform::redis::Redis;
    let certs = TestCerts::new();
    let server = TlsRedis::start(&certs);
    let url = format!("rediss://localhost:{}", server.port);
    let metrics = std::sync::Arc::new(Metrics::new());
    let redis = Redis::new(&url, Some(&certs.ca), metrics.clone()).unwrap();
    let mut answer = Err(anyhow::anyhow!("not asked"));
    for _ in 0..50 {
        answer = redis
            .run("ping", Duration::from_secs(1), |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await;
        if answer.is_ok() {
            break;
        }
        // The server may still be starting (the handle backs off a second after a failure).
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(answer.unwrap(), "PONG");
    let stranger = Redis::new(&url, Some(&certs.other_ca), metrics.clone()).unwrap();
    let refused = stranger
        .run("ping", Duration::from_secs(1), |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
    assert!(
        refused.is_err(),
        "a server signed by another authority is not trusted"
    );
    assert!(metrics.encode().contains("caseway_redis_up 0"));
}
