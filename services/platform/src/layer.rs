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

/// How long before the caller's deadline the layer answers DEADLINE_EXCEEDED itself, so the
/// answer is one it counts and traces rather than the transport's bare cancellation at the
/// deadline.
const ANSWER_MARGIN: Duration = Duration::from_millis(2);

tokio::task_local! {
    /// When the caller of the call being served stops waiting.
    static CALL_DEADLINE: Instant;
}

/// What remains of the time the caller of the call being served waits (its `grpc-timeout`,
/// bounded by the server's longest call); None outside a call. Peers called on the call's
/// behalf are given no longer.
pub fn remaining() -> Option<Duration> {
    CALL_DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The caller's deadline its `grpc-timeout` header gives: at most 8 digits and a unit (`H`,
/// `M`, `S`, `m`, `u`, `n`); None when absent or malformed (the call is bounded by the
/// server's longest call alone).
fn caller_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

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
                                // Bounded by the caller's deadline and the server's longest
                                // call, whichever comes first; peers called on its behalf see
                                // the same deadline.
                                let caller = caller_timeout(request.headers())
                                    .map(|t| t.saturating_sub(ANSWER_MARGIN))
                                    .filter(|t| *t < layer.max_call);
                                let bound = caller.unwrap_or(layer.max_call);
                                let served =
                                    CALL_DEADLINE.scope(started + bound, inner.call(request));
                                // The call's future is dropped at the bound: its transaction
                                // rolls back, nothing half-written stays.
                                match tokio::time::timeout(bound, served).await {
                                    Ok(response) => response?,
                                    Err(_) if caller.is_some() => crate::error::status(
                                        tonic::Code::DeadlineExceeded,
                                        Reason::DeadlinePassed,
                                        format!(
                                            "the caller's deadline ({} s) passed",
                                            (bound + ANSWER_MARGIN).as_secs_f64()
                                        ),
                                    )
                                    .into_http(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().unwrap());
        caller_timeout(&headers)
    }

    #[test]
    fn a_callers_grpc_timeout_is_read_in_every_unit_and_nothing_else_is() {
        assert_eq!(timeout_of("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout_of("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout_of("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout_of("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout_of("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout_of("5n"), Some(Duration::from_nanos(5)));
        for malformed in ["", "S", "100", "123456789S", "10s", "-1S", "1.5S", "é"] {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = malformed.parse() {
                headers.insert("grpc-timeout", value);
            }
            assert_eq!(caller_timeout(&headers), None, "{malformed:?}");
        }
        assert_eq!(caller_timeout(&http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn the_remaining_time_is_the_callers_within_a_call_and_none_outside() {
        assert_eq!(remaining(), None);
        let deadline = Instant::now() + Duration::from_secs(2);
        let left = CALL_DEADLINE.scope(deadline, async { remaining() }).await;
        assert!(left.is_some_and(|d| d > Duration::from_secs(1) && d <= Duration::from_secs(2)));
        let past = Instant::now() - Duration::from_millis(1);
        let none_left = CALL_DEADLINE.scope(past, async { remaining() }).await;
        assert_eq!(none_left, Some(Duration::ZERO));
    }
}
