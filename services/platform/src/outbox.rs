//! The transactional outbox. A service writes its state change and its event in one
//! transaction; the [`Relay`] publishes unsent rows to RabbitMQ with publisher confirms and deletes
//! them. A broker outage delays events and never fails the user's call.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::{Bus, Envelope};
use crate::db::{Db, Scoped};
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::metrics::Metrics;
use crate::telemetry;

/// The channel a commit with new outbox rows notifies.
pub const CHANNEL: &str = "caseway_outbox";
/// Events published per relay transaction: large batches keep up with Quick Services and bulk
/// forms (ten or a thousand events per call) with few transactions.
const BATCH: i64 = 1000;
/// How long the relay waits after a wake-up for more commits to join the batch: fewer,
/// larger relay transactions under load, for a couple of milliseconds of latency.
const COALESCE: Duration = Duration::from_millis(2);
/// A drain that publishes this many events marks the relay busy: it drains again after
/// [`COALESCE`] without listening for commits (see [`Relay::run`]).
const BUSY_BATCH: usize = 16;

/// An event to publish once the transaction commits.
pub struct Event<'a, M: Message> {
    /// Routing key and CloudEvents `type`: `catalog.service_created.v1`.
    pub event_type: &'a str,
    /// CloudEvents `source`: the publishing service, e.g. `caseway/catalog`.
    pub source: &'a str,
    /// CloudEvents `subject`: the resource id.
    pub subject: String,
    pub payload: &'a M,
}

/// The outbox's INSERT of one event, a plain row (cheaper to plan than arrays of one), over
/// the parameters [`Columns::bind`] binds ($1 to $8, the channel unused here).
macro_rules! insert_one {
    () => {
        "INSERT INTO platform.outbox \
         (id, tenant_id, event_type, source, subject, occurred_at, payload, traceparent) \
         VALUES ($2[1], $1, $3[1], $4[1], $5[1], now(), $6[1], $7) RETURNING id"
    };
}

/// The outbox's INSERT of several events, through arrays, over the parameters
/// [`Columns::bind`] binds.
macro_rules! insert_many {
    () => {
        "INSERT INTO platform.outbox \
         (id, tenant_id, event_type, source, subject, occurred_at, payload, traceparent) \
         SELECT id, $1, event_type, source, subject, now(), payload, $7 \
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[]) \
         AS e(id, event_type, source, subject, payload) ORDER BY id RETURNING id"
    };
}
/// The relay's notification, once however many rows the `events` CTE inserted (PostgreSQL
/// delivers it at commit and folds repeats within one transaction; sent with the rows, it
/// costs no round trip of its own).
macro_rules! notify {
    () => {
        "SELECT pg_notify($8, '') FROM (SELECT 1 FROM events LIMIT 1) AS any_event"
    };
}
pub(crate) use {insert_many, insert_one, notify};

/// Adds an event to the outbox in the tenant's transaction.
pub async fn enqueue<M: Message>(tx: &mut impl Scoped, event: Event<'_, M>) -> Result<Uuid> {
    let ids = enqueue_all(tx, std::slice::from_ref(&event)).await?;
    // One event gives one id; an empty answer would be a broken statement, not a panic.
    ids.into_iter()
        .next()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("an event enqueued without an id")))
}

/// Adds several events in one statement (a Quick Services form, a bulk recording).
pub async fn enqueue_all<M: Message>(
    tx: &mut impl Scoped,
    events: &[Event<'_, M>],
) -> Result<Vec<Uuid>> {
    let Some(columns) = Columns::of(tx.tenant_id(), events) else {
        return Ok(Vec::new());
    };
    let sql = match events.len() {
        1 => concat!("WITH events AS (", insert_one!(), ") ", notify!()),
        _ => concat!("WITH events AS (", insert_many!(), ") ", notify!()),
    };
    let ids = columns.ids.clone();
    columns.bind(sqlx::query(sql)).execute(tx.conn()).await?;
    Ok(ids)
}

/// Events as the columns of their outbox rows, to bind as arrays: each gets its id (time
/// ordered, so the relay publishes them in the order given), and all the current trace.
pub(crate) struct Columns<'a> {
    tenant: TenantId,
    pub ids: Vec<Uuid>,
    types: Vec<&'a str>,
    sources: Vec<&'a str>,
    subjects: Vec<&'a str>,
    payloads: Vec<Vec<u8>>,
    traceparent: Option<String>,
}

impl<'a> Columns<'a> {
    /// The columns of `events`; None when there are none.
    pub fn of<M: Message>(tenant: TenantId, events: &'a [Event<'_, M>]) -> Option<Columns<'a>> {
        // Events of the platform itself must name the tenant they are about.
        debug_assert!(tenant != crate::db::PLATFORM_TENANT);
        if events.is_empty() {
            return None;
        }
        Some(Columns {
            tenant,
            ids: events.iter().map(|_| Uuid::now_v7()).collect(),
            types: events.iter().map(|e| e.event_type).collect(),
            sources: events.iter().map(|e| e.source).collect(),
            subjects: events.iter().map(|e| e.subject.as_str()).collect(),
            payloads: events.iter().map(|e| e.payload.encode_to_vec()).collect(),
            traceparent: telemetry::current_traceparent(),
        })
    }

    /// Binds the parameters [`insert_one`] and [`insert_many`] read: $1 the tenant, $2 to $6
    /// the events' ids, types, sources, subjects and payloads, $7 the trace, $8 the channel
    /// to notify. A statement's own parameters follow from $9.
    pub fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.tenant.as_uuid())
            .bind(self.ids)
            .bind(self.types)
            .bind(self.sources)
            .bind(self.subjects)
            .bind(self.payloads)
            .bind(self.traceparent)
            .bind(CHANNEL)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: Uuid,
    tenant_id: Uuid,
    event_type: String,
    source: String,
    subject: String,
    occurred_at: DateTime<Utc>,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

/// Publishes outbox rows. Several relays (replicas) may run: rows are claimed with
/// `FOR UPDATE SKIP LOCKED`, so each is published by one of them.
pub struct Relay {
    db: Db,
    bus: Bus,
    poll_interval: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl Relay {
    pub fn new(db: Db, bus: Bus, poll_interval: Duration) -> Self {
        Relay {
            db,
            bus,
            poll_interval,
            metrics: None,
        }
    }

    /// Counts what it publishes and its failures in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Relay {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Runs until `shutdown`, then makes a last attempt to publish what is left.
    ///
    /// An idle relay listens for commits. A busy one (its last batch held at least
    /// [`BUSY_BATCH`] events) stops listening and drains again after [`COALESCE`]: commits keep
    /// coming anyway, and a listener costs PostgreSQL a wake-up of the listening backend (and
    /// this process a notification to read) on every commit.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut listening = false;
        let mut backoff = Duration::from_millis(100);
        // What this relay did, for its last log line.
        let (mut relayed, mut drains) = (0, 0u64);
        loop {
            if listener.is_none() {
                listener = self.listen().await;
                listening = listener.is_some();
            }
            let published = match self.drain().await {
                Ok(published) => {
                    if published > 0 {
                        tracing::debug!(published, "outbox relayed");
                        relayed += published;
                        drains += 1;
                    }
                    backoff = Duration::from_millis(100);
                    published
                }
                Err(error) => {
                    tracing::warn!(error = %error, "outbox relay failed; will retry");
                    if let Some(metrics) = &self.metrics {
                        metrics.outbox_publish_failures.inc();
                    }
                    self.bus.reset().await;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Some(l) = listener.as_mut() {
                let busy = published >= BUSY_BATCH;
                if busy && listening {
                    listening = false;
                    if l.unlisten(CHANNEL).await.is_err() {
                        listener = None;
                    }
                } else if !busy && !listening {
                    // Listening again: drain once more for what committed while not listening.
                    listening = true;
                    if l.listen(CHANNEL).await.is_err() {
                        listener = None;
                    }
                    continue;
                }
            }
            let woken = async {
                match listener.as_mut() {
                    Some(l) if listening => l.recv().await.map(|_| ()),
                    Some(_) => Ok(()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = woken => {
                    if result.is_err() {
                        listener = None;
                    }
                    tokio::time::sleep(COALESCE).await;
                    // Notifications that came while draining are for commits the next drain
                    // takes anyway.
                    if let Some(l) = listener.as_mut() {
                        while l.next_buffered().is_some() {}
                    }
                }
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Flush: publish what committed before shutdown, if the broker lets us.
        match tokio::time::timeout(Duration::from_secs(5), self.drain()).await {
            Ok(Ok(published)) => {
                tracing::info!(published, relayed, drains, "outbox flushed at shutdown")
            }
            Ok(Err(error)) => tracing::warn!(error = %error, "outbox flush at shutdown failed"),
            Err(_) => tracing::warn!("outbox flush at shutdown timed out"),
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = self.db.listener().await.ok()?;
        listener.listen(CHANNEL).await.ok()?;
        Some(listener)
    }

    /// Publishes batches until the outbox is empty; returns how many were published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let published = self.publish_batch().await?;
            total += published;
            if published < BATCH as usize {
                return Ok(total);
            }
        }
    }

    async fn publish_batch(&self) -> anyhow::Result<usize> {
        // Claimed and deleted in one statement; the rows come back if the broker does not
        // confirm them (the transaction rolls back).
        let mut tx = self.db.system_tx().await?;
        // Every tenant's events: through the one function of the platform's own role that
        // reads them (see the system role migration).
        let mut rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, id, tenant_id, event_type, source, subject, occurred_at, payload, \
             traceparent FROM platform.claim_outbox($1)",
        )
        .bind(BATCH)
        .fetch_all(tx.conn())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // In the order they were written.
        rows.sort_unstable_by_key(|row| row.seq);
        let envelopes: Vec<Envelope> = rows
            .into_iter()
            .map(|row| Envelope {
                id: row.id,
                tenant_id: TenantId(row.tenant_id),
                event_type: row.event_type,
                source: row.source,
                subject: row.subject,
                time: row.occurred_at,
                traceparent: row.traceparent,
                payload: row.payload,
            })
            .collect();
        self.bus.publish_confirmed(&envelopes).await?;
        tx.commit().await?;
        if let Some(metrics) = &self.metrics {
            metrics.outbox_published.inc_by(envelopes.len() as u64);
        }
        Ok(envelopes.len())
    }
}
