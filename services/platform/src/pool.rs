//! The services' connection pool. sqlx's own pool sends a Sync message to PostgreSQL and waits
//! for its answer every time a connection comes back (its check that the connection is still
//! usable after a caller may have dropped a query half-way). Every Caseway call ends its
//! transaction with a COMMIT whose answer already says the connection is idle and outside any
//! transaction, so that check costs each call one round trip to PostgreSQL (and a spawned
//! task) for nothing. This pool skips it for a connection whose transaction committed, and
//! otherwise rolls back (which also drains whatever a dropped query left unread) before the
//! connection is used again; a connection that fails that is closed.
//!
//! Like the pool it replaces: connections open lazily up to a maximum, callers wait for one in
//! arrival order up to a timeout, and a connection is closed after 30 minutes of life or 10
//! of idleness.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgTransactionManager};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, SqlStr};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a connection may take to roll back a transaction its caller abandoned.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    options: PgConnectOptions,
    acquire_timeout: Duration,
    max_connections: usize,
    /// Where waits for a connection are counted, once the node has its metrics.
    metrics: OnceLock<Arc<Metrics>>,
    /// One permit per connection that may be open.
    permits: Arc<Semaphore>,
    /// Idle connections, the most recently used last (reused first, so the others age out).
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                options,
                acquire_timeout,
                max_connections: max_connections.max(1) as usize,
                metrics: OnceLock::new(),
                permits: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How long a caller waits for a connection.
    pub(crate) fn acquire_timeout(&self) -> Duration {
        self.shared.acquire_timeout
    }

    pub(crate) fn options(&self) -> &PgConnectOptions {
        &self.shared.options
    }

    /// A connection, idle and outside any transaction: a pooled one, or a new one while the
    /// pool is below its maximum. `PoolTimedOut` when none frees up within the timeout,
    /// `PoolClosed` after [`Pool::close`].
    pub(crate) async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        let shared = &self.shared;
        let started = tokio::time::Instant::now();
        let deadline = started + shared.acquire_timeout;
        let permit =
            match tokio::time::timeout_at(deadline, shared.permits.clone().acquire_owned()).await {
                Err(_) => {
                    if let Some(metrics) = shared.metrics.get() {
                        metrics.db_acquire_timeouts.inc();
                    }
                    return Err(sqlx::Error::PoolTimedOut);
                }
                Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
                Ok(Ok(permit)) => permit,
            };
        if let Some(metrics) = shared.metrics.get() {
            metrics
                .db_acquire_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        while let Some(idle) = shared.lock().pop() {
            if idle.opened.elapsed() < MAX_LIFETIME && idle.since.elapsed() < IDLE_TIMEOUT {
                return Ok(Pooled::new(idle.conn, idle.opened, permit, shared.clone()));
            }
            close_in_background(idle.conn);
        }
        let conn = tokio::time::timeout_at(deadline, shared.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Pooled::new(conn, Instant::now(), permit, shared.clone()))
    }

    /// Counts waits for a connection in `metrics` from now on.
    pub(crate) fn observe_with(&self, metrics: Arc<Metrics>) {
        let _ = self.shared.metrics.set(metrics);
    }

    /// Connections held by callers, and idle ones.
    pub(crate) fn state(&self) -> (usize, usize) {
        let shared = &self.shared;
        let held = shared
            .max_connections
            .saturating_sub(shared.permits.available_permits());
        (held, shared.lock().len())
    }

    /// Refuses new callers and closes the idle connections; a connection in use closes when
    /// its caller lets go of it.
    pub(crate) async fn close(&self) {
        self.shared.permits.close();
        let idle = std::mem::take(&mut *self.shared.lock());
        for idle in idle {
            let _ = idle.conn.close().await;
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes back a connection known to be idle and outside any transaction.
    fn put_back(&self, conn: PgConnection, opened: Instant) {
        if self.permits.is_closed() || opened.elapsed() >= MAX_LIFETIME {
            close_in_background(conn);
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        // The least recently used sit first; close those idle for too long.
        let stale = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_TIMEOUT)
            .count();
        let stale: Vec<Idle> = idle.drain(..stale).collect();
        idle.push(Idle {
            conn,
            opened,
            since: now,
        });
        drop(idle);
        for i in stale {
            close_in_background(i.conn);
        }
    }
}

/// Says goodbye to PostgreSQL where a runtime is at hand; otherwise the socket just closes.
fn close_in_background(conn: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(ROLLBACK_TIMEOUT, conn.close()).await;
        });
    }
}

/// A connection out of the pool. It goes back when dropped: at once when it is known to be
/// idle (it was never used, or its transaction committed), otherwise after a rollback.
pub(crate) struct Pooled {
    conn: Option<PgConnection>,
    opened: Instant,
    /// Whether the last exchange with PostgreSQL ended with the connection idle and outside a
    /// transaction.
    clean: bool,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Pooled {
    fn new(
        conn: PgConnection,
        opened: Instant,
        permit: OwnedSemaphorePermit,
        shared: Arc<Shared>,
    ) -> Pooled {
        Pooled {
            conn: Some(conn),
            opened,
            clean: true,
            permit: Some(permit),
            shared,
        }
    }

    /// Begins a transaction with `statement` (a BEGIN and what goes with it).
    pub(crate) async fn begin(&mut self, statement: SqlStr) -> Result<(), sqlx::Error> {
        self.clean = false;
        PgTransactionManager::begin(self, Some(statement)).await
    }

    /// Commits the transaction; the connection is then idle and goes straight back.
    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::commit(self).await?;
        self.clean = PgTransactionManager::get_transaction_depth(self) == 0;
        Ok(())
    }

    /// The connection is about to be used outside [`Pooled::begin`]: until
    /// [`Pooled::settle`], it is rolled back before going back, in case a statement is left
    /// half-read.
    pub(crate) fn unsettle(&mut self) {
        self.clean = false;
    }

    /// The statements sent since [`Pooled::unsettle`] have all answered, outside a transaction.
    pub(crate) fn settle(&mut self) {
        self.clean = PgTransactionManager::get_transaction_depth(self) == 0;
    }

    /// Checks the connection with the simplest exchange there is.
    pub(crate) async fn ping(&mut self) -> Result<(), sqlx::Error> {
        self.clean = false;
        self.deref_mut().ping().await?;
        self.clean = true;
        Ok(())
    }
}

impl Deref for Pooled {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take()) else {
            return;
        };
        let (opened, shared) = (self.opened, self.shared.clone());
        if self.clean {
            shared.put_back(conn, opened);
            drop(permit);
            return;
        }
        // A transaction was left open or a statement abandoned half-way: roll back (which
        // first reads whatever answers are still on their way) before anyone else uses it.
        // The permit is held until then, so the pool never opens more than its maximum.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let rolled_back = tokio::time::timeout(ROLLBACK_TIMEOUT, async {
                // Either way one exchange, which first reads what is still on its way. A
                // plain ROLLBACK also ends a transaction whose BEGIN was abandoned before
                // sqlx counted it.
                if PgTransactionManager::get_transaction_depth(&conn) > 0 {
                    PgTransactionManager::rollback(&mut conn).await
                } else {
                    conn.execute("ROLLBACK").await.map(|_| ())
                }
            })
            .await;
            match rolled_back {
                Ok(Ok(())) => shared.put_back(conn, opened),
                _ => {
                    let _ = conn.close_hard().await;
                }
            }
            drop(permit);
        });
    }
}
