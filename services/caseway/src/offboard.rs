//! `caseway tenant export` and `caseway tenant purge`: the offboarding library given this
//! deployment's database owner, PII keys, attachment store and consumers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sha2::Digest;
use uuid::Uuid;

use caseway_clients::pii::{PiiCipher, Sealed, ssn_context};
use caseway_clients::tenant_keys::{TENANT_KEY_ID, TenantKey, TenantKeys};
use caseway_offboarding::export::Exported;
use caseway_offboarding::purge::TenantObjects;
use caseway_offboarding::{ExportKey, PurgeOptions, PurgeReport, SsnOpener};
use caseway_platform::{Config, TenantId};

/// Opens SSNs as the clients service does: with the tenant's key, or a deployment key for
/// those sealed before tenants had keys.
struct Pii {
    keys: Arc<TenantKeys>,
    tenant_key: Option<Arc<TenantKey>>,
}

impl SsnOpener for Pii {
    fn open(
        &self,
        tenant: TenantId,
        client: Uuid,
        key_id: &str,
        sealed: &[u8],
    ) -> anyhow::Result<String> {
        let sealed = Sealed {
            key_id: key_id.to_string(),
            bytes: sealed.to_vec(),
        };
        let context = ssn_context(tenant, client);
        match &self.tenant_key {
            Some(key) if key_id == TENANT_KEY_ID => key.open(&sealed, &context),
            None if key_id == TENANT_KEY_ID => anyhow::bail!("the tenant's PII key is gone"),
            _ => self.keys.deployment().open(&sealed, &context),
        }
    }
}

/// The openers of tenants' SSNs the HMIS export uses.
pub struct SsnKeysOf(pub Arc<TenantKeys>);

impl caseway_hmis::SsnKeys for SsnKeysOf {
    fn opener(
        &self,
        tenant: TenantId,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<Box<dyn SsnOpener>>> {
        Box::pin(async move {
            let opener: Box<dyn SsnOpener> = Box::new(Pii {
                tenant_key: self.0.existing(tenant).await?,
                keys: self.0.clone(),
            });
            Ok(opener)
        })
    }
}

/// The tenants' PII keys of this deployment.
pub fn tenant_keys(config: &Config) -> anyhow::Result<TenantKeys> {
    TenantKeys::open(
        Arc::new(PiiCipher::from_file(&config.pii_keys_file)?),
        &config.pii_tenant_keys,
        &config.data_dir,
    )
}

/// Seals again with their tenant's own key the SSNs sealed before tenants had keys: of the
/// tenant named by `key`, or of every tenant. How many, per tenant slug.
pub async fn reseal(config: &Config, key: Option<&str>) -> anyhow::Result<Vec<(String, u64)>> {
    let pool = caseway_offboarding::owner_pool(&config.migration_database_url)?;
    let tenants = match key {
        Some(key) => vec![caseway_offboarding::find_tenant(&pool, key).await?],
        None => caseway_offboarding::all_tenants(&pool).await?,
    };
    pool.close().await;
    let keys = tenant_keys(config)?;
    let db = caseway_platform::db::Db::connect_lazy(&config.database_url, 2)?;
    let mut resealed = Vec::new();
    for tenant in tenants.iter().filter(|t| t.purged_at.is_none()) {
        let n = caseway_clients::service::reseal_legacy_ssns(&db, &keys, tenant.id, 500)
            .await
            .map_err(|e| anyhow::anyhow!("resealing {}: {e}", tenant.slug))?;
        resealed.push((tenant.slug.clone(), n));
    }
    db.close().await;
    Ok(resealed)
}

/// The consumers whose dead-letter queues a purge clears of the tenant's events.
pub const DURABLE_CONSUMERS: [&str; 2] = [
    caseway_authorizations::events::CONSUMER,
    caseway_eligibility::events::CONSUMER,
];

/// Exports the tenant named by `key` (slug or id) to `to`, its SSNs sealed with the key in
/// `ssn_key_file`.
pub async fn export(
    config: &Config,
    key: &str,
    to: &str,
    ssn_key_file: &Path,
) -> anyhow::Result<Exported> {
    let destination = caseway_offboarding::destination::parse(to)?;
    export_to(config, key, &destination, ssn_key_file).await
}

/// [`export`] to a destination already opened.
pub async fn export_to(
    config: &Config,
    key: &str,
    destination: &caseway_offboarding::destination::Destination,
    ssn_key_file: &Path,
) -> anyhow::Result<Exported> {
    let pool = caseway_offboarding::owner_pool(&config.migration_database_url)?;
    let tenant = caseway_offboarding::find_tenant(&pool, key).await?;
    anyhow::ensure!(
        tenant.purged_at.is_none(),
        "tenant {} is purged: nothing is left to export",
        tenant.slug
    );
    let ssn_key = std::fs::read_to_string(ssn_key_file)
        .with_context(|| format!("reading {}", ssn_key_file.display()))?;
    let ssn_key = ExportKey::parse(&ssn_key)?;
    let keys = Arc::new(tenant_keys(config)?);
    let pii = Pii {
        tenant_key: keys.existing(tenant.id).await?,
        keys: keys.clone(),
    };
    let attachments = attachment_store(config)?;
    let exported = caseway_offboarding::export(
        &pool,
        &tenant,
        destination,
        (&pii, &ssn_key),
        Some(attachments),
    )
    .await;
    pool.close().await;
    exported
}

/// Purges the tenant named by `key`: seals its SSNs left under a deployment key with its own
/// key, purges its rows, destroys its key, then drops its parked events.
pub async fn purge(
    config: &Config,
    key: &str,
    options: &PurgeOptions,
) -> anyhow::Result<PurgeReport> {
    let pool = caseway_offboarding::owner_pool(&config.migration_database_url)?;
    let tenant = caseway_offboarding::find_tenant(&pool, key).await?;
    if tenant.purged_at.is_none() {
        reseal(config, Some(key)).await?;
    }
    let purged = caseway_offboarding::purge(&pool, &tenant, options, &tenant_stores(config)?).await;
    pool.close().await;
    let mut report = purged?;
    report.tenant_key_destroyed = tenant_keys(config)?.destroy(tenant.id).await?;
    let bus = caseway_platform::bus::Bus::new(&config.amqp_url, &config.events_exchange)
        .with_ca_file(config.amqp_ca_file.as_deref())?;
    report.parked_events_dropped =
        caseway_offboarding::drop_parked_events(&bus, &DURABLE_CONSUMERS, tenant.id).await?;
    Ok(report)
}

/// Exports the suspended tenant named by `key`, then purges it; a tenant already purged (an
/// earlier run stopped after its export) is purged again, which carries on where it stopped.
pub async fn offboard(
    config: &Config,
    key: &str,
    to: &str,
    ssn_key_file: &Path,
) -> anyhow::Result<PurgeReport> {
    let destination = caseway_offboarding::destination::parse(to)?;
    offboard_to(config, key, &destination, ssn_key_file).await
}

/// [`offboard`] to a destination already opened.
pub async fn offboard_to(
    config: &Config,
    key: &str,
    destination: &caseway_offboarding::destination::Destination,
    ssn_key_file: &Path,
) -> anyhow::Result<PurgeReport> {
    let pool = caseway_offboarding::owner_pool(&config.migration_database_url)?;
    let tenant = caseway_offboarding::find_tenant(&pool, key).await;
    pool.close().await;
    let tenant = tenant?;
    if tenant.purged_at.is_none() {
        anyhow::ensure!(
            tenant.status == "suspended",
            "tenant {} is {}: suspend it first",
            tenant.slug,
            tenant.status
        );
        // Nodes trust a tenant's status for a while: the export begins once none can still
        // write for it, so it holds every row the purge deletes.
        let settled = tenant.changed_at + chrono::Duration::from_std(config.tenant_status_ttl)?;
        if let Ok(wait) = (settled - chrono::Utc::now()).to_std() {
            tracing::info!(
                wait_s = wait.as_secs(),
                "waiting for the suspension to reach every node"
            );
            tokio::time::sleep(wait + std::time::Duration::from_secs(1)).await;
        }
        let exported = export_to(config, key, destination, ssn_key_file).await?;
        // Nothing is purged unless the export can be read back whole from where it went.
        let manifest = destination
            .store
            .get(&destination.path("manifest.json"))
            .await
            .context("reading the export's manifest back")?
            .bytes()
            .await?;
        let read_back = caseway_platform::objects::hex(&sha2::Sha256::digest(&manifest));
        anyhow::ensure!(
            read_back == exported.manifest_sha256,
            "the export's manifest read back from {} is not the one written: nothing purged",
            destination.location
        );
        tracing::info!(
            tenant = %tenant.slug,
            rows = exported.manifest.rows(),
            manifest = %exported.manifest_sha256,
            "exported"
        );
    }
    let options = PurgeOptions {
        settle: config.tenant_status_ttl,
        ..PurgeOptions::default()
    };
    purge(config, key, &options).await
}

/// Every store that keeps tenants' objects: the attachments', the HMIS exports'.
fn tenant_stores(config: &Config) -> anyhow::Result<Vec<TenantObjects>> {
    let hmis = caseway_hmis::export_store(config)?;
    Ok(vec![
        TenantObjects {
            report_as: "attachment objects",
            store: attachment_store(config)?,
            prefix: Default::default(),
        },
        TenantObjects {
            report_as: "HMIS export objects",
            store: hmis.store,
            prefix: hmis.prefix,
        },
    ])
}

fn attachment_store(config: &Config) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    Ok(caseway_ticketing::files::Files::open(config)?.store())
}
