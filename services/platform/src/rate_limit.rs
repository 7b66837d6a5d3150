//! Per-tenant rate limits in Redis, so one tenant cannot starve the rest. Every replica draws
//! from one budget per tenant per second (`caseway:rate:<tenant>:<second>`); to keep Redis off
//! the hot path, a process leases a slice of the budget at a time and spends it locally. When
//! Redis is unreachable the limit is not enforced (logged): an outage of the limiter must not
//! become an outage of the product.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tokio::sync::{Mutex as AsyncMutex, OnceCell};

use crate::error::{Error, Result};
use crate::ids::TenantId;

pub struct RateLimiter {
    url: String,
    /// Calls per second per tenant; 0 turns the limit off.
    limit: u32,
    /// Calls leased from Redis at a time.
    slice: u32,
    redis: OnceCell<ConnectionManager>,
    /// One lease per tenant. Its lock is held while leasing, so the callers that arrive at a
    /// new second wait for one lease instead of each taking a slice (which would spend the
    /// budget without calls).
    leases: Mutex<HashMap<TenantId, Arc<AsyncMutex<Lease>>>>,
}

#[derive(Clone, Copy, Default)]
struct Lease {
    second: u64,
    remaining: u32,
    exhausted: bool,
}

impl RateLimiter {
    pub fn new(url: &str, limit: u32) -> Self {
        RateLimiter {
            url: url.to_string(),
            limit,
            slice: (limit / 20).max(1),
            redis: OnceCell::new(),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Ok, or RESOURCE_EXHAUSTED when the tenant has spent this second's budget.
    pub async fn check(&self, tenant: TenantId) -> Result<()> {
        if self.limit == 0 {
            return Ok(());
        }
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let lease = {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            if leases.len() > 100_000 {
                leases.clear();
            }
            leases.entry(tenant).or_default().clone()
        };
        let mut lease = lease.lock().await;
        if lease.second != second {
            *lease = Lease {
                second,
                ..Lease::default()
            };
        }
        if lease.remaining == 0 && !lease.exhausted {
            match self.lease(tenant, second).await {
                Ok(0) => lease.exhausted = true,
                Ok(granted) => lease.remaining = granted,
                Err(error) => {
                    tracing::warn!(error = %error, "rate limiter unavailable; not limiting");
                    return Ok(());
                }
            }
        }
        if lease.remaining == 0 {
            return Err(exhausted());
        }
        lease.remaining -= 1;
        Ok(())
    }

    /// Takes a slice of the tenant's budget for `second`; returns how many calls it grants.
    async fn lease(&self, tenant: TenantId, second: u64) -> anyhow::Result<u32> {
        let mut redis = self
            .redis
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str())?;
                tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager())
                    .await
                    .map_err(|_| anyhow::anyhow!("connecting to Redis timed out"))?
                    .map_err(anyhow::Error::from)
            })
            .await?
            .clone();
        let key = format!("caseway:rate:{tenant}:{second}");
        let (total,): (u64,) = tokio::time::timeout(
            Duration::from_millis(500),
            redis::pipe()
                .atomic()
                .incr(&key, self.slice)
                .expire(&key, 2)
                .ignore()
                .query_async(&mut redis),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis timed out"))??;
        let before = total.saturating_sub(u64::from(self.slice));
        let left = u64::from(self.limit).saturating_sub(before);
        Ok(left.min(u64::from(self.slice)) as u32)
    }
}

fn exhausted() -> Error {
    Error::ResourceExhausted("the tenant's rate limit is reached; retry in a second".into())
}
