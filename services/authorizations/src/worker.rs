//! The authorizations' background work, in every replica: closing approved authorizations
//! whose end date has passed (a PostgreSQL advisory lock lets one replica do each round, so
//! there is no second scheduler), and giving back holds whose record never came.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use caseway_platform::TenantId;
use caseway_platform::auth::Principal;
use caseway_platform::error::Result;
use caseway_platform::server::{NodeBuilder, Platform};

use crate::api::{Held, give_back, record_change};
use crate::domain::AuthorizationStatus;
use crate::records::Records;
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
                service: None,
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

/// How long a hold may wait for its record's event before the worker asks the records
/// service about it.
pub const UNSETTLED_AFTER: Duration = Duration::from_secs(600);

/// Gives back holds whose record never came: the records service held units and then died
/// before storing the record (or before giving them back), or someone held units with no
/// record at all. Time alone does not decide: a hold is given back only when the records
/// service says no stored version of the record from the held one on draws on the
/// authorization; a stored record's event is on its way through the outbox, however long the
/// broker is down, and will settle it.
pub struct HoldSweeper {
    records: Arc<Records>,
}

impl HoldSweeper {
    /// Asks the records service's internal method with this service's own identity.
    pub fn new(records: Arc<Records>) -> Self {
        HoldSweeper { records }
    }

    /// One round over holds unsettled for longer than `older_than`; returns how many were
    /// given back, or None when another replica holds the lock.
    pub async fn sweep(
        &self,
        platform: &Platform,
        older_than: chrono::Duration,
    ) -> Result<Option<usize>> {
        let holds = {
            let mut tx = platform.db.system_tx().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(LOCK_KEY + 1)
                .fetch_one(tx.conn())
                .await?;
            if !locked {
                return Ok(None);
            }
            let holds = store::unsettled_holds(tx.conn(), older_than, BATCH).await?;
            tx.commit().await?;
            holds
        };
        let mut released = 0;
        for hold in holds {
            let tenant = TenantId(hold.tenant_id);
            // The current hold (only if the same attempt still has it) and earlier units.
            let mut slots = Vec::new();
            if hold.held_version > 0 {
                slots.push((
                    hold.held_version,
                    Held::Current {
                        version: hold.held_version,
                        attempt: hold.held_by,
                    },
                ));
            }
            if hold.earlier_version > 0 {
                slots.push((
                    hold.earlier_version,
                    Held::Earlier {
                        version: hold.earlier_version,
                    },
                ));
            }
            for (version, held) in slots {
                let unused = match self
                    .records
                    .hold_unused(
                        tenant,
                        hold.service_record_id,
                        hold.authorization_id,
                        version,
                    )
                    .await
                {
                    Ok(unused) => unused,
                    Err(error) => {
                        tracing::warn!(error = %error, "records service unavailable; holds stay");
                        return Ok(Some(released));
                    }
                };
                if !unused {
                    continue;
                }
                let given_back = give_back(
                    platform,
                    tenant,
                    hold.authorization_id,
                    hold.service_record_id,
                    held,
                )
                .await?;
                if given_back {
                    released += 1;
                    tracing::info!(
                        authorization_id = %hold.authorization_id,
                        service_record_id = %hold.service_record_id,
                        version,
                        "gave back units held for a record version that was never stored"
                    );
                }
            }
        }
        Ok(Some(released))
    }
}

/// Adds the worker loop to a node: a round at start and then every `interval`.
pub fn add(
    platform: &Arc<Platform>,
    node: &mut NodeBuilder,
    interval: Duration,
    sweeper: HoldSweeper,
) {
    let platform = platform.clone();
    node.add_worker(
        "authorizations-worker",
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
                let older_than = chrono::Duration::from_std(UNSETTLED_AFTER)
                    .unwrap_or(chrono::Duration::minutes(10));
                if let Err(error) = sweeper.sweep(&platform, older_than).await {
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
