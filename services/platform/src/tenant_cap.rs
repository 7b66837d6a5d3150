//! A cap on the database connections one tenant's work holds at once in a process. The rate
//! limit counts calls, not what they cost: a tenant whose calls are slow (a year of totals, a
//! search of a large caseload, an export) could otherwise hold every connection of the pool,
//! and every other tenant's calls would wait for one. With the cap, a tenant past it waits for
//! one of its own connections to come back, never for another tenant's, and the rest of the
//! pool stays free for the others. A tenant that waits longer than the pool's acquire timeout
//! is refused RESOURCE_EXHAUSTED `TENANT_BUSY` with RetryInfo.
//!
//! The cap is per process: a deployment of N replicas lets a tenant hold at most N times the
//! cap in PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;
use crate::metrics::Metrics;

/// Tenants kept past this many are dropped when idle (none of their connections held).
const KEEP: usize = 10_000;

pub(crate) struct TenantCap {
    /// Connections one tenant may hold; 0 for no cap.
    cap: usize,
    /// How long a tenant's call waits for one of its connections.
    wait: Duration,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    /// Where waits at the cap and refusals are counted, once the node has its metrics.
    metrics: OnceLock<Arc<Metrics>>,
}

/// A tenant's share of the pool, held with its connection.
pub(crate) type Share = Option<OwnedSemaphorePermit>;

impl TenantCap {
    pub(crate) fn new(cap: u32, wait: Duration) -> TenantCap {
        TenantCap {
            cap: cap as usize,
            wait,
            tenants: Mutex::new(HashMap::new()),
            metrics: OnceLock::new(),
        }
    }

    /// Counts waits at the cap and refusals in `metrics` from now on.
    pub(crate) fn observe_with(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// A share of the pool for one connection of `tenant`: at once while it holds fewer than
    /// the cap, otherwise when one of its connections comes back.
    pub(crate) async fn share(&self, tenant: TenantId) -> Result<Share> {
        if self.cap == 0 {
            return Ok(None);
        }
        let semaphore = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            if tenants.len() >= KEEP {
                let cap = self.cap;
                tenants.retain(|_, s| s.available_permits() < cap || Arc::strong_count(s) > 1);
            }
            tenants
                .entry(tenant)
                .or_insert_with(|| Arc::new(Semaphore::new(self.cap)))
                .clone()
        };
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => return Ok(Some(permit)),
            Err(tokio::sync::TryAcquireError::Closed) => return Ok(None),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let metrics = self.metrics.get();
        if let Some(metrics) = metrics {
            metrics.tenant_cap_waits.inc();
        }
        match tokio::time::timeout(self.wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) => Ok(None),
            Err(_) => {
                if let Some(metrics) = metrics {
                    metrics.tenant_busy.inc();
                }
                Err(Error::exhausted(
                    Reason::TenantBusy,
                    format!(
                        "the tenant's calls hold {} database connections at once, as many as one \
                     tenant may on a node; retry in a second",
                        self.cap
                    ),
                    Duration::from_secs(1),
                ))
            }
        }
    }

    /// Connections `tenant` holds now.
    #[cfg(test)]
    fn held(&self, tenant: TenantId) -> usize {
        let tenants = self.tenants.lock().unwrap();
        tenants
            .get(&tenant)
            .map_or(0, |s| self.cap - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn a_tenant_past_its_cap_waits_for_its_own_connections_only() {
        let cap = TenantCap::new(2, Duration::from_millis(200));
        let (a, b) = (tenant(), tenant());
        let first = cap.share(a).await.unwrap();
        let _second = cap.share(a).await.unwrap();
        assert_eq!(cap.held(a), 2);
        // Another tenant is not held up by A's connections.
        let _b = cap.share(b).await.unwrap();
        assert_eq!(cap.held(b), 1);
        // A's third waits, and is served when A's first comes back.
        let cap = Arc::new(cap);
        let waiting = tokio::spawn({
            let cap = cap.clone();
            async move { cap.share(a).await.map(|s| s.is_some()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_tenant_that_waits_too_long_is_refused_with_a_retry_time() {
        let cap = TenantCap::new(1, Duration::from_millis(50));
        let a = tenant();
        let _held = cap.share(a).await.unwrap();
        match cap.share(a).await {
            Err(Error::ResourceExhausted {
                reason,
                retry_after,
                ..
            }) => {
                assert_eq!(reason, Reason::TenantBusy);
                assert_eq!(retry_after, Duration::from_secs(1));
            }
            other => panic!("expected RESOURCE_EXHAUSTED, got {:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn no_cap_shares_nothing() {
        let cap = TenantCap::new(0, Duration::from_millis(50));
        for _ in 0..100 {
            assert!(cap.share(tenant()).await.unwrap().is_none());
        }
        assert!(cap.tenants.lock().unwrap().is_empty());
    }
}
