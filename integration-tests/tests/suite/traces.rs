//! One trace across services: a RecordService call drawing on an authorization is a server
//! span of records, its holds call to authorizations (a client span and the authorizations'
//! server span, its child through `traceparent`), and, through the outbox and RabbitMQ, the
//! drawdown consumer's span, a child of the call that produced the event. Spans are kept in
//! memory by the test's own exporter (this binary installs the global subscriber alone).

use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use caseway_api::records::v1 as records_pb;
use caseway_integration_tests::tenants::{authorizations_tenant, utilization};
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::telemetry;
use caseway_test_support::eventually;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn a_recorded_service_is_one_trace_through_the_holds_call_the_outbox_rabbitmq_and_the_drawdown()
 {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(telemetry::resource("caseway"))
        .with_simple_exporter(exporter.clone())
        .build();
    // Installed before the test environment, whose own subscriber (no export) then stays out.
    let _telemetry = telemetry::install(
        provider.clone(),
        &caseway_platform::config::Config::default(),
    );
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let f = authorizations_tenant(&env, &node, "traced").await;
    let plan = f.approved(&node, "FREQ=WEEKLY;BYDAY=MO", "2").await;
    exporter.reset();

    node.records
        .clone()
        .record_service(authed(
            &f.worker,
            records_pb::RecordServiceRequest {
                request_id: String::new(),
                record: Some(f.session(&plan.id, "2", 2)),
            },
        ))
        .await
        .unwrap();
    eventually("the drawdown", Duration::from_secs(10), || async {
        match utilization(&node, &f.worker, &plan.id)
            .await
            .delivered_units
            .as_str()
        {
            "2" | "2.00" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().unwrap();

    // The call: a server span with the RPC conventions.
    let call = spans
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.name == "caseway.records.v1.RecordsService/RecordService"
        })
        .expect("the RecordService server span");
    let trace: TraceId = call.span_context.trace_id();
    assert_eq!(attribute(call, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(call, "rpc.service").as_deref(),
        Some("caseway.records.v1.RecordsService")
    );
    assert_eq!(
        attribute(call, "rpc.method").as_deref(),
        Some("RecordService")
    );
    assert_eq!(
        attribute(call, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let parent_of = |span: &SpanData| -> SpanId { span.parent_span_id };

    // The holds call: a client span under the call, the authorizations' server span its child.
    let hold = in_trace
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.name
                    .starts_with("caseway.authorizations.v1.AuthorizationsInternalService/")
        })
        .unwrap_or_else(|| {
            panic!(
                "the holds call in the trace: {:?}",
                in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    let client = in_trace
        .iter()
        .find(|s| s.span_context.span_id() == parent_of(hold))
        .expect("the holds call's parent in the trace");
    assert_eq!(client.span_kind, SpanKind::Client);

    // The drawdown: the authorizations' consumer of the record's event, a child of the call
    // that wrote it to the outbox, with the messaging conventions.
    let consumer = in_trace
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Consumer
                && attribute(s, "messaging.destination.name")
                    .is_some_and(|d| d.starts_with("records.service_"))
        })
        .unwrap_or_else(|| {
            panic!(
                "the drawdown consumer in the trace: {:?}",
                in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        attribute(consumer, "messaging.system").as_deref(),
        Some("rabbitmq")
    );
    assert_eq!(
        attribute(consumer, "messaging.operation").as_deref(),
        Some("process")
    );
    assert_eq!(parent_of(consumer), call.span_context.span_id());
    node.shutdown().await;
}
