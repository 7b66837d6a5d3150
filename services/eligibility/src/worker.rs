//! The eligibility service's background work, in every replica: the consumer that keeps its
//! read model of clients' facts and of the fact schema from the clients, records and catalog
//! services' events (one durable queue shared by the replicas; the inbox drops repeats and
//! each row's version drops what is older), a follower of its own rule events that drops a
//! tenant's cached published versions in every replica, and a listener of the announcements
//! of new facts that drops the checks they change from every replica's memo.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caseway_platform::bus::{self, Subscription};
use caseway_platform::server::{NodeBuilder, Platform};
use caseway_platform::{Db, TenantId};

use crate::events;
use crate::service::{self, Eligibility};

/// Batches of events applied at once by one replica: events of different clients do not wait
/// on each other, and versions order those of one client whatever order they come in.
const CONCURRENCY: usize = 4;

/// Events applied in one transaction, at most: under a stream of records the consumer commits
/// once for the events waiting rather than once for each.
const BATCH: usize = 32;

/// Adds the facts consumer to a node.
pub fn follow_facts(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    eligibility: Arc<Eligibility>,
) {
    let bus = platform.bus.clone();
    node.add_worker("eligibility-facts", move |shutdown| async move {
        let subscription = Subscription {
            queue: Some(bus.queue_name(events::CONSUMER)),
            bindings: events::FACT_EVENTS.iter().map(|s| s.to_string()).collect(),
            concurrency: CONCURRENCY,
        };
        bus::consume_batches(bus.clone(), subscription, shutdown, BATCH, |batch| {
            let eligibility = eligibility.clone();
            async move {
                let mut by_tenant: BTreeMap<TenantId, Vec<_>> = BTreeMap::new();
                for envelope in batch {
                    if let Some(fact) = events::fact(&envelope.event_type, &envelope.payload)? {
                        let facts = by_tenant.entry(envelope.tenant_id).or_default();
                        facts.push((envelope.id, fact));
                    }
                }
                for (tenant, facts) in by_tenant {
                    eligibility.apply_facts(tenant, facts).await?;
                }
                Ok(())
            }
        })
        .await;
    });
}

/// Adds the follower that drops a tenant's cached published versions when one is published
/// (a queue of this process's own: every replica hears every publication).
pub fn follow_rules(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    eligibility: Arc<Eligibility>,
) {
    let bus = platform.bus.clone();
    node.add_worker("eligibility-rule-cache", move |shutdown| async move {
        let subscription = Subscription {
            queue: None,
            bindings: vec![events::rule_event_type("published")],
            concurrency: 1,
        };
        bus::consume(bus.clone(), subscription, shutdown, |envelope| {
            let eligibility = eligibility.clone();
            async move {
                eligibility.forget_published(envelope.tenant_id);
                Ok(())
            }
        })
        .await;
    });
}

/// How long the listener waits before it listens again after losing PostgreSQL.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Adds the listener of [`service::FACTS_CHANNEL`] (a connection of its own per replica): the memo
/// is used only while it listens, and starts empty each time it begins again, so a fact
/// announced while it did not listen is never missed.
pub fn hear_facts(platform: &Arc<Platform>, node: &mut NodeBuilder, eligibility: Arc<Eligibility>) {
    let db = platform.db.clone();
    node.add_worker("eligibility-memo", move |shutdown| async move {
        loop {
            tokio::select! {
                _ = listen(&db, &eligibility) => {}
                _ = shutdown.cancelled() => break,
            }
            eligibility.hear_facts(false);
            tokio::select! {
                _ = tokio::time::sleep(LISTEN_RETRY) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        eligibility.hear_facts(false);
    });
}

/// Listens until the connection is lost.
async fn listen(db: &Db, eligibility: &Eligibility) {
    let mut listener = match db.listener().await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(error = %error, "cannot listen for new facts; checks are not memoised");
            return;
        }
    };
    if let Err(error) = listener.listen(service::FACTS_CHANNEL).await {
        tracing::warn!(error = %error, "cannot listen for new facts; checks are not memoised");
        return;
    }
    eligibility.hear_facts(true);
    // `try_recv` answers None when the connection is lost (and would reconnect on the next
    // call, after announcements may have been missed): this listener stops there.
    while let Ok(Some(notification)) = listener.try_recv().await {
        match announced(notification.payload()) {
            Some((tenant, scope)) => eligibility.facts_changed(tenant, scope),
            None => {
                tracing::warn!(
                    payload = notification.payload(),
                    "unreadable fact announcement"
                );
                eligibility.forget_checks();
            }
        }
    }
    tracing::warn!("lost the listener of new facts; checks are not memoised until it is back");
}

/// `<tenant> <scope>`, as a fact's transaction announces it.
fn announced(payload: &str) -> Option<(TenantId, uuid::Uuid)> {
    let (tenant, scope) = payload.split_once(' ')?;
    Some((TenantId(tenant.parse().ok()?), scope.parse().ok()?))
}
