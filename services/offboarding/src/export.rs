//! A tenant's full export: every row of every table it has rows in, one JSON object a line
//! per table (`tables/<schema>.<table>.jsonl`), its attachments as they are stored
//! (`attachments/<object key>`), and `manifest.json` with each file's row count, size and
//! SHA-256. Everything is read in one repeatable-read snapshot and written as it is read, so
//! the counts agree with each other and memory stays flat whatever the tenant's size.
//!
//! SSNs never leave in the clear, nor under the deployment's keys: each is opened and sealed
//! again with the key the tenant supplied (AES-256-GCM; the 12-byte nonce, then the ciphertext
//! and tag, in base64, bound to the tenant and client ids), in the field
//! `ssn_sealed_for_export`; the deployment's ciphertext and keyed hash are left out.

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::objects::{Counted, hex};
use caseway_platform::sealing;

use crate::destination::Destination;
use crate::tables::{TenantTable, tenant_tables};
use crate::{Tenant, act_for};

/// The format the manifest names, for readers of an export.
pub const FORMAT: &str = "caseway-tenant-export/1";

/// The table whose rows hold sealed SSNs, and the columns an export leaves out of it (the
/// deployment's ciphertext, its key id and keyed hash: useless outside, and not the tenant's).
const SSN_TABLE: &str = "clients.clients";
const SSN_COLUMNS: [&str; 3] = ["ssn_sealed", "ssn_key_id", "ssn_hash"];

/// The field of an exported client holding its SSN sealed with the tenant's key.
pub const SSN_FIELD: &str = "ssn_sealed_for_export";

/// Where attachments' images are kept, by `ticketing.attachments.object_key`.
const ATTACHMENTS_TABLE: &str = "ticketing.attachments";

pub use caseway_platform::sealing::SsnOpener;

/// The key the tenant supplied for its SSNs: 32 bytes, base64.
pub struct ExportKey {
    cipher: Aes256Gcm,
    /// The first 16 hex digits of the key's SHA-256, so the tenant can tell which key.
    fingerprint: String,
}

impl ExportKey {
    pub fn parse(text: &str) -> anyhow::Result<ExportKey> {
        let bytes = STANDARD
            .decode(text.trim())
            .context("the export key is 32 bytes in base64")?;
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("the export key is 32 bytes in base64"))?;
        let digest = Sha256::digest(&bytes);
        Ok(ExportKey {
            cipher,
            fingerprint: hex(&digest[..8]),
        })
    }

    /// A new key, in base64, for a tenant that has none.
    pub fn generate() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// `plaintext` sealed for `client` of `tenant`, in base64.
    pub fn seal(&self, tenant: TenantId, client: Uuid, plaintext: &str) -> String {
        STANDARD.encode(sealing::seal(
            &self.cipher,
            plaintext.as_bytes(),
            &context(tenant, client),
        ))
    }

    /// What [`ExportKey::seal`] sealed, for the tenant reading its export.
    pub fn open(&self, tenant: TenantId, client: Uuid, sealed: &str) -> anyhow::Result<String> {
        let bytes = STANDARD.decode(sealed).context("a sealed SSN is base64")?;
        let plaintext = sealing::open(&self.cipher, &bytes, &context(tenant, client))
            .context("the sealed SSN does not open with this key")?;
        Ok(String::from_utf8(plaintext)?)
    }
}

/// The associated data of a sealed SSN: the tenant's id then the client's, as bytes.
fn context(tenant: TenantId, client: Uuid) -> Vec<u8> {
    [tenant.as_uuid().as_bytes().as_slice(), client.as_bytes()].concat()
}

/// What an export holds, written last as `manifest.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub tenant: Tenant,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    pub tables: Vec<TableFile>,
    pub attachments: Vec<AttachmentFile>,
    pub ssn: SsnSealing,
}

impl Manifest {
    /// Rows exported in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TableFile {
    /// `schema.table`.
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttachmentFile {
    pub object_key: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// How the SSNs of the export are sealed.
#[derive(Clone, Debug, Serialize)]
pub struct SsnSealing {
    pub table: &'static str,
    pub field: &'static str,
    pub cipher: &'static str,
    pub layout: &'static str,
    pub associated_data: &'static str,
    pub key_fingerprint: String,
    pub sealed: u64,
}

/// What an export wrote: its manifest and the manifest's SHA-256, which the ledger keeps.
pub struct Exported {
    pub manifest: Manifest,
    pub manifest_sha256: String,
}

/// Exports every row of `tenant` to `to`, with the attachments of `attachments` (the store
/// ticketing keeps them in; required when the tenant has any), and records the export in the
/// offboarding ledger.
pub async fn export(
    pool: &PgPool,
    tenant: &Tenant,
    to: &Destination,
    ssn: (&dyn SsnOpener, &ExportKey),
    attachments: Option<Arc<dyn ObjectStore>>,
) -> anyhow::Result<Exported> {
    // Rolled back if anything below fails, so the connection goes back clean.
    let mut conn = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    act_for(&mut conn, tenant.id).await?;
    // The snapshot's time by the database's clock: what the ledger records, and what a purge
    // compares with the tenant's suspension.
    let snapshot_at: crate::Time = sqlx::query_scalar("SELECT transaction_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    let tables = tenant_tables(&mut conn).await?;
    let mut names: Vec<&TenantTable> = tables.iter().collect();
    names.sort_by_key(|t| t.full_name());
    let mut files = Vec::with_capacity(names.len());
    let mut sealed = 0;
    for table in names {
        let (file, sealed_here) = export_table(&mut conn, tenant.id, table, to, ssn).await?;
        tracing::info!(table = %file.table, rows = file.rows, "exported");
        sealed += sealed_here;
        files.push(file);
    }
    let attachment_files = if tables.iter().any(|t| t.full_name() == ATTACHMENTS_TABLE) {
        export_attachments(&mut conn, tenant.id, to, attachments).await?
    } else {
        Vec::new()
    };
    conn.commit().await?;

    let manifest = Manifest {
        format: FORMAT,
        tenant: tenant.clone(),
        exported_at: snapshot_at,
        tables: files,
        attachments: attachment_files,
        ssn: SsnSealing {
            table: SSN_TABLE,
            field: SSN_FIELD,
            cipher: "AES-256-GCM",
            layout: "base64 of the 12-byte nonce, then the ciphertext and the 16-byte tag",
            associated_data: "the tenant id's 16 bytes, then the client id's 16 bytes",
            key_fingerprint: ssn.1.fingerprint.clone(),
            sealed,
        },
    };
    let text = serde_json::to_vec_pretty(&manifest)?;
    let manifest_sha256 = hex(&Sha256::digest(&text));
    to.store
        .put(&to.path("manifest.json"), text.into())
        .await
        .context("writing manifest.json")?;

    let mut tx = pool.begin().await?;
    act_for(&mut tx, tenant.id).await?;
    sqlx::query(
        "INSERT INTO tenancy.offboardings (tenant_id, exported_at, export_location, export_manifest) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO UPDATE SET exported_at = excluded.exported_at, \
             export_location = excluded.export_location, \
             export_manifest = excluded.export_manifest, updated_at = now()",
    )
    .bind(tenant.id.as_uuid())
    .bind(manifest.exported_at)
    .bind(&to.location)
    .bind(&manifest_sha256)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO platform.audit_log (tenant_id, actor, action, resource_type, resource_id) \
         VALUES ($1, 'caseway-cli', 'tenant.exported', 'tenant', $1)",
    )
    .bind(tenant.id.as_uuid())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Exported {
        manifest,
        manifest_sha256,
    })
}

/// Streams one table's rows of the tenant to its file; returns the file and how many SSNs it
/// sealed.
async fn export_table(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &TenantTable,
    to: &Destination,
    (opener, key): (&dyn SsnOpener, &ExportKey),
) -> anyhow::Result<(TableFile, u64)> {
    let full = table.full_name();
    let holds_ssn = full == SSN_TABLE;
    let row = if holds_ssn {
        let dropped: String = SSN_COLUMNS.iter().map(|c| format!(" - '{c}'")).collect();
        format!("(to_jsonb(t){dropped})::text, t.id, t.ssn_key_id, t.ssn_sealed")
    } else {
        "to_jsonb(t)::text, NULL::uuid, NULL::text, NULL::bytea".to_string()
    };
    let order = table
        .key_list()
        .map(|k| format!(" ORDER BY {k}"))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {row} FROM {} t WHERE t.tenant_id = $1{order}",
        table.quoted()
    );
    let file = format!("tables/{full}.jsonl");
    let mut out = Counted::new(to.store.clone(), to.path(&file));
    let mut rows = sqlx::query_as::<_, (String, Option<Uuid>, Option<String>, Option<Vec<u8>>)>(
        AssertSqlSafe(sql),
    )
    .bind(tenant.as_uuid())
    .fetch(&mut *conn);
    let (mut count, mut sealed) = (0u64, 0u64);
    while let Some((json, id, key_id, ssn)) = rows.try_next().await? {
        count += 1;
        let line = match (id, key_id, ssn) {
            (Some(client), Some(key_id), Some(ssn)) if holds_ssn => {
                let digits = opener
                    .open(tenant, client, &key_id, &ssn)
                    .with_context(|| format!("opening the SSN of client {client}"))?;
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&json)?;
                object.insert(
                    SSN_FIELD.into(),
                    serde_json::Value::String(key.seal(tenant, client, &digits)),
                );
                sealed += 1;
                serde_json::to_string(&object)?
            }
            (_, None, Some(_)) if holds_ssn => {
                bail!("a client's SSN is sealed with no key id: it cannot leave sealed")
            }
            _ => json,
        };
        out.write(line.as_bytes()).await?;
        out.write(b"\n").await?;
    }
    drop(rows);
    let (bytes, sha256) = out
        .finish()
        .await
        .with_context(|| format!("writing {file}"))?;
    Ok((
        TableFile {
            table: full,
            file,
            rows: count,
            bytes,
            sha256,
        },
        sealed,
    ))
}

/// Copies the tenant's attachments from their store.
async fn export_attachments(
    conn: &mut PgConnection,
    tenant: TenantId,
    to: &Destination,
    from: Option<Arc<dyn ObjectStore>>,
) -> anyhow::Result<Vec<AttachmentFile>> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT object_key FROM ticketing.attachments WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let Some(from) = from else {
        bail!(
            "the tenant has {} attachments: name their store (CASEWAY_TICKETING_ATTACHMENTS)",
            keys.len()
        );
    };
    let mut files = Vec::with_capacity(keys.len());
    for object_key in keys {
        let file = format!("attachments/{object_key}");
        let mut out = Counted::new(to.store.clone(), to.path(&file));
        let mut stream = from
            .get(&Path::from(object_key.as_str()))
            .await
            .with_context(|| format!("reading attachment {object_key}"))?
            .into_stream();
        while let Some(chunk) = stream.try_next().await? {
            out.write(&chunk).await?;
        }
        let (bytes, sha256) = out.finish().await?;
        files.push(AttachmentFile {
            object_key,
            file,
            bytes,
            sha256,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_ssn_opens_with_its_key_for_its_client_only() {
        let key = ExportKey::parse(&ExportKey::generate()).unwrap();
        let (tenant, client) = (TenantId::new(), Uuid::new_v4());
        let sealed = key.seal(tenant, client, "123456789");
        assert!(!sealed.contains("123456789"));
        assert_eq!(key.open(tenant, client, &sealed).unwrap(), "123456789");
        assert!(key.open(tenant, Uuid::new_v4(), &sealed).is_err());
        let other = ExportKey::parse(&ExportKey::generate()).unwrap();
        assert!(other.open(tenant, client, &sealed).is_err());
    }

    #[test]
    fn an_export_key_is_32_bytes() {
        assert!(ExportKey::parse("c2hvcnQ=").is_err());
        assert!(ExportKey::parse("not base64!").is_err());
    }
}
