//! The Redis connection a process shares (tenant rate limits, token revocations, the limit on
//! failed SSN searches): one multiplexed connection that reconnects by itself, opened lazily
//! so a process starts while Redis is down. `rediss://` URLs connect over TLS (rustls, the
//! system's roots or `CASEWAY_REDIS_CA_FILE`). An operation that fails is never silent: it is
//! counted in `caseway_redis_errors_total{operation}`, `caseway_redis_up` drops to 0, and it is
//! logged as an error (at most every ten seconds, so an outage does not flood the log). After a
//! failure, operations fail at once for a second instead of each waiting out a connection
//! attempt, so an outage of Redis adds no latency to the calls that consult it.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::metrics::Metrics;

pub struct Redis {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    metrics: Arc<Metrics>,
    last_logged: Mutex<Option<Instant>>,
    /// Until when operations fail without trying, after a failure.
    down_until: Mutex<Option<Instant>>,
}

/// How long connecting may take before an operation fails.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long operations fail at once after a failure.
const BACK_OFF: Duration = Duration::from_secs(1);
/// The least time between two error lines about Redis.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Redis {
    /// A handle on the Redis at `url`; `ca_file` (PEM) replaces the system's roots for TLS.
    /// An unusable URL (a `rediss://` one included, if TLS could not be set up) is an error
    /// here, at start-up, not a limiter that quietly does nothing.
    pub fn new(url: &str, ca_file: Option<&Path>, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = match ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path)
                    .with_context(|| format!("reading Redis CA file {}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => redis::Client::open(url),
        }
        .context("parsing the Redis URL")?;
        Ok(Redis {
            client,
            manager: OnceCell::new(),
            metrics,
            last_logged: Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }

    /// The metrics its outcomes are counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `operation` on the shared connection within `timeout`, recording its outcome.
    pub async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        timeout: Duration,
        run: F,
    ) -> anyhow::Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let backing_off = self
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until);
        if backing_off {
            self.metrics.redis_error(operation);
            anyhow::bail!("Redis is unavailable (a recent operation failed)");
        }
        let result = async {
            let connection = self.connection().await?;
            tokio::time::timeout(timeout, run(connection))
                .await
                .map_err(|_| anyhow::anyhow!("Redis did not answer within {timeout:?}"))?
                .map_err(anyhow::Error::from)
        }
        .await;
        match &result {
            Ok(_) => {
                self.metrics.redis_up.set(1);
            }
            Err(error) => {
                *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + BACK_OFF);
                self.failed(operation, error);
            }
        }
        result
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    CONNECT_TIMEOUT * 2,
                    self.client.get_connection_manager_with_config(config),
                )
                .await
                .map_err(|_| anyhow::anyhow!("connecting to Redis timed out"))?
                .map_err(anyhow::Error::from)
            })
            .await?;
        Ok(manager.clone())
    }

    fn failed(&self, operation: &'static str, error: &anyhow::Error) {
        self.metrics.redis_up.set(0);
        self.metrics.redis_error(operation);
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(operation, error = %error, "Redis is unavailable");
        }
    }
}
