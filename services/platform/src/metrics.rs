//! Prometheus metrics: RED metrics per RPC (rate, errors by gRPC code, duration) under the
//! names gRPC dashboards query (`grpc_server_handled_total`, `grpc_server_handling_seconds`,
//! labelled `grpc_type`, `grpc_service`, `grpc_method` and `grpc_code`, as go-grpc-prometheus
//! and its kin export them), and Caseway's own (`caseway_*`): the state of the backing
//! services. Served with liveness and readiness on an HTTP port. The method labels are only
//! ever a method the node serves (or `unknown`), so calls to made-up paths cannot add series
//! without end.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub grpc_type: &'static str,
    pub grpc_service: String,
    pub grpc_method: String,
    pub grpc_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub grpc_type: &'static str,
    pub grpc_service: String,
    pub grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// `default` (the deployment's limit) or `own` (a limit set on the tenant).
    pub tenant_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// The `method` label of a call to a path the node does not serve.
pub const UNKNOWN_METHOD: &str = "unknown";

pub struct Metrics {
    registry: Registry,
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: Family<MethodLabels, Histogram>,
    /// 1 when the last Redis operation succeeded, 0 when it failed.
    pub redis_up: Gauge,
    /// 1 when RabbitMQ answered the last look (every few seconds), 0 when it did not: while it
    /// is 0 calls still succeed and their events wait in the outbox.
    pub rabbitmq_up: Gauge,
    redis_errors: Family<OperationLabels, Counter>,
    /// 1 when PostgreSQL answered the last look, 0 when it did not.
    pub postgres_up: Gauge,
    rate_limited: Family<ClassLabels, Counter>,
    tenant_status_lookups: Family<ResultLabels, Counter>,
    /// Events committed and not yet published, across tenants (sampled).
    pub outbox_events: Gauge,
    /// Age of the oldest unpublished event, in seconds; 0 when the outbox is empty (sampled).
    pub outbox_oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Events the relay published (confirmed by RabbitMQ).
    pub outbox_published: Counter,
    /// Relay attempts that failed (the events stay in the outbox and are tried again).
    pub outbox_publish_failures: Counter,
    /// Events waiting in each consumer's queue, not yet delivered (sampled).
    pub consumer_lag: Family<ConsumerLabels, Gauge>,
    /// Events parked in each consumer's dead-letter queue (sampled).
    pub events_parked: Family<ConsumerLabels, Gauge>,
    /// Database connections by state (`in_use`, `idle`).
    pub db_connections: Family<StateLabels, Gauge>,
    /// Time callers waited for a database connection.
    pub db_acquire_seconds: Histogram,
    /// Callers that gave up waiting for a database connection.
    pub db_acquire_timeouts: Counter,
    /// Calls that waited for one of their tenant's own connections: the tenant held as many
    /// as one tenant may on a node.
    pub tenant_cap_waits: Counter,
    /// Calls refused `TENANT_BUSY`: they waited for one of their tenant's connections as long
    /// as any caller waits for the pool.
    pub tenant_busy: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed, by method and gRPC status code",
            rpc_requests.clone(),
        );
        let rpc_duration = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "grpc_server_handling_seconds",
            "RPC latency, by method",
            rpc_duration.clone(),
        );
        // The calls this process makes to its peers: the process's own, whichever node asks.
        let client = client_families();
        registry.register(
            "grpc_client_handled",
            "RPCs made to other services and answered, by method and gRPC status code",
            client.handled.clone(),
        );
        registry.register(
            "grpc_client_handling_seconds",
            "Latency of RPCs made to other services, by method",
            client.handling.clone(),
        );
        // Caseway's own, under its prefix.
        let caseway = registry.sub_registry_with_prefix("caseway");
        let redis_up = Gauge::default();
        caseway.register(
            "redis_up",
            "Whether the last Redis operation succeeded (rate limits, revocations, search limits)",
            redis_up.clone(),
        );
        let rabbitmq_up = Gauge::default();
        caseway.register(
            "rabbitmq_up",
            "Whether RabbitMQ answered the last look; while it does not, events wait in the outbox",
            rabbitmq_up.clone(),
        );
        let redis_errors = Family::<OperationLabels, Counter>::default();
        caseway.register(
            "redis_errors",
            "Redis operations that failed, by operation",
            redis_errors.clone(),
        );
        let postgres_up = Gauge::default();
        caseway.register(
            "postgres_up",
            "Whether PostgreSQL answered the last look",
            postgres_up.clone(),
        );
        let rate_limited = Family::<ClassLabels, Counter>::default();
        caseway.register(
            "rate_limited",
            "Calls refused RESOURCE_EXHAUSTED by a tenant's rate limit, by the class of the limit",
            rate_limited.clone(),
        );
        let tenant_status_lookups = Family::<ResultLabels, Counter>::default();
        caseway.register(
            "tenant_status_lookups",
            "Tenant status checks, by whether the process's cache answered (hit) or PostgreSQL (miss)",
            tenant_status_lookups.clone(),
        );
        let outbox_events = Gauge::default();
        caseway.register(
            "outbox_events",
            "Events committed and not yet published to RabbitMQ",
            outbox_events.clone(),
        );
        let outbox_oldest_age_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        caseway.register(
            "outbox_oldest_event_age_seconds",
            "Age of the oldest event not yet published; 0 when none waits",
            outbox_oldest_age_seconds.clone(),
        );
        let outbox_published = Counter::default();
        caseway.register(
            "outbox_published",
            "Events the relay published with RabbitMQ's confirmation",
            outbox_published.clone(),
        );
        let outbox_publish_failures = Counter::default();
        caseway.register(
            "outbox_publish_failures",
            "Relay attempts that failed; their events stay in the outbox for the next",
            outbox_publish_failures.clone(),
        );
        let consumer_lag = Family::<ConsumerLabels, Gauge>::default();
        caseway.register(
            "consumer_lag_events",
            "Events waiting in a consumer's queue, not yet delivered to it",
            consumer_lag.clone(),
        );
        let events_parked = Family::<ConsumerLabels, Gauge>::default();
        caseway.register(
            "events_parked",
            "Events parked in a consumer's dead-letter queue after their last attempt",
            events_parked.clone(),
        );
        let db_connections = Family::<StateLabels, Gauge>::default();
        caseway.register(
            "db_connections",
            "Database connections of the pool, by state (in_use, idle)",
            db_connections.clone(),
        );
        let db_acquire_seconds =
            Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        caseway.register(
            "db_acquire_seconds",
            "Time a caller waited for a database connection",
            db_acquire_seconds.clone(),
        );
        let db_acquire_timeouts = Counter::default();
        caseway.register(
            "db_acquire_timeouts",
            "Callers that gave up waiting for a database connection",
            db_acquire_timeouts.clone(),
        );
        let tenant_cap_waits = Counter::default();
        caseway.register(
            "tenant_cap_waits",
            "Calls that waited for one of their tenant's own database connections (the tenant \
             held its cap on the node)",
            tenant_cap_waits.clone(),
        );
        let tenant_busy = Counter::default();
        caseway.register(
            "tenant_busy",
            "Calls refused TENANT_BUSY: their tenant held its cap of connections on the node \
             for as long as a caller waits for the pool",
            tenant_busy.clone(),
        );
        // Series that start at 0, so rate() over them works before the first event (and the
        // families show before anything failed).
        for tenant_class in ["default", "own"] {
            rate_limited
                .get_or_create(&ClassLabels { tenant_class })
                .inc_by(0);
        }
        redis_errors
            .get_or_create(&OperationLabels {
                operation: "rate_limit".into(),
            })
            .inc_by(0);
        Metrics {
            registry,
            rpc_requests,
            rpc_duration,
            redis_up,
            rabbitmq_up,
            redis_errors,
            postgres_up,
            rate_limited,
            tenant_status_lookups,
            outbox_events,
            outbox_oldest_age_seconds,
            outbox_published,
            outbox_publish_failures,
            consumer_lag,
            events_parked,
            db_connections,
            db_acquire_seconds,
            db_acquire_timeouts,
            tenant_cap_waits,
            tenant_busy,
        }
    }

    /// Counts a call refused by a rate limit of `tenant_class` (`default` or `own`).
    pub fn rate_limited(&self, tenant_class: &'static str) {
        self.rate_limited
            .get_or_create(&ClassLabels { tenant_class })
            .inc();
    }

    /// Counts a tenant status check answered by the cache (`hit`) or not (`miss`).
    pub fn tenant_status_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.tenant_status_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn redis_error(&self, operation: &str) {
        self.redis_errors
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Counts a call of `method` (`package.Service/Method`: a method the node serves, or
    /// [`UNKNOWN_METHOD`]) answered with `code`.
    pub fn observe(&self, method: &str, code: tonic::Code, elapsed: Duration) {
        let (service, name) = method.split_once('/').unwrap_or((method, method));
        let grpc_type = grpc_type(method);
        self.rpc_requests
            .get_or_create(&RpcLabels {
                grpc_type,
                grpc_service: service.to_string(),
                grpc_method: name.to_string(),
                grpc_code: code_name(code).to_string(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&MethodLabels {
                grpc_type,
                grpc_service: service.to_string(),
                grpc_method: name.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

struct ClientFamilies {
    handled: Family<RpcLabels, Counter>,
    handling: Family<MethodLabels, Histogram>,
}

/// The client side's families: one per process, as the peer clients are (they are built from
/// the process's channels, not a node's registry); every node's registry shows them.
fn client_families() -> &'static ClientFamilies {
    static FAMILIES: OnceLock<ClientFamilies> = OnceLock::new();
    FAMILIES.get_or_init(|| ClientFamilies {
        handled: Family::default(),
        handling: Family::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        }),
    })
}

/// Counts one attempt of a call to `service`/`method` of a peer, answered with `code` (a
/// deadline the client gave up at is `DeadlineExceeded`).
pub fn observe_client(service: &str, method: &str, code: tonic::Code, elapsed: Duration) {
    let families = client_families();
    let grpc_type = grpc_type(&format!("{service}/{method}"));
    families
        .handled
        .get_or_create(&RpcLabels {
            grpc_type,
            grpc_service: service.to_string(),
            grpc_method: method.to_string(),
            grpc_code: code_name(code).to_string(),
        })
        .inc();
    families
        .handling
        .get_or_create(&MethodLabels {
            grpc_type,
            grpc_service: service.to_string(),
            grpc_method: method.to_string(),
        })
        .observe(elapsed.as_secs_f64());
}

/// A status code as gRPC dashboards name it (`OK`, `InvalidArgument`, ...).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Whether a method is `unary`, `client_stream`, `server_stream` or `bidi_stream`, from the
/// API's descriptors (read once).
fn grpc_type(method: &str) -> &'static str {
    static TYPES: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    let types = TYPES.get_or_init(|| {
        use prost::Message;
        let mut types = HashMap::new();
        let Ok(set) = prost_types::FileDescriptorSet::decode(caseway_api::FILE_DESCRIPTOR_SET)
        else {
            return types;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = format!("{package}.{}", service.name.unwrap_or_default());
                for m in service.method {
                    let kind = match (
                        m.client_streaming.unwrap_or(false),
                        m.server_streaming.unwrap_or(false),
                    ) {
                        (false, false) => "unary",
                        (true, false) => "client_stream",
                        (false, true) => "server_stream",
                        (true, true) => "bidi_stream",
                    };
                    types.insert(
                        format!("{service_name}/{}", m.name.unwrap_or_default()),
                        kind,
                    );
                }
            }
        }
        types
    });
    types.get(method).copied().unwrap_or("unary")
}

/// What readiness asks.
pub type ReadinessCheck = Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

/// Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (the process can serve:
/// PostgreSQL answers and it is not shutting down).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: ReadinessCheck,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.encode() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready().await {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_under_the_names_and_labels_grpc_dashboards_use() {
        let metrics = Metrics::new();
        metrics.observe(
            "caseway.catalog.v1.CatalogService/CreateService",
            tonic::Code::Ok,
            Duration::from_millis(3),
        );
        metrics.observe(
            "caseway.ticketing.v1.TicketingService/WatchTickets",
            tonic::Code::InvalidArgument,
            Duration::from_millis(1),
        );
        let text = metrics.encode();
        for line in [
            r#"grpc_server_handled_total{grpc_type="unary",grpc_service="caseway.catalog.v1.CatalogService",grpc_method="CreateService",grpc_code="OK"} 1"#,
            r#"grpc_server_handled_total{grpc_type="server_stream",grpc_service="caseway.ticketing.v1.TicketingService",grpc_method="WatchTickets",grpc_code="InvalidArgument"} 1"#,
            r#"grpc_server_handling_seconds_bucket{le="0.005",grpc_type="unary",grpc_service="caseway.catalog.v1.CatalogService",grpc_method="CreateService"} 1"#,
            "caseway_redis_up ",
            "caseway_rabbitmq_up ",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert_eq!(
            grpc_type("caseway.ticketing.v1.TicketingService/UploadTicketAttachment"),
            "client_stream"
        );
    }
}
