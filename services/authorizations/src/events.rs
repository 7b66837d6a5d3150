//! What the authorizations service consumes: the records service's events confirm, move and
//! give back the units that service records draw. Each event is applied once (the inbox) and
//! an event older than what is known changes nothing (record versions).

use std::sync::Arc;

use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::events::v1::ServiceRecordChanged;
use caseway_api::records::v1::ServiceRecordKind;
use caseway_platform::bus::{self, Envelope, Subscription};
use caseway_platform::etag;
use caseway_platform::inbox;
use caseway_platform::server::{NodeBuilder, Platform};
use caseway_platform::{Scoped, TenantId};

use crate::domain::settle;
use crate::store;

/// The inbox name of the drawdown consumer, and its queue's.
pub const CONSUMER: &str = "authorizations.drawdown";

/// Events applied at once by one replica: the order of a record's events does not matter
/// (record versions order them, the authorization's row lock serialises its draws, the inbox
/// drops repeats), so waiting on one transaction does not hold up the others.
const CONCURRENCY: usize = 8;

pub const RECORD_EVENTS: &[&str] = &[
    "records.service_recorded.v1",
    "records.service_updated.v1",
    "records.service_deleted.v1",
];

/// Adds the drawdown consumer to a node: one durable queue shared by every replica.
pub fn follow_records(platform: &Arc<Platform>, node: &mut NodeBuilder) {
    let platform = platform.clone();
    node.add_worker("authorizations-drawdown", move |shutdown| async move {
        let subscription = Subscription {
            queue: Some(platform.bus.queue_name(CONSUMER)),
            bindings: RECORD_EVENTS.iter().map(|s| s.to_string()).collect(),
            concurrency: CONCURRENCY,
        };
        let bus = platform.bus.clone();
        bus::consume(bus, subscription, shutdown, |envelope| {
            let platform = platform.clone();
            async move { apply(&platform, &envelope).await }
        })
        .await;
    });
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::ZERO)
}

/// Applies one records event to the draws it concerns.
pub async fn apply(platform: &Platform, envelope: &Envelope) -> anyhow::Result<()> {
    let change = ServiceRecordChanged::decode(envelope.payload.as_slice())?;
    let record = change.record.unwrap_or_default();
    let current = Uuid::parse_str(&record.authorization_id).ok();
    let previous = Uuid::parse_str(&change.previous_authorization_id).ok();
    if current.is_none() && previous.is_none() {
        return Ok(());
    }
    let record_id = Uuid::parse_str(&record.id)?;
    let version = etag::parse("etag", &record.etag)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .unwrap_or(0);
    let delivered = envelope.event_type != "records.service_deleted.v1"
        && record.kind == ServiceRecordKind::Delivered as i32;
    let service_date = record
        .service_date
        .as_ref()
        .and_then(|d| chrono::NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32));
    let mut tx = platform.db.tenant_tx(envelope.tenant_id).await?;
    if !inbox::first_delivery(&mut tx, CONSUMER, envelope.id).await? {
        return Ok(());
    }
    // A record moving from one authorization to another locks both, always in the order of
    // their ids: another record moving the other way at the same moment waits instead of
    // deadlocking.
    let mut locked: Vec<Uuid> = previous.into_iter().chain(current).collect();
    locked.sort();
    locked.dedup();
    for authorization_id in locked {
        store::load(tx.conn(), authorization_id, true).await?;
    }
    // The record moved to another authorization (or to none): the old one gets its units back.
    if let Some(previous) = previous
        && Some(previous) != current
    {
        confirm(
            &mut tx,
            envelope.tenant_id,
            previous,
            record_id,
            Decimal::ZERO,
            Decimal::ZERO,
            version,
            None,
        )
        .await?;
    }
    if let Some(current) = current {
        let (units, value) = if delivered {
            (decimal(&record.units), decimal(&record.value))
        } else {
            (Decimal::ZERO, Decimal::ZERO)
        };
        confirm(
            &mut tx,
            envelope.tenant_id,
            current,
            record_id,
            units,
            value,
            version,
            service_date,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn confirm(
    tx: &mut impl Scoped,
    tenant: TenantId,
    authorization_id: Uuid,
    record_id: Uuid,
    units: Decimal,
    value: Decimal,
    version: i64,
    service_date: Option<chrono::NaiveDate>,
) -> anyhow::Result<()> {
    if store::load(tx.conn(), authorization_id, true)
        .await?
        .is_none()
    {
        // The records service checked the authorization when it held the units; one that is
        // not there is not this tenant's, and there is nothing to count.
        tracing::warn!(%authorization_id, %record_id, "a service record names an unknown authorization");
        return Ok(());
    }
    let before = store::draw(tx.conn(), authorization_id, record_id).await?;
    if let Some(after) = settle(&before, units, value, version) {
        store::save_draw(
            tx.conn(),
            tenant,
            authorization_id,
            record_id,
            service_date,
            &before,
            &after,
        )
        .await?;
    }
    Ok(())
}
