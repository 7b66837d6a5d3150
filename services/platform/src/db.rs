//! Database access under row-level security. A `TenantTx` is the only way store code reaches
//! the database: it begins a transaction and sets `app.tenant_id` (transaction-local) before any
//! query, so every statement is filtered by the tables' forced policies. A transaction with no
//! tenant set sees nothing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, SqlSafeStr};

use crate::error::Result;
use crate::ids::TenantId;
use crate::pool::{Pool, Pooled};
use crate::tenant_cap::{Share, TenantCap};

/// The pool of the services' role (see [`crate::pool`]). Cloning is cheap.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// How many connections one tenant's work may hold at once (see [`crate::tenant_cap`]).
    cap: Arc<TenantCap>,
}

impl Db {
    /// Connects lazily, so a process starts (and reports not ready) while PostgreSQL is down.
    /// A caller waits at most 5 s for a connection.
    pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        Self::connect_lazy_with(url, max_connections, Duration::from_secs(5))
    }

    /// As [`Db::connect_lazy`], waiting at most `acquire_timeout` for a connection; past it
    /// a call fails UNAVAILABLE.
    pub fn connect_lazy_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Db> {
        let options: PgConnectOptions = url.parse().context("parsing database url")?;
        // No ping before each use: a broken connection fails its first statement, which maps
        // to UNAVAILABLE like any database outage, and is not pooled again.
        let pool = Pool::new(
            options.application_name("caseway"),
            max_connections,
            acquire_timeout,
        );
        Ok(Db {
            pool,
            cap: Arc::new(TenantCap::new(0, acquire_timeout)),
        })
    }

    /// The same pool, with at most `connections` of it held by one tenant's transactions at
    /// once (0 for no cap; see [`crate::tenant_cap`]).
    pub fn with_tenant_cap(self, connections: u32) -> Db {
        Db {
            cap: Arc::new(TenantCap::new(connections, self.pool.acquire_timeout())),
            ..self
        }
    }

    /// A transaction scoped to one tenant.
    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<TenantTx> {
        self.tenant_begin("BEGIN", tenant).await
    }

    /// A read-only transaction scoped to one tenant whose statements all see one snapshot,
    /// for an answer built from several queries: under the default isolation each statement
    /// sees what committed before it, so a write committed between two of them shows in one
    /// and not the other.
    pub async fn tenant_snapshot(&self, tenant: TenantId) -> Result<TenantTx> {
        self.tenant_begin("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", tenant)
            .await
    }

    async fn tenant_begin(&self, begin: &str, tenant: TenantId) -> Result<TenantTx> {
        // BEGIN and the tenant in one message: one round trip fewer per transaction. The
        // tenant is a UUID this process formats (never caller text), so it can be inlined.
        let begin = format!("{begin}; SELECT set_config('app.tenant_id', '{tenant}', true)");
        let share = self.cap.share(tenant).await?;
        let conn = self.begin(begin).await?;
        Ok(TenantTx {
            conn,
            tenant,
            _share: share,
        })
    }

    /// A connection for statements of one tenant that each enter the tenant themselves,
    /// outside any transaction (see [`TenantStatements`]).
    pub async fn tenant_statements(&self, tenant: TenantId) -> Result<TenantStatements> {
        let share = self.cap.share(tenant).await?;
        let conn = self.pool.acquire().await?;
        Ok(TenantStatements {
            conn,
            tenant,
            _share: share,
        })
    }

    /// A transaction of the platform itself (the outbox relay, tenant lifecycle, workers): it
    /// acts for the platform's own tenant ([`PLATFORM_TENANT`], whose rows are platform-level
    /// idempotency keys) and may act for one tenant at a time. It sees no more than a tenant's
    /// transaction does: what the platform reads across tenants it reads through the functions
    /// of the `caseway_system` role (the system role migration), never by a setting the
    /// services' role could make itself.
    pub async fn system_tx(&self) -> Result<SystemTx> {
        // One message, as in `tenant_tx`: the platform's own tenant is a constant.
        let begin = format!("BEGIN; SELECT set_config('app.tenant_id', '{PLATFORM_TENANT}', true)");
        let conn = self.begin(begin).await?;
        Ok(SystemTx {
            conn,
            tenant: PLATFORM_TENANT,
        })
    }

    /// A transaction of the hosting provider's support desk: it runs as the `caseway_support`
    /// role, which sees escalated tickets of every tenant and their notes, and nothing else of
    /// any tenant (the support role and ticketing migrations). It acts for no tenant until
    /// [`SupportTx::act_for_tenant`] names the ticket's, whose audit rows and events its
    /// writes are.
    pub async fn support_tx(&self) -> Result<SupportTx> {
        // One message, as in `tenant_tx`; the role is this transaction's alone.
        let begin = "BEGIN; SET LOCAL ROLE caseway_support".to_string();
        let conn = self.begin(begin).await?;
        Ok(SupportTx { conn, tenant: None })
    }

    async fn begin(&self, statement: String) -> Result<Pooled> {
        let mut conn = self.pool.acquire().await?;
        conn.begin(sqlx::AssertSqlSafe(statement).into_sql_str())
            .await?;
        Ok(conn)
    }

    /// Counts waits for a connection, and waits and refusals at the tenant cap, in `metrics`
    /// from now on (call it after [`Db::with_tenant_cap`], which starts a new cap).
    pub fn observe_with(&self, metrics: Arc<crate::metrics::Metrics>) {
        self.cap.observe_with(metrics.clone());
        self.pool.observe_with(metrics);
    }

    /// The pool's connections: (held by callers, idle).
    pub fn pool_state(&self) -> (usize, usize) {
        self.pool.state()
    }

    /// Unpublished events across tenants (counted up to `cap`), and the age of the oldest of
    /// them in seconds (0 when none waits).
    pub async fn outbox_backlog(&self, cap: i64) -> Result<(i64, f64)> {
        let mut tx = self.system_tx().await?;
        let backlog =
            sqlx::query_as("SELECT events, oldest_age_seconds FROM platform.outbox_backlog($1)")
                .bind(cap)
                .fetch_one(tx.conn())
                .await?;
        tx.commit().await?;
        Ok(backlog)
    }

    /// Whether PostgreSQL answers, for readiness.
    pub async fn ping(&self) -> bool {
        match self.pool.acquire().await {
            Ok(mut conn) => conn.ping().await.is_ok(),
            Err(_) => false,
        }
    }

    /// A listener for PostgreSQL notifications on a connection of its own, outside the pool
    /// (it reconnects by itself).
    pub async fn listener(&self) -> Result<PgListener> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.pool.options().clone());
        Ok(PgListener::connect_with(&own).await?)
    }

    /// Refuses new transactions and closes the idle connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A transaction that acts for one tenant: what idempotency, audit and the outbox write through.
pub trait Scoped: Send {
    fn conn(&mut self) -> &mut PgConnection;
    /// The tenant the rows written belong to.
    fn tenant_id(&self) -> TenantId;
}

/// The hosting provider's own records (platform-level idempotency keys) live under this id.
pub const PLATFORM_TENANT: TenantId = TenantId(uuid::Uuid::nil());

/// A transaction in which every statement sees only one tenant's rows. Dropped without
/// [`TenantTx::commit`], it rolls back.
pub struct TenantTx {
    conn: Pooled,
    tenant: TenantId,
    /// The tenant's share of the pool, given back after the connection (fields drop in order).
    _share: Share,
}

impl Scoped for TenantTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    fn tenant_id(&self) -> TenantId {
        self.tenant
    }
}

impl TenantTx {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub async fn commit(mut self) -> Result<()> {
        self.conn.commit().await?;
        Ok(())
    }
}

/// Statements of one tenant, each of which enters the tenant itself: it calls a function of
/// the owning schema (`clients.read_client`, `eligibility.store_check`, for example) that sets
/// `app.tenant_id` transaction-local and then reads or writes under the tables' policies, all
/// in the statement's own transaction, which commits when it answers. One round trip each,
/// where a [`TenantTx`] takes three (BEGIN with the tenant, the statement, COMMIT). Several
/// statements on one `TenantStatements` each see their own snapshot and commit on their own;
/// an answer that must be consistent across queries reads through one function (a STABLE
/// function's queries share the statement's snapshot) or a [`Db::tenant_snapshot`], and
/// writes that must commit together are one function or a [`TenantTx`].
///
/// The connection carries no tenant between statements: a query that does not enter one sees
/// nothing, as in a transaction with none set. Call [`TenantStatements::done`] once the
/// statements have answered, so the connection goes straight back to the pool. (The read
/// functions' migrations call this `TenantRead`, its name when it served reads alone.)
pub struct TenantStatements {
    conn: Pooled,
    tenant: TenantId,
    /// The tenant's share of the pool, given back after the connection (fields drop in order).
    _share: Share,
}

impl TenantStatements {
    /// The tenant the functions enter: bind it as their first argument.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.unsettle();
        &mut self.conn
    }

    /// The statements have answered: the connection is idle and goes back as it is.
    pub fn done(mut self) {
        self.conn.settle();
    }
}

/// A platform transaction (see [`Db::system_tx`]). It can act for one tenant at a time, for
/// writes such as the audit row of a tenant it just created. Dropped without
/// [`SystemTx::commit`], it rolls back.
pub struct SystemTx {
    conn: Pooled,
    tenant: TenantId,
}

impl Scoped for SystemTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    fn tenant_id(&self) -> TenantId {
        self.tenant
    }
}

impl SystemTx {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Sets the tenant for the following statements of this transaction.
    pub async fn act_for_tenant(&mut self, tenant: TenantId) -> Result<()> {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *self.conn)
            .await?;
        self.tenant = tenant;
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.conn.commit().await?;
        Ok(())
    }
}

/// A support desk transaction (see [`Db::support_tx`]). Dropped without
/// [`SupportTx::commit`], it rolls back.
pub struct SupportTx {
    conn: Pooled,
    /// The tenant it acts for, once it does.
    tenant: Option<TenantId>,
}

impl Scoped for SupportTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The tenant it acts for; the platform's own until it acts for one, so what it writes
    /// before then (nothing, as support works) matches no tenant's rows.
    fn tenant_id(&self) -> TenantId {
        self.tenant.unwrap_or(PLATFORM_TENANT)
    }
}

impl SupportTx {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Acts for `tenant` in the following statements: the tenant of the ticket being worked,
    /// whose audit rows, events and idempotent replies support writes. It sees no more of that
    /// tenant than before: the support role's policies still decide.
    pub async fn act_for_tenant(&mut self, tenant: TenantId) -> Result<()> {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *self.conn)
            .await?;
        self.tenant = Some(tenant);
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.conn.commit().await?;
        Ok(())
    }
}

/// Creates the database named in `owner_url` if it is missing, then applies every migration
/// (as the owner; the migrations create the services' role and grant it access).
pub async fn migrate(owner_url: &str, migrators: &[&Migrator]) -> anyhow::Result<()> {
    let options: PgConnectOptions = owner_url
        .parse()
        .context("parsing migration database url")?;
    let database = options
        .get_database()
        .context("the migration database url names no database")?
        .to_string();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to PostgreSQL as the owner")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {database}"))?;
    }
    // The services' role is cluster-wide and several databases may migrate at once (tests do):
    // serialise on a lock of the shared `postgres` database.
    sqlx::query("SELECT pg_advisory_lock(7262001)")
        .execute(&mut admin)
        .await?;
    let mut conn = options.connect().await?;
    let result = combined(migrators).run_direct(None, &mut conn, false).await;
    sqlx::query("SELECT pg_advisory_unlock(7262001)")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    result.context("applying migrations")?;
    conn.close().await?;
    Ok(())
}

/// Gives the services' role (`caseway_app`, created by the platform's first migration) a
/// password, as the schema owner.
pub async fn set_app_role_password(owner_url: &str, password: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = owner_url
        .parse()
        .context("parsing migration database url")?;
    let mut conn = options
        .connect()
        .await
        .context("connecting to PostgreSQL as the owner")?;
    // ALTER ROLE takes no parameters: PostgreSQL quotes the literal itself.
    let statement: String =
        sqlx::query_scalar("SELECT format('ALTER ROLE caseway_app PASSWORD %L', $1)")
            .bind(password)
            .fetch_one(&mut conn)
            .await?;
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .context("setting the password of caseway_app")?;
    conn.close().await?;
    Ok(())
}

/// One migrator over every service's migrations, ordered by version (versions are timestamps,
/// unique across services).
fn combined(migrators: &[&Migrator]) -> Migrator {
    let mut migrations: Vec<_> = migrators
        .iter()
        .flat_map(|m| m.migrations.iter().cloned())
        .collect();
    migrations.sort_by_key(|m| m.version);
    let mut migrator = Migrator::DEFAULT;
    migrator.migrations = migrations.into();
    migrator
}
