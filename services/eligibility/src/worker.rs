//! The eligibility service's background work, in every replica: the consumer that keeps its
//! read model of clients' facts and of the fact schema from the clients, records and catalog
//! services' events (one durable queue shared by the replicas; the inbox drops repeats and
//! each row's version drops what is older), and a follower of its own rule events that drops a
//! tenant's cached published versions in every replica.

use std::sync::Arc;

use caseway_platform::bus::{self, Subscription};
use caseway_platform::server::{NodeBuilder, Platform};

use crate::events;
use crate::service::Eligibility;

/// Events applied at once by one replica: events of different clients do not wait on each
/// other, and versions order those of one client whatever order they come in.
const CONCURRENCY: usize = 8;

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
        bus::consume(bus.clone(), subscription, shutdown, |envelope| {
            let eligibility = eligibility.clone();
            async move {
                match events::fact(&envelope.event_type, &envelope.payload)? {
                    Some(fact) => {
                        eligibility
                            .apply_fact(envelope.tenant_id, envelope.id, fact)
                            .await?;
                        Ok(())
                    }
                    None => Ok(()),
                }
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
