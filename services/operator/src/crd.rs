//! The `Tenant` custom resource (`caseway.io/v1alpha1`): an organization the hosting provider
//! serves, declared as a Kubernetes object and reconciled into the tenancy service.
//!
//! Cluster-scoped, and named by its slug (the API server refuses an object whose `spec.slug`
//! is not its name): a tenant's slug is unique across the whole Caseway deployment, and so is
//! a cluster-scoped object's name, so two objects can never manage one tenant, and the slug
//! cannot change (a name cannot). A namespaced `Tenant` would let two namespaces declare the
//! same slug, and deleting a namespace would suspend organizations as a side effect.

use kube::CustomResource;
use kube::CustomResourceExt;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the hosting provider declares of a tenant.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "caseway.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    singular = "tenant",
    shortname = "cwt",
    status = "TenantStatus",
    validation = Rule::new("self.spec.slug == self.metadata.name")
        .message("spec.slug must be the object's name"),
    printcolumn = r#"{"name":"Slug","type":"string","jsonPath":".spec.slug"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Suspended","type":"string","jsonPath":".status.conditions[?(@.type==\"Suspended\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The tenant's handle in Caseway: 3 to 63 lowercase letters, digits and inner dashes,
    /// and the object's name (so it cannot change).
    pub slug: String,
    /// The name shown to people: 1 to 200 characters.
    pub display_name: String,
    /// Whether the tenant's users are refused (PERMISSION_DENIED, TENANT_SUSPENDED).
    #[serde(default)]
    pub suspended: bool,
    /// Why the tenant is suspended, kept in Caseway's audit trail (up to 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
    /// The tenant's security organizations. Those listed are created and kept under the
    /// name given; others the tenant's administrators made are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<OrganizationSpec>,
    /// What the tenant may use; unset limits are the deployment's defaults.
    #[serde(default)]
    pub limits: TenantLimits,
    /// What deleting the object does beyond suspending the tenant: set, the tenant's full
    /// export then the purge of its data and its PII key, run as a Job; unset, its data stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offboarding: Option<Offboarding>,
}

/// A leaving tenant's export and purge (docs/offboarding.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Offboarding {
    /// Where the full export goes: `s3://bucket/prefix`, reached with the Job's `AWS_*`
    /// settings (a folder of the Job's pod would be lost with the pod, after the purge).
    #[schemars(length(min = 6, max = 1000), regex(pattern = "^s3://.+"))]
    pub export_to: String,
    /// The Secret, in the operator's namespace, whose key holds the tenant's key for its SSNs
    /// (32 bytes in base64): the export seals them with it.
    pub ssn_key_secret: SecretKeyRef,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A security organization of the tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// Its code: 1 to 32 letters, digits, '-', '_' or '.'.
    pub code: String,
    /// Its name: 1 to 200 characters.
    pub name: String,
}

/// A tenant's own limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantLimits {
    /// Calls per second the tenant's users may make across every replica (1 to 1000000);
    /// unset, the deployment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub calls_per_second: Option<u32>,
}

/// What the operator last saw and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The tenant's id in Caseway, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `Ready`, `Suspended` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One condition, as Kubernetes objects report them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Suspended` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word a program can act on.
    pub reason: String,
    /// What a person should read.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl TenantStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The CRD as the chart installs it (YAML), generated from these types.
pub fn crd_yaml() -> String {
    let crd = Tenant::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("a CRD serializes");
    format!(
        "# Generated from the Rust types of the Tenant operator (`caseway operator crd`); a test \
         fails when\n# this file differs from what they generate.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart installs the checked-in CRD; it must be what the types generate. After a
    /// change of the types: `caseway operator crd > helm/caseway/crds/tenants.caseway.io.yaml`.
    #[test]
    fn the_checked_in_crd_is_the_one_the_types_generate() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../helm/caseway/crds/tenants.caseway.io.yaml"
        );
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        let generated = crd_yaml();
        if std::env::var_os("CASEWAY_WRITE_CRD").is_some() {
            std::fs::write(path, &generated).expect("writing the CRD");
            return;
        }
        assert!(
            checked_in == generated,
            "helm/caseway/crds/tenants.caseway.io.yaml differs from the CRD the types generate; \
             run `caseway operator crd > helm/caseway/crds/tenants.caseway.io.yaml`"
        );
    }

    #[test]
    fn the_crd_is_cluster_scoped_with_a_status_subresource() {
        let crd = Tenant::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.group, "caseway.io");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let schema = serde_json::to_value(&version.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        for field in [
            "slug",
            "displayName",
            "suspended",
            "suspensionReason",
            "organizations",
            "limits",
        ] {
            assert!(
                spec["properties"].get(field).is_some(),
                "{field} missing from {spec}"
            );
        }
        assert_eq!(spec["required"], serde_json::json!(["displayName", "slug"]));
        let root = &schema["openAPIV3Schema"];
        assert_eq!(
            root["x-kubernetes-validations"][0]["rule"],
            "self.spec.slug == self.metadata.name"
        );
        let limit = &spec["properties"]["limits"]["properties"]["callsPerSecond"];
        assert_eq!(
            (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
            (Some(1.0), Some(1e6))
        );
    }
}
