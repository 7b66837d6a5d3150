//! Offboarding a deleted `Tenant` whose spec asks for it: the tenant's full export, then the
//! purge of its data and its PII key (`caseway tenant offboard`, docs/offboarding.md), run as
//! a Kubernetes Job. The Job is made from a template the chart renders (the image, the schema
//! owner's credentials, the PII keys, the stores), so the operator itself holds no database
//! credentials and never touches the database; it names the tenant, the export's destination
//! and the Secret of the tenant's key, and watches the Job to its end. The command resumes
//! where a failed attempt stopped, so the Job's retries are safe.

use std::path::Path;

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};
use kube::ResourceExt;

use crate::crd::{Offboarding, Tenant};

/// Where the Job's container reads the tenant's SSN key.
pub const KEY_FOLDER: &str = "/etc/caseway/offboarding-key";

/// The Jobs the operator makes: from a template, in its namespace.
#[derive(Clone, Debug)]
pub struct OffboardingJobs {
    pub namespace: String,
    pub template: Job,
}

/// Where an offboarding Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// Failed for good (its retries spent), with the Job's reason.
    Failed(String),
}

impl OffboardingJobs {
    /// The template in `path` (a Job as JSON, which the chart renders).
    pub fn from_file(path: &Path, namespace: &str) -> anyhow::Result<OffboardingJobs> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the offboarding Job template {}", path.display()))?;
        let template: Job = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Job as JSON", path.display()))?;
        anyhow::ensure!(
            template
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| !p.containers.is_empty()),
            "the offboarding Job template has no container"
        );
        Ok(OffboardingJobs {
            namespace: namespace.to_string(),
            template,
        })
    }

    /// The Job of `object`'s offboarding: one per object (named by its uid), so a Tenant made
    /// again under the same name gets a Job of its own.
    pub fn job_name(object: &Tenant) -> String {
        format!("caseway-offboard-{}", object.uid().unwrap_or_default())
    }

    /// The Job offboarding `object` as `offboarding` says.
    pub fn job_for(&self, object: &Tenant, offboarding: &Offboarding) -> Job {
        let mut job = self.template.clone();
        job.metadata.name = Some(Self::job_name(object));
        job.metadata.namespace = Some(self.namespace.clone());
        job.metadata
            .labels
            .get_or_insert_default()
            .insert("caseway.io/tenant".into(), object.spec.slug.clone());
        let pod = job
            .spec
            .get_or_insert_default()
            .template
            .spec
            .get_or_insert_default();
        pod.volumes.get_or_insert_default().push(Volume {
            name: "offboarding-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(offboarding.ssn_key_secret.name.clone()),
                default_mode: Some(0o400),
                items: Some(vec![KeyToPath {
                    key: offboarding.ssn_key_secret.key.clone(),
                    path: "key".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some(container) = pod.containers.first_mut() {
            container.args = Some(command(&object.spec.slug, &offboarding.export_to));
            container
                .volume_mounts
                .get_or_insert_default()
                .push(VolumeMount {
                    name: "offboarding-key".into(),
                    mount_path: KEY_FOLDER.into(),
                    read_only: Some(true),
                    ..Default::default()
                });
        }
        job
    }
}

/// The Caseway command line the Job runs.
pub fn command(slug: &str, export_to: &str) -> Vec<String> {
    [
        "tenant",
        "offboard",
        slug,
        "--to",
        export_to,
        "--ssn-key-file",
        &format!("{KEY_FOLDER}/key"),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Where `job` stands, from its status.
pub fn state(job: &Job) -> JobState {
    let Some(status) = &job.status else {
        return JobState::Running;
    };
    if status.succeeded.unwrap_or(0) > 0 {
        return JobState::Succeeded;
    }
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True");
    match failed {
        Some(c) => JobState::Failed(
            [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        ),
        None => JobState::Running,
    }
}
