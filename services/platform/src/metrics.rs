//! Prometheus metrics: RED metrics per RPC (rate, errors by gRPC code, duration) and the
//! state of the backing services, served with liveness and readiness on an HTTP port. The
//! `method` label is only ever a method the node serves (or `unknown`), so calls to made-up
//! paths cannot add series without end.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("caseway");
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
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "Whether the last Redis operation succeeded (rate limits, revocations, search limits)",
            redis_up.clone(),
        );
        let rabbitmq_up = Gauge::default();
        registry.register(
            "rabbitmq_up",
            "Whether RabbitMQ answered the last look; while it does not, events wait in the outbox",
            rabbitmq_up.clone(),
        );
        let redis_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "redis_errors",
            "Redis operations that failed, by operation",
            redis_errors.clone(),
        );
        Metrics {
            registry,
            rpc_requests,
            rpc_duration,
            redis_up,
            rabbitmq_up,
            redis_errors,
        }
    }

    pub fn redis_error(&self, operation: &str) {
        self.redis_errors
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Counts a call of `method`: a method the node serves, or [`UNKNOWN_METHOD`].
    pub fn observe(&self, method: &str, code: &str, elapsed: Duration) {
        self.rpc_requests
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&MethodLabels {
                method: method.to_string(),
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
