//! The clients service, as records and authorizations ask it with the caller's credentials:
//! whether a client exists (cached until `clients.client_deleted.v1`), an enrollment (until
//! `clients.enrollment_exited.v1`), and a barrier's client (for good: it never changes). Only
//! what was found is cached, so a client created a moment ago is asked for, not refused; a
//! deletion is felt when its event arrives (a few milliseconds after its commit).

use std::sync::Arc;

use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_platform::ClientId;
use caseway_platform::bus::Bus;
use caseway_platform::cache::KeyedCache;
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::{NodeBuilder, Platform};

use crate::call;
use crate::catalog::follow;
use crate::rules::EnrollmentFacts;

const PEER: &str = "clients";

pub struct Clients {
    clients: ClientsServiceClient<Channel>,
    barriers: BarriersServiceClient<Channel>,
    found: Arc<KeyedCache<()>>,
    enrollments: Arc<KeyedCache<EnrollmentFacts>>,
    barrier_clients: Arc<KeyedCache<Uuid>>,
    caller: &'static str,
}

impl Clients {
    /// `caller` is the service asking, naming its workers.
    pub fn new(platform: &Platform, endpoint: &str, caller: &'static str) -> anyhow::Result<Self> {
        let channel = platform.peers.channel(endpoint)?;
        Ok(Clients {
            clients: ClientsServiceClient::new(channel.clone()),
            barriers: BarriersServiceClient::new(channel),
            found: Arc::new(KeyedCache::new()),
            enrollments: Arc::new(KeyedCache::new()),
            // A barrier's client never changes.
            barrier_clients: Arc::new(KeyedCache::unfollowed()),
            caller,
        })
    }

    /// Workers that drop cached clients and enrollments as the clients service's events
    /// arrive. Without them the caches would outlive a deletion: they must run.
    pub fn follow_events(&self, bus: &Bus, node: &mut NodeBuilder) {
        follow(
            node,
            self.caller,
            "client-cache",
            &self.found,
            bus,
            vec!["clients.client_deleted.v1".into()],
        );
        follow(
            node,
            self.caller,
            "enrollment-cache",
            &self.enrollments,
            bus,
            vec!["clients.enrollment_exited.v1".into()],
        );
    }

    pub async fn client_exists(&self, caller: &Caller, id: ClientId) -> Result<bool> {
        let found_one = self
            .found
            .get_or_load(caller.tenant, id.0, || async {
                call::get(
                    PEER,
                    || {
                        Ok(caller.forward(pb::GetClientRequest {
                            id: id.to_string(),
                            ssn_view: 0,
                        }))
                    },
                    |request| {
                        let mut client = self.clients.clone();
                        async move { client.get_client(request).await }
                    },
                )
                .await
                .map(|reply| reply.map(|_| ()))
            })
            .await?;
        Ok(found_one.is_some())
    }

    pub async fn enrollment(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<Arc<EnrollmentFacts>>> {
        self.enrollments
            .get_or_load(caller.tenant, id, || async {
                let reply = call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetEnrollmentRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.clients.clone();
                        async move { client.get_enrollment(request).await }
                    },
                )
                .await?;
                let Some(enrollment) = reply.and_then(|r| r.enrollment) else {
                    return Ok(None);
                };
                Ok(Some(EnrollmentFacts {
                    id,
                    client_id: call::id(PEER, "client id", &enrollment.client_id)?,
                    program_id: call::id(PEER, "program id", &enrollment.program_id)?,
                    entry_date: call::date(PEER, "entry date", enrollment.entry_date.as_ref())?
                        .ok_or_else(|| {
                            Error::Unavailable(format!(
                                "{PEER} service: an enrollment without an entry date"
                            ))
                        })?,
                    exit_date: call::date(PEER, "exit date", enrollment.exit_date.as_ref())?,
                }))
            })
            .await
    }

    /// The client a barrier belongs to.
    pub async fn barrier_client(&self, caller: &Caller, id: Uuid) -> Result<Option<ClientId>> {
        let found_one = self
            .barrier_clients
            .get_or_load(caller.tenant, id, || async {
                let reply = call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetBarrierRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.barriers.clone();
                        async move { client.get_barrier(request).await }
                    },
                )
                .await?;
                match reply.and_then(|r| r.barrier) {
                    Some(barrier) => call::id(PEER, "client id", &barrier.client_id).map(Some),
                    None => Ok(None),
                }
            })
            .await?;
        Ok(found_one.map(|client| ClientId(*client)))
    }
}
