//! One active reconciler among the operator's replicas: a `coordination.k8s.io/v1` Lease,
//! taken when free or expired and renewed well within its duration. A replica that cannot
//! renew stops reconciling before another may take the lease over.
//!
//! Whether another replica's lease ran out is judged as client-go judges it, by this
//! replica's own clock: the lease expired when its resource version has not changed for a
//! whole lease duration since this replica first saw it, so clocks that disagree between
//! nodes cannot hand the lease to two replicas.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// A lease held under one identity.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// Another holder's lease as last seen: its resource version, and when this replica saw
    /// that version first.
    observed: Mutex<Option<(String, Instant)>>,
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            observed: Mutex::new(None),
        }
    }

    /// Whether `lease`, held by another replica, has gone a whole duration unrenewed as this
    /// replica's clock measures it.
    fn expired(&self, lease: &Lease, duration: Duration) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if *seen == version => since.elapsed() >= duration,
            _ => {
                *observed = Some((version, Instant::now()));
                false
            }
        }
    }

    /// Takes the lease when it is free, expired or already this identity's, and renews it;
    /// true when this identity holds it afterwards. Another replica's concurrent write wins
    /// the race (409) and this one does not hold it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        if held && !ours && !self.expired(&lease, duration) {
            return Ok(false);
        }
        let mut next = lease;
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + if ours { 0 } else { 1 }),
            ..spec
        });
        // The resource version read above makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up if this identity holds it, so another replica takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        let _ = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
    }

    /// Runs `work` while this identity holds the lease, until `shutdown`: waits for the lease,
    /// starts `work` with a token cancelled when the lease is lost (a renewal failed) or at
    /// shutdown, and goes back to waiting after a loss.
    pub async fn lead<F, Fut>(&self, shutdown: CancellationToken, work: F)
    where
        F: Fn(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let renew_every = self.duration / 3;
        // A renewal that has not answered by the next one counts as failed: the lease must not
        // run out while this replica still reconciles.
        let attempt = || async {
            matches!(
                tokio::time::timeout(renew_every, self.try_acquire_or_renew()).await,
                Ok(Ok(true))
            )
        };
        loop {
            loop {
                if attempt().await {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(renew_every) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            tracing::info!(identity = %self.identity, "leading: reconciling Tenant objects");
            let leading = shutdown.child_token();
            let job = tokio::spawn(work(leading.clone()));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(renew_every) => {
                        if !attempt().await {
                            tracing::warn!("the lease could not be renewed: reconciling stops");
                            break;
                        }
                    }
                    _ = shutdown.cancelled() => break,
                }
            }
            leading.cancel();
            let _ = job.await;
            if shutdown.is_cancelled() {
                self.release().await;
                return;
            }
        }
    }
}
