//! Per-tenant rate limits in Redis, so one tenant cannot starve the rest. Every replica draws
//! from one budget per tenant per second (`caseway:rate:<tenant>:<second>`); to keep Redis off
//! the hot path, a process leases a slice of the budget at a time and spends it locally. When
//! Redis is unreachable the limit is not enforced (logged): an outage of the limiter must not
//! become an outage of the product.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::ids::TenantId;

pub struct RateLimiter {
    url: String,
    /// Calls per second per tenant; 0 turns the limit off.
    limit: u32,
    /// Calls leased from Redis at a time.
    slice: u32,
    redis: OnceCell<ConnectionManager>,
    leases: Mutex<HashMap<TenantId, Lease>>,
}

#[derive(Clone, Copy)]
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
        {
            let mut leases = self.lock();
            if let Some(lease) = leases.get_mut(&tenant)
                && lease.second == second
            {
                if lease.remaining > 0 {
                    lease.remaining -= 1;
                    return Ok(());
                }
                if lease.exhausted {
                    return Err(exhausted());
                }
            }
        }
        let granted = match self.lease(tenant, second).await {
            Ok(granted) => granted,
            Err(error) => {
                tracing::warn!(error = %error, "rate limiter unavailable; not limiting");
                return Ok(());
            }
        };
        let mut leases = self.lock();
        if leases.len() > 100_000 {
            leases.retain(|_, lease| lease.second == second);
        }
        let lease = Lease {
            second,
            remaining: granted.saturating_sub(1),
            exhausted: granted == 0,
        };
        leases.insert(tenant, lease);
        if granted == 0 {
            Err(exhausted())
        } else {
            Ok(())
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn exhausted() -> Error {
    Error::ResourceExhausted("the tenant's rate limit is reached; retry in a second".into())
}
