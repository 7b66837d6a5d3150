//! The authorizations' background work, in every replica: the drawdown consumer of the
//! records service's events, and a loop that closes approved authorizations whose end date
//! has passed and gives back holds whose record never came (a PostgreSQL advisory lock lets
//! one replica do each round, so there is no second scheduler).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use caseway_platform::bus::{self, Subscription};
use caseway_platform::server::{NodeBuilder, Platform};

use crate::events;
use crate::service::{Authorizations, close_expired};

/// Events applied at once by one replica: the order of a record's events does not matter
/// (record versions order them and make a repeat change nothing, the authorization's row lock
/// serialises its draws), so waiting on one transaction does not hold up the others.
const CONCURRENCY: usize = 8;

/// Adds the drawdown consumer to a node: one durable queue shared by every replica.
pub fn follow_records(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    authorizations: Arc<Authorizations>,
) {
    let bus = platform.bus.clone();
    node.add_worker("authorizations-drawdown", move |shutdown| async move {
        let subscription = Subscription {
            queue: Some(bus.queue_name(events::CONSUMER)),
            bindings: events::RECORD_EVENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            concurrency: CONCURRENCY,
        };
        bus::consume(bus.clone(), subscription, shutdown, |envelope| {
            let authorizations = authorizations.clone();
            async move {
                match events::record_draw(&envelope.event_type, &envelope.payload)? {
                    Some(draw) => {
                        authorizations
                            .apply_record_event(envelope.tenant_id, draw)
                            .await
                    }
                    None => Ok(()),
                }
            }
        })
        .await;
    });
}

/// Adds the worker loop to a node: a round at start and then every `interval`; a hold that
/// waited `unsettled_after` for its record's event is looked into.
pub fn add(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    interval: Duration,
    unsettled_after: Duration,
    authorizations: Arc<Authorizations>,
) {
    let db = platform.db.clone();
    node.add_worker(
        "authorizations-worker",
        move |shutdown: CancellationToken| async move {
            loop {
                match close_expired(&db, Utc::now().date_naive()).await {
                    Ok(Some(closed)) if closed > 0 => {
                        tracing::info!(closed, "closed authorizations whose end date has passed")
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "closing expired authorizations failed")
                    }
                }
                let older_than = chrono::Duration::from_std(unsettled_after)
                    .unwrap_or(chrono::Duration::minutes(10));
                if let Err(error) = authorizations.sweep_unsettled(older_than).await {
                    tracing::warn!(error = %error, "giving back unsettled holds failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        },
    );
}
