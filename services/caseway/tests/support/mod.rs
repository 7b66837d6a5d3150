//! `caseway serve` as deployed, for the tests and benchmarks that run the real binary: a
//! server process on ephemeral ports, and what every server of a test shares (a database, an
//! events exchange, keys, a platform administrator's token).
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use caseway_platform::auth::{Role, TokenIssuer, ensure_key_pair};
use caseway_test_support::{TestBus, TestDb};

pub struct Server {
    pub child: Child,
    pub address: String,
    pub metrics_address: String,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub async fn start(
        db: &TestDb,
        bus: &TestBus,
        data_dir: &std::path::Path,
        target: &str,
        extra: &[(&str, String)],
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_caseway"));
        command
            .args(["serve", "--target", target])
            .env("CASEWAY_DATABASE_URL", &db.app_url)
            .env("CASEWAY_DATA_DIR", data_dir)
            .env(
                "CASEWAY_PAGE_TOKEN_SECRET_FILE",
                data_dir.join("page-token-secret"),
            )
            .env("CASEWAY_GRPC_LISTEN", "127.0.0.1:0")
            .env("CASEWAY_METRICS_LISTEN", "127.0.0.1:0")
            .env("CASEWAY_EVENTS_EXCHANGE", bus.exchange())
            .env("CASEWAY_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("caseway serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let find = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if log["fields"]["message"] == "serving" {
                    let field = |name: &str| log["fields"][name].as_str().map(str::to_string);
                    return field("grpc_addr").zip(field("metrics_addr"));
                }
            }
            None
        };
        let (address, metrics_address) = tokio::time::timeout(Duration::from_secs(30), find)
            .await
            .expect("the server logs its address")
            .expect("a serving line");
        // Keep reading the log so the server never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            address,
            metrics_address,
            log,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Stops the server with SIGTERM and returns everything it logged.
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.log.lock().unwrap().clone()
    }
}

/// What every server of a test shares: a database, an events exchange, keys and a
/// platform administrator's token. The key folder goes with it.
pub struct Fixture {
    pub db: TestDb,
    pub bus: TestBus,
    pub data_dir: std::path::PathBuf,
    pub issuer: TokenIssuer,
    pub root: String,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let db = TestDb::create(&caseway::migrators()).await;
        let data_dir =
            std::env::temp_dir().join(format!("caseway-serve-{}", uuid::Uuid::new_v4().simple()));
        ensure_key_pair(
            &data_dir.join("jwt-private.pem"),
            &data_dir.join("jwt-public.pem"),
        )
        .unwrap();
        caseway_clients::pii::ensure_key_file(&data_dir.join("pii-keys")).unwrap();
        caseway_platform::auth::ensure_private_key(&data_dir.join("service-key.pem")).unwrap();
        caseway_platform::secrets::ensure_random(&data_dir.join("page-token-secret")).unwrap();
        let issuer =
            TokenIssuer::from_file(&data_dir.join("jwt-private.pem"), "caseway", "caseway")
                .unwrap();
        let root = issuer
            .issue(
                "root",
                None,
                &[Role::PlatformAdmin],
                &[],
                chrono::Duration::hours(1),
            )
            .unwrap();
        // The servers' consumers run in the children.
        let bus = TestBus::new();
        bus.consumers_elsewhere(&[
            caseway_authorizations::events::CONSUMER,
            caseway_eligibility::events::CONSUMER,
        ]);
        Fixture {
            db,
            bus,
            data_dir,
            issuer,
            root,
        }
    }

    pub async fn serve(&self, target: &str, extra: &[(&str, String)]) -> Server {
        Server::start(&self.db, &self.bus, &self.data_dir, target, extra).await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
