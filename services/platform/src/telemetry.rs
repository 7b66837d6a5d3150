//! Tracing: JSON or text logs with trace ids, OpenTelemetry spans exported over OTLP when an
//! endpoint is configured, and W3C trace context read from and written to gRPC metadata and
//! AMQP headers.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;

/// Flushes spans on drop.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The name a node reports its spans under: `caseway-<target>` for a node of one target,
/// `caseway` for one of several.
pub fn service_name(targets: &[&str]) -> String {
    match targets {
        [one] => format!("caseway-{one}"),
        _ => "caseway".to_string(),
    }
}

/// What a node's spans say of it: `OTEL_SERVICE_NAME` when set, else `service_name`, with the
/// attributes of `OTEL_RESOURCE_ATTRIBUTES` (the SDK's environment detectors read both).
pub fn resource(service_name: &str) -> opentelemetry_sdk::Resource {
    let builder = opentelemetry_sdk::Resource::builder();
    match std::env::var("OTEL_SERVICE_NAME") {
        Ok(name) if !name.trim().is_empty() => builder.build(),
        _ => builder.with_service_name(service_name.to_string()).build(),
    }
}

/// The OTLP endpoint spans go to: `CASEWAY_OTLP_ENDPOINT`, else the standard
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn otlp_endpoint(config: &Config) -> Option<String> {
    config.otlp_endpoint.clone().or_else(|| {
        [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    })
}

/// Installs the global subscriber. Spans are always created with OpenTelemetry ids (so trace
/// context flows through gRPC and events), and exported only when an OTLP endpoint is set
/// (over TLS when it is https).
pub fn init(service_name: &str, config: &Config) -> anyhow::Result<TelemetryGuard> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if let Some(endpoint) = otlp_endpoint(config) {
        use opentelemetry_otlp::WithTonicConfig;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone());
        if endpoint.starts_with("https://") {
            let tls = match &config.otlp_ca_file {
                Some(path) => tonic::transport::ClientTlsConfig::new().ca_certificate(
                    tonic::transport::Certificate::from_pem(std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("reading the OTLP CA file {}: {e}", path.display())
                    })?),
                ),
                None => tonic::transport::ClientTlsConfig::new().with_native_roots(),
            };
            exporter = exporter.with_tls_config(tls);
        }
        let exporter = exporter.build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(install(builder.build(), config))
}

/// Installs the global subscriber over `provider`: logs, and spans to its exporters (a test
/// gives one that keeps them in memory).
pub fn install(provider: SdkTracerProvider, config: &Config) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    // Spans are entered on every poll of the futures they instrument (sqlx wraps each query's
    // stream in the current span too), so the per-call span is entered and left dozens of
    // times a call; span bookkeeping was about 7% of a records node's CPU in a profile. Busy
    // and idle timings and an OpenTelemetry context attached on every entry were the most of
    // that work per entry (a lock, clock reads, a context clone, a thread-local push), and
    // nothing needs them: trace context is taken from the span itself, and a span's duration
    // is exported either way.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("caseway"))
        .with_tracked_inactivity(false)
        .with_context_activation(false);
    let filter = EnvFilter::try_from_env("CASEWAY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn,h2=warn,tower=warn"));
    let fmt = if config.log_format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    TelemetryGuard { provider }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes the trace context of incoming headers the parent of `span`.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(context);
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

/// The trace context a W3C `traceparent` names.
fn context_of(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes the producer's `traceparent` (an event's) the parent of `span`.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let _ = span.set_parent(context_of(traceparent));
    }
}

/// Links `span` to the producers of events it handles besides its parent's.
pub fn link_traceparents<'a>(span: &tracing::Span, traceparents: impl Iterator<Item = &'a str>) {
    use opentelemetry::trace::TraceContextExt;
    for traceparent in traceparents {
        let linked = context_of(traceparent).span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
}

/// Puts the current span's `traceparent` on an outgoing call, so the peer's span is its child.
pub fn inject_traceparent<T>(request: &mut tonic::Request<T>) {
    if let Some(traceparent) = current_traceparent()
        && let Ok(value) = traceparent.parse()
    {
        request.metadata_mut().insert("traceparent", value);
    }
}

/// The W3C `traceparent` of the current span, if it has a valid context.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut MapInjector(&mut carrier));
    carrier.remove("traceparent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_one_target_is_named_for_it_and_one_of_several_for_caseway() {
        assert_eq!(service_name(&["records"]), "caseway-records");
        assert_eq!(service_name(&["records", "authorizations"]), "caseway");
        assert_eq!(service_name(&[]), "caseway");
    }
}
