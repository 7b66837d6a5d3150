//! Every object the Helm chart renders reads into its Kubernetes API type and writes back the
//! same: a misspelt or misplaced field (which the API server would drop or refuse) shows as a
//! difference. The chart is rendered offline by the Helm SDK (`helm/caseway/tests/render.py`);
//! the rest of the chart's tests are in `helm/caseway/tests`.

use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

fn render(values: &str) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../helm/caseway/tests/render.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(values)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "rendering failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON array of objects")
}

/// `object` read into `T` and written back.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{} does not read: {e}", name(object)));
    serde_json::to_value(typed).unwrap()
}

fn name(object: &Value) -> String {
    format!("{} {}", object["kind"], object["metadata"]["name"])
}

/// The paths at which `a` and `b` differ.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (l, r) = (&x.get(key), &y.get(key));
                match (l, r) {
                    (Some(l), Some(r)) => differences(l, r, &format!("{at}.{key}"), out),
                    _ => out.push(format!("{at}.{key}: {l:?} became {r:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differences(l, r, &format!("{at}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} became {b}")),
    }
}

#[test]
fn every_rendered_object_reads_into_its_kubernetes_type_without_losing_a_field() {
    let mut kinds = std::collections::BTreeSet::new();
    for values in [
        "null",
        r#"{"mode": "all"}"#,
        r#"{"serviceMonitor": {"enabled": true}, "operator": {"enabled": true}, "image": {"digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
            "targets": {"records": {"autoscaling": {"podsMetric": {"name": "calls", "averageValue": "200"}},
                                    "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]}},
            "networkPolicy": {"metricsScrapers": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}}"#,
    ] {
        for object in render(values) {
            let kind = object["kind"].as_str().unwrap().to_string();
            let written = match kind.as_str() {
                "Deployment" => round_trip::<Deployment>(&object),
                "Service" => round_trip::<Service>(&object),
                "HorizontalPodAutoscaler" => round_trip::<HorizontalPodAutoscaler>(&object),
                "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(&object),
                "ServiceAccount" => round_trip::<ServiceAccount>(&object),
                "ConfigMap" => round_trip::<ConfigMap>(&object),
                "NetworkPolicy" => round_trip::<NetworkPolicy>(&object),
                "Job" => round_trip::<Job>(&object),
                "ClusterRole" => round_trip::<ClusterRole>(&object),
                "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(&object),
                "Role" => round_trip::<Role>(&object),
                "RoleBinding" => round_trip::<RoleBinding>(&object),
                "PrometheusRule" => {
                    assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
                    let rules = object["spec"]["groups"][0]["rules"].as_array().unwrap();
                    assert!(
                        rules
                            .iter()
                            .all(|r| r["alert"].is_string() && r["expr"].is_string())
                    );
                    object.clone()
                }
                // The Prometheus operator's type is not Kubernetes' own: checked by its fields.
                "ServiceMonitor" => {
                    assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
                    assert_eq!(object["spec"]["endpoints"][0]["port"], "metrics");
                    object.clone()
                }
                other => panic!("the chart renders a {other}, which this test does not read"),
            };
            let mut lost = Vec::new();
            differences(&object, &written, "", &mut lost);
            assert!(lost.is_empty(), "{}: {lost:#?}", name(&object));
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
}
