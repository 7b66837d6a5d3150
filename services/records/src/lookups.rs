//! What recording needs to know from the catalog and the clients service, asked over gRPC with
//! the caller's credentials and cached in process: catalog entries (services, grants,
//! providers, code values) until a catalog event says they changed; a client that exists until
//! `clients.client_deleted.v1`, an enrollment until `clients.enrollment_exited.v1`, a barrier's
//! client for good (it never changes). Only what was found is cached, so a client created a
//! moment ago is asked for, not refused; a deletion is felt when its event arrives (a few
//! milliseconds after its commit).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::catalog::v1::catalog_internal_service_client::CatalogInternalServiceClient;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::common::v1::LifecycleState;
use caseway_platform::TenantId;
use caseway_platform::access::READ_SERVICE_RESTRICTIONS;
use caseway_platform::auth::{Authorization, Principal, Role, ServiceIdentity, on_behalf_of};
use caseway_platform::bus::{Bus, Subscription, consume};
use caseway_platform::cache::KeyedCache;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::{NodeBuilder, Platform};

use crate::domain::{EnrollmentFacts, GrantFacts, ServiceFacts, UnitOfMeasure, visible};

pub struct Lookups {
    catalog: CatalogServiceClient<Channel>,
    clients: ClientsServiceClient<Channel>,
    barriers: BarriersServiceClient<Channel>,
    services: Arc<KeyedCache<ServiceFacts>>,
    grants: Arc<KeyedCache<GrantFacts>>,
    providers: Arc<KeyedCache<()>>,
    code_values: Arc<KeyedCache<CodeValueFacts>>,
    clients_found: Arc<KeyedCache<()>>,
    enrollments: Arc<KeyedCache<EnrollmentFacts>>,
    barrier_clients: Arc<KeyedCache<Uuid>>,
    /// Which services are restricted to security organizations.
    pub restrictions: Arc<Restrictions>,
}

/// A code value's list and whether it is still offered.
#[derive(Clone, Debug)]
pub struct CodeValueFacts {
    pub code_list: catalog_pb::CodeList,
    pub active: bool,
}

/// Not found for this caller (None), or the dependency is down.
fn absent<T>(status: tonic::Status, what: &str) -> Result<Option<T>> {
    match status.code() {
        tonic::Code::NotFound => Ok(None),
        _ => Err(Error::Unavailable(format!(
            "{what} service: {}",
            status.message()
        ))),
    }
}

fn uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

fn date(d: Option<&caseway_api::google::r#type::Date>) -> Option<NaiveDate> {
    let d = d?;
    NaiveDate::from_ymd_opt(
        d.year,
        u32::try_from(d.month).ok()?,
        u32::try_from(d.day).ok()?,
    )
}

impl Lookups {
    /// `caller` (the service asking) and the platform's service identity are what the
    /// catalog's internal method is asked with.
    pub fn new(
        platform: &Platform,
        catalog_endpoint: &str,
        clients_endpoint: &str,
        caller: &'static str,
    ) -> anyhow::Result<Self> {
        let catalog = platform.peers.channel(catalog_endpoint)?;
        let clients = platform.peers.channel(clients_endpoint)?;
        Ok(Lookups {
            restrictions: Arc::new(Restrictions::new(
                catalog.clone(),
                platform.service_identity.clone(),
                caller,
            )),
            catalog: CatalogServiceClient::new(catalog),
            clients: ClientsServiceClient::new(clients.clone()),
            barriers: BarriersServiceClient::new(clients),
            services: Arc::new(KeyedCache::new()),
            grants: Arc::new(KeyedCache::new()),
            providers: Arc::new(KeyedCache::new()),
            code_values: Arc::new(KeyedCache::new()),
            clients_found: Arc::new(KeyedCache::new()),
            enrollments: Arc::new(KeyedCache::new()),
            barrier_clients: Arc::new(KeyedCache::new()),
        })
    }

    /// Workers that drop cached entries as the catalog's and the clients service's events
    /// arrive.
    pub fn follow_events(&self, bus: &Bus, node: &mut NodeBuilder) {
        fn catalog(kind: &str) -> Vec<String> {
            ["updated", "retired", "deleted"]
                .iter()
                .map(|verb| format!("catalog.{kind}_{verb}.v1"))
                .collect()
        }
        follow(
            node,
            "records-service-cache",
            &self.services,
            bus,
            catalog("service"),
        );
        follow(
            node,
            "records-grant-cache",
            &self.grants,
            bus,
            catalog("grant"),
        );
        follow(
            node,
            "records-provider-cache",
            &self.providers,
            bus,
            catalog("provider"),
        );
        follow(
            node,
            "records-code-value-cache",
            &self.code_values,
            bus,
            catalog("code_value"),
        );
        let (restrictions, events) = (self.restrictions.clone(), bus.clone());
        node.add_worker("service-restrictions", move |token| {
            restrictions.follow_events(events, token)
        });
        follow(
            node,
            "records-client-cache",
            &self.clients_found,
            bus,
            vec!["clients.client_deleted.v1".into()],
        );
        follow(
            node,
            "records-enrollment-cache",
            &self.enrollments,
            bus,
            vec!["clients.enrollment_exited.v1".into()],
        );
    }

    /// The service as the catalog shows it to some caller of the tenant; visibility to this
    /// caller is the domain's check, so it may be cached whoever asked.
    pub async fn service(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<ServiceFacts>>> {
        self.services
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    catalog_pb::GetServiceRequest { id: id.to_string() },
                    authorization,
                );
                let service = match self.catalog.clone().get_service(request).await {
                    Ok(reply) => reply.into_inner().service.unwrap_or_default(),
                    Err(status) => return absent(status, "catalog"),
                };
                let unit_of_measure =
                    match catalog_pb::UnitOfMeasure::try_from(service.unit_of_measure) {
                        Ok(catalog_pb::UnitOfMeasure::Dollars) => UnitOfMeasure::Dollars,
                        Ok(catalog_pb::UnitOfMeasure::Hours) => UnitOfMeasure::Hours,
                        Ok(catalog_pb::UnitOfMeasure::Minutes) => UnitOfMeasure::Minutes,
                        _ => UnitOfMeasure::Count,
                    };
                Ok(Some(ServiceFacts {
                    id,
                    active: service.state != LifecycleState::Retired as i32,
                    direct: service.delivery_mode != catalog_pb::DeliveryMode::Indirect as i32,
                    unit_of_measure,
                    default_unit_value: Decimal::from_str(&service.default_unit_value)
                        .unwrap_or(Decimal::ZERO),
                    organization_ids: service
                        .organization_ids
                        .iter()
                        .filter_map(|s| uuid(s))
                        .collect(),
                    grant_ids: service.grant_ids.iter().filter_map(|s| uuid(s)).collect(),
                    service_group_id: uuid(&service.service_group_id),
                    unit_value_fixed: service.unit_value_fixed,
                }))
            })
            .await
    }

    pub async fn grant(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<GrantFacts>>> {
        self.grants
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    catalog_pb::GetGrantRequest { id: id.to_string() },
                    authorization,
                );
                let grant = match self.catalog.clone().get_grant(request).await {
                    Ok(reply) => reply.into_inner().grant.unwrap_or_default(),
                    Err(status) => return absent(status, "catalog"),
                };
                Ok(Some(GrantFacts {
                    id,
                    active: grant.state != LifecycleState::Retired as i32,
                    start_date: date(grant.start_date.as_ref()).unwrap_or(NaiveDate::MIN),
                    end_date: date(grant.end_date.as_ref()),
                }))
            })
            .await
    }

    pub async fn provider_exists(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<bool> {
        let found = self
            .providers
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    catalog_pb::GetProviderRequest { id: id.to_string() },
                    authorization,
                );
                match self.catalog.clone().get_provider(request).await {
                    Ok(_) => Ok(Some(())),
                    Err(status) => absent(status, "catalog"),
                }
            })
            .await?;
        Ok(found.is_some())
    }

    pub async fn code_value(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<CodeValueFacts>>> {
        self.code_values
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    catalog_pb::GetCodeValueRequest { id: id.to_string() },
                    authorization,
                );
                let value = match self.catalog.clone().get_code_value(request).await {
                    Ok(reply) => reply.into_inner().code_value.unwrap_or_default(),
                    Err(status) => return absent(status, "catalog"),
                };
                Ok(Some(CodeValueFacts {
                    code_list: catalog_pb::CodeList::try_from(value.code_list)
                        .unwrap_or(catalog_pb::CodeList::Unspecified),
                    active: value.state != LifecycleState::Retired as i32,
                }))
            })
            .await
    }

    pub async fn client_exists(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<bool> {
        let found = self
            .clients_found
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    clients_pb::GetClientRequest {
                        id: id.to_string(),
                        ssn_view: 0,
                    },
                    authorization,
                );
                match self.clients.clone().get_client(request).await {
                    Ok(_) => Ok(Some(())),
                    Err(status) => absent(status, "clients"),
                }
            })
            .await?;
        Ok(found.is_some())
    }

    pub async fn enrollment(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<EnrollmentFacts>>> {
        self.enrollments
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    clients_pb::GetEnrollmentRequest { id: id.to_string() },
                    authorization,
                );
                let enrollment = match self.clients.clone().get_enrollment(request).await {
                    Ok(reply) => reply.into_inner().enrollment.unwrap_or_default(),
                    Err(status) => return absent(status, "clients"),
                };
                Ok(Some(EnrollmentFacts {
                    id,
                    client_id: uuid(&enrollment.client_id).unwrap_or_default(),
                    program_id: uuid(&enrollment.program_id).unwrap_or_default(),
                    entry_date: date(enrollment.entry_date.as_ref()).unwrap_or(NaiveDate::MAX),
                    exit_date: date(enrollment.exit_date.as_ref()),
                }))
            })
            .await
    }

    /// The client a barrier belongs to.
    pub async fn barrier_client(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Uuid>> {
        let found = self
            .barrier_clients
            .get_or_load(tenant, id, || async {
                let request = on_behalf_of(
                    clients_pb::GetBarrierRequest { id: id.to_string() },
                    authorization,
                );
                match self.barriers.clone().get_barrier(request).await {
                    Ok(reply) => Ok(reply.into_inner().barrier.and_then(|b| uuid(&b.client_id))),
                    Err(status) => absent(status, "clients"),
                }
            })
            .await?;
        Ok(found.map(|client| *client))
    }
}

/// A worker that drops `cache`'s entries as events of `event_types` arrive.
fn follow<V: Send + Sync + 'static>(
    node: &mut NodeBuilder,
    name: &'static str,
    cache: &Arc<KeyedCache<V>>,
    bus: &Bus,
    event_types: Vec<String>,
) {
    let (cache, bus) = (cache.clone(), bus.clone());
    node.add_worker(name, move |token| {
        cache.follow_events(bus, event_types, token)
    });
}

/// How long a tenant's restrictions are trusted without an event saying they changed.
const RESTRICTIONS_TTL: Duration = Duration::from_secs(60);

type RestrictionMap = HashMap<Uuid, Vec<Uuid>>;

/// Which services of a tenant are restricted to security organizations, so that reads and
/// writes of their records and authorizations hide them from users outside those
/// organizations as the catalog hides the services. Asked of the catalog's internal method
/// with this service's own identity (the answer must not depend on who asks), cached per
/// tenant and dropped when an event says a service of the tenant changed (or after a minute).
pub struct Restrictions {
    catalog: CatalogInternalServiceClient<Channel>,
    identity: Arc<ServiceIdentity>,
    /// The service asking: `records` or `authorizations`.
    caller: &'static str,
    tenants: Mutex<HashMap<TenantId, (Arc<RestrictionMap>, Instant)>>,
    generation: AtomicU64,
}

impl Restrictions {
    fn new(channel: Channel, identity: Arc<ServiceIdentity>, caller: &'static str) -> Self {
        Restrictions {
            catalog: CatalogInternalServiceClient::new(channel),
            identity,
            caller,
            tenants: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Arc<RestrictionMap>, Instant)>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn of(&self, tenant: TenantId) -> Result<Arc<RestrictionMap>> {
        if let Some((map, at)) = self.lock().get(&tenant)
            && at.elapsed() < RESTRICTIONS_TTL
        {
            return Ok(map.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let request = self.identity.request(
            catalog_pb::ListServiceRestrictionsRequest {},
            self.caller,
            tenant,
            READ_SERVICE_RESTRICTIONS,
        )?;
        let reply = self
            .catalog
            .clone()
            .list_service_restrictions(request)
            .await
            .map_err(|status| Error::Unavailable(format!("catalog service: {}", status.message())))?
            .into_inner();
        let mut map = RestrictionMap::new();
        for restriction in reply.restrictions {
            // The catalog's own ids: one that does not parse is its fault, not the caller's,
            // and guessing could show what it hides.
            let unreadable = || {
                Error::Unavailable(format!(
                    "catalog service: unreadable restriction of {:?}",
                    restriction.service_id
                ))
            };
            let service = Uuid::parse_str(&restriction.service_id).map_err(|_| unreadable())?;
            let organizations = restriction
                .organization_ids
                .iter()
                .map(|o| Uuid::parse_str(o).map_err(|_| unreadable()))
                .collect::<Result<Vec<_>>>()?;
            map.insert(service, organizations);
        }
        let map = Arc::new(map);
        let mut tenants = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if tenants.len() > 10_000 {
                tenants.clear();
            }
            tenants.insert(tenant, (map.clone(), Instant::now()));
        }
        Ok(map)
    }

    /// The restricted services `principal` may not see (none for a tenant administrator).
    pub async fn hidden_from(&self, tenant: TenantId, principal: &Principal) -> Result<Vec<Uuid>> {
        if principal.has_role(Role::TenantAdmin) {
            return Ok(Vec::new());
        }
        let map = self.of(tenant).await?;
        Ok(map
            .iter()
            .filter(|(_, organizations)| {
                !visible(organizations, &principal.organization_ids, false)
            })
            .map(|(service, _)| *service)
            .collect())
    }

    /// Whether `service` is hidden from `principal`: its records and authorizations are then
    /// NOT_FOUND to them.
    pub async fn hides(
        &self,
        tenant: TenantId,
        principal: &Principal,
        service: Uuid,
    ) -> Result<bool> {
        if principal.has_role(Role::TenantAdmin) {
            return Ok(false);
        }
        let map = self.of(tenant).await?;
        Ok(map.get(&service).is_some_and(|organizations| {
            !visible(organizations, &principal.organization_ids, false)
        }))
    }

    fn invalidate(&self, tenant: TenantId) {
        let mut tenants = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        tenants.remove(&tenant);
    }

    /// Drops a tenant's restrictions when any of its services changes, until `shutdown`.
    async fn follow_events(self: Arc<Self>, bus: Bus, shutdown: CancellationToken) {
        let subscription = Subscription {
            queue: None,
            bindings: ["created", "updated", "retired", "deleted"]
                .iter()
                .map(|verb| format!("catalog.service_{verb}.v1"))
                .collect(),
            concurrency: 1,
        };
        consume(bus, subscription, shutdown, |envelope| {
            let restrictions = self.clone();
            async move {
                restrictions.invalidate(envelope.tenant_id);
                Ok(())
            }
        })
        .await;
    }
}
