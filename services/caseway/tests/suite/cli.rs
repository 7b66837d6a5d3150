//! The hosting provider's commands: `caseway tenant ...` and `caseway token issue`.

use std::process::Command;

use caseway_platform::auth::{Role, TokenVerifier, ensure_key_pair};
use caseway_test_support::TestDb;

struct Cli {
    db: TestDb,
    data_dir: std::path::PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_caseway"))
            .args(args)
            .env("CASEWAY_DATABASE_URL", &self.db.app_url)
            .env("CASEWAY_MIGRATION_DATABASE_URL", &self.db.owner_url)
            .env("CASEWAY_DATA_DIR", &self.data_dir)
            .output()
            .expect("caseway runs");
        assert!(
            output.status.success(),
            "caseway {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

#[tokio::test]
async fn tenant_lifecycle_and_tokens_from_the_command_line() {
    let db = TestDb::create(&caseway::migrators()).await;
    let data_dir =
        std::env::temp_dir().join(format!("caseway-cli-{}", uuid::Uuid::new_v4().simple()));
    ensure_key_pair(
        &data_dir.join("jwt-private.pem"),
        &data_dir.join("jwt-public.pem"),
    )
    .unwrap();
    let cli = Cli { db, data_dir };

    let created = cli.run(&[
        "tenant",
        "create",
        "--slug",
        "acme",
        "--name",
        "Acme Services",
    ]);
    let fields: Vec<&str> = created.trim().split('\t').collect();
    assert_eq!(fields[1..], ["acme", "active"]);
    let id = fields[0].to_string();
    cli.run(&["tenant", "create", "--slug", "bravo", "--name", "Bravo Aid"]);
    let listed = cli.run(&["tenant", "list"]);
    let slugs: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "bravo"]);

    assert!(
        cli.run(&["tenant", "suspend", "acme", "--reason", "contract ended"])
            .contains("\tsuspended")
    );
    assert!(cli.run(&["tenant", "resume", &id]).contains("\tactive"));
    let mut owner = cli.db.owner().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM platform.audit_log WHERE tenant_id = $1::uuid ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "tenancy.tenant.create",
            "tenancy.tenant.suspend",
            "tenancy.tenant.resume"
        ]
    );

    let token = cli.run(&[
        "token",
        "issue",
        "--tenant",
        "acme",
        "--roles",
        "caseworker,supervisor",
        "--user",
        "ana",
    ]);
    let verifier =
        TokenVerifier::from_file(&cli.data_dir.join("jwt-public.pem"), "caseway", "caseway")
            .unwrap();
    let principal = verifier.verify(token.trim()).unwrap();
    assert_eq!(principal.tenant_id.unwrap().to_string(), id);
    assert_eq!(principal.user_id, "ana");
    assert_eq!(principal.roles, [Role::Caseworker, Role::Supervisor]);

    let failed = Command::new(env!("CARGO_BIN_EXE_caseway"))
        .args([
            "token",
            "issue",
            "--tenant",
            "nobody",
            "--roles",
            "caseworker",
        ])
        .env("CASEWAY_DATABASE_URL", &cli.db.app_url)
        .env("CASEWAY_DATA_DIR", &cli.data_dir)
        .output()
        .unwrap();
    assert!(!failed.status.success(), "an unknown tenant is an error");

    // Revoked from the command line, the token is refused by a verifier that follows the
    // revocations.
    let token_id = uuid::Uuid::now_v7().to_string();
    cli.run(&["token", "revoke", "--id", &token_id]);
    cli.run(&["token", "revoke", "--user", "ana", "--tenant", "acme"]);
    let revocations = caseway_platform::revocation::Revocations::default();
    revocations
        .refresh(&caseway_test_support::redis())
        .await
        .unwrap();
    let tenant = id.parse().ok();
    assert!(revocations.revoked(None, "bob", 0, Some(&token_id)));
    let now = chrono::Utc::now().timestamp();
    assert!(revocations.revoked(tenant, "ana", now - 60, None));
    assert!(!revocations.revoked(tenant, "ana", now + 60, None));
    let _ = std::fs::remove_dir_all(&cli.data_dir);
}

#[tokio::test]
async fn parked_events_are_listed_and_replayed_from_the_command_line() {
    use caseway_platform::bus::{Envelope, Subscription, consume};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let bus = caseway_test_support::TestBus::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn(consume(
        bus.bus.clone(),
        Subscription {
            queue: Some(bus.bus.queue_name("reports.totals")),
            bindings: vec!["records.service_recorded.v1".into()],
            concurrency: 1,
        },
        shutdown.clone(),
        {
            let fixed = fixed.clone();
            move |_| {
                let fixed = fixed.load(Ordering::SeqCst);
                async move {
                    anyhow::ensure!(fixed, "the report store is down");
                    Ok(())
                }
            }
        },
    ));
    // Publish only once the consumer's queue exists (an event published before it is bound
    // reaches no queue); under load the consumer takes a while to declare it.
    let queue = bus.bus.queue_name("reports.totals");
    for _ in 0..200 {
        let (connection, channel) = bus.bus.connect().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .is_ok();
        let _ = connection.close(200, "checked".into()).await;
        if declared {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The binding follows the declaration at once.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let envelope = Envelope {
        id: uuid::Uuid::now_v7(),
        tenant_id: caseway_platform::TenantId::new(),
        event_type: "records.service_recorded.v1".into(),
        source: "caseway/records".into(),
        subject: "record-1".into(),
        time: chrono::Utc::now(),
        traceparent: None,
        payload: vec![],
    };
    bus.bus
        .publish_confirmed(std::slice::from_ref(&envelope))
        .await
        .unwrap();
    let events = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_caseway"))
            .arg("events")
            .args(args)
            .env("CASEWAY_EVENTS_EXCHANGE", bus.exchange())
            .output()
            .expect("caseway runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    // Five attempts with backoff take about five seconds alone; a loaded machine takes longer.
    let mut listed = String::new();
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listed = events(&["parked", "--consumer", "reports.totals"]);
        if listed.contains("1 parked") {
            break;
        }
    }
    assert!(listed.contains("1 parked for reports.totals"), "{listed}");
    assert!(listed.contains(&envelope.id.to_string()), "{listed}");
    assert!(listed.contains("records.service_recorded.v1"), "{listed}");
    fixed.store(true, Ordering::SeqCst);
    let id = envelope.id.to_string();
    let replayed = events(&["replay", "--consumer", "reports.totals", "--ids", &id]);
    assert!(replayed.starts_with("1 put back"), "{replayed}");
    // Five attempts with backoff take about five seconds alone; a loaded machine takes longer.
    let mut listed = String::new();
    for _ in 0..200 {
        listed = events(&["parked", "--consumer", "reports.totals"]);
        if listed.contains("0 parked") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.contains("0 parked"), "{listed}");
    shutdown.cancel();
    consumer.await.unwrap();
}
