//! Per-tenant rate limits in Redis, so one tenant cannot starve the rest. Every replica draws
//! from one budget per tenant per second (`caseway:rate:<tenant>:<second>`); to keep Redis off
//! the hot path, a process leases a slice of the budget at a time and spends it locally. When
//! Redis is unreachable the limit is not enforced: an outage of the limiter must not become an
//! outage of the product. That is logged as an error and shown in `caseway_redis_up` and
//! `caseway_redis_errors_total{operation="rate_limit"}` (see [`crate::redis`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex as AsyncMutex;

use crate::error::{Error, Reason, Result};
use crate::ids::TenantId;
use crate::redis::Redis;

pub struct RateLimiter {
    redis: Arc<Redis>,
    /// Calls per second of a tenant without a limit of its own; 0 turns that limit off.
    limit: u32,
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
    pub fn new(redis: Arc<Redis>, limit: u32) -> Self {
        RateLimiter {
            redis,
            limit,
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Ok, or RESOURCE_EXHAUSTED when the tenant has spent this second's budget under the
    /// deployment's limit.
    pub async fn check(&self, tenant: TenantId) -> Result<()> {
        self.check_limit(tenant, None).await
    }

    /// As [`RateLimiter::check`], under the tenant's own limit when it has one (`own`). A
    /// refusal is counted by the class of the limit (`default` or `own`), never by tenant.
    pub async fn check_limit(&self, tenant: TenantId, own: Option<u32>) -> Result<()> {
        let limit = own.unwrap_or(self.limit);
        if limit == 0 {
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
            match self.lease(tenant, second, limit).await {
                Ok(0) => lease.exhausted = true,
                Ok(granted) => lease.remaining = granted,
                // Logged and counted by the Redis handle.
                Err(_) => return Ok(()),
            }
        }
        if lease.remaining == 0 {
            let class = if own.is_some() { "own" } else { "default" };
            self.redis.metrics().rate_limited(class);
            return Err(exhausted());
        }
        lease.remaining -= 1;
        Ok(())
    }

    /// Takes a slice of the tenant's budget for `second`; returns how many calls it grants.
    async fn lease(&self, tenant: TenantId, second: u64, limit: u32) -> anyhow::Result<u32> {
        let key = format!("caseway:rate:{tenant}:{second}");
        let slice = slice_of(limit);
        let (total,): (u64,) = self
            .redis
            .run(
                "rate_limit",
                Duration::from_millis(500),
                |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .incr(&key, slice)
                        .expire(&key, 2)
                        .ignore()
                        .query_async(&mut c)
                        .await
                },
            )
            .await?;
        let before = total.saturating_sub(u64::from(slice));
        let left = u64::from(limit).saturating_sub(before);
        Ok(left.min(u64::from(slice)) as u32)
    }
}

/// Calls leased from Redis at a time: a twentieth of the limit.
fn slice_of(limit: u32) -> u32 {
    (limit / 20).max(1)
}

fn exhausted() -> Error {
    Error::exhausted(
        Reason::RateLimited,
        "the tenant's rate limit is reached; retry in a second",
        Duration::from_secs(1),
    )
}

/// A limit on failures of one kind per user and window, across every replica: whole-SSN
/// searches that found no one, so the search cannot be used to guess numbers. Unlike the
/// tenant's rate limit it fails closed: while Redis cannot be reached, the guarded action is
/// refused UNAVAILABLE rather than left unlimited.
pub struct FailureLimit {
    redis: Arc<Redis>,
    /// Names the counter in Redis: `caseway:<name>:<tenant>:<window>:<user>`.
    name: &'static str,
    limit: u32,
    window: Duration,
}

impl FailureLimit {
    pub fn new(redis: Arc<Redis>, name: &'static str, limit: u32, window: Duration) -> Self {
        FailureLimit {
            redis,
            name,
            limit,
            window: window.max(Duration::from_secs(1)),
        }
    }

    /// The current window's key of a user, and how long until the window ends.
    fn key(&self, tenant: TenantId, user: &str) -> (String, Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window = self.window.as_secs();
        let index = now / window;
        let left = Duration::from_secs(window - now % window);
        (
            format!("caseway:{}:{tenant}:{index}:{user}", self.name),
            left,
        )
    }

    /// Ok while the user has failures left in this window; RESOURCE_EXHAUSTED (retry when
    /// the window ends) once they are spent.
    pub async fn check(&self, tenant: TenantId, user: &str) -> Result<()> {
        let (key, left) = self.key(tenant, user);
        let failures: Option<u32> = self
            .redis
            .run(self.name, Duration::from_millis(500), |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await
            .map_err(|_| unavailable())?;
        if failures.unwrap_or(0) >= self.limit {
            return Err(Error::exhausted(
                Reason::SearchLimited,
                format!(
                    "too many searches that found no one; {} are allowed per {} s",
                    self.limit,
                    self.window.as_secs()
                ),
                left,
            ));
        }
        Ok(())
    }

    /// Counts a failure of the user.
    pub async fn failed(&self, tenant: TenantId, user: &str) -> Result<()> {
        let (key, left) = self.key(tenant, user);
        self.redis
            .run(self.name, Duration::from_millis(500), |mut c| async move {
                redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .ignore()
                    .expire(&key, left.as_secs() as i64 + 1)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .map_err(|_| unavailable())
    }
}

fn unavailable() -> Error {
    Error::Unavailable("the limit on failed searches cannot be checked; try again".into())
}
