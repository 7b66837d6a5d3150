//! The tower layer in front of every gRPC service, written once: W3C trace context from
//! metadata, a span per call, RED metrics, authentication (a verified token, and a tenant that
//! is not suspended), who may call the method (the [`crate::access`] table) and the tenant's
//! rate limit. Health and reflection are open to all; a path the node does not serve is
//! answered UNIMPLEMENTED before any work, and counted under one `unknown` method.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::access::{Access, Methods};
use crate::auth::{Principal, TokenVerifier};
use crate::error::{Error, Reason};
use crate::metrics::{Metrics, UNKNOWN_METHOD};
use crate::rate_limit::RateLimiter;
use crate::telemetry;
use crate::tenant_status::TenantStatusCache;

#[derive(Clone)]
pub struct GatewayLayer {
    methods: Arc<Methods>,
    /// The longest a call may run, whatever deadline its caller set.
    max_call: Duration,
    /// Whether internal services take calls only over connections that presented a client
    /// certificate (mutual TLS).
    internal_needs_certificate: bool,
    verifier: Arc<TokenVerifier>,
    tenants: Arc<TenantStatusCache>,
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
}

impl GatewayLayer {
    pub fn new(
        methods: Arc<Methods>,
        max_call: Duration,
        internal_needs_certificate: bool,
        verifier: Arc<TokenVerifier>,
        tenants: Arc<TenantStatusCache>,
        limiter: Arc<RateLimiter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        GatewayLayer {
            methods,
            max_call,
            internal_needs_certificate,
            verifier,
            tenants,
            limiter,
            metrics,
        }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gateway<S> {
    inner: S,
    layer: GatewayLayer,
}

impl<S> Gateway<S> {
    /// The caller, if it may call a method with `access`.
    async fn authorize(
        layer: &GatewayLayer,
        headers: &http::HeaderMap,
        certified: bool,
        access: Access,
    ) -> Result<Arc<Principal>, Error> {
        if layer.internal_needs_certificate && matches!(access, Access::Service(_)) && !certified {
            return Err(Error::unauthenticated(
                Reason::TokenInvalid,
                "an internal method takes calls only over mutual TLS",
            ));
        }
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| Error::unauthenticated(Reason::TokenMissing, "missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Error::unauthenticated(Reason::TokenInvalid, "authorization must be a bearer token")
            })?;
        let principal = layer.verifier.verify(token.trim())?;
        access.check(&principal)?;
        if let Some(tenant) = principal.tenant_id {
            let standing = layer.tenants.check(tenant).await?;
            // A service's internal call is part of a user's call, which the limit counted.
            if principal.service.is_none() {
                layer
                    .limiter
                    .check_limit(tenant, standing.calls_per_second)
                    .await?;
            }
        }
        Ok(principal)
    }
}

/// Whether the call's connection presented a client certificate the server's client CA
/// signed (rustls checked it at the handshake).
fn presented_certificate(request: &Request<Body>) -> bool {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .is_some_and(|certificates| !certificates.is_empty())
}

impl<S> Service<Request<Body>> for Gateway<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let started = Instant::now();
        let served = layer.methods.get(request.uri().path());
        let method = served.map_or(UNKNOWN_METHOD, |(method, _)| method);
        // The RPC semantic conventions: the span named for the method, the service and method
        // apart, the status code once answered (and the span marked an error when it is one
        // that is the server's).
        let (rpc_service, rpc_method) = method.split_once('/').unwrap_or((method, ""));
        let span = tracing::info_span!(
            "grpc",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %rpc_service,
            rpc.method = %rpc_method,
            rpc.grpc.status_code = tracing::field::Empty,
            grpc.code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        telemetry::set_parent_from_headers(&span, request.headers());
        Box::pin(
            async move {
                let response = match served {
                    None => crate::error::status(
                        tonic::Code::Unimplemented,
                        Reason::MethodNotFound,
                        "no such method",
                    )
                    .into_http(),
                    Some((_, Access::Public)) => inner.call(request).await?,
                    Some((_, access)) => {
                        let certified = presented_certificate(&request);
                        match Self::authorize(&layer, request.headers(), certified, access).await {
                            Ok(principal) => {
                                request.extensions_mut().insert(principal);
                                // The call's future is dropped at the bound: its transaction
                                // rolls back, nothing half-written stays.
                                match tokio::time::timeout(layer.max_call, inner.call(request))
                                    .await
                                {
                                    Ok(response) => response?,
                                    Err(_) => crate::error::status(
                                        tonic::Code::DeadlineExceeded,
                                        Reason::CallTooLong,
                                        format!(
                                            "the call ran past the longest this server \
                                             allows ({} s)",
                                            layer.max_call.as_secs_f64()
                                        ),
                                    )
                                    .into_http(),
                                }
                            }
                            Err(error) => tonic::Status::from(error).into_http(),
                        }
                    }
                };
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(tonic::Code::from_i32)
                    .unwrap_or(tonic::Code::Ok);
                let code_name = format!("{code:?}");
                let span = tracing::Span::current();
                span.record("grpc.code", code_name.as_str());
                span.record("rpc.grpc.status_code", code as i32);
                if server_fault(code) {
                    span.record("otel.status_code", "ERROR");
                }
                layer.metrics.observe(method, code, started.elapsed());
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Whether a status is the server's fault, which marks its span (and a client's span of the
/// call) an error (the RPC semantic conventions: a caller's mistake is not the server's error).
pub fn server_fault(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    )
}
