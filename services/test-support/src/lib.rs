//! Test support against the real servers: a fresh database per test (migrated as the owner,
//! used through the services' role) and a private events exchange, both removed on drop.

pub mod images;

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::mpsc;
use uuid::Uuid;

use caseway_platform::bus::{Bus, Envelope};
use caseway_platform::db::Db;

/// The owner (superuser) URL of the local server, from `CASEWAY_TEST_POSTGRES_URL`.
pub fn postgres_url() -> String {
    std::env::var("CASEWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The local Redis, from `CASEWAY_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("CASEWAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A handle on the local Redis with metrics of its own.
pub fn redis() -> std::sync::Arc<caseway_platform::redis::Redis> {
    std::sync::Arc::new(
        caseway_platform::redis::Redis::new(
            &redis_url(),
            None,
            std::sync::Arc::new(caseway_platform::metrics::Metrics::new()),
        )
        .expect("Redis URL"),
    )
}

pub fn amqp_url() -> String {
    std::env::var("CASEWAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A database of one test.
pub struct TestDb {
    pub name: String,
    /// URL of the owner (for checks that must see past row-level security).
    pub owner_url: String,
    /// URL of the services' role.
    pub app_url: String,
    pub db: Db,
}

impl TestDb {
    pub async fn create(migrators: &[&Migrator]) -> TestDb {
        let name = format!("caseway_test_{}", Uuid::new_v4().simple());
        let base = postgres_url();
        let owner_url = format!("{base}/{name}");
        caseway_platform::db::migrate(&owner_url, migrators)
            .await
            .expect("migrating the test database");
        let options: PgConnectOptions = owner_url.parse().expect("owner url");
        let app_url = options.username("caseway_app").to_url_lossy().to_string();
        let db = Db::connect_lazy(&app_url, 8).expect("app pool");
        TestDb {
            name,
            owner_url,
            app_url,
            db,
        }
    }

    /// A connection as the owner, which row-level security does not filter for superusers.
    pub async fn owner(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.owner_url)
            .await
            .expect("owner connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = postgres_url();
        // Drop runs outside any runtime guarantee: use a thread with its own runtime. The pool
        // is not awaited (its runtime may be gone); FORCE ends its connections.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{base}/postgres")).await
                {
                    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A private events exchange for one test, deleted on drop with the durable queues of the
/// consumers on it.
pub struct TestBus {
    pub bus: Bus,
    /// Queues of consumers that run in other processes, which this one cannot know of.
    elsewhere: std::sync::Mutex<Vec<String>>,
}

impl TestBus {
    pub fn new() -> TestBus {
        let exchange = format!("caseway.events.test.{}", Uuid::new_v4().simple());
        TestBus {
            bus: Bus::new(&amqp_url(), &exchange),
            elsewhere: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Deletes on drop, too, the queues (and dead-letter queues) of `consumers` run by
    /// another process on this exchange: a `caseway` child declares them, not this process.
    pub fn consumers_elsewhere(&self, consumers: &[&str]) {
        let mut elsewhere = self.elsewhere.lock().unwrap_or_else(|e| e.into_inner());
        for consumer in consumers {
            let queue = self.bus.queue_name(consumer);
            elsewhere.push(format!("{queue}.dead-letter"));
            elsewhere.push(queue);
        }
    }

    pub fn exchange(&self) -> &str {
        self.bus.exchange()
    }

    /// A private queue bound to `binding`, consumed without acknowledgements.
    async fn consume(&self, binding: &str) -> (lapin::Connection, lapin::Consumer) {
        let (connection, channel) = self.bus.connect().await.expect("connecting to RabbitMQ");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring test queue");
        channel
            .queue_bind(
                queue.name().clone(),
                self.exchange().into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("binding test queue");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consuming test queue");
        (connection, consumer)
    }

    /// Whether `consumer`'s durable queue exists and is consumed: a consumer in another
    /// process keeps the events published from then on.
    pub async fn consumed(&self, consumer: &str) -> bool {
        self.queue_of(consumer)
            .await
            .is_some_and(|queue| queue.consumer_count() > 0)
    }

    /// Events waiting in `consumer`'s durable queue, not yet delivered to it (0 when the
    /// queue does not exist yet).
    pub async fn waiting(&self, consumer: &str) -> u32 {
        self.queue_of(consumer)
            .await
            .map_or(0, |queue| queue.message_count())
    }

    /// `consumer`'s durable queue as the broker counts it now, if it exists (a passive
    /// declare, which creates nothing).
    async fn queue_of(&self, consumer: &str) -> Option<lapin::Queue> {
        let (connection, channel) = self.bus.connect().await.expect("connecting to RabbitMQ");
        let declared = channel
            .queue_declare(
                self.bus.queue_name(consumer).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = connection.close(200, "looked".into()).await;
        declared.ok()
    }

    /// Starts receiving every event matching `binding` on a private queue.
    pub async fn listen(&self, binding: &str) -> EventListener {
        let (connection, mut consumer) = self.consume(binding).await;
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            let _connection = connection;
            while let Some(Ok(delivery)) = consumer.next().await {
                // A message may hold several events (a batch): each is received on its own,
                // with the message's headers.
                let headers = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .map(|h| h.inner().keys().map(|k| k.to_string()).collect::<Vec<_>>())
                    .unwrap_or_default();
                for envelope in Envelope::from_delivery(&delivery).unwrap_or_default() {
                    if sender.send((envelope, headers.clone())).is_err() {
                        return;
                    }
                }
            }
        });
        EventListener { receiver, task }
    }

    /// The next message matching `binding` as the broker delivers it (properties and body),
    /// for a test that reads it without Caseway's code; None after `timeout`.
    pub async fn next_delivery(
        &self,
        binding: &str,
        timeout: Duration,
        publish: impl std::future::Future<Output = ()>,
    ) -> Option<lapin::message::Delivery> {
        use futures::StreamExt;
        let (_connection, mut consumer) = self.consume(binding).await;
        publish.await;
        match tokio::time::timeout(timeout, consumer.next()).await {
            Ok(Some(Ok(delivery))) => Some(delivery),
            _ => None,
        }
    }
}

impl Default for TestBus {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let bus = self.bus.clone();
        let elsewhere =
            std::mem::take(&mut *self.elsewhere.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok((connection, channel)) = bus.connect().await {
                    for queue in bus.declared_queues().into_iter().chain(elsewhere) {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    for exchange in [bus.exchange().to_string(), bus.dead_letter_exchange()] {
                        let _ = channel
                            .exchange_delete(
                                exchange.as_str().into(),
                                ExchangeDeleteOptions::default(),
                            )
                            .await;
                    }
                    let _ = connection.close(200, "test done".into()).await;
                }
            });
        })
        .join();
    }
}

/// Events received by a test, with the names of their AMQP headers.
pub struct EventListener {
    receiver: mpsc::UnboundedReceiver<(Envelope, Vec<String>)>,
    task: tokio::task::JoinHandle<()>,
}

impl EventListener {
    /// The next event, or None after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Envelope, Vec<String>)> {
        tokio::time::timeout(timeout, self.receiver.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for an event of `event_type`, skipping others.
    pub async fn expect(&mut self, event_type: &str, timeout: Duration) -> (Envelope, Vec<String>) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((envelope, headers)) if envelope.event_type == event_type => {
                    return (envelope, headers);
                }
                Some(_) => continue,
                None => panic!("no {event_type} event within {timeout:?}"),
            }
        }
    }
}

impl Drop for EventListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request carrying a bearer token, as a gateway sends it.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// Polls `check` every 20 ms until it gives a value, for what arrives asynchronously (an event
/// through RabbitMQ, a cache dropped by one); after `timeout` the test fails, showing `what`
/// and the last state `check` reported.
pub async fn eventually<T, S, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    S: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, S>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("{what} did not happen within {timeout:?}; last: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A benchmark's setting: the environment variable `name` parsed, or `default` when it is
/// unset or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The resident set of process `pid` (this process when None), in KiB; 0 when unreadable.
pub fn resident_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
