//! The Tenant operator: `Tenant` objects (`caseway.io/v1alpha1`) reconciled into the tenancy
//! service through its API. One replica reconciles at a time (a Lease); the others wait to
//! take over.
//!
//! - `crd`: the resource and its CRD, generated from the Rust types.
//! - `tenancy`: the tenancy service as the operator calls it.
//! - `reconcile`: one object made true, its finalizer, status, events and backoff.
//! - `lease`: leader election among replicas.
//! - `offboarding`: the Job that exports and purges a deleted tenant that asks for it.

pub mod crd;
pub mod lease;
pub mod offboarding;
pub mod reconcile;
pub mod tenancy;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::crd::Tenant;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::tenancy::{Tenancy, Token};

/// The operator's name, as events and the Lease show it.
pub const NAME: &str = "caseway-operator";

/// How the operator is run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The tenancy service's gRPC endpoint, e.g. `http://caseway-tenancy:50051`; `https://`
    /// calls over TLS.
    pub tenancy_endpoint: String,
    /// PEM certificate authorities an `https://` endpoint is checked against, instead of the
    /// system's roots.
    pub tenancy_ca_file: Option<std::path::PathBuf>,
    /// The platform administrator's bearer token the operator calls with.
    pub token: Token,
    /// The namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's name in the Lease and on its events (the pod's name).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// A Job as JSON, the template of offboarding Jobs (the chart renders it); without it a
    /// Tenant asking for offboarding is held, Degraded, until one is given.
    pub offboarding_job_template: Option<std::path::PathBuf>,
}

/// Runs the operator until `shutdown`, reconciling while this replica holds the Lease.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let tenancy = Tenancy::new(
        &config.tenancy_endpoint,
        config.token.clone(),
        config.tenancy_ca_file.as_deref(),
    )?;
    let reporter = Reporter {
        controller: NAME.into(),
        instance: Some(config.identity.clone()),
    };
    let mut ctx = Context::new(
        client.clone(),
        tenancy,
        Recorder::new(client.clone(), reporter),
    );
    if let Some(path) = &config.offboarding_job_template {
        ctx = ctx.with_offboarding(offboarding::OffboardingJobs::from_file(
            path,
            &config.namespace,
        )?);
    }
    let ctx = Arc::new(ctx);
    let lock = lease::LeaseLock::new(
        client.clone(),
        &config.namespace,
        NAME,
        &config.identity,
        config.lease_duration,
    );
    lock.lead(shutdown, move |leading| {
        let tenants: Api<Tenant> = Api::all(client.clone());
        let ctx = ctx.clone();
        async move {
            Controller::new(tenants, watcher::Config::default())
                .graceful_shutdown_on(async move { leading.cancelled().await })
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    match result {
                        Ok((object, _)) => tracing::debug!(tenant = %object.name, "reconciled"),
                        Err(error) => tracing::debug!(error = %error, "reconcile failed"),
                    }
                })
                .await;
        }
    })
    .await;
    Ok(())
}
