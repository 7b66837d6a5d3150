//! Whether a tenant may use Caseway, cached in each process and dropped when a tenancy event
//! says it changed (with a time-to-live as the fallback), so a suspension reaches every service
//! within seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Subscription, consume};
use crate::db::Db;
use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;

/// The event of a tenant's suspension, which every node follows.
pub const TENANT_SUSPENDED: &str = "tenancy.tenant_suspended.v1";

pub struct TenantStatusCache {
    db: Db,
    ttl: Duration,
    entries: Mutex<HashMap<TenantId, (bool, Instant)>>,
}

impl TenantStatusCache {
    pub fn new(db: Db, ttl: Duration) -> Self {
        TenantStatusCache {
            db,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Ok when the tenant is active; PERMISSION_DENIED when it is suspended or unknown.
    pub async fn check(&self, tenant: TenantId) -> Result<()> {
        let cached = self
            .lock()
            .get(&tenant)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(active, _)| *active);
        let active = match cached {
            Some(active) => active,
            None => {
                let active = self.load(tenant).await?;
                self.lock().insert(tenant, (active, Instant::now()));
                active
            }
        };
        if active {
            Ok(())
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

    async fn load(&self, tenant: TenantId) -> Result<bool> {
        // The tenants table lets a tenant-scoped transaction read its own row.
        let mut tx = self.db.tenant_tx(tenant).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM tenancy.tenants WHERE id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(tx.conn())
                .await?;
        tx.commit().await?;
        Ok(status.as_deref() == Some("active"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (bool, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens for tenancy events on a private queue and drops the changed tenant's entry.
    pub async fn follow_events(self: Arc<Self>, bus: Bus, shutdown: CancellationToken) {
        let subscription = Subscription {
            queue: None,
            // Topic patterns match whole words only, so each change is named.
            bindings: vec![TENANT_SUSPENDED.into(), "tenancy.tenant_resumed.v1".into()],
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
