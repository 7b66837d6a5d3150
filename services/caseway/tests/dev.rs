//! `caseway dev` as a user runs it, then an independent client with no proto files (Python
//! grpcio, learning the API by reflection) lists the services and calls the catalog.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use caseway_platform::testing::{TestBus, TestDb};

#[tokio::test]
async fn dev_stack_answers_a_reflection_client_without_proto_files() {
    let db = TestDb::create(&caseway::migrators()).await;
    let bus = TestBus::new();
    let data_dir =
        std::env::temp_dir().join(format!("caseway-dev-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_caseway"))
        .arg("dev")
        .env("CASEWAY_DATABASE_URL", &db.app_url)
        .env("CASEWAY_MIGRATION_DATABASE_URL", &db.owner_url)
        .env("CASEWAY_DATA_DIR", &data_dir)
        .env("CASEWAY_GRPC_LISTEN", "127.0.0.1:0")
        .env("CASEWAY_METRICS_LISTEN", "127.0.0.1:0")
        .env("CASEWAY_EVENTS_EXCHANGE", bus.exchange())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("caseway dev starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut address, mut token) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Caseway is serving every target on ") {
                address = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some(value) = line.strip_prefix("CASEWAY_TOKEN=") {
                token = Some(value.to_string());
            }
            if line == "ready" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("caseway dev prints ready");
    let address = address.expect("the banner names the address");
    let token = token.expect("the banner prints a token");

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integration-tests/reflection_client.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(&address)
        .arg(&token)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "reflection client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let services: Vec<&str> = result["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for expected in [
        "caseway.catalog.v1.CatalogService",
        "caseway.tenancy.v1.TenancyService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&expected),
            "{expected} not listed in {services:?}"
        );
    }
    assert_eq!(
        result["listed"],
        serde_json::json!(["FA", "FC", "FW"]),
        "the seed's Financial Services"
    );
    assert_eq!(result["got"], "FA");
    assert_eq!(result["bad_id"], "INVALID_ARGUMENT");

    // SIGTERM: a clean exit.
    let pid = child.id().expect("running");
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
