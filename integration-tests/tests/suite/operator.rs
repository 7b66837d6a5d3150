//! The Tenant operator without a cluster: kube's client over a mock API server (tower-test)
//! that keeps the objects it is sent, and a real Caseway node for the tenancy side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http_body_util::BodyExt;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tonic::Code;

use caseway_api::tenancy::v1 as tpb;
use caseway_integration_tests::{S3Server, TestEnv, TestNode, authed};
use caseway_operator::crd::{
    Offboarding, OrganizationSpec, SecretKeyRef, Tenant, TenantLimits, TenantSpec,
};
use caseway_operator::lease::LeaseLock;
use caseway_operator::offboarding::{KEY_FOLDER, OffboardingJobs};
use caseway_operator::reconcile::{self, Context, FINALIZER};
use caseway_operator::tenancy::{Tenancy, Token};
use caseway_platform::TenantId;
use caseway_platform::auth::Role;

type Handle =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

/// What the mock API server holds: the objects it was sent, the events, and the status
/// patches it is told to refuse.
#[derive(Default)]
struct ApiState {
    tenants: HashMap<String, Value>,
    leases: HashMap<String, Value>,
    /// Jobs by name (the offboarding Jobs).
    jobs: HashMap<String, Value>,
    events: Vec<Value>,
    /// The next status patches answered 409 Conflict.
    status_conflicts: usize,
    version: u64,
}

impl ApiState {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[derive(Clone)]
struct MockApi {
    state: Arc<Mutex<ApiState>>,
    client: Client,
}

impl MockApi {
    fn start() -> MockApi {
        let (service, handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let state = Arc::new(Mutex::new(ApiState::default()));
        tokio::spawn(serve(handle, state.clone()));
        MockApi {
            state,
            client: Client::new(service, "default"),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap()
    }

    /// Stores a new Tenant object, as `kubectl apply` would.
    fn create(&self, name: &str, spec: TenantSpec) -> Arc<Tenant> {
        let mut state = self.state();
        let version = state.next_version();
        let object = json!({
            "apiVersion": "caseway.io/v1alpha1",
            "kind": "Tenant",
            "metadata": {
                "name": name,
                "uid": format!("uid-{name}"),
                "generation": 1,
                "resourceVersion": version,
            },
            "spec": spec,
        });
        state.tenants.insert(name.to_string(), object);
        drop(state);
        self.get(name)
    }

    fn get(&self, name: &str) -> Arc<Tenant> {
        Arc::new(serde_json::from_value(self.state().tenants[name].clone()).unwrap())
    }

    /// Changes the spec, as an edit does: a new generation.
    fn edit(&self, name: &str, change: impl FnOnce(&mut TenantSpec)) -> Arc<Tenant> {
        let mut state = self.state();
        let version = state.next_version();
        let object = state.tenants.get_mut(name).unwrap();
        let mut spec: TenantSpec = serde_json::from_value(object["spec"].clone()).unwrap();
        change(&mut spec);
        object["spec"] = serde_json::to_value(spec).unwrap();
        let generation = object["metadata"]["generation"].as_i64().unwrap() + 1;
        object["metadata"]["generation"] = json!(generation);
        object["metadata"]["resourceVersion"] = json!(version);
        drop(state);
        self.get(name)
    }

    /// Marks the object deleted, as the API server does while finalizers remain.
    fn delete(&self, name: &str) -> Arc<Tenant> {
        let mut state = self.state();
        let version = state.next_version();
        let object = state.tenants.get_mut(name).unwrap();
        object["metadata"]["deletionTimestamp"] = json!("2026-12-06T00:00:00Z");
        object["metadata"]["resourceVersion"] = json!(version);
        drop(state);
        self.get(name)
    }
}

fn status(code: u16, reason: &str, message: &str) -> http::Response<kube::client::Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    http::Response::builder()
        .status(code)
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(value: &Value) -> http::Response<kube::client::Body> {
    http::Response::builder()
        .status(200)
        .body(kube::client::Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Answers the client's requests from the state, for the paths the operator uses.
async fn serve(mut handle: Handle, state: Arc<Mutex<ApiState>>) {
    while let Some((request, respond)) = handle.next_request().await {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        let mut state = state.lock().unwrap();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let response = match (method.as_str(), segments.as_slice()) {
            ("PATCH", ["apis", "caseway.io", "v1alpha1", "tenants", name]) => {
                let version = state.next_version();
                let object = state.tenants.get_mut(*name).expect("a known tenant");
                let mut patch: json_patch::Patch = serde_json::from_value(body).unwrap();
                // As the API server does, a test of a missing path against null passes.
                patch.0.retain(|op| match op {
                    json_patch::PatchOperation::Test(test) => {
                        !(test.value.is_null() && object.pointer(test.path.as_str()).is_none())
                    }
                    _ => true,
                });
                match json_patch::patch(object, &patch) {
                    Ok(()) => {
                        object["metadata"]["resourceVersion"] = json!(version);
                        let object = object.clone();
                        // The last finalizer gone from a deleted object: it is gone.
                        let gone = object["metadata"].get("deletionTimestamp").is_some()
                            && object["metadata"]["finalizers"]
                                .as_array()
                                .is_none_or(|f| f.is_empty());
                        if gone {
                            state.tenants.remove(*name);
                        }
                        ok(&object)
                    }
                    Err(e) => status(422, "Invalid", &e.to_string()),
                }
            }
            ("PATCH", ["apis", "caseway.io", "v1alpha1", "tenants", name, "status"]) => {
                if state.status_conflicts > 0 {
                    state.status_conflicts -= 1;
                    status(409, "Conflict", "the object has been modified")
                } else {
                    let version = state.next_version();
                    let object = state.tenants.get_mut(*name).expect("a known tenant");
                    let sent = body["metadata"]["resourceVersion"].clone();
                    if !sent.is_null() && sent != object["metadata"]["resourceVersion"] {
                        status(409, "Conflict", "the object has been modified")
                    } else {
                        object["status"] = Value::Null;
                        merge(object, &json!({ "status": body["status"] }));
                        object["metadata"]["resourceVersion"] = json!(version);
                        ok(object)
                    }
                }
            }
            ("POST", ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
                state.events.push(body.clone());
                ok(&body)
            }
            // The recorder sends an event that repeats one of the last minutes as a patch of
            // its series: one more occurrence of it.
            (
                "PATCH",
                [
                    "apis",
                    "events.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "events",
                    name,
                ],
            ) => {
                let repeated = state
                    .events
                    .iter()
                    .find(|e| e["metadata"]["name"] == *name)
                    .cloned()
                    .expect("a patch of an event sent before");
                state.events.push(repeated.clone());
                ok(&repeated)
            }
            (
                "GET",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "leases",
                    name,
                ],
            ) => match state.leases.get(*name) {
                Some(lease) => ok(lease),
                None => status(404, "NotFound", "no such lease"),
            },
            (
                "POST",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "leases",
                ],
            ) => {
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                if state.leases.contains_key(&name) {
                    status(409, "AlreadyExists", "the lease exists")
                } else {
                    let mut lease = body.clone();
                    lease["metadata"]["resourceVersion"] = json!(state.next_version());
                    state.leases.insert(name, lease.clone());
                    ok(&lease)
                }
            }
            (
                "PUT",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "leases",
                    name,
                ],
            ) => {
                let current = state.leases.get(*name).cloned();
                match current {
                    Some(current)
                        if current["metadata"]["resourceVersion"]
                            == body["metadata"]["resourceVersion"] =>
                    {
                        let mut lease = body.clone();
                        lease["metadata"]["resourceVersion"] = json!(state.next_version());
                        state.leases.insert(name.to_string(), lease.clone());
                        ok(&lease)
                    }
                    _ => status(409, "Conflict", "the lease has been modified"),
                }
            }
            ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
                match state.jobs.get(*name) {
                    Some(job) => ok(job),
                    None => status(404, "NotFound", "no such job"),
                }
            }
            ("POST", ["apis", "batch", "v1", "namespaces", _, "jobs"]) => {
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                if state.jobs.contains_key(&name) {
                    status(409, "AlreadyExists", "the job exists")
                } else {
                    let mut job = body.clone();
                    job["metadata"]["resourceVersion"] = json!(state.next_version());
                    state.jobs.insert(name, job.clone());
                    ok(&job)
                }
            }
            other => panic!("the operator asked the API for {other:?}"),
        };
        drop(state);
        respond.send_response(response);
    }
}

fn context(api: &MockApi, tenancy: Tenancy) -> Arc<Context> {
    Arc::new(bare_context(api, tenancy))
}

/// A context whose offboarding Jobs come from [`job_template`].
fn offboarding_context(api: &MockApi, tenancy: Tenancy) -> Arc<Context> {
    Arc::new(bare_context(api, tenancy).with_offboarding(job_template()))
}

fn bare_context(api: &MockApi, tenancy: Tenancy) -> Context {
    let reporter = Reporter {
        controller: caseway_operator::NAME.into(),
        instance: Some("test".into()),
    };
    Context::new(
        api.client.clone(),
        tenancy,
        Recorder::new(api.client.clone(), reporter),
    )
}

fn tenancy_of(env: &TestEnv, node: &TestNode) -> Tenancy {
    Tenancy::new(
        &format!("http://{}", node.addr()),
        Token::Static(env.platform_admin_token()),
        None,
    )
    .unwrap()
}

fn spec(slug: &str) -> TenantSpec {
    TenantSpec {
        slug: slug.into(),
        display_name: format!("Agency {slug}"),
        suspended: false,
        suspension_reason: None,
        organizations: vec![OrganizationSpec {
            code: "NORTH".into(),
            name: "North Office".into(),
        }],
        limits: TenantLimits {
            calls_per_second: Some(50),
        },
        offboarding: None,
    }
}

async fn tenant_of(env: &TestEnv, node: &TestNode, slug: &str) -> Option<tpb::Tenant> {
    let mut t = node.tenancy.clone();
    t.list_tenants(authed(
        &env.platform_admin_token(),
        tpb::ListTenantsRequest {
            slug: slug.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .tenants
    .pop()
}

fn condition(object: &Tenant, type_: &str) -> (String, String) {
    let c = object
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", object.status));
    (c.status.clone(), c.reason.clone())
}

/// The finalizer first (nothing else on that pass), then the object's reconcile proper.
async fn reconcile_new(api: &MockApi, ctx: &Arc<Context>, name: &str) -> Arc<Tenant> {
    let action = reconcile::reconcile(api.get(name), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(
        api.get(name).metadata.finalizers,
        Some(vec![FINALIZER.to_string()])
    );
    reconcile::reconcile(api.get(name), ctx.clone())
        .await
        .unwrap();
    api.get(name)
}

#[tokio::test]
async fn a_tenant_object_creates_its_tenant_once_and_reports_ready() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    api.create("agency-op", spec("agency-op"));

    let object = reconcile_new(&api, &ctx, "agency-op").await;
    let tenant = tenant_of(&env, &node, "agency-op").await.expect("created");
    assert_eq!(tenant.display_name, "Agency agency-op");
    assert_eq!(tenant.limits.unwrap().calls_per_second, 50);
    let status = object.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.tenant_id.as_deref(), Some(tenant.id.as_str()));
    assert_eq!(
        condition(&object, "Ready"),
        ("True".into(), "Reconciled".into())
    );
    assert_eq!(
        condition(&object, "Suspended"),
        ("False".into(), "Active".into())
    );
    assert_eq!(condition(&object, "Degraded").0, "False");
    let mut t = node.tenancy.clone();
    let organizations = t
        .list_organizations(authed(
            &env.platform_admin_token(),
            tpb::ListOrganizationsRequest {
                tenant_id: tenant.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(organizations.len(), 1);
    assert_eq!(organizations[0].code, "NORTH");
    // CreateTenant takes a slug and a name; the limit follows as an update.
    let first_pass = vec!["Created", "Updated", "OrganizationCreated"];
    assert_eq!(api.state().reasons(), first_pass);

    // Reconciled again: nothing is created or written twice.
    let version = object.metadata.resource_version.clone();
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let again = tenant_of(&env, &node, "agency-op").await.unwrap();
    assert_eq!(again.etag, tenant.etag, "the tenant was not written again");
    assert_eq!(api.state().reasons(), first_pass);
    assert_eq!(
        api.get("agency-op").metadata.resource_version,
        version,
        "status unchanged"
    );
}

#[tokio::test]
async fn spec_changes_update_suspend_and_resume_the_tenant() {
    let env = TestEnv::new().await;
    let node = env
        .start(&[caseway::Target::Tenancy, caseway::Target::Catalog])
        .await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    api.create("agency-edit", spec("agency-edit"));
    reconcile_new(&api, &ctx, "agency-edit").await;
    let id = tenant_of(&env, &node, "agency-edit").await.unwrap().id;

    let object = api.edit("agency-edit", |s| {
        s.display_name = "Agency, renamed".into();
        s.limits.calls_per_second = None;
        s.organizations[0].name = "North Family Center".into();
    });
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let tenant = tenant_of(&env, &node, "agency-edit").await.unwrap();
    assert_eq!(tenant.display_name, "Agency, renamed");
    assert_eq!(
        tenant.limits.unwrap().calls_per_second,
        0,
        "back to the default"
    );
    assert_eq!(
        api.get("agency-edit")
            .status
            .as_ref()
            .unwrap()
            .observed_generation,
        Some(2)
    );

    // Suspended: the tenant's users are refused.
    let object = api.edit("agency-edit", |s| {
        s.suspended = true;
        s.suspension_reason = Some("unpaid invoice".into());
    });
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let tenant = tenant_of(&env, &node, "agency-edit").await.unwrap();
    assert_eq!(tenant.status, tpb::TenantStatus::Suspended as i32);
    let object = api.get("agency-edit");
    assert_eq!(
        condition(&object, "Suspended"),
        ("True".into(), "Suspended".into())
    );
    let worker = env.token(TenantId(id.parse().unwrap()), &[Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();
    let refused = catalog
        .list_services(authed(&worker, Default::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let object = api.edit("agency-edit", |s| s.suspended = false);
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let tenant = tenant_of(&env, &node, "agency-edit").await.unwrap();
    assert_eq!(tenant.status, tpb::TenantStatus::Active as i32);
    assert_eq!(
        api.state().reasons(),
        vec![
            "Created",
            "Updated",
            "OrganizationCreated",
            "Updated",
            "OrganizationUpdated",
            "Suspended",
            "Resumed"
        ]
    );
}

#[tokio::test]
async fn deleting_the_object_suspends_the_tenant_then_releases_the_finalizer() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    api.create("agency-gone", spec("agency-gone"));
    reconcile_new(&api, &ctx, "agency-gone").await;

    let object = api.delete("agency-gone");
    let action = reconcile::reconcile(object, ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let tenant = tenant_of(&env, &node, "agency-gone")
        .await
        .expect("kept, not deleted");
    assert_eq!(tenant.status, tpb::TenantStatus::Suspended as i32);
    assert!(
        !api.state().tenants.contains_key("agency-gone"),
        "the finalizer was removed, so the object is gone"
    );
    assert_eq!(
        api.state().reasons().last().map(String::as_str),
        Some("Suspended")
    );
}

/// The template the chart renders, as far as the operator reads it.
fn job_template() -> OffboardingJobs {
    OffboardingJobs {
        namespace: "caseway".into(),
        template: serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "labels": { "app.kubernetes.io/component": "offboarding" } },
            "spec": { "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "offboard", "image": "caseway", "args": ["tenant", "offboard"] }]
            } } }
        }))
        .unwrap(),
    }
}

#[tokio::test]
async fn deleting_an_object_with_offboarding_exports_and_purges_its_tenant_through_a_job() {
    let env = TestEnv::new().await;
    let node = env
        .start(&[
            caseway::Target::Tenancy,
            caseway::Target::Clients,
            caseway::Target::Catalog,
        ])
        .await;
    let api = MockApi::start();
    let ctx = offboarding_context(&api, tenancy_of(&env, &node));
    let s3 = S3Server::start().await;
    let (status, _) = s3.request("PUT", "/exports").await;
    assert!(status.contains("200"), "{status}");
    let dir = std::env::temp_dir().join(format!("caseway-offboard-{}", uuid::Uuid::new_v4()));
    let export_to = "s3://exports/agency-leaving".to_string();
    let mut leaving = spec("agency-leaving");
    leaving.offboarding = Some(Offboarding {
        export_to: export_to.clone(),
        ssn_key_secret: SecretKeyRef {
            name: "agency-leaving-ssn-key".into(),
            key: "key".into(),
        },
    });
    api.create("agency-leaving", leaving);
    let object = reconcile_new(&api, &ctx, "agency-leaving").await;
    let tenant_id: TenantId = object
        .status
        .as_ref()
        .unwrap()
        .tenant_id
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let worker = env.token(tenant_id, &[Role::Caseworker], &[]);
    node.fixtures(&worker)
        .client(caseway_api::clients::v1::Client {
            first_name: "Ada".into(),
            last_name: "Byron".into(),
            ssn: "123-45-6789".into(),
            ssn_quality: caseway_api::clients::v1::DataQuality::Full as i32,
            birth_date_quality: caseway_api::clients::v1::DataQuality::NotCollected as i32,
            veteran_status: caseway_api::clients::v1::VeteranStatus::No as i32,
            ..Default::default()
        })
        .await
        .unwrap();

    // Deleted: the tenant is suspended and a Job made to offboard it; the finalizer waits.
    let object = api.delete("agency-leaving");
    let waiting = reconcile::reconcile(object, ctx.clone()).await.unwrap_err();
    assert_eq!(waiting.reason(), "Offboarding");
    let job = api
        .state()
        .jobs
        .values()
        .next()
        .cloned()
        .expect("a Job was made");
    assert_eq!(job["metadata"]["namespace"], "caseway");
    assert_eq!(
        job["metadata"]["labels"]["caseway.io/tenant"],
        "agency-leaving"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "agency-leaving-ssn-key"
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        KEY_FOLDER
    );
    let object = api.get("agency-leaving");
    assert_eq!(
        condition(&object, "Offboarded"),
        ("False".into(), "Running".into())
    );
    assert!(
        api.state().tenants.contains_key("agency-leaving"),
        "held while the Job runs"
    );
    let again = reconcile::reconcile(object, ctx.clone()).await.unwrap_err();
    assert_eq!(again.reason(), "Offboarding");
    assert_eq!(api.state().jobs.len(), 1, "one Job, not one per look");

    // What the Job's pod runs: the Caseway command line the operator wrote.
    let args: Vec<String> = serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
    let cli = caseway::cli::Cli::try_parse_from(std::iter::once("caseway".to_string()).chain(args))
        .expect("the Job's arguments are a Caseway command line");
    let caseway::cli::Command::Tenant {
        command:
            caseway::cli::TenantCommand::Offboard {
                tenant,
                to,
                ssn_key_file,
            },
    } = cli.command
    else {
        panic!("not tenant offboard");
    };
    assert_eq!(
        (tenant.as_str(), to.as_str()),
        ("agency-leaving", export_to.as_str())
    );
    assert_eq!(ssn_key_file, std::path::Path::new(KEY_FOLDER).join("key"));
    // The Secret's key, where this test can put it.
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key");
    std::fs::write(&key_file, caseway_offboarding::ExportKey::generate()).unwrap();
    // As the Job runs it: nodes trusting a status for a second, the bucket named by `to`
    // reached as moto serves it.
    let config = caseway_platform::Config {
        tenant_status_ttl: Duration::from_secs(1),
        ..env.config()
    };
    let bucket = s3.bucket("exports", "agency-leaving");
    assert_eq!(bucket.location, to);
    let report = caseway::offboard::offboard_to(&config, &tenant, &bucket, &key_file)
        .await
        .unwrap();
    assert!(report.rows() > 0 && report.tenant_key_destroyed);
    let manifest = bucket.store.head(&bucket.path("manifest.json")).await;
    assert!(manifest.is_ok(), "the export is in the bucket");

    // The Job succeeded: the object goes.
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    api.state().jobs.get_mut(&name).unwrap()["status"] = json!({ "succeeded": 1 });
    let action = reconcile::reconcile(api.get("agency-leaving"), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(!api.state().tenants.contains_key("agency-leaving"));
    let reasons = api.state().reasons();
    assert!(
        reasons.contains(&"OffboardingStarted".to_string())
            && reasons.contains(&"Offboarded".to_string()),
        "{reasons:?}"
    );
    let tenant = tenant_of(&env, &node, "agency-leaving").await.unwrap();
    assert!(tenant.purge_time.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failed_offboarding_job_holds_the_object_degraded() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let plain = context(&api, tenancy_of(&env, &node));
    let mut failing = spec("agency-failing");
    failing.offboarding = Some(Offboarding {
        export_to: "s3://exports/failing".into(),
        ssn_key_secret: SecretKeyRef {
            name: "failing-key".into(),
            key: "key".into(),
        },
    });
    api.create("agency-failing", failing);
    reconcile_new(&api, &plain, "agency-failing").await;
    // An operator given no template cannot offboard: it holds the object.
    let refused = reconcile::reconcile(api.delete("agency-failing"), plain.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "OffboardingNotConfigured");
    assert!(api.state().tenants.contains_key("agency-failing"));

    let ctx = offboarding_context(&api, tenancy_of(&env, &node));
    reconcile::reconcile(api.get("agency-failing"), ctx.clone())
        .await
        .unwrap_err();
    let name = api.state().jobs.keys().next().cloned().unwrap();
    api.state().jobs.get_mut(&name).unwrap()["status"] = json!({
        "failed": 4,
        "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }]
    });
    let failed = reconcile::reconcile(api.get("agency-failing"), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(failed.reason(), "OffboardingFailed");
    assert!(
        failed.to_string().contains("BackoffLimitExceeded"),
        "{failed}"
    );
    let object = api.get("agency-failing");
    assert_eq!(
        condition(&object, "Offboarded"),
        ("False".into(), "Failed".into())
    );
    assert!(
        api.state().tenants.contains_key("agency-failing"),
        "held until dealt with"
    );
}

#[tokio::test]
async fn a_conflict_on_the_status_update_is_retried_without_a_second_create() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    let object = api.create("agency-race", spec("agency-race"));
    reconcile::reconcile(object, ctx.clone()).await.unwrap();

    api.state().status_conflicts = 1;
    let object = api.get("agency-race");
    let error = reconcile::reconcile(object.clone(), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "KubernetesApi", "{error}");
    assert_eq!(
        reconcile::error_policy(object, &error, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    let tenant = tenant_of(&env, &node, "agency-race")
        .await
        .expect("created once");

    reconcile::reconcile(api.get("agency-race"), ctx.clone())
        .await
        .unwrap();
    let object = api.get("agency-race");
    assert_eq!(condition(&object, "Ready").0, "True");
    assert_eq!(
        object.status.as_ref().unwrap().tenant_id.as_deref(),
        Some(tenant.id.as_str())
    );
    let created = api
        .state()
        .reasons()
        .iter()
        .filter(|r| *r == "Created")
        .count();
    assert_eq!(created, 1, "the retry found the tenant the first pass made");
}

#[tokio::test]
async fn an_unreachable_tenancy_service_degrades_the_object_with_a_growing_backoff() {
    let api = MockApi::start();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tenancy = Tenancy::new(
        &format!("http://127.0.0.1:{port}"),
        Token::Static("t".into()),
        None,
    )
    .unwrap();
    let ctx = context(&api, tenancy);
    let object = api.create("agency-dark", spec("agency-dark"));
    reconcile::reconcile(object, ctx.clone()).await.unwrap();

    let object = api.get("agency-dark");
    let error = reconcile::reconcile(object.clone(), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "TenancyUnavailable", "{error}");
    let object = api.get("agency-dark");
    assert_eq!(
        condition(&object, "Degraded"),
        ("True".into(), "TenancyUnavailable".into())
    );
    assert_eq!(condition(&object, "Ready").0, "False");
    assert_eq!(api.state().reasons(), vec!["TenancyUnavailable"]);
    let waits: Vec<Action> = (0..3)
        .map(|_| reconcile::error_policy(object.clone(), &error, ctx.clone()))
        .collect();
    assert_eq!(
        waits,
        [1, 2, 4]
            .map(|s| Action::requeue(Duration::from_secs(s)))
            .to_vec()
    );
    assert_eq!(reconcile::backoff(30), reconcile::MAX_BACKOFF);
}

#[tokio::test]
async fn one_replica_holds_the_lease_until_it_lets_go_or_stops_renewing() {
    let api = MockApi::start();
    let lease = |identity: &str, seconds: u64| {
        LeaseLock::new(
            api.client.clone(),
            "caseway",
            "caseway-operator",
            identity,
            Duration::from_secs(seconds),
        )
    };
    let a = lease("replica-a", 1);
    let b = lease("replica-b", 1);
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap(), "held by a");
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    a.release().await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "released: b takes it at once"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
    // b stops renewing: once its lease runs out, a takes over.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "expired: a takes it"
    );
    let lease = api.state().leases["caseway-operator"].clone();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
}

#[tokio::test]
async fn only_the_replica_that_leads_reconciles_and_a_stopping_one_hands_over() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_util::sync::CancellationToken;

    let api = MockApi::start();
    let leading = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let replica = |identity: &'static str, stop: CancellationToken| {
        let lock = LeaseLock::new(
            api.client.clone(),
            "caseway",
            "caseway-operator",
            identity,
            Duration::from_secs(3),
        );
        let (leading, most) = (leading.clone(), most.clone());
        tokio::spawn(async move {
            lock.lead(stop, move |lost: CancellationToken| {
                let (leading, most) = (leading.clone(), most.clone());
                async move {
                    let now = leading.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    lost.cancelled().await;
                    leading.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .await;
        })
    };
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = replica("replica-a", stop_a.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = replica("replica-b", stop_b.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(leading.load(Ordering::SeqCst), 1);
    let holder =
        |api: &MockApi| api.state().leases["caseway-operator"]["spec"]["holderIdentity"].clone();
    assert_eq!(holder(&api), "replica-a");

    // a stops: it lets go of the lease, and b takes over at its next try (a second), long
    // before the lease would have run out.
    stop_a.cancel();
    a.await.unwrap();
    for _ in 0..40 {
        if holder(&api) == "replica-b" && leading.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder(&api), "replica-b");
    assert_eq!(leading.load(Ordering::SeqCst), 1);
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "never two replicas reconciling at once"
    );
    stop_b.cancel();
    b.await.unwrap();
    assert_eq!(leading.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn drift_made_outside_kubernetes_is_undone_every_time() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    api.create("agency-drift", spec("agency-drift"));
    reconcile_new(&api, &ctx, "agency-drift").await;
    let object = api.edit("agency-drift", |s| {
        s.suspended = true;
        s.suspension_reason = Some("contract ended".into());
    });
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let id = tenant_of(&env, &node, "agency-drift").await.unwrap().id;
    let root = env.platform_admin_token();
    let mut t = node.tenancy.clone();
    // Someone resumes the tenant by hand, twice; each time the next reconcile suspends it again.
    for _ in 0..2 {
        t.resume_tenant(authed(
            &root,
            tpb::ResumeTenantRequest {
                id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
        reconcile::reconcile(api.get("agency-drift"), ctx.clone())
            .await
            .unwrap();
        let tenant = tenant_of(&env, &node, "agency-drift").await.unwrap();
        assert_eq!(tenant.status, tpb::TenantStatus::Suspended as i32);
    }
    // A tenant administrator deletes a declared organization: it is made again.
    let north = |organizations: Vec<tpb::Organization>| {
        organizations.into_iter().find(|o| o.code == "NORTH")
    };
    let list = || {
        authed(
            &root,
            tpb::ListOrganizationsRequest {
                tenant_id: id.clone(),
                ..Default::default()
            },
        )
    };
    let first = north(
        t.list_organizations(list())
            .await
            .unwrap()
            .into_inner()
            .organizations,
    )
    .unwrap();
    let admin = env.token(TenantId(id.parse().unwrap()), &[Role::TenantAdmin], &[]);
    t.delete_organization(authed(
        &admin,
        tpb::DeleteOrganizationRequest {
            id: first.id.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap_err(); // the tenant is suspended: its own administrator is refused
    t.resume_tenant(authed(
        &root,
        tpb::ResumeTenantRequest {
            id: id.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    t.delete_organization(authed(
        &admin,
        tpb::DeleteOrganizationRequest {
            id: first.id.clone(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    reconcile::reconcile(api.get("agency-drift"), ctx.clone())
        .await
        .unwrap();
    let again = north(
        t.list_organizations(list())
            .await
            .unwrap()
            .into_inner()
            .organizations,
    )
    .expect("made again");
    assert_ne!(again.id, first.id);
}

#[tokio::test]
async fn an_object_whose_slug_is_not_its_name_manages_no_tenant() {
    let env = TestEnv::new().await;
    let node = env.start(&[caseway::Target::Tenancy]).await;
    let api = MockApi::start();
    let ctx = context(&api, tenancy_of(&env, &node));
    let object = api.create("another-name", spec("agency-named"));
    reconcile::reconcile(object, ctx.clone()).await.unwrap();
    let error = reconcile::reconcile(api.get("another-name"), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "SlugNotName", "{error}");
    let object = api.get("another-name");
    assert_eq!(
        condition(&object, "Degraded"),
        ("True".into(), "SlugNotName".into())
    );
    assert!(tenant_of(&env, &node, "agency-named").await.is_none());
}
