//! Token revocation, felt on every node within a second: a token id (`jti`), or every token of
//! a user issued at or before a time. Revocations live in Redis (`caseway:revoked:tokens`, a
//! sorted set of token ids by expiry; `caseway:revoked:users`, of `<tenant>/<user>` by time;
//! `caseway:revoked:version`, bumped by every change). Each node keeps a copy in memory, checked
//! on every call (cached verifications included), and looks at the version four times a
//! second, loading the sets when it moved. While a node cannot reach Redis it keeps the copy
//! it has (and says so: see [`crate::redis`]); what was revoked meanwhile is felt once it can.
//! An entry goes once no token it names can still be alive.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ids::TenantId;
use crate::redis::Redis;

const TOKENS: &str = "caseway:revoked:tokens";
const USERS: &str = "caseway:revoked:users";
const VERSION: &str = "caseway:revoked:version";
/// How often a node looks for new revocations.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// Clock skew allowed when deciding an entry can go.
const SKEW: i64 = 60;

#[derive(Default)]
struct Revoked {
    token_ids: HashSet<String>,
    /// `<tenant>/<user>` to the time (unix seconds) at or before which its tokens are revoked.
    users: HashMap<String, i64>,
}

/// The revocations a node knows of.
#[derive(Default)]
pub struct Revocations {
    revoked: RwLock<Arc<Revoked>>,
    /// Whether any revocation is known: the common case of none costs one atomic load a call.
    any: AtomicBool,
    version: Mutex<Option<i64>>,
}

fn user_key(tenant: Option<TenantId>, user: &str) -> String {
    match tenant {
        Some(tenant) => format!("{tenant}/{user}"),
        None => format!("platform/{user}"),
    }
}

impl Revocations {
    /// Whether a token of `user` in `tenant`, issued at `issued` with id `token_id`, is revoked.
    pub fn revoked(
        &self,
        tenant: Option<TenantId>,
        user: &str,
        issued: i64,
        token_id: Option<&str>,
    ) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(id) = token_id
            && revoked.token_ids.contains(id)
        {
            return true;
        }
        revoked
            .users
            .get(&user_key(tenant, user))
            .is_some_and(|before| issued <= *before)
    }

    fn replace(&self, revoked: Revoked) {
        let any = !revoked.token_ids.is_empty() || !revoked.users.is_empty();
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(revoked);
        self.any.store(any, Ordering::Release);
    }

    /// Loads the revocations from Redis if they changed since the last load.
    pub async fn refresh(&self, redis: &Redis) -> anyhow::Result<()> {
        let version: Option<i64> = redis
            .run(
                "revocations.version",
                Duration::from_millis(500),
                |mut c| async move { redis::cmd("GET").arg(VERSION).query_async(&mut c).await },
            )
            .await?;
        if version == *self.version.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let (version, tokens, users): (Option<i64>, Vec<String>, Vec<(String, i64)>) = redis
            .run(
                "revocations.load",
                Duration::from_secs(2),
                |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .cmd("GET")
                        .arg(VERSION)
                        .cmd("ZRANGE")
                        .arg(TOKENS)
                        .arg(now - SKEW)
                        .arg("+inf")
                        .arg("BYSCORE")
                        .cmd("ZRANGE")
                        .arg(USERS)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async(&mut c)
                        .await
                },
            )
            .await?;
        self.replace(Revoked {
            token_ids: tokens.into_iter().collect(),
            users: users.into_iter().collect(),
        });
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = version;
        Ok(())
    }

    /// Keeps the copy current until `shutdown`.
    pub async fn follow(self: Arc<Self>, redis: Arc<Redis>, shutdown: CancellationToken) {
        loop {
            // A failure is logged and counted by the Redis handle; the copy stays as it is.
            let _ = self.refresh(&redis).await;
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Revokes the token with id `token_id`, which expires at `expires` (unix seconds).
pub async fn revoke_token(redis: &Redis, token_id: &str, expires: i64) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    add(
        redis,
        TOKENS,
        token_id.to_string(),
        expires.max(now),
        now - SKEW,
    )
    .await
}

/// Revokes every token of `user` (of `tenant`, or of the hosting provider's staff when None)
/// issued at or before `before` (unix seconds). Entries older than `max_lifetime` seconds go:
/// no token they name can still be alive.
pub async fn revoke_user(
    redis: &Redis,
    tenant: Option<TenantId>,
    user: &str,
    before: i64,
    max_lifetime: i64,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let stale = now - max_lifetime - SKEW;
    add(redis, USERS, user_key(tenant, user), before, stale).await
}

/// Adds `member` to the sorted set `set` with `score` (never lowering one already there),
/// drops the members scored before `stale`, and bumps the version nodes watch: in one go.
async fn add(
    redis: &Redis,
    set: &str,
    member: String,
    score: i64,
    stale: i64,
) -> anyhow::Result<()> {
    let set = set.to_string();
    redis
        .run(
            "revocations.revoke",
            Duration::from_secs(2),
            |mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZADD")
                    .arg(&set)
                    .arg("GT")
                    .arg(score)
                    .arg(member)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&set)
                    .arg("-inf")
                    .arg(stale)
                    .ignore()
                    .cmd("INCR")
                    .arg(VERSION)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_revocation_covers_tokens_issued_until_its_time() {
        let revocations = Revocations::default();
        let tenant = TenantId::new();
        assert!(!revocations.revoked(Some(tenant), "ana", 100, Some("t1")));
        revocations.replace(Revoked {
            token_ids: ["t1".to_string()].into(),
            users: [(user_key(Some(tenant), "ana"), 200)].into(),
        });
        assert!(revocations.revoked(Some(tenant), "bob", 300, Some("t1")));
        assert!(revocations.revoked(Some(tenant), "ana", 200, None));
        assert!(!revocations.revoked(Some(tenant), "ana", 201, None));
        assert!(!revocations.revoked(Some(TenantId::new()), "ana", 100, None));
        assert!(!revocations.revoked(None, "ana", 100, None));
    }
}
