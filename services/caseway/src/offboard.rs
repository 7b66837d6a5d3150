//! `caseway tenant export` and `caseway tenant purge`: the offboarding library given this
//! deployment's database owner, PII keys, attachment store and consumers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use uuid::Uuid;

use caseway_clients::pii::{PiiCipher, Sealed, ssn_context};
use caseway_offboarding::destination::Destination;
use caseway_offboarding::export::Exported;
use caseway_offboarding::{ExportKey, PurgeOptions, PurgeReport, SsnOpener};
use caseway_platform::{Config, TenantId};

/// Opens SSNs with the deployment's PII keys, as the clients service does.
struct Pii(PiiCipher);

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
        self.0.open(&sealed, &ssn_context(tenant, client))
    }
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
    let pii = Pii(PiiCipher::from_file(&config.pii_keys_file)?);
    let destination = Destination::parse(to)?;
    let attachments = attachment_store(config)?;
    let exported = caseway_offboarding::export(
        &pool,
        &tenant,
        &destination,
        (&pii, &ssn_key),
        Some(attachments),
    )
    .await;
    pool.close().await;
    exported
}

/// Purges the tenant named by `key`, then drops its parked events.
pub async fn purge(
    config: &Config,
    key: &str,
    options: &PurgeOptions,
) -> anyhow::Result<PurgeReport> {
    let pool = caseway_offboarding::owner_pool(&config.migration_database_url)?;
    let tenant = caseway_offboarding::find_tenant(&pool, key).await?;
    let purged =
        caseway_offboarding::purge(&pool, &tenant, options, Some(attachment_store(config)?)).await;
    pool.close().await;
    let mut report = purged?;
    let bus = caseway_platform::bus::Bus::new(&config.amqp_url, &config.events_exchange)
        .with_ca_file(config.amqp_ca_file.as_deref())?;
    report.parked_events_dropped =
        caseway_offboarding::drop_parked_events(&bus, &DURABLE_CONSUMERS, tenant.id).await?;
    Ok(report)
}

fn attachment_store(config: &Config) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    Ok(caseway_ticketing::files::Files::open(config)?.store())
}
