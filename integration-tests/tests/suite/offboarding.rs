//! A leaving tenant: its full export (every table, attachments, SSNs sealed with its own key,
//! a manifest whose counts and checksums are checked here) and the purge that follows (zero
//! rows of it in every table, another tenant untouched, its late events dropped, never
//! resumed).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::Code;

use caseway::offboard;
use caseway_api::clients::v1 as cpb;
use caseway_api::tenancy::v1 as tpb;
use caseway_clients::pii::{PiiCipher, Sealed, ssn_context};
use caseway_clients::tenant_keys::TenantKeys;
use caseway_integration_tests::tenants::{client, clients_tenant, records_tenant};
use caseway_integration_tests::{
    S3Server, TestEnv, TestNode, authed, submit_ticket, upload_attachment,
};
use caseway_offboarding::tables::tenant_tables;
use caseway_offboarding::{ExportKey, PurgeOptions};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

/// An HMIS export of the tenant of `token` (an administrator's) for 2026, once it succeeded.
async fn hmis_export(node: &TestNode, token: &str) {
    use caseway_api::hmis::v1 as hpb;
    let mut api = node.fixtures(token).hmis();
    let id = api
        .start_export(authed(
            token,
            hpb::StartExportRequest {
                start_date: Some(caseway_fixtures::date(2026, 1, 1)),
                end_date: Some(caseway_fixtures::date(2026, 12, 31)),
                include_ssn: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .export
        .unwrap()
        .id;
    caseway_test_support::eventually("the HMIS export", Duration::from_secs(10), || {
        let (mut api, id) = (api.clone(), id.clone());
        async move {
            let export = api
                .get_export(authed(token, hpb::GetExportRequest { id }))
                .await
                .unwrap()
                .into_inner()
                .export
                .unwrap();
            match export.state() {
                hpb::ExportState::Succeeded => Ok(()),
                state => Err(state),
            }
        }
    })
    .await;
}

/// Rows of `tenant` in every table that holds tenants' rows.
async fn rows_of(owner: &mut PgConnection, tenant: TenantId) -> BTreeMap<String, i64> {
    let tables = tenant_tables(owner).await.unwrap();
    let mut counts = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "SELECT count(*) FROM \"{}\".\"{}\" WHERE tenant_id = $1",
            table.schema, table.name
        );
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(tenant.as_uuid())
            .fetch_one(&mut *owner)
            .await
            .unwrap();
        counts.insert(table.full_name(), n);
    }
    counts
}

/// The tenant's rows once its events are all handled: nothing waits in its outbox and two
/// counts a moment apart agree.
async fn settled(owner: &mut PgConnection, tenant: TenantId) -> BTreeMap<String, i64> {
    let mut last = rows_of(owner, tenant).await;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = rows_of(owner, tenant).await;
        if now == last && now["platform.outbox"] == 0 {
            return now;
        }
        last = now;
    }
    panic!("the tenant's rows keep changing: {last:?}");
}

/// Gives a client with an SSN to the tenant of `worker`.
async fn client_with_ssn(node: &TestNode, worker: &str) {
    node.fixtures(worker)
        .client(cpb::Client {
            demographics: vec![],
            ..client("Ada", "Byron", "123-45-6789", (1980, 1, 2))
        })
        .await
        .unwrap();
}

/// A folder for a test's export, holding a new SSN key; the key file's path.
fn export_folder() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("caseway-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("ssn.key");
    std::fs::write(&key_file, ExportKey::generate()).unwrap();
    (dir, key_file)
}

async fn suspend(env: &TestEnv, node: &TestNode, tenant: TenantId) {
    node.tenancy
        .clone()
        .suspend_tenant(authed(
            &env.platform_admin_token(),
            tpb::SuspendTenantRequest {
                id: tenant.to_string(),
                reason: "offboarding".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

fn options() -> PurgeOptions {
    // Small batches, so a table of the demo takes several.
    PurgeOptions {
        batch: 7,
        grace: Duration::ZERO,
        settle: Duration::ZERO,
    }
}

#[tokio::test]
async fn a_tenant_is_exported_whole_then_purged_leaving_the_others_untouched() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let config = env.config();
    let demo = caseway_fixtures::demo::seed(node.channel.clone(), &env.issuer)
        .await
        .unwrap();
    let leaving = demo.tenant_id;
    let ana = env.token_for("ana", leaving, &[Role::Caseworker], &[]);
    let ticket = submit_ticket(&node, &ana, "The export button is missing").await;
    let png = caseway_test_support::images::picture(image::ImageFormat::Png);
    upload_attachment(&node, &ana, &ticket.id, "screen.png", &png, 4096)
        .await
        .unwrap();
    // An HMIS export: its eight files are the tenant's objects too.
    hmis_export(&node, &demo.token).await;
    let staying = records_tenant(&env, &node, "staying").await;
    client_with_ssn(&node, &staying.worker).await;
    let staying = staying.tenant;
    let mut owner = env.db.owner().await;
    let before = settled(&mut owner, leaving).await;
    let others_before = rows_of(&mut owner, staying).await;
    assert!(before["clients.clients"] >= 5 && before["records.service_records"] > 0);
    assert!(others_before["clients.clients"] > 0);

    // The export: every table's rows, each file's count and checksum in the manifest.
    let (dir, key_file) = export_folder();
    let out = dir.join("export");
    let exported = offboard::export(&config, "demo", out.to_str().unwrap(), &key_file)
        .await
        .unwrap();
    let manifest = &exported.manifest;
    let manifest_bytes = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(
        hex(&Sha256::digest(&manifest_bytes)),
        exported.manifest_sha256
    );
    let exported_rows: BTreeMap<String, i64> = manifest
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.rows as i64))
        .collect();
    assert_eq!(exported_rows, before, "every table, every row");
    for table in &manifest.tables {
        let bytes = std::fs::read(out.join(&table.file)).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), table.sha256, "{}", table.file);
        assert_eq!(bytes.len() as u64, table.bytes);
        assert_eq!(
            bytes.iter().filter(|b| **b == b'\n').count() as u64,
            table.rows
        );
    }
    assert_eq!(manifest.attachments.len(), 1);
    let attachment = std::fs::read(out.join(&manifest.attachments[0].file)).unwrap();
    assert_eq!(
        hex(&Sha256::digest(&attachment)),
        manifest.attachments[0].sha256
    );

    // SSNs: none in the clear, none under the deployment's keys; each opens with the
    // tenant's key to the number whose last four the row shows.
    let key = ExportKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let clients = std::fs::read_to_string(out.join("tables/clients.clients.jsonl")).unwrap();
    let mut opened = 0usize;
    for line in clients.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for gone in ["ssn_sealed", "ssn_hash", "ssn_key_id"] {
            assert!(row.get(gone).is_none(), "{gone} left the deployment");
        }
        if let Some(sealed) = row["ssn_sealed_for_export"].as_str() {
            let id: uuid::Uuid = row["id"].as_str().unwrap().parse().unwrap();
            let ssn = key.open(leaving, id, sealed).unwrap();
            assert_eq!(ssn.len(), 9);
            assert!(!clients.contains(&ssn), "the SSN is nowhere in the clear");
            assert_eq!(row["ssn_last4"].as_str().unwrap(), &ssn[5..]);
            opened += 1;
        }
    }
    assert!(opened > 0 && opened as u64 == manifest.ssn.sealed);

    // The purge wants the tenant suspended, and exported after that.
    let refused = offboard::purge(&config, "demo", &options())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("suspend it first"),
        "{refused}"
    );
    let root = env.platform_admin_token();
    let mut tenancy = node.tenancy.clone();
    suspend(&env, &node, leaving).await;
    let refused = offboard::purge(&config, "demo", &options())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("export it again first"),
        "{refused}"
    );
    settled(&mut owner, leaving).await;
    let exported = offboard::export(&config, "demo", out.to_str().unwrap(), &key_file)
        .await
        .unwrap();

    // One purge at a time.
    let mut holder = PgConnection::connect(&env.db.owner_url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("caseway.purge.{leaving}"))
        .execute(&mut holder)
        .await
        .unwrap();
    let refused = offboard::purge(&config, "demo", &options())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is running"), "{refused}");
    holder.close().await.unwrap();

    // What a backup taken now holds of the tenant's SSNs: sealed with the tenant's own key.
    let backup: Vec<(uuid::Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, ssn_key_id, ssn_sealed FROM clients.clients \
          WHERE tenant_id = $1 AND ssn_sealed IS NOT NULL",
    )
    .bind(leaving.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(backup.len(), opened);
    let keys = offboard::tenant_keys(&config).unwrap();
    for (id, key_id, bytes) in &backup {
        assert_eq!(key_id, "tenant");
        let sealed = Sealed {
            key_id: key_id.clone(),
            bytes: bytes.clone(),
        };
        let ssn = keys
            .open_sealed(leaving, &sealed, &ssn_context(leaving, *id))
            .await
            .unwrap();
        assert_eq!(ssn.len(), 9);
    }

    let report = offboard::purge(&config, "demo", &options()).await.unwrap();
    assert!(!report.resumed);
    assert!(report.tenant_key_destroyed);
    // Crypto-shredding: with the deployment's keys and key store as they are, the backup's
    // SSNs open no more; another tenant's still do.
    let keys = offboard::tenant_keys(&config).unwrap();
    for (id, key_id, bytes) in &backup {
        let sealed = Sealed {
            key_id: key_id.clone(),
            bytes: bytes.clone(),
        };
        let refused = keys
            .open_sealed(leaving, &sealed, &ssn_context(leaving, *id))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("key is gone"), "{refused}");
    }
    let (other, key_id, bytes): (uuid::Uuid, String, Vec<u8>) = sqlx::query_as(
        "SELECT id, ssn_key_id, ssn_sealed FROM clients.clients \
          WHERE tenant_id = $1 AND ssn_sealed IS NOT NULL LIMIT 1",
    )
    .bind(staying.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let sealed = Sealed { key_id, bytes };
    assert!(
        keys.open_sealed(staying, &sealed, &ssn_context(staying, other))
            .await
            .is_ok()
    );
    let mut deleted = report.deleted.clone();
    assert_eq!(deleted.remove("attachment objects"), Some(1));
    assert_eq!(deleted.remove("HMIS export objects"), Some(8));
    let hmis_store = caseway_hmis::export_store(&config).unwrap();
    let left: Vec<_> = futures::TryStreamExt::try_collect(
        hmis_store
            .store
            .list(Some(&hmis_store.path(&format!("tenants/{leaving}")))),
    )
    .await
    .unwrap();
    assert!(left.is_empty(), "HMIS export objects left: {left:?}");
    let mut exported_rows: BTreeMap<String, i64> = exported
        .manifest
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| (t.table.clone(), t.rows as i64))
        .collect();
    // And the export's own audit row, written after its snapshot.
    *exported_rows.get_mut("platform.audit_log").unwrap() += 1;
    assert_eq!(
        deleted, exported_rows,
        "the purge deleted what the export held"
    );
    let after = rows_of(&mut owner, leaving).await;
    assert!(after.values().all(|n| *n == 0), "rows left: {after:?}");
    assert_eq!(
        rows_of(&mut owner, staying).await,
        others_before,
        "the other tenant is untouched"
    );
    let files = caseway_ticketing::files::Files::open(&config).unwrap();
    let object_key = &exported.manifest.attachments[0].object_key;
    assert!(
        files.get(object_key).await.is_err(),
        "the attachment's object is gone"
    );

    // What stays: the tenant's row, purged, and the ledger's one row.
    let purged_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT purged_at FROM tenancy.tenants WHERE id = $1")
            .bind(leaving.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(purged_at.is_some());
    let ledger: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenancy.offboardings WHERE tenant_id = $1")
            .bind(leaving.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(ledger, 1);

    // A purged tenant is never resumed, and a late event of it changes nothing.
    let refused = tenancy
        .resume_tenant(authed(
            &root,
            tpb::ResumeTenantRequest {
                id: leaving.to_string(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let tenant = tenancy
        .get_tenant(authed(
            &root,
            tpb::GetTenantRequest {
                id: leaving.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(tenant.tenant.unwrap().purge_time.is_some());
    let mut tx = env.db.db.tenant_tx(leaving).await.unwrap();
    let applied = caseway_platform::inbox::first_delivery(&mut tx, "test", uuid::Uuid::new_v4())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!applied, "an event of a purged tenant counts as handled");
    assert_eq!(rows_of(&mut owner, leaving).await, after);

    // Run again, the purge finds nothing more and reports what it did.
    let again = offboard::purge(&config, "demo", &options()).await.unwrap();
    assert!(again.resumed);
    assert_eq!(again.deleted, report.deleted);
    assert!(!again.tenant_key_destroyed, "already gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_purge_cut_short_carries_on_where_it_stopped_with_an_exact_report() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let config = env.config();
    let tenant = records_tenant(&env, &node, "cut-short").await.tenant;
    suspend(&env, &node, tenant).await;
    let mut owner = env.db.owner().await;
    settled(&mut owner, tenant).await;
    let (dir, key_file) = export_folder();
    let out = dir.join("export");
    let exported = offboard::export(&config, "cut-short", out.to_str().unwrap(), &key_file)
        .await
        .unwrap();

    // One row a transaction, stopped (the process killed, say) partway.
    let one_by_one = PurgeOptions {
        batch: 1,
        grace: Duration::ZERO,
        settle: Duration::ZERO,
    };
    let purge = tokio::spawn({
        let config = config.clone();
        async move { offboard::purge(&config, "cut-short", &one_by_one).await }
    });
    caseway_test_support::eventually(
        "the purge's first batches reported",
        Duration::from_secs(30),
        || {
            let url = env.db.owner_url.clone();
            async move {
                let mut conn = PgConnection::connect(&url).await.map_err(|_| "connect")?;
                let report: Option<sqlx::types::Json<BTreeMap<String, i64>>> = sqlx::query_scalar(
                    "SELECT purge_report FROM tenancy.offboardings WHERE tenant_id = $1",
                )
                .bind(tenant.as_uuid())
                .fetch_optional(&mut conn)
                .await
                .map_err(|_| "read")?;
                match report {
                    Some(r) if r.0.values().sum::<i64>() >= 5 => Ok(()),
                    _ => Err("no batch yet"),
                }
            }
        },
    )
    .await;
    purge.abort();
    assert!(
        purge.await.unwrap_err().is_cancelled(),
        "the purge was cut short"
    );
    let left: i64 = rows_of(&mut owner, tenant).await.values().sum();
    assert!(left > 0, "rows are left to purge");
    let partial: sqlx::types::Json<BTreeMap<String, i64>> =
        sqlx::query_scalar("SELECT purge_report FROM tenancy.offboardings WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(
        !partial.0.is_empty(),
        "batches committed before the cut are reported"
    );

    // Run again: it carries on (the lock died with the cut) and reports every row once.
    let report = offboard::purge(&config, "cut-short", &options())
        .await
        .unwrap();
    assert!(report.resumed);
    let mut deleted = report.deleted.clone();
    deleted.remove("attachment objects");
    let mut expected: BTreeMap<String, i64> = exported
        .manifest
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| (t.table.clone(), t.rows as i64))
        .collect();
    *expected.get_mut("platform.audit_log").unwrap() += 1;
    assert_eq!(deleted, expected);
    assert!(rows_of(&mut owner, tenant).await.values().all(|n| *n == 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ssns_sealed_before_tenants_had_keys_are_sealed_again_with_the_tenants_key() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let config = env.config();
    let (tenant, _) = clients_tenant(&env, &node, "upgraded").await;
    let reader =
        env.token_with_permissions(tenant, &[Role::Caseworker], &[], &["clients.read_ssn"]);
    let mut clients = node.clients.clone();
    let created = clients
        .create_client(authed(
            &reader,
            cpb::CreateClientRequest {
                client: Some(client("Ada", "Byron", "123-45-6789", (1980, 1, 2))),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    let id: uuid::Uuid = created.id.parse().unwrap();

    // As an earlier version stored it: sealed and indexed with the deployment's keys.
    let deployment = PiiCipher::from_file(&config.pii_keys_file).unwrap();
    let sealed = deployment.seal("123456789", &ssn_context(tenant, id));
    let mut owner = env.db.owner().await;
    sqlx::query(
        "UPDATE clients.clients SET ssn_sealed = $3, ssn_key_id = $4, ssn_hash = $5 \
          WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(id)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .bind(deployment.blind_index(tenant, "123456789"))
    .execute(&mut owner)
    .await
    .unwrap();
    let whole =
        |clients: &mut caseway_api::clients::v1::clients_service_client::ClientsServiceClient<
            _,
        >| {
            let request = authed(
                &reader,
                cpb::GetClientRequest {
                    id: created.id.clone(),
                    ssn_view: cpb::SsnView::Full as i32,
                },
            );
            let mut clients = clients.clone();
            async move {
                clients
                    .get_client(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .client
                    .unwrap()
                    .ssn
            }
        };
    let by_ssn =
        |clients: &mut caseway_api::clients::v1::clients_service_client::ClientsServiceClient<
            _,
        >| {
            let request = authed(
                &reader,
                cpb::SearchClientsRequest {
                    ssn: "123456789".into(),
                    ..Default::default()
                },
            );
            let mut clients = clients.clone();
            async move {
                clients
                    .search_clients(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .matches
                    .len()
            }
        };
    assert_eq!(
        whole(&mut clients).await,
        "123-45-6789",
        "an old value still opens"
    );
    assert_eq!(
        by_ssn(&mut clients).await,
        0,
        "but its old index is not the tenant's"
    );

    let resealed = offboard::reseal(&config, Some("upgraded")).await.unwrap();
    assert_eq!(resealed, vec![("upgraded".to_string(), 1)]);
    let key_id: String = sqlx::query_scalar("SELECT ssn_key_id FROM clients.clients WHERE id = $1")
        .bind(id)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(key_id, "tenant");
    assert_eq!(whole(&mut clients).await, "123-45-6789");
    assert_eq!(by_ssn(&mut clients).await, 1);
    assert_eq!(
        offboard::reseal(&config, None).await.unwrap(),
        vec![("upgraded".to_string(), 0)],
        "nothing left to reseal"
    );
}

#[tokio::test]
async fn exports_and_tenant_keys_live_in_an_s3_compatible_store() {
    let s3 = S3Server::start().await;
    for name in ["/exports", "/keys"] {
        let (status, _) = s3.request("PUT", name).await;
        assert!(status.contains("200"), "{status}");
    }
    let env = TestEnv::new().await;
    let config = env.config();
    let wrap = Arc::new(PiiCipher::from_file(&config.pii_keys_file).unwrap());

    // Tenants' keys: made once however many replicas race to make one, read by all, gone
    // once destroyed.
    let replicas: Vec<TenantKeys> = (0..4)
        .map(|_| TenantKeys::in_store(wrap.clone(), s3.bucket("keys", "tenant-keys")))
        .collect();
    let tenant = TenantId::new();
    let made = futures::future::join_all(replicas.iter().map(|k| k.key(tenant))).await;
    let indexes: Vec<Vec<u8>> = made
        .into_iter()
        .map(|k| k.unwrap().blind_index("123456789"))
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[0] == w[1]),
        "one key for the tenant"
    );
    let sealed = replicas[0]
        .key(tenant)
        .await
        .unwrap()
        .seal("123456789", b"ctx");
    assert_eq!(
        replicas[3]
            .open_sealed(tenant, &sealed, b"ctx")
            .await
            .unwrap(),
        "123456789"
    );
    assert!(replicas[1].destroy(tenant).await.unwrap());
    let later = TenantKeys::in_store(wrap.clone(), s3.bucket("keys", "tenant-keys"));
    assert!(later.open_sealed(tenant, &sealed, b"ctx").await.is_err());

    // A tenant's export, streamed to the bucket.
    let node = env.start(&caseway::Target::ALL).await;
    let staying = records_tenant(&env, &node, "to-s3").await;
    client_with_ssn(&node, &staying.worker).await;
    let (dir, key_file) = export_folder();
    let to = s3.bucket("exports", "acme/2026-12");
    let exported = offboard::export_to(&config, "to-s3", &to, &key_file)
        .await
        .unwrap();
    assert_eq!(exported.manifest.ssn.sealed, 1);
    for table in &exported.manifest.tables {
        let bytes = to
            .store
            .get(&to.path(&table.file))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), table.sha256, "{}", table.file);
    }
    let manifest = to
        .store
        .get(&to.path("manifest.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex(&Sha256::digest(&manifest)), exported.manifest_sha256);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_table_without_tenant_id_stops_the_export_until_it_is_placed() {
    let env = TestEnv::new().await;
    let mut owner = env.db.owner().await;
    assert!(tenant_tables(&mut owner).await.is_ok());
    sqlx::query("CREATE TABLE clients.scratch (id bigint PRIMARY KEY, note text)")
        .execute(&mut owner)
        .await
        .unwrap();
    let refused = tenant_tables(&mut owner).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("clients.scratch has no tenant_id"),
        "{refused}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
