//! Closes approved authorizations whose end date has passed. Every replica runs the loop; a
//! PostgreSQL advisory lock lets one of them do each round, so there is no second scheduler.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use caseway_platform::TenantId;
use caseway_platform::auth::Principal;
use caseway_platform::error::Result;
use caseway_platform::server::{NodeBuilder, Platform};

use crate::api::record_change;
use crate::domain::AuthorizationStatus;
use crate::store;

/// The advisory lock key of the closing round (any constant shared by every replica).
const LOCK_KEY: i64 = 7_262_005;
/// Authorizations closed per transaction; a round goes on until none is left.
const BATCH: i64 = 500;
/// Who the audit trail names for what the worker does.
pub const WORKER: &str = "caseway/authorizations-worker";

/// One round: closes what ended before `today`. None when another replica holds the lock.
pub async fn close_expired(platform: &Platform, today: NaiveDate) -> Result<Option<usize>> {
    let mut closed = 0;
    loop {
        let mut tx = platform.db.system_tx().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(tx.conn())
            .await?;
        if !locked {
            return Ok(if closed == 0 { None } else { Some(closed) });
        }
        let expired = store::expired(tx.conn(), today, BATCH).await?;
        for &(tenant, id) in &expired {
            tx.act_for_tenant(TenantId(tenant)).await?;
            let row = store::set_status(
                tx.conn(),
                id,
                AuthorizationStatus::Closed as i16,
                WORKER,
                Some("the end date has passed"),
            )
            .await?;
            let actor = Principal {
                user_id: WORKER.into(),
                tenant_id: Some(TenantId(tenant)),
                organization_ids: Vec::new(),
                roles: Vec::new(),
                permissions: Vec::new(),
            };
            record_change(&mut tx, &actor, "closed", &row, vec!["status".into()]).await?;
        }
        tx.commit().await?;
        closed += expired.len();
        if (expired.len() as i64) < BATCH {
            return Ok(Some(closed));
        }
    }
}

/// Adds the closing loop to a node: a round at start and then every `interval`.
pub fn add(platform: &Arc<Platform>, node: &mut NodeBuilder, interval: Duration) {
    let platform = platform.clone();
    node.add_worker(
        "authorizations-closer",
        move |shutdown: CancellationToken| async move {
            loop {
                match close_expired(&platform, Utc::now().date_naive()).await {
                    Ok(Some(closed)) if closed > 0 => {
                        tracing::info!(closed, "closed authorizations whose end date has passed")
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "closing expired authorizations failed")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        },
    );
}
