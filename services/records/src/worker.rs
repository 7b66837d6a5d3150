//! The records' background work, in every replica: folding the changes of service records into
//! the day totals GetServiceTotals reads, every second (a fold runs in one replica at a time;
//! the others wait for it and find little left). GetServiceTotals folds too before it reads, so
//! this only keeps the waiting changes few.

use std::time::Duration;

use caseway_platform::Db;
use caseway_platform::server::NodeBuilder;

use crate::service::fold_totals;

/// How often the waiting changes are folded.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// Adds the folding loop to a node.
pub fn add(db: Db, node: &mut NodeBuilder) {
    node.add_worker("records-totals", move |shutdown| async move {
        loop {
            if let Err(error) = fold_totals(&db).await {
                tracing::warn!(error = %error, "folding service records into the day totals failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLD_INTERVAL) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    });
}
