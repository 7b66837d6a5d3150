//! The ticketing service's background work, in every replica: a follower of its own events
//! (a private queue: every replica hears every change) that hands each to the organization's
//! watchers connected to this replica; and a loop that marks run-out service levels and
//! closes resolved tickets (a PostgreSQL advisory lock lets one replica do each round).

use std::sync::Arc;
use std::time::Duration;

use caseway_platform::bus::{self, Subscription};
use caseway_platform::server::{NodeBuilder, Platform};

use crate::events;
use crate::service::Ticketing;

/// The binding of the watchers' follower: every ticketing event.
pub const WATCHED: &str = "ticketing.#";

/// Adds the follower that feeds this replica's watchers.
pub fn follow_changes(platform: &Arc<Platform>, node: &mut NodeBuilder, ticketing: Arc<Ticketing>) {
    let bus = platform.bus.clone();
    node.add_worker("ticketing-watchers", move |shutdown| async move {
        let subscription = Subscription {
            queue: None,
            bindings: vec![WATCHED.to_string()],
            concurrency: 1,
        };
        bus::consume(bus.clone(), subscription, shutdown, |envelope| {
            let ticketing = ticketing.clone();
            async move {
                if let Some(change) = events::watched(&envelope.event_type, &envelope.payload)? {
                    ticketing.changed(envelope.tenant_id, change);
                }
                Ok(())
            }
        })
        .await;
    });
}

/// Adds the sweeping loop to a node: a round at start and then every `interval`.
pub fn sweep(node: &mut NodeBuilder, interval: Duration, ticketing: Arc<Ticketing>) {
    node.add_worker("ticketing-sweeper", move |shutdown| async move {
        loop {
            match ticketing.sweep_service_levels().await {
                Ok(Some(breached)) if breached > 0 => {
                    tracing::info!(breached, "service levels run out")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "the service-level sweep failed"),
            }
            match ticketing.close_resolved().await {
                Ok(Some(closed)) if closed > 0 => tracing::info!(closed, "closed resolved tickets"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "closing resolved tickets failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    });
}
