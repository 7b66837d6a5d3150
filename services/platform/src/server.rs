//! Assembles a node: the gRPC services of the chosen targets behind the gateway layer, health
//! per service name, reflection (v1 and v1alpha), the metrics port, the outbox relay and the
//! tenant-status follower; and shuts it down in a fixed order: NOT_SERVING, stop accepting,
//! drain calls, flush the relay, stop workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use http::Request;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;

use crate::access::Methods;
use crate::auth::{ServiceIdentity, TokenVerifier, VerifierSettings, public_key_of};
use crate::bus::Bus;
use crate::config::Config;
use crate::db::Db;
use crate::layer::GatewayLayer;
use crate::metrics::Metrics;
use crate::outbox::Relay;
use crate::paging::PageTokens;
use crate::rate_limit::RateLimiter;
use crate::redis::Redis;
use crate::revocation::Revocations;
use crate::tenant_status::TenantStatusCache;

/// What every service of a process shares.
pub struct Platform {
    pub config: Config,
    pub db: Db,
    pub bus: Bus,
    pub verifier: Arc<TokenVerifier>,
    /// The identity this node's services call internal methods of others with.
    pub service_identity: Arc<ServiceIdentity>,
    pub tenants: Arc<TenantStatusCache>,
    pub page_tokens: PageTokens,
    pub metrics: Arc<Metrics>,
    pub redis: Arc<Redis>,
    pub revocations: Arc<Revocations>,
    pub limiter: Arc<RateLimiter>,
    /// Channels to the other services.
    pub peers: crate::tls::Peers,
    /// Cancelled when the node stops taking calls: a long-lived call (a watch stream) ends on
    /// it, so draining the calls in flight does not wait for it.
    pub stopping: CancellationToken,
}

/// The shortest page-token secret accepted, in bytes.
const MIN_PAGE_SECRET: usize = 32;

/// How often the node looks whether RabbitMQ answers, for `rabbitmq_up`.
const BROKER_LOOK: Duration = Duration::from_secs(5);

impl Platform {
    pub fn new(config: Config) -> anyhow::Result<Arc<Platform>> {
        let public_pem = std::fs::read(&config.jwt_public_key_file).with_context(|| {
            format!(
                "reading JWT public key {}",
                config.jwt_public_key_file.display()
            )
        })?;
        let service_private = std::fs::read_to_string(&config.service_key_file).with_context(|| {
            format!(
                "reading the service key {} (CASEWAY_SERVICE_KEY_FILE; `caseway dev` writes one)",
                config.service_key_file.display()
            )
        })?;
        let service_public = public_key_of(&service_private)?;
        let revocations = Arc::new(Revocations::default());
        let verifier = TokenVerifier::new(
            &public_pem,
            Some(service_public.as_bytes()),
            &VerifierSettings::new(
                &config.jwt_issuer,
                &config.jwt_audience,
                config.jwt_max_lifetime,
            ),
            revocations.clone(),
        )?;
        let service_identity = ServiceIdentity::from_pem(
            service_private.as_bytes(),
            &config.jwt_issuer,
            &config.jwt_audience,
        )?;
        // A secret of its own: anything derived from a public key could be derived by anyone.
        let path = config.page_token_secret_file.as_ref().context(
            "CASEWAY_PAGE_TOKEN_SECRET_FILE is not set: page tokens are signed with a secret \
             every replica shares (`caseway dev` writes one)",
        )?;
        let page_secret = std::fs::read(path)
            .with_context(|| format!("reading page token secret {}", path.display()))?;
        if page_secret.len() < MIN_PAGE_SECRET {
            anyhow::bail!(
                "the page token secret {} has {} bytes; it needs at least {MIN_PAGE_SECRET}",
                path.display(),
                page_secret.len()
            );
        }
        let db = Db::connect_lazy(&config.database_url, config.database_max_connections)?
            .with_tenant_cap(config.tenant_max_connections);
        let metrics = Arc::new(Metrics::new());
        db.observe_with(metrics.clone());
        let tenants = Arc::new(
            TenantStatusCache::new(db.clone(), config.tenant_status_ttl)
                .with_metrics(metrics.clone()),
        );
        let redis = Arc::new(Redis::new(
            &config.redis_url,
            config.redis_ca_file.as_deref(),
            metrics.clone(),
        )?);
        let bus = Bus::new(&config.amqp_url, &config.events_exchange)
            .with_ca_file(config.amqp_ca_file.as_deref())?;
        Ok(Arc::new(Platform {
            peers: crate::tls::Peers::new(&config)?,
            bus,
            db,
            verifier: Arc::new(verifier),
            service_identity: Arc::new(service_identity),
            tenants,
            page_tokens: PageTokens::new(&page_secret),
            limiter: Arc::new(RateLimiter::new(redis.clone(), config.tenant_rate_limit)),
            metrics,
            redis,
            revocations,
            config,
            stopping: CancellationToken::new(),
        }))
    }
}

/// Most unpublished events counted for `caseway_outbox_events`: past it, the figure says "at
/// least this many" and the count costs a bounded scan.
const OUTBOX_COUNT_CAP: i64 = 1_000_000;

/// Samples what an operator watches that no call counts as it goes: whether PostgreSQL and
/// RabbitMQ answer, the outbox's backlog, the depths of this node's queues, and its pool.
async fn observe(platform: &Platform) {
    let metrics = &platform.metrics;
    let broker_up = platform.bus.ping().await;
    metrics.rabbitmq_up.set(i64::from(broker_up));
    metrics.postgres_up.set(i64::from(platform.db.ping().await));
    match platform.db.outbox_backlog(OUTBOX_COUNT_CAP).await {
        Ok((events, oldest_age_seconds)) => {
            metrics.outbox_events.set(events);
            metrics.outbox_oldest_age_seconds.set(oldest_age_seconds);
        }
        Err(error) => tracing::debug!(error = %error, "outbox backlog not read"),
    }
    if broker_up {
        match platform.bus.depths().await {
            Ok(depths) => {
                for depth in depths {
                    let labels = crate::metrics::ConsumerLabels {
                        consumer: depth.consumer,
                    };
                    match (depth.waiting, depth.parked) {
                        (Some(waiting), Some(parked)) => {
                            metrics
                                .consumer_lag
                                .get_or_create(&labels)
                                .set(i64::from(waiting));
                            metrics
                                .events_parked
                                .get_or_create(&labels)
                                .set(i64::from(parked));
                        }
                        // Not measured: no figure rather than a stale one.
                        _ => {
                            metrics.consumer_lag.remove(&labels);
                            metrics.events_parked.remove(&labels);
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(error = %error, "queue depths not read"),
        }
    }
    let (in_use, idle) = platform.db.pool_state();
    for (state, count) in [("in_use", in_use), ("idle", idle)] {
        metrics
            .db_connections
            .get_or_create(&crate::metrics::StateLabels { state })
            .set(count as i64);
    }
}

/// The explicit limits of the gRPC server (see the configuration for each; the gateway layer
/// bounds how long a call runs, and each service how large a message it decodes).
struct ServerLimits {
    max_concurrent_streams: u32,
    max_header_bytes: u32,
}

impl ServerLimits {
    fn of(config: &Config) -> Self {
        ServerLimits {
            max_concurrent_streams: config.grpc_max_concurrent_streams,
            max_header_bytes: config.grpc_max_header_bytes,
        }
    }
}

type WorkerFn = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// The services and workers of one process, gathered from its targets.
#[derive(Default)]
pub struct NodeBuilder {
    routes: RoutesBuilder,
    health_names: Vec<String>,
    workers: Vec<(&'static str, WorkerFn)>,
}

impl NodeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a gRPC service; its health is reported under its full service name.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.health_names.push(S::NAME.to_string());
        self.routes.add_service(service);
        self
    }

    /// Adds a background task that runs until its token is cancelled.
    pub fn add_worker<F, Fut>(&mut self, name: &'static str, run: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers
            .push((name, Box::new(move |token| Box::pin(run(token)))));
        self
    }

    pub fn health_names(&self) -> &[String] {
        &self.health_names
    }
}

/// A started node.
pub struct RunningNode {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningNode {
    /// Starts the shutdown sequence and waits for it to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await.context("node task panicked")?
    }

    /// Waits until the node stops (after its shutdown token is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.handle.await.context("node task panicked")?
    }
}

/// Starts serving on the given listeners until `shutdown` is cancelled.
pub async fn start(
    platform: Arc<Platform>,
    mut node: NodeBuilder,
    grpc_listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningNode> {
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    for name in &node.health_names {
        health
            .set_service_status(name.as_str(), ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(caseway_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(caseway_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    node.routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    // Workers stop after the server has drained, so the relay publishes what calls committed.
    let workers_token = CancellationToken::new();
    let relay = Relay::new(
        platform.db.clone(),
        platform.bus.clone(),
        platform.config.outbox_poll_interval,
    )
    .with_metrics(platform.metrics.clone());
    node.add_worker("outbox-relay", move |token| relay.run(token));
    let tenants = platform.tenants.clone();
    let bus = platform.bus.clone();
    node.add_worker("tenant-status", move |token| {
        tenants.follow_events(bus, token)
    });
    let revocations = platform.revocations.clone();
    let redis = platform.redis.clone();
    node.add_worker("token-revocations", move |token| {
        revocations.follow(redis, token)
    });
    let mut worker_handles = Vec::new();
    for (name, run) in node.workers {
        let token = workers_token.child_token();
        worker_handles.push((name, tokio::spawn(run(token))));
    }

    let ready_platform = platform.clone();
    let ready_token = shutdown.clone();
    let readiness: crate::metrics::ReadinessCheck = Arc::new(move || {
        let platform = ready_platform.clone();
        let token = ready_token.clone();
        // Not the broker: without it calls still succeed and their events wait in the outbox,
        // so an outage must not take every pod out of its Service (`rabbitmq_up` tells it).
        Box::pin(async move { !token.is_cancelled() && platform.db.ping().await })
    });
    let observed = platform.clone();
    let observer_token = workers_token.clone();
    let broker_watch = tokio::spawn(async move {
        loop {
            observe(&observed).await;
            tokio::select! {
                _ = tokio::time::sleep(BROKER_LOOK) => {}
                _ = observer_token.cancelled() => break,
            }
        }
    });
    let metrics_handle = tokio::spawn(crate::metrics::serve_http(
        metrics_listener,
        platform.metrics.clone(),
        readiness,
        workers_token.clone(),
    ));

    let layer = GatewayLayer::new(
        Arc::new(Methods::of_services(&node.health_names)),
        platform.config.grpc_max_call_duration,
        crate::tls::requires_client_certificates(&platform.config),
        platform.verifier.clone(),
        platform.tenants.clone(),
        platform.limiter.clone(),
        platform.metrics.clone(),
    );
    let routes = node.routes.routes();
    let health_names = node.health_names.clone();
    let signal_token = shutdown.clone();
    let delay = platform.config.shutdown_delay;
    let stopping = platform.stopping.clone();
    let signal = async move {
        signal_token.cancelled().await;
        tracing::info!("shutting down: NOT_SERVING");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &health_names {
            health
                .set_service_status(name.as_str(), ServingStatus::NotServing)
                .await;
        }
        tokio::time::sleep(delay).await;
        stopping.cancel();
    };
    let incoming =
        tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = crate::tls::server(&platform.config)? {
        server = server.tls_config(tls)?;
    }
    let grace = platform.config.shutdown_grace;
    let limits = ServerLimits::of(&platform.config);
    let handle = tokio::spawn(async move {
        let served = server
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_bytes)
            .layer(layer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal)
            .await;
        tracing::info!("calls drained; stopping workers");
        workers_token.cancel();
        for (name, handle) in worker_handles {
            if tokio::time::timeout(grace, handle).await.is_err() {
                tracing::warn!(worker = name, "worker did not stop in time");
            }
        }
        let _ = metrics_handle.await;
        let _ = broker_watch.await;
        platform.db.close().await;
        served.context("gRPC server failed")
    });
    tracing::info!(%grpc_addr, %metrics_addr, "serving");
    Ok(RunningNode {
        grpc_addr,
        metrics_addr,
        shutdown,
        handle,
    })
}
