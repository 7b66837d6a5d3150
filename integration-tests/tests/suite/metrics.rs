//! What a node exports on `/metrics`: every family listed here (a family added or removed
//! changes this list, and docs/operations.md with it), the operator-facing ones sampled from
//! the node's dependencies, and every metric the chart's dashboard and alert rules query.

use std::collections::BTreeSet;
use std::time::Duration;

use caseway_api::catalog::v1 as pb;
use caseway_integration_tests::{TestEnv, TestNode, authed, http_get};

/// Every family a node exports, as its `# TYPE` lines name them.
const FAMILIES: &[&str] = &[
    "caseway_consumer_lag_events",
    "caseway_db_acquire_seconds",
    "caseway_db_acquire_timeouts",
    "caseway_db_connections",
    "caseway_events_parked",
    "caseway_outbox_events",
    "caseway_outbox_oldest_event_age_seconds",
    "caseway_outbox_publish_failures",
    "caseway_outbox_published",
    "caseway_postgres_up",
    "caseway_rabbitmq_up",
    "caseway_rate_limited",
    "caseway_redis_errors",
    "caseway_redis_up",
    "caseway_tenant_busy",
    "caseway_tenant_cap_waits",
    "caseway_tenant_status_lookups",
    "grpc_client_handled",
    "grpc_client_handling_seconds",
    "grpc_server_handled",
    "grpc_server_handling_seconds",
];

async fn metrics(node: &TestNode) -> String {
    http_get(node.metrics_addr(), "/metrics").await.1
}

fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The value of the sample `series` (its name and labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The labels of gRPC's families, which start as their metric names do.
const LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method", "grpc_code"];

/// The metric names a PromQL text queries: Caseway's and gRPC's, whose names start so.
fn queried(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if at_word && (expr[i..].starts_with("caseway_") || expr[i..].starts_with("grpc_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |n| i + n);
            if !LABELS.contains(&&expr[i..end]) {
                names.push(expr[i..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The family a sample name belongs to (`x_total`, `x_bucket`, `x_sum`, `x_count` are x's).
fn family_of<'a>(name: &'a str, exported: &BTreeSet<String>) -> Option<&'a str> {
    if exported.contains(name) {
        return Some(name);
    }
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|family| exported.contains(*family))
}

#[tokio::test]
async fn a_node_exports_every_family_an_operator_watches_and_the_chart_queries() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let tenant = node.test_tenant(&env, "metrics").await;

    // A call that asks a peer (the catalog checks the organizations with tenancy) and writes
    // an event the relay publishes.
    node.catalog
        .clone()
        .create_service(authed(
            &tenant.admin,
            pb::CreateServiceRequest {
                request_id: String::new(),
                service: Some(pb::Service {
                    code: "RESTRICTED".into(),
                    name: "Restricted".into(),
                    unit_of_measure: pb::UnitOfMeasure::Hours as i32,
                    default_unit_value: "1.00".into(),
                    delivery_mode: pb::DeliveryMode::Direct as i32,
                    organization_ids: vec![tenant.north.to_string()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    // The sampled families fill in within a look or two (every 5 s).
    let mut text = String::new();
    for _ in 0..40 {
        text = metrics(&node).await;
        // Every consumer's, not the first sampled: the consumers start one after another.
        let sampled = ["authorizations.drawdown", "eligibility.facts"]
            .iter()
            .all(|consumer| {
                text.contains(&format!(
                    r#"caseway_consumer_lag_events{{consumer="{consumer}"}}"#
                )) && text.contains(&format!(
                    r#"caseway_events_parked{{consumer="{consumer}"}}"#
                ))
            })
            && sample(&text, "caseway_outbox_published_total").is_some_and(|n| n > 0.0);
        if sampled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let exported = families(&text);
    let expected: BTreeSet<String> = FAMILIES.iter().map(|f| f.to_string()).collect();
    assert_eq!(exported, expected, "the families a node exports:\n{text}");

    assert_eq!(sample(&text, "caseway_postgres_up"), Some(1.0));
    assert_eq!(sample(&text, "caseway_rabbitmq_up"), Some(1.0));
    assert!(
        sample(&text, "caseway_outbox_published_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(sample(&text, "caseway_outbox_oldest_event_age_seconds").is_some());
    assert!(
        text.contains(r#"caseway_consumer_lag_events{consumer="authorizations.drawdown"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"caseway_events_parked{consumer="authorizations.drawdown"} 0"#),
        "{text}"
    );
    assert!(text.contains(r#"caseway_db_connections{state="idle"}"#));
    assert!(sample(&text, "caseway_db_acquire_seconds_count").unwrap_or(0.0) > 0.0);
    assert!(
        text.contains(r#"grpc_client_handled_total{grpc_type="unary",grpc_service="caseway.tenancy.v1.TenancyService",grpc_method="ListOrganizations",grpc_code="OK"}"#),
        "the catalog's call to tenancy is counted on the client side:\n{text}"
    );
    assert!(text.contains(r#"caseway_tenant_status_lookups_total{result="miss"}"#));

    // Every metric the dashboard and the alert rules query is one of these families.
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/caseway/files");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{chart}/dashboard.json")).unwrap())
            .unwrap();
    let mut expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
        .map(|target| target["expr"].as_str().unwrap().to_string())
        .collect();
    expressions.push(std::fs::read_to_string(format!("{chart}/alerts.yaml")).unwrap());
    let mut checked = 0;
    for expr in &expressions {
        for name in queried(expr) {
            assert!(
                family_of(&name, &exported).is_some(),
                "{name} is queried by the chart but no node exports it"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} metric names found in the chart's queries"
    );
}
