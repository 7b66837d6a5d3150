//! RabbitMQ: one topic exchange, protobuf payloads, CloudEvents in the AMQP binding's binary
//! mode (attributes as `cloudEvents_` application properties) with the W3C `traceparent`, or
//! several events of one tenant and type in one message as a CloudEvents protobuf batch;
//! publishing with confirms; consumers that reconnect, retry with backoff and park what keeps
//! failing in their own dead-letter queue.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use prost::Message as _;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ids::TenantId;

/// Attempts of a handler that fails for a reason of its own before its event is parked.
const HANDLER_ATTEMPTS: u32 = 5;
/// The longest wait between attempts while a dependency is down (which parks nothing).
const TRANSIENT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A failure that says nothing about the event: a dependency down or busy, a transaction
/// that lost a race. Retried for as long as it lasts instead of parking the event.
fn transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(error) = cause.downcast_ref::<crate::error::Error>() {
            return matches!(
                error,
                crate::error::Error::Unavailable(_) | crate::error::Error::Aborted { .. }
            );
        }
        if let Some(error) = cause.downcast_ref::<sqlx::Error>() {
            return match error {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_) => true,
                // Serialization failure, deadlock, and the database unable to serve for now.
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    matches!(&*code, "40001" | "40P01") || crate::error::database_unavailable(&code)
                }),
                _ => false,
            };
        }
        false
    })
}

/// One event with its envelope attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// Routing key and CloudEvents `type`.
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub traceparent: Option<String>,
    pub payload: Vec<u8>,
}

/// The content type of an event's data: a protobuf message of `proto/caseway/events/v1`.
pub const DATA_CONTENT_TYPE: &str = "application/protobuf";

/// CloudEvents attributes as AMQP application properties (the AMQP protocol binding).
pub const CE_SPECVERSION: &str = "cloudEvents_specversion";
pub const CE_ID: &str = "cloudEvents_id";
pub const CE_SOURCE: &str = "cloudEvents_source";
pub const CE_TYPE: &str = "cloudEvents_type";
pub const CE_SUBJECT: &str = "cloudEvents_subject";
pub const CE_TIME: &str = "cloudEvents_time";
pub const CE_DATASCHEMA: &str = "cloudEvents_dataschema";
/// The tenant, as a CloudEvents extension (names are lower-case letters and digits).
pub const CE_TENANTID: &str = "cloudEvents_tenantid";
/// The distributed-tracing extension.
pub const CE_TRACEPARENT: &str = "cloudEvents_traceparent";

impl Envelope {
    fn properties(&self) -> BasicProperties {
        let mut headers = BTreeMap::new();
        let mut put = |name: &str, value: String| {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        };
        // The CloudEvents AMQP binding (binary mode): each attribute an application property
        // prefixed `cloudEvents_`, the data's type the message's content-type; the tenant is
        // the `tenantid` extension, the trace the distributed-tracing extension (and the W3C
        // `traceparent` property as well, for AMQP tracing without CloudEvents).
        put(CE_SPECVERSION, "1.0".into());
        put(CE_ID, self.id.to_string());
        put(CE_SOURCE, self.source.clone());
        put(CE_TYPE, self.event_type.clone());
        put(CE_SUBJECT, self.subject.clone());
        put(CE_TIME, self.time.to_rfc3339());
        if let Some(schema) = caseway_api::event_dataschema(&self.event_type) {
            put(CE_DATASCHEMA, schema);
        }
        put(CE_TENANTID, self.tenant_id.to_string());
        if let Some(traceparent) = &self.traceparent {
            put(CE_TRACEPARENT, traceparent.clone());
            put("traceparent", traceparent.clone());
        }
        self.message_properties(DATA_CONTENT_TYPE)
            .with_headers(FieldTable::from(headers))
    }

    /// The AMQP properties of a persistent message about this event (or a batch it begins),
    /// whose body is of `content_type`.
    fn message_properties(&self, content_type: &str) -> BasicProperties {
        BasicProperties::default()
            .with_message_id(self.id.to_string().into())
            .with_type(self.event_type.clone().into())
            .with_app_id(self.source.clone().into())
            .with_content_type(content_type.into())
            .with_timestamp(self.time.timestamp().max(0) as u64)
            .with_delivery_mode(2)
    }

    /// The events of a delivery: one in the AMQP binding's binary mode, or several in the
    /// CloudEvents protobuf format's batch ([`BATCH_CONTENT_TYPE`]).
    pub fn from_delivery(delivery: &lapin::message::Delivery) -> anyhow::Result<Vec<Envelope>> {
        if delivery
            .properties
            .content_type()
            .as_ref()
            .map(|t| t.as_str())
            == Some(BATCH_CONTENT_TYPE)
        {
            let batch = batch::CloudEventBatch::decode(delivery.data.as_slice())
                .context("a batch of events that is not a CloudEventBatch")?;
            return batch
                .events
                .into_iter()
                .map(batch::from_cloud_event)
                .collect();
        }
        Ok(vec![Envelope::from_binary(delivery)?])
    }

    /// Reads an envelope from a delivery's headers (binary mode).
    fn from_binary(delivery: &lapin::message::Delivery) -> anyhow::Result<Envelope> {
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .context("message without headers")?;
        let header = |name: &str| -> Option<String> {
            match headers.inner().get(name)? {
                AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            }
        };
        // An event published before the binding named its attributes without the prefix (and
        // the tenant `tenant_id`): read either, so a queue drained across an upgrade loses
        // nothing.
        let attribute = |name: &str, before: &str| header(name).or_else(|| header(before));
        let required = |name: &str, before: &str| {
            attribute(name, before).with_context(|| format!("missing header {name}"))
        };
        let time = DateTime::parse_from_rfc3339(&required(CE_TIME, "time")?)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::UNIX_EPOCH);
        Ok(Envelope {
            id: required(CE_ID, "id")?
                .parse()
                .context("the id attribute is not a UUID")?,
            tenant_id: required(CE_TENANTID, "tenant_id")?
                .parse()
                .context("the tenantid attribute is not a UUID")?,
            event_type: required(CE_TYPE, "type")?,
            source: required(CE_SOURCE, "source")?,
            subject: attribute(CE_SUBJECT, "subject").unwrap_or_default(),
            time,
            traceparent: attribute(CE_TRACEPARENT, "traceparent"),
            payload: delivery.data.clone(),
        })
    }
}

mod batch;

pub use batch::BATCH_CONTENT_TYPE;
use batch::{encode, messages};

/// A handle on the broker. Cloning is cheap; publishers share one confirmed channel.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    exchange: String,
    /// PEM certificate authorities of an `amqps://` broker, instead of the system's.
    ca: Option<String>,
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// The connection queue depths are measured on, kept between measurements apart from the
    /// publisher's, so measuring never holds up publishing.
    observer: Mutex<Option<(Connection, Channel)>>,
}

/// Durable queues this process declared (with their dead-letter queues), by exchange, so a
/// test can delete what its node made.
static DECLARED_QUEUES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Durable queues this process has bound to their exchange and consumes, by exchange: from
/// then on no event of their bindings is lost, even while the consumer reconnects.
static BOUND_QUEUES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// How many times this process has bound a queue of its own (a follower's) to each routing-key
/// pattern, by exchange: a test waits for a node's followers before it changes what they follow.
static FOLLOWING: std::sync::Mutex<Vec<(String, String, usize)>> =
    std::sync::Mutex::new(Vec::new());

/// The largest AMQP frame a connection proposes to the broker, unless its URL names one
/// (`frame_max=`). lapin keeps a send and a receive buffer of 32 frames for each connection, so
/// RabbitMQ's default of 128 KiB costs 8 MiB a connection, and a process of every target holds
/// about 18 connections. Caseway's events are a few KiB; a larger one goes in several frames.
const FRAME_MAX: u32 = 8192;

/// `url` with [`FRAME_MAX`] proposed, unless it names a frame size of its own.
fn with_frame_max(url: &str) -> String {
    if url.contains("frame_max=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}frame_max={FRAME_MAX}")
}

impl Bus {
    pub fn new(url: &str, exchange: &str) -> Self {
        Bus {
            inner: Arc::new(Inner {
                url: url.into(),
                exchange: exchange.into(),
                ca: None,
                publisher: Mutex::new(None),
                observer: Mutex::new(None),
            }),
        }
    }

    /// The same bus, checking an `amqps://` broker's certificate against the authorities of
    /// `ca_file` (PEM) instead of the system's.
    pub fn with_ca_file(self, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let Some(path) = ca_file else {
            return Ok(self);
        };
        let ca = std::fs::read_to_string(path)
            .with_context(|| format!("reading the RabbitMQ CA file {}", path.display()))?;
        Ok(Bus {
            inner: Arc::new(Inner {
                url: self.inner.url.clone(),
                exchange: self.inner.exchange.clone(),
                ca: Some(ca),
                publisher: Mutex::new(None),
                observer: Mutex::new(None),
            }),
        })
    }

    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// The durable queue of `consumer` on this exchange: `caseway.events.authorizations.drawdown`.
    pub fn queue_name(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.inner.exchange)
    }

    /// The durable queues this process declared on this exchange, and their dead-letter
    /// queues.
    pub fn declared_queues(&self) -> Vec<String> {
        DECLARED_QUEUES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(exchange, _)| *exchange == self.inner.exchange)
            .map(|(_, queue)| queue.clone())
            .collect()
    }

    /// Whether this process has bound the durable queue of `consumer` (see [`queue_name`]):
    /// a node that has just started keeps the events published after this is true.
    ///
    /// [`queue_name`]: Bus::queue_name
    pub fn is_bound(&self, consumer: &str) -> bool {
        let entry = (self.inner.exchange.clone(), self.queue_name(consumer));
        BOUND_QUEUES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&entry)
    }

    /// How many followers (queues of their own process) this process has bound to `binding` on
    /// this exchange, counting each (re)subscription: one more once a node started after the
    /// count was read follows it.
    pub fn followers_of(&self, binding: &str) -> usize {
        FOLLOWING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(exchange, bound, _)| *exchange == self.inner.exchange && bound == binding)
            .map(|(_, _, count)| count)
            .sum()
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The exchange the broker dead-letters to: `<exchange>.dead-letter`. Consumers park what
    /// they cannot handle in their own queue directly; a queue's dead-letter exchange is for
    /// messages the broker itself dead-letters (an operator's length or time-to-live policy).
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.inner.exchange)
    }

    /// Opens a connection and declares the exchange (and the dead-letter exchange).
    pub async fn connect(&self) -> anyhow::Result<(Connection, Channel)> {
        let url = with_frame_max(&self.inner.url);
        let connect = async {
            match &self.inner.ca {
                None => Connection::connect(&url, ConnectionProperties::default()).await,
                Some(ca) => {
                    lapin::ConnectionBuilder::new()?
                        .with_uri_str(url.clone())
                        .with_tls_config(lapin::tcp::OwnedTLSConfig {
                            identity: None,
                            cert_chain: Some(ca.clone()),
                        })
                        .connect()
                        .await
                }
            }
        };
        let connection = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .context("connecting to RabbitMQ timed out")?
            .context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.inner.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel))
    }

    /// Publishes every envelope and waits for the broker to confirm all of them.
    /// Each tenant's events keep their order; see [`messages`] for which travel together.
    pub async fn publish_confirmed(&self, envelopes: &[Envelope]) -> anyhow::Result<()> {
        let mut publisher = self.inner.publisher.lock().await;
        if publisher
            .as_ref()
            .is_none_or(|(c, _)| !c.status().connected())
        {
            let (connection, channel) = self.connect().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            *publisher = Some((connection, channel));
        }
        let (_, channel) = publisher.as_ref().expect("publisher was just set");
        // A publish resolves once lapin's I/O thread has written it, so publishing one after
        // another waits for that thread once per event. Polled together, every message is put
        // in line at its first poll (in order: its delivery tag and its frames are taken
        // then, and the futures are first polled in the order given), and the thread writes
        // them all in one go.
        // Several events of one tenant and type go as one message: the broker's work, and each
        // consumer's, is per message.
        let messages: Vec<_> = messages(envelopes)
            .into_iter()
            .map(|events| (events[0].event_type.as_str(), encode(&events)))
            .collect();
        let publishes = messages.iter().map(|(event_type, (body, properties))| {
            channel.basic_publish(
                self.inner.exchange.as_str().into(),
                (*event_type).into(),
                BasicPublishOptions::default(),
                body,
                properties.clone(),
            )
        });
        let confirms = futures::future::try_join_all(publishes).await?;
        for confirm in confirms {
            let confirmation = tokio::time::timeout(Duration::from_secs(10), confirm)
                .await
                .context("publisher confirm timed out")??;
            if confirmation.is_nack() {
                return Err(anyhow!("the broker refused an event"));
            }
        }
        Ok(())
    }

    /// Drops the publisher connection, so the next publish reconnects.
    pub async fn reset(&self) {
        if let Some((connection, _)) = self.inner.publisher.lock().await.take() {
            let _ = connection.close(200, "reset".into()).await;
        }
    }

    /// Whether the broker answers, for readiness.
    pub async fn ping(&self) -> bool {
        {
            let publisher = self.inner.publisher.lock().await;
            if let Some((connection, _)) = publisher.as_ref()
                && connection.status().connected()
            {
                return true;
            }
        }
        match self.connect().await {
            Ok((connection, _)) => {
                let _ = connection.close(200, "ping".into()).await;
                true
            }
            Err(_) => false,
        }
    }
}

/// An event parked in a consumer's dead-letter queue after its last attempt.
#[derive(Clone, Debug)]
pub struct Parked {
    /// None when the message was not an event at all (it is shown, never replayed).
    pub envelope: Option<Envelope>,
    /// The broker's reason (`rejected` after the handler's last attempt) and how often.
    pub reason: String,
    pub count: i64,
}

/// Why and how often a message was parked: by a consumer ([`PARKED_REASON`], once), or by the
/// broker's dead-lettering (its `x-death` header), as consumers before this release parked.
fn death_of(delivery: &lapin::message::Delivery) -> (String, i64) {
    if let Some(AMQPValue::LongString(reason)) = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(PARKED_REASON))
    {
        return (String::from_utf8_lossy(reason.as_bytes()).into_owned(), 1);
    }
    let first =
        delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get("x-death") {
                Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice().first().cloned(),
                _ => None,
            });
    let Some(AMQPValue::FieldTable(death)) = first else {
        return (String::new(), 0);
    };
    let reason = match death.inner().get("reason") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => String::new(),
    };
    let count = match death.inner().get("count") {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        _ => 0,
    };
    (reason, count)
}

/// How many events wait in a consumer's queue and how many it has parked; None where a queue
/// could not be measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    pub consumer: String,
    pub waiting: Option<u32>,
    pub parked: Option<u32>,
}

impl Bus {
    /// The depths of the durable queues this process consumes on this exchange, read with
    /// passive declares (which change nothing) on a connection kept for it. A queue that
    /// cannot be measured (gone, say) is None and does not stop the others being measured.
    pub async fn depths(&self) -> anyhow::Result<Vec<QueueDepth>> {
        let queues: Vec<String> = BOUND_QUEUES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(exchange, _)| *exchange == self.inner.exchange)
            .map(|(_, queue)| queue.clone())
            .collect();
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let mut observer = self.inner.observer.lock().await;
        if observer
            .as_ref()
            .is_none_or(|(c, _)| !c.status().connected())
        {
            *observer = Some(self.connect().await?);
        }
        let Some((connection, channel)) = observer.as_mut() else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.", self.inner.exchange);
        let mut depths = Vec::with_capacity(queues.len());
        for queue in queues {
            let mut measured = [None, None];
            for (slot, name) in measured
                .iter_mut()
                .zip([queue.clone(), format!("{queue}.dead-letter")])
            {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                match channel
                    .queue_declare(name.as_str().into(), passive, FieldTable::default())
                    .await
                {
                    Ok(declared) => *slot = Some(declared.message_count()),
                    // A failed passive declare closes the channel: the next needs another.
                    Err(_) => *channel = connection.create_channel().await?,
                }
            }
            depths.push(QueueDepth {
                consumer: queue.strip_prefix(&prefix).unwrap_or(&queue).to_string(),
                waiting: measured[0],
                parked: measured[1],
            });
        }
        Ok(depths)
    }

    /// The dead-letter queue of `consumer`'s durable queue.
    pub fn parked_queue(&self, consumer: &str) -> String {
        format!("{}.dead-letter", self.queue_name(consumer))
    }

    /// The events parked for `consumer`, oldest first. They stay parked: every message is
    /// taken unacknowledged, and closing the channel gives them back in their order.
    pub async fn parked(&self, consumer: &str) -> anyhow::Result<Vec<Parked>> {
        let (connection, channel) = self.connect().await?;
        let queue = self.parked_queue(consumer);
        let result = async {
            declare_parked_queue(&channel, &queue).await?;
            let mut parked = Vec::new();
            while let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            {
                let (reason, count) = death_of(&message.delivery);
                let envelope = Envelope::from_delivery(&message.delivery)
                    .ok()
                    .and_then(|mut events| (events.len() == 1).then(|| events.remove(0)));
                parked.push(Parked {
                    envelope,
                    reason,
                    count,
                });
            }
            anyhow::Ok(parked)
        }
        .await;
        let _ = connection.close(200, "listed".into()).await;
        result
    }

    /// Drops the events of `tenant` parked for `consumer` (a purged tenant's); the others stay
    /// parked in their order (taken unacknowledged, given back when the channel closes).
    /// Returns how many were dropped.
    pub async fn drop_parked_of_tenant(
        &self,
        consumer: &str,
        tenant: crate::TenantId,
    ) -> anyhow::Result<usize> {
        let (connection, channel) = self.connect().await?;
        let queue = self.parked_queue(consumer);
        let result = async {
            // A consumer that never ran here has no queue: nothing is parked, and none is made.
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .is_err()
            {
                return anyhow::Ok(0);
            }
            let mut dropped = 0;
            while let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            {
                let delivery = message.delivery;
                let of_tenant = Envelope::from_delivery(&delivery)
                    .is_ok_and(|events| events.iter().all(|e| e.tenant_id == tenant));
                if of_tenant {
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                    dropped += 1;
                }
            }
            anyhow::Ok(dropped)
        }
        .await;
        let _ = connection.close(200, "dropped".into()).await;
        result
    }

    /// Puts parked events of `consumer` back on its own queue (every one, or those whose ids
    /// are given), for its handler to try again; the others stay parked. Returns how many.
    pub async fn replay(&self, consumer: &str, ids: &[Uuid]) -> anyhow::Result<usize> {
        let (connection, channel) = self.connect().await?;
        let queue = self.parked_queue(consumer);
        let target = self.queue_name(consumer);
        let result = async {
            declare_parked_queue(&channel, &queue).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let mut replayed = 0;
            while let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            {
                let delivery = message.delivery;
                let Ok(events) = Envelope::from_delivery(&delivery) else {
                    continue;
                };
                if events.is_empty()
                    || !ids.is_empty() && !events.iter().any(|e| ids.contains(&e.id))
                {
                    continue;
                }
                let (body, properties) = encode(&events.iter().collect::<Vec<_>>());
                // Straight to the consumer's queue (the default exchange routes by queue
                // name), so other subscribers of the event do not see it twice.
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        target.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        properties,
                    )
                    .await?
                    .await?;
                if confirm.is_nack() {
                    return Err(anyhow!("the broker refused a replayed event"));
                }
                delivery.acker.ack(BasicAckOptions::default()).await?;
                replayed += 1;
            }
            anyhow::Ok(replayed)
        }
        .await;
        let _ = connection.close(200, "replayed".into()).await;
        result
    }
}

/// Declares `queue` as a consumer's consumers declare it (durable), so listing a consumer
/// that never failed finds an empty queue rather than an error.
async fn declare_parked_queue(channel: &Channel, queue: &str) -> anyhow::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// What a consumer listens to.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// A durable queue shared by the replicas of a consumer (work is split between them); None
    /// for a private queue of this process that every replica gets (cache invalidation).
    pub queue: Option<String>,
    /// Routing-key patterns bound on the events exchange: `catalog.service_updated.v1`,
    /// `tenancy.#`. AMQP's `*` and `#` match whole dot-separated words only.
    pub bindings: Vec<String>,
    /// Deliveries (or batches, see [`consume_batches`]) handled at once by this process. More
    /// than one only for a handler whose effect does not depend on the order of events (it
    /// orders them itself, by versions and locks, and a repeat changes nothing).
    pub concurrency: usize,
}

/// Consumes until `shutdown`: each event goes to `handler`, retried with backoff when it fails
/// and parked after the last attempt; a delivery is acked once each of its events is handled
/// or parked.
pub async fn consume<F, Fut>(
    bus: Bus,
    subscription: Subscription,
    shutdown: CancellationToken,
    handler: F,
) where
    F: Fn(Envelope) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let one = |mut batch: Vec<Envelope>| handler(batch.swap_remove(0));
    consume_batches(bus, subscription, shutdown, 1, one).await
}

/// Consumes until `shutdown` as [`consume`] does, handing `handler` the events of the deliveries
/// that are waiting, up to `max_batch` deliveries at a time (never waiting for more; a delivery
/// may hold several events), so a handler can apply many events in one transaction. A batch is
/// acked once the handler succeeds with it; when it fails, its events go to the handler one at
/// a time, each retried or parked on its own, so one event that cannot be applied holds up no
/// other.
pub async fn consume_batches<F, Fut>(
    bus: Bus,
    subscription: Subscription,
    shutdown: CancellationToken,
    max_batch: usize,
    handler: F,
) where
    F: Fn(Vec<Envelope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    consume_watched(bus, subscription, shutdown, max_batch, |_| {}, handler).await
}

/// Consumes as [`consume_batches`] does, telling `bound` when the queue is bound and taking
/// deliveries (`true`) and when that ends (`false`: a lost connection, or shutdown). A private
/// queue is deleted with its connection, so what was published between a `false` and the next
/// `true` never arrives: a cache that follows events must not trust what it held across that
/// gap.
pub async fn consume_watched<B, F, Fut>(
    bus: Bus,
    subscription: Subscription,
    shutdown: CancellationToken,
    max_batch: usize,
    bound: B,
    handler: F,
) where
    B: Fn(bool),
    F: Fn(Vec<Envelope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let result = tokio::select! {
            result = consume_once(&bus, &subscription, &shutdown, max_batch, &bound, &handler) => result,
            _ = shutdown.cancelled() => Ok(()),
        };
        bound(false);
        match result {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(error) => {
                tracing::warn!(error = %error, bindings = ?subscription.bindings, "consumer disconnected; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume_once<B, F, Fut>(
    bus: &Bus,
    subscription: &Subscription,
    shutdown: &CancellationToken,
    max_batch: usize,
    bound: &B,
    handler: &F,
) -> anyhow::Result<()>
where
    B: Fn(bool),
    F: Fn(Vec<Envelope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let (connection, channel) = bus.connect().await?;
    let (queue_name, options, arguments) = match &subscription.queue {
        Some(name) => {
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(bus.dead_letter_exchange().into()),
            );
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            (name.clone(), options, arguments)
        }
        None => {
            let options = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            };
            (String::new(), options, FieldTable::default())
        }
    };
    let queue = channel
        .queue_declare(queue_name.as_str().into(), options, arguments)
        .await?;
    let queue_name = queue.name().to_string();
    let mut parking = Parking {
        channel: None,
        queue: String::new(),
    };
    if subscription.queue.is_some() {
        // Parked messages of this consumer, for `caseway` to list and replay.
        let parked = format!("{queue_name}.dead-letter");
        {
            let mut declared = DECLARED_QUEUES.lock().unwrap_or_else(|e| e.into_inner());
            for queue in [&queue_name, &parked] {
                let entry = (bus.exchange().to_string(), queue.clone());
                if !declared.contains(&entry) {
                    declared.push(entry);
                }
            }
        }
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(parked.as_str().into(), durable, FieldTable::default())
            .await?;
        for binding in &subscription.bindings {
            channel
                .queue_bind(
                    parked.as_str().into(),
                    bus.dead_letter_exchange().as_str().into(),
                    binding.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let parker = connection.create_channel().await?;
        parker
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        parking = Parking {
            channel: Some(parker),
            queue: parked,
        };
    }
    for binding in &subscription.bindings {
        channel
            .queue_bind(
                queue_name.as_str().into(),
                bus.exchange().into(),
                binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel.basic_qos(64, BasicQosOptions::default()).await?;
    let consumer = channel
        .basic_consume(
            queue_name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    if subscription.queue.is_some() {
        let entry = (bus.exchange().to_string(), queue_name.clone());
        let mut bound = BOUND_QUEUES.lock().unwrap_or_else(|e| e.into_inner());
        if !bound.contains(&entry) {
            bound.push(entry);
        }
    } else {
        let mut following = FOLLOWING.lock().unwrap_or_else(|e| e.into_inner());
        for binding in &subscription.bindings {
            match following
                .iter_mut()
                .find(|(exchange, bound, _)| exchange == bus.exchange() && bound == binding)
            {
                Some((_, _, count)) => *count += 1,
                None => following.push((bus.exchange().to_string(), binding.clone(), 1)),
            }
        }
    }
    tracing::debug!(queue = %queue_name, "consumer started");
    bound(true);
    // Up to `concurrency` handler calls at once, whether of batches or of the events of one
    // message; the first broken delivery stream ends this connection (the caller reconnects).
    let concurrency = subscription.concurrency.max(1);
    let calls = tokio::sync::Semaphore::new(concurrency);
    let consuming = Consuming {
        together: max_batch > 1,
        concurrency,
        calls: &calls,
        parking: &parking,
    };
    let result = consumer
        .take_until(shutdown.cancelled())
        .ready_chunks(max_batch.max(1))
        .map(|batch| batch.into_iter().collect::<Result<Vec<_>, _>>())
        .map_err(anyhow::Error::from)
        .try_for_each_concurrent(concurrency, |batch| {
            handle_batch(batch, handler, &consuming)
        })
        .await;
    // Said before the close, which can wait on a connection that is already gone.
    bound(false);
    let _ = connection.close(200, "consumer stopped".into()).await;
    result
}

/// The header naming why a message was parked: [`REJECTED`] or [`MALFORMED`].
pub const PARKED_REASON: &str = "caseway_parked_reason";
/// Parked after the handler's last attempt.
pub const REJECTED: &str = "rejected";
/// Parked because it is not an event.
pub const MALFORMED: &str = "malformed";

/// Where a consumer parks what it cannot handle: its own dead-letter queue, published to
/// directly (the default exchange routes by queue name) and confirmed before the delivery is
/// acked. One event of a batch message is parked alone, and only for the consumer that failed
/// it. A private queue parks nothing: a follower's events only drop caches.
struct Parking {
    channel: Option<Channel>,
    queue: String,
}

impl Parking {
    async fn park(
        &self,
        body: &[u8],
        properties: BasicProperties,
        reason: &str,
    ) -> anyhow::Result<()> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(
            PARKED_REASON.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        let confirm = channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties.with_headers(headers),
            )
            .await?;
        let confirmation = tokio::time::timeout(Duration::from_secs(10), confirm)
            .await
            .context("the broker did not confirm a parked event")??;
        if confirmation.is_nack() {
            return Err(anyhow!("the broker refused a parked event"));
        }
        Ok(())
    }
}

/// A consumer's span of handling `first` (and the rest of its batch), a child of the span that
/// produced it (the messaging semantic conventions).
fn consumer_span(first: &Envelope, batch: usize) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        otel.name = %format!("process {}", first.event_type),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation = "process",
        messaging.destination.name = %first.event_type,
        messaging.message.id = %first.id,
        messaging.batch.message_count = batch,
    );
    crate::telemetry::set_parent_from_traceparent(&span, first.traceparent.as_deref());
    span
}

/// How a consumer hands its events over.
struct Consuming<'a> {
    /// Whether the handler takes batches.
    together: bool,
    /// Handler calls at once (the subscription's concurrency), also for the events of one
    /// message; one keeps them in order.
    concurrency: usize,
    calls: &'a tokio::sync::Semaphore,
    parking: &'a Parking,
}

/// Hands the events of some deliveries (one message may hold several) to `handler`: all at once
/// when the handler takes batches (acked together after it succeeds), else, or when that fails,
/// each to [`handle_event`], a delivery acked once all its events are handled or parked. What
/// is not an event is parked at once.
async fn handle_batch<F, Fut>(
    deliveries: Vec<lapin::message::Delivery>,
    handler: &F,
    consuming: &Consuming<'_>,
) -> anyhow::Result<()>
where
    F: Fn(Vec<Envelope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut messages = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match Envelope::from_delivery(&delivery) {
            Ok(events) if !events.is_empty() => messages.push((delivery, events)),
            read => {
                let error = read
                    .err()
                    .unwrap_or_else(|| anyhow!("a batch of no events"));
                tracing::warn!(error = %error, "malformed event parked");
                consuming
                    .parking
                    .park(&delivery.data, delivery.properties.clone(), MALFORMED)
                    .await?;
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
        }
    }
    let count: usize = messages.iter().map(|(_, events)| events.len()).sum();
    if consuming.together && count > 1 {
        let batch: Vec<Envelope> = messages
            .iter()
            .flat_map(|(_, events)| events.iter().cloned())
            .collect();
        // One span for the batch: the first event's producer its parent, the others' linked.
        let span = consumer_span(&batch[0], batch.len());
        crate::telemetry::link_traceparents(
            &span,
            batch[1..].iter().filter_map(|e| e.traceparent.as_deref()),
        );
        let handled = {
            let _call = consuming.calls.acquire().await?;
            handler(batch).instrument(span).await
        };
        match handled {
            Ok(()) => {
                for (delivery, _) in &messages {
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                }
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(error = %error, events = count, "a batch failed; handling its events one at a time");
            }
        }
    }
    for (delivery, events) in messages {
        futures::stream::iter(events)
            .map(|envelope| async {
                let _call = consuming.calls.acquire().await?;
                handle_event(envelope, handler, consuming.parking).await
            })
            .buffer_unordered(consuming.concurrency)
            .try_collect::<()>()
            .await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

/// Hands one event to `handler`: done when it succeeds, retried with backoff when it fails,
/// parked after the last attempt.
async fn handle_event<F, Fut>(
    envelope: Envelope,
    handler: &F,
    parking: &Parking,
) -> anyhow::Result<()>
where
    F: Fn(Vec<Envelope>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut attempt = 0;
    let mut delay = Duration::from_millis(50);
    let mut transient_delay = Duration::from_millis(50);
    loop {
        let span = consumer_span(&envelope, 1);
        match handler(vec![envelope.clone()]).instrument(span).await {
            Ok(()) => return Ok(()),
            Err(error) if transient(&error) => {
                tracing::warn!(error = %error, event_id = %envelope.id, "event handler could not reach a dependency; retrying");
                tokio::time::sleep(transient_delay).await;
                transient_delay = (transient_delay * 2).min(TRANSIENT_BACKOFF_MAX);
            }
            Err(error) if attempt + 1 < HANDLER_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %error, event_id = %envelope.id, attempt, "event handler failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(error) => {
                tracing::error!(error = %error, event_id = %envelope.id, "event handler failed; parked");
                parking
                    .park(&envelope.payload, envelope.properties(), REJECTED)
                    .await?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_proposes_small_frames_unless_its_url_names_a_size() {
        assert_eq!(
            with_frame_max("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=8192"
        );
        assert_eq!(
            with_frame_max("amqps://host/vhost?heartbeat=30"),
            "amqps://host/vhost?heartbeat=30&frame_max=8192"
        );
        assert_eq!(
            with_frame_max("amqp://host/?frame_max=131072"),
            "amqp://host/?frame_max=131072"
        );
    }

    #[test]
    fn only_failures_of_a_dependency_are_transient() {
        let unavailable = anyhow::Error::from(crate::error::Error::Unavailable("db".into()));
        assert!(transient(&unavailable));
        assert!(transient(&unavailable.context("applying an event")));
        assert!(transient(&anyhow::Error::from(sqlx::Error::PoolTimedOut)));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(transient(&anyhow::Error::from(sqlx::Error::Io(io))));
        // The event's own faults are not: they are retried a few times, then parked.
        assert!(!transient(&anyhow::anyhow!("malformed payload")));
        assert!(!transient(&anyhow::Error::from(sqlx::Error::RowNotFound)));
        let refused = crate::error::Error::invalid("units", "must be positive");
        assert!(!transient(&anyhow::Error::from(refused)));
    }
}
