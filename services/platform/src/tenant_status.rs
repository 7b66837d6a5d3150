//! Whether a tenant may use Caseway, and the limit it has of its own, cached in each process
//! and dropped when a tenancy event says it changed (with a time-to-live as the fallback), so
//! a suspension or a new limit reaches every service within seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Subscription, consume};
use crate::db::Db;
use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;
use crate::metrics::Metrics;

/// The event of a tenant's suspension, which every node follows.
pub const TENANT_SUSPENDED: &str = "tenancy.tenant_suspended.v1";

/// What a call needs to know of its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub active: bool,
    /// Calls per second of the tenant's own limit; None for the deployment's.
    pub calls_per_second: Option<u32>,
}

pub struct TenantStatusCache {
    db: Db,
    ttl: Duration,
    metrics: Option<Arc<Metrics>>,
    entries: Mutex<HashMap<TenantId, (Standing, Instant)>>,
}

impl TenantStatusCache {
    pub fn new(db: Db, ttl: Duration) -> Self {
        TenantStatusCache {
            db,
            ttl,
            metrics: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Counts its hits and misses in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        TenantStatusCache {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The tenant's standing when it is active; PERMISSION_DENIED when it is suspended or
    /// unknown.
    pub async fn check(&self, tenant: TenantId) -> Result<Standing> {
        let cached = self
            .lock()
            .get(&tenant)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(standing, _)| *standing);
        if let Some(metrics) = &self.metrics {
            metrics.tenant_status_lookup(cached.is_some());
        }
        let standing = match cached {
            Some(standing) => standing,
            None => {
                let standing = self.load(tenant).await?;
                self.lock().insert(tenant, (standing, Instant::now()));
                standing
            }
        };
        if standing.active {
            Ok(standing)
        } else {
            Err(Error::denied(
                Reason::TenantSuspended,
                "the tenant is not active",
            ))
        }
    }

    /// Forgets a tenant's status; the next call reads it again.
    pub fn invalidate(&self, tenant: TenantId) {
        self.lock().remove(&tenant);
    }

    async fn load(&self, tenant: TenantId) -> Result<Standing> {
        // The tenants table lets a tenant-scoped transaction read its own row.
        let mut tx = self.db.tenant_tx(tenant).await?;
        let row: Option<(String, Option<i32>)> =
            sqlx::query_as("SELECT status, calls_per_second FROM tenancy.tenants WHERE id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(tx.conn())
                .await?;
        tx.commit().await?;
        Ok(match row {
            Some((status, calls_per_second)) => Standing {
                active: status == "active",
                calls_per_second: calls_per_second.and_then(|c| u32::try_from(c).ok()),
            },
            None => Standing {
                active: false,
                calls_per_second: None,
            },
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Standing, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens for tenancy events on a private queue and drops the changed tenant's entry.
    pub async fn follow_events(self: Arc<Self>, bus: Bus, shutdown: CancellationToken) {
        let subscription = Subscription {
            queue: None,
            // Topic patterns match whole words only, so each change is named.
            bindings: vec![
                TENANT_SUSPENDED.into(),
                "tenancy.tenant_resumed.v1".into(),
                "tenancy.tenant_updated.v1".into(),
            ],
            concurrency: 1,
        };
        consume(bus, subscription, shutdown, |envelope| {
            let cache = self.clone();
            async move {
                tracing::debug!(tenant_id = %envelope.tenant_id, event = %envelope.event_type, "tenant status changed");
                cache.invalidate(envelope.tenant_id);
                Ok(())
            }
        })
        .await;
    }
}
