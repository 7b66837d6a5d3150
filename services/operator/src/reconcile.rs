//! The reconciler: a `Tenant` object made true in the tenancy service. Every step reads what
//! the service holds and changes only what differs, so reconciling an object twice creates
//! nothing twice; the creates carry request ids derived from the object's uid, so a create
//! whose answer was lost is answered again instead of repeated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caseway_api::tenancy::v1 as pb;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::crd::{Condition, Offboarding, Tenant, TenantStatus};
use crate::offboarding::{JobState, OffboardingJobs, state};
use crate::tenancy::{Tenancy, TenancyError};

/// Held on every `Tenant` the operator reconciled: deleting the object first suspends the
/// tenant and, where the spec asks, offboards it (export, then purge).
pub const FINALIZER: &str = "caseway.io/suspend-on-delete";

/// How often an object that is in order is looked at again (drift made outside Kubernetes).
pub const RESYNC: Duration = Duration::from_secs(300);

/// How often a running offboarding Job is looked at.
pub const OFFBOARDING_POLL: Duration = Duration::from_secs(10);

/// The longest wait before retrying an object that failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub tenancy: Tenancy,
    pub recorder: Recorder,
    /// The Jobs that offboard tenants, where configured.
    pub offboarding: Option<OffboardingJobs>,
    /// Failures in a row, by object uid, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, tenancy: Tenancy, recorder: Recorder) -> Context {
        Context {
            client,
            tenancy,
            recorder,
            offboarding: None,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Offboards deleted tenants that ask for it with `jobs`.
    pub fn with_offboarding(self, jobs: OffboardingJobs) -> Context {
        Context {
            offboarding: Some(jobs),
            ..self
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The spec's slug is not the object's name (an API server without CRD validation rules
    /// lets it through): two objects could then claim one tenant.
    #[error("spec.slug {slug:?} must be the object's name {name:?}")]
    SlugNotName { slug: String, name: String },
    #[error("the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The spec asks for offboarding and the operator was given no Job template.
    #[error("spec.offboarding is set but this operator has no offboarding Job template")]
    OffboardingNotConfigured,
    /// The offboarding Job is still running: the finalizer waits for it.
    #[error("the offboarding Job {job} is running")]
    OffboardingRunning { job: String },
    /// The offboarding Job failed for good; the finalizer stays until it is dealt with.
    #[error("the offboarding Job {job} failed: {why}; its pod's log says more")]
    OffboardingFailed { job: String, why: String },
}

impl Error {
    /// The `Degraded` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Tenancy(error) => error.reason(),
            Error::Kube(_) => "KubernetesApi",
            Error::SlugNotName { .. } => "SlugNotName",
            Error::OffboardingNotConfigured => "OffboardingNotConfigured",
            Error::OffboardingRunning { .. } => "Offboarding",
            Error::OffboardingFailed { .. } => "OffboardingFailed",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "Finalizer",
            },
        }
    }
}

/// Reconciles one object: its finalizer first, then the tenant made as the spec says (or,
/// for an object being deleted, suspended).
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let action = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Finalized::Apply(tenant) => apply(&tenant, &ctx).await,
            Finalized::Cleanup(tenant) => cleanup(&tenant, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    Ok(action)
}

/// The wait before the next attempt at an object that failed: 1 s, doubling per failure in a
/// row, at most [`MAX_BACKOFF`].
pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    // A Job at work is not a failure: look again in a while.
    if error.reason() == "Offboarding" {
        return Action::requeue(OFFBOARDING_POLL);
    }
    let uid = tenant.uid().unwrap_or_default();
    let failures = {
        let mut failures = ctx.failures();
        let count = failures.entry(uid).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let wait = backoff(failures);
    tracing::warn!(tenant = %tenant.name_any(), error = %error, failures, wait_s = wait.as_secs(), "reconcile failed");
    Action::requeue(wait)
}

/// 1 s after the first failure, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

async fn apply(object: &Tenant, ctx: &Context) -> Result<Action, Error> {
    match converge(object, ctx).await {
        Ok(tenant) => {
            let suspended = tenant.status == pb::TenantStatus::Suspended as i32;
            let conditions = [
                condition(
                    object,
                    "Ready",
                    true,
                    "Reconciled",
                    "the tenant is as the spec says",
                ),
                condition(
                    object,
                    "Suspended",
                    suspended,
                    if suspended { "Suspended" } else { "Active" },
                    object
                        .spec
                        .suspension_reason
                        .as_deref()
                        .filter(|_| suspended)
                        .unwrap_or(""),
                ),
                condition(object, "Degraded", false, "Reconciled", ""),
            ];
            write_status(object, ctx, Some(&tenant.id), &conditions).await?;
            ctx.failures().remove(&object.uid().unwrap_or_default());
            Ok(Action::requeue(RESYNC))
        }
        Err(error) => {
            let message = error.to_string();
            // Best effort: the error is what the controller acts on.
            let _ = publish(
                ctx,
                object,
                EventType::Warning,
                error.reason(),
                "Reconcile",
                &message,
            )
            .await;
            let conditions = [
                condition(object, "Ready", false, error.reason(), &message),
                condition(object, "Degraded", true, error.reason(), &message),
            ];
            let known = object.status.as_ref().and_then(|s| s.tenant_id.clone());
            let _ = write_status(object, ctx, known.as_deref(), &conditions).await;
            Err(error)
        }
    }
}

/// Makes the tenant as the spec says and returns it as it then stands.
async fn converge(object: &Tenant, ctx: &Context) -> Result<pb::Tenant, Error> {
    let spec = &object.spec;
    if object.name_any() != spec.slug {
        return Err(Error::SlugNotName {
            slug: spec.slug.clone(),
            name: object.name_any(),
        });
    }
    let uid = object.uid().unwrap_or_default();
    let tenancy = &ctx.tenancy;
    // The slug is the object's name, which never changes: the tenant it names is this
    // object's.
    let mut tenant = match tenancy.find(&spec.slug).await? {
        Some(found) => found,
        None => {
            let created = tenancy
                .create(&format!("k8s-{uid}-create"), &spec.slug, &spec.display_name)
                .await?;
            publish(
                ctx,
                object,
                EventType::Normal,
                "Created",
                "Create",
                &format!("created tenant {} ({})", created.slug, created.id),
            )
            .await?;
            created
        }
    };
    let calls_per_second = spec
        .limits
        .calls_per_second
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(0);
    let current_limit = tenant.limits.as_ref().map_or(0, |l| l.calls_per_second);
    if tenant.display_name != spec.display_name || current_limit != calls_per_second {
        tenant = tenancy
            .update(&tenant, &spec.display_name, calls_per_second)
            .await?;
        publish(
            ctx,
            object,
            EventType::Normal,
            "Updated",
            "Update",
            "display name or limits changed",
        )
        .await?;
    }
    let organizations = tenancy.organizations(&tenant.id).await?;
    for wanted in &spec.organizations {
        match organizations.iter().find(|o| o.code == wanted.code) {
            None => {
                let created = tenancy
                    .create_organization(&tenant.id, &wanted.code, &wanted.name)
                    .await?;
                if created.is_some() {
                    publish(
                        ctx,
                        object,
                        EventType::Normal,
                        "OrganizationCreated",
                        "Create",
                        &format!("created security organization {}", wanted.code),
                    )
                    .await?;
                }
            }
            Some(existing) if existing.name != wanted.name => {
                tenancy
                    .rename_organization(&tenant.id, existing, &wanted.name)
                    .await?;
                publish(
                    ctx,
                    object,
                    EventType::Normal,
                    "OrganizationUpdated",
                    "Update",
                    &format!("renamed security organization {}", wanted.code),
                )
                .await?;
            }
            Some(_) => {}
        }
    }
    let suspended = tenant.status == pb::TenantStatus::Suspended as i32;
    // Request ids name the tenant's version: a retry of a change whose answer was lost is
    // answered again, while a change after someone else's (a resume outside Kubernetes) is a
    // new request.
    let version = tenant.etag.trim_matches('"').to_string();
    if spec.suspended && !suspended {
        let reason = spec.suspension_reason.clone().unwrap_or_default();
        tenant = tenancy
            .suspend(&tenant.id, &reason, &format!("k8s-{uid}-suspend-{version}"))
            .await?;
        publish(
            ctx,
            object,
            EventType::Normal,
            "Suspended",
            "Suspend",
            &reason,
        )
        .await?;
    } else if !spec.suspended && suspended {
        tenant = tenancy
            .resume(&tenant.id, &format!("k8s-{uid}-resume-{version}"))
            .await?;
        publish(
            ctx,
            object,
            EventType::Normal,
            "Resumed",
            "Resume",
            "the tenant's users may call again",
        )
        .await?;
    }
    Ok(tenant)
}

/// An object being deleted: its tenant is suspended (never deleted: its data stays until
/// offboarding exports and purges it). A tenant that never existed needs nothing.
async fn cleanup(object: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    let tenant = match object.status.as_ref().and_then(|s| s.tenant_id.clone()) {
        Some(id) => ctx.tenancy.get(&id).await?,
        None => ctx.tenancy.find(&object.spec.slug).await?,
    };
    if let Some(tenant) = &tenant
        && tenant.status != pb::TenantStatus::Suspended as i32
    {
        ctx.tenancy
            .suspend(
                &tenant.id,
                "the Tenant resource was deleted",
                &format!("k8s-{uid}-delete"),
            )
            .await?;
        publish(
            ctx,
            object,
            EventType::Normal,
            "Suspended",
            "Delete",
            "the Tenant resource was deleted; the tenant is suspended and its data kept",
        )
        .await?;
    }
    match (&object.spec.offboarding, tenant) {
        (Some(offboarding), Some(tenant)) => {
            let purged = tenant.purge_time.is_some();
            offboard(object, offboarding, &tenant.id, purged, ctx).await
        }
        _ => Ok(Action::await_change()),
    }
}

/// Runs the offboarding Job of a deleted object and follows it: the finalizer goes once it
/// succeeded; while it runs, and after it failed, the object stays (with an `Offboarded`
/// condition saying which). The command resumes, so a Job made again (the last one deleted,
/// or a tenant whose purge began by hand) finishes what was begun.
async fn offboard(
    object: &Tenant,
    offboarding: &Offboarding,
    tenant_id: &str,
    purged: bool,
    ctx: &Context,
) -> Result<Action, Error> {
    // Without a template, a tenant already purged (by hand) is let go; any other is held.
    if !offboarding.export_to.starts_with("s3://") {
        return Err(Error::OffboardingFailed {
            job: OffboardingJobs::job_name(object),
            why: "spec.offboarding.exportTo must be s3://bucket/prefix".into(),
        });
    }
    let Some(jobs) = ctx.offboarding.as_ref() else {
        return if purged {
            Ok(Action::await_change())
        } else {
            Err(Error::OffboardingNotConfigured)
        };
    };
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &jobs.namespace);
    let name = OffboardingJobs::job_name(object);
    let job = match api.get_opt(&name).await? {
        Some(job) => job,
        None => {
            let job = api
                .create(&PostParams::default(), &jobs.job_for(object, offboarding))
                .await?;
            publish(
                ctx,
                object,
                EventType::Normal,
                "OffboardingStarted",
                "Delete",
                &format!(
                    "Job {name} exports the tenant to {} then purges its data",
                    offboarding.export_to
                ),
            )
            .await?;
            job
        }
    };
    let (done, reason, message, outcome) = match state(&job) {
        // The Job's word is not enough: the tenant must show its purge.
        JobState::Succeeded if !purged => (
            false,
            "Failed",
            format!("Job {name} succeeded but the tenant is not purged"),
            Err(Error::OffboardingFailed {
                job: name.clone(),
                why: "it succeeded but the tenant is not purged".into(),
            }),
        ),
        JobState::Succeeded => (
            true,
            "Offboarded",
            format!("exported to {} and purged", offboarding.export_to),
            Ok(Action::await_change()),
        ),
        JobState::Running => (
            false,
            "Running",
            format!("Job {name} is running"),
            Err(Error::OffboardingRunning { job: name.clone() }),
        ),
        JobState::Failed(why) => (
            false,
            "Failed",
            format!("Job {name} failed: {why}"),
            Err(Error::OffboardingFailed {
                job: name.clone(),
                why,
            }),
        ),
    };
    let _ = write_status(
        object,
        ctx,
        Some(tenant_id),
        &[condition(object, "Offboarded", done, reason, &message)],
    )
    .await;
    if done {
        publish(
            ctx,
            object,
            EventType::Normal,
            "Offboarded",
            "Delete",
            &message,
        )
        .await?;
    }
    outcome
}

/// A condition of `type_`, keeping the last transition time while its status is unchanged.
fn condition(object: &Tenant, type_: &str, status: bool, reason: &str, message: &str) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = object.status.as_ref().and_then(|s| s.condition(type_));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => k8s_openapi::jiff::Timestamp::now().to_string(),
    };
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: object.meta().generation,
    }
}

/// Writes the status subresource, with the object's resource version: a status written from
/// an older view of the object is refused (409) and the object reconciled again.
async fn write_status(
    object: &Tenant,
    ctx: &Context,
    tenant_id: Option<&str>,
    conditions: &[Condition],
) -> Result<(), Error> {
    let mut merged: Vec<Condition> = object
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in conditions {
        match merged.iter_mut().find(|m| m.type_ == c.type_) {
            Some(m) => *m = c.clone(),
            None => merged.push(c.clone()),
        }
    }
    let status = TenantStatus {
        observed_generation: object.meta().generation,
        tenant_id: tenant_id.map(str::to_string),
        conditions: merged,
    };
    if object.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = json!({
        "apiVersion": "caseway.io/v1alpha1",
        "kind": "Tenant",
        "metadata": { "resourceVersion": object.resource_version() },
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    object: &Tenant,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) -> Result<(), Error> {
    ctx.recorder
        .publish(
            &Event {
                type_,
                reason: reason.to_string(),
                note: Some(note.chars().take(1000).collect()),
                action: action.to_string(),
                secondary: None,
            },
            &object.object_ref(&()),
        )
        .await?;
    Ok(())
}
