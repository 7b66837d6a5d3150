//! A leaving tenant: its full export (every table, attachments, SSNs sealed with its own key,
//! a manifest whose counts and checksums are checked here) and the purge that follows (zero
//! rows of it in every table, another tenant untouched, its late events dropped, never
//! resumed).

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::Code;

use caseway::offboard;
use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::tenants::records_tenant;
use caseway_integration_tests::{TestEnv, authed, submit_ticket, upload_attachment};
use caseway_offboarding::tables::tenant_tables;
use caseway_offboarding::{ExportKey, PurgeOptions};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

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

fn options() -> PurgeOptions {
    // Small batches, so a table of the demo takes several.
    PurgeOptions {
        batch: 7,
        grace: Duration::ZERO,
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
    let staying = records_tenant(&env, &node, "staying").await.tenant;
    let mut owner = env.db.owner().await;
    let before = settled(&mut owner, leaving).await;
    let others_before = rows_of(&mut owner, staying).await;
    assert!(before["clients.clients"] >= 5 && before["records.service_records"] > 0);
    assert!(others_before["clients.clients"] > 0);

    // The export: every table's rows, each file's count and checksum in the manifest.
    let dir = std::env::temp_dir().join(format!("caseway-export-{}", uuid::Uuid::new_v4()));
    let key_file = dir.join("ssn.key");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&key_file, ExportKey::generate()).unwrap();
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
    let mut opened = 0;
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
    tenancy
        .suspend_tenant(authed(
            &root,
            tpb::SuspendTenantRequest {
                id: leaving.to_string(),
                reason: "offboarding".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
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

    let report = offboard::purge(&config, "demo", &options()).await.unwrap();
    assert!(!report.resumed);
    let mut deleted = report.deleted.clone();
    assert_eq!(deleted.remove("attachment objects"), Some(1));
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
