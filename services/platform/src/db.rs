//! Database access under row-level security. A `TenantTx` is the only way store code reaches
//! the database: it begins a transaction and sets `app.tenant_id` (transaction-local) before any
//! query, so every statement is filtered by the tables' forced policies. A transaction with no
//! tenant set sees nothing.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::error::Result;
use crate::ids::TenantId;

/// The pool of the services' role. Cloning is cheap.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects lazily, so a process starts (and reports not ready) while PostgreSQL is down.
    pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        let options: PgConnectOptions = url.parse().context("parsing database url")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each use: a broken connection fails its first statement, which
            // maps to UNAVAILABLE like any database outage, and the pool replaces it.
            .test_before_acquire(false)
            .connect_lazy_with(options.application_name("caseway"));
        Ok(Db { pool })
    }

    /// A transaction scoped to one tenant.
    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<TenantTx> {
        // BEGIN and the tenant in one message: one round trip fewer per transaction. The
        // tenant is a UUID this process formats (never caller text), so it can be inlined.
        // set_config of a constant cannot fail short of the connection failing, which the
        // pool then drops; so no connection goes back to the pool inside a transaction.
        let begin = format!("BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true)");
        let tx = self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?;
        Ok(TenantTx { tx, tenant })
    }

    /// A transaction of the platform itself (the outbox relay, tenant lifecycle): it sets
    /// `app.scope = 'system'`, which only the policies of platform-wide tables honour.
    pub async fn system_tx(&self) -> Result<SystemTx> {
        // One message, as in `tenant_tx`: the scope and the platform's own tenant are constants.
        let begin = format!(
            "BEGIN; SELECT set_config('app.scope', 'system', true), \
             set_config('app.tenant_id', '{PLATFORM_TENANT}', true)"
        );
        let tx = self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?;
        Ok(SystemTx {
            tx,
            tenant: PLATFORM_TENANT,
        })
    }

    /// Whether PostgreSQL answers, for readiness.
    pub async fn ping(&self) -> bool {
        match self.pool.acquire().await {
            Ok(mut conn) => conn.ping().await.is_ok(),
            Err(_) => false,
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

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

/// A transaction in which every statement sees only one tenant's rows.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl Scoped for TenantTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
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
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A platform transaction (see [`Db::system_tx`]). It can act for one tenant at a time, for
/// writes such as the audit row of a tenant it just created.
pub struct SystemTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl Scoped for SystemTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    fn tenant_id(&self) -> TenantId {
        self.tenant
    }
}

impl SystemTx {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Sets the tenant for the following statements of this transaction.
    pub async fn act_for_tenant(&mut self, tenant: TenantId) -> Result<()> {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *self.tx)
            .await?;
        self.tenant = tenant;
        Ok(())
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
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
