//! The catalog, as records, authorizations and clients ask it: services, grants, providers,
//! programs and code values (with the caller's credentials, so the catalog applies the
//! caller's tenant and organizations), and which services are restricted to security
//! organizations (with this service's own identity: the answer must not depend on who asks).
//! Entries are cached in process until a catalog event says they changed; only what was found
//! is cached, so a service created a moment ago is asked for, not refused.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::catalog::v1 as pb;
use caseway_api::catalog::v1::catalog_internal_service_client::CatalogInternalServiceClient;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::common::v1::LifecycleState;
use caseway_platform::access::READ_SERVICE_RESTRICTIONS;
use caseway_platform::auth::{Principal, Role, ServiceIdentity};
use caseway_platform::bus::{Bus, Subscription, consume};
use caseway_platform::cache::KeyedCache;
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::{NodeBuilder, Platform};
use caseway_platform::{GrantId, ServiceId, TenantId};

use crate::call::{self, Retry, call};
use crate::rules::{CodeValueFacts, GrantFacts, ServiceFacts, UnitOfMeasure, visible};

const PEER: &str = "catalog";

pub struct Catalog {
    client: CatalogServiceClient<Channel>,
    services: Arc<KeyedCache<ServiceFacts>>,
    grants: Arc<KeyedCache<GrantFacts>>,
    providers: Arc<KeyedCache<()>>,
    code_values: Arc<KeyedCache<CodeValueFacts>>,
    /// Which services are restricted to security organizations.
    pub restrictions: Arc<Restrictions>,
    /// The service asking (`records`), naming its workers.
    caller: &'static str,
}

fn state_active(state: i32) -> Result<bool> {
    match LifecycleState::try_from(state) {
        Ok(LifecycleState::Active) => Ok(true),
        Ok(LifecycleState::Retired) => Ok(false),
        _ => Err(Error::Unavailable(format!(
            "{PEER} service: unreadable lifecycle state {state}"
        ))),
    }
}

/// The catalog's unit of measure, which every service has.
pub fn unit_of_measure(value: i32) -> Result<UnitOfMeasure> {
    match pb::UnitOfMeasure::try_from(value) {
        Ok(pb::UnitOfMeasure::Dollars) => Ok(UnitOfMeasure::Dollars),
        Ok(pb::UnitOfMeasure::Hours) => Ok(UnitOfMeasure::Hours),
        Ok(pb::UnitOfMeasure::Minutes) => Ok(UnitOfMeasure::Minutes),
        Ok(pb::UnitOfMeasure::Count) => Ok(UnitOfMeasure::Count),
        _ => Err(Error::Unavailable(format!(
            "{PEER} service: unreadable unit of measure {value}"
        ))),
    }
}

fn service_facts(id: ServiceId, service: pb::Service) -> Result<ServiceFacts> {
    fn ids<T: From<Uuid>>(texts: &[String]) -> Result<Vec<T>> {
        texts
            .iter()
            .map(|text| call::id(PEER, "id", text))
            .collect()
    }
    Ok(ServiceFacts {
        id,
        active: state_active(service.state)?,
        direct: match pb::DeliveryMode::try_from(service.delivery_mode) {
            Ok(pb::DeliveryMode::Direct) => true,
            Ok(pb::DeliveryMode::Indirect) => false,
            _ => {
                return Err(Error::Unavailable(format!(
                    "{PEER} service: unreadable delivery mode {}",
                    service.delivery_mode
                )));
            }
        },
        unit_of_measure: unit_of_measure(service.unit_of_measure)?,
        default_unit_value: Decimal::from_str(&service.default_unit_value).map_err(|_| {
            Error::Unavailable(format!(
                "{PEER} service: unreadable default unit value {:?}",
                service.default_unit_value
            ))
        })?,
        organization_ids: ids(&service.organization_ids)?,
        grant_ids: ids(&service.grant_ids)?,
        service_group_id: call::optional_id(PEER, "service group id", &service.service_group_id)?,
        unit_value_fixed: service.unit_value_fixed,
    })
}

impl Catalog {
    /// `caller` (the service asking) and the platform's service identity are what the
    /// catalog's internal method is asked with.
    pub fn new(platform: &Platform, endpoint: &str, caller: &'static str) -> anyhow::Result<Self> {
        let channel = platform.peers.channel(endpoint)?;
        Ok(Catalog {
            restrictions: Arc::new(Restrictions::new(
                channel.clone(),
                platform.service_identity.clone(),
                caller,
            )),
            client: CatalogServiceClient::new(channel),
            services: Arc::new(KeyedCache::new()),
            grants: Arc::new(KeyedCache::new()),
            providers: Arc::new(KeyedCache::new()),
            code_values: Arc::new(KeyedCache::new()),
            caller,
        })
    }

    /// Workers that drop cached entries as the catalog's events arrive.
    pub fn follow_events(&self, bus: &Bus, node: &mut NodeBuilder) {
        fn changes(kind: &str) -> Vec<String> {
            ["updated", "retired", "deleted"]
                .iter()
                .map(|verb| format!("catalog.{kind}_{verb}.v1"))
                .collect()
        }
        let caller = self.caller;
        follow(
            node,
            caller,
            "service-cache",
            &self.services,
            bus,
            changes("service"),
        );
        follow(
            node,
            caller,
            "grant-cache",
            &self.grants,
            bus,
            changes("grant"),
        );
        follow(
            node,
            caller,
            "provider-cache",
            &self.providers,
            bus,
            changes("provider"),
        );
        follow(
            node,
            caller,
            "code-value-cache",
            &self.code_values,
            bus,
            changes("code_value"),
        );
        let (restrictions, events) = (self.restrictions.clone(), bus.clone());
        node.add_worker(worker_name(caller, "service-restrictions"), move |token| {
            restrictions.follow_events(events, token)
        });
    }

    /// The service as the catalog shows it to some caller of the tenant; visibility to this
    /// caller is the domain's check, so it may be cached whoever asked.
    pub async fn service(
        &self,
        caller: &Caller,
        id: ServiceId,
    ) -> Result<Option<Arc<ServiceFacts>>> {
        self.services
            .get_or_load(caller.tenant, id.0, || async {
                let reply = call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetServiceRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.client.clone();
                        async move { client.get_service(request).await }
                    },
                )
                .await?;
                match reply.and_then(|r| r.service) {
                    Some(service) => service_facts(id, service).map(Some),
                    None => Ok(None),
                }
            })
            .await
    }

    pub async fn grant(&self, caller: &Caller, id: GrantId) -> Result<Option<Arc<GrantFacts>>> {
        self.grants
            .get_or_load(caller.tenant, id.0, || async {
                let reply = call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetGrantRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.client.clone();
                        async move { client.get_grant(request).await }
                    },
                )
                .await?;
                let Some(grant) = reply.and_then(|r| r.grant) else {
                    return Ok(None);
                };
                Ok(Some(GrantFacts {
                    id,
                    active: state_active(grant.state)?,
                    start_date: call::date(PEER, "grant start date", grant.start_date.as_ref())?
                        .ok_or_else(|| {
                            Error::Unavailable(format!("{PEER} service: a grant without a start"))
                        })?,
                    end_date: call::date(PEER, "grant end date", grant.end_date.as_ref())?,
                }))
            })
            .await
    }

    pub async fn provider_exists(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        let found_one = self
            .providers
            .get_or_load(caller.tenant, id, || async {
                call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetProviderRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.client.clone();
                        async move { client.get_provider(request).await }
                    },
                )
                .await
                .map(|reply| reply.map(|_| ()))
            })
            .await?;
        Ok(found_one.is_some())
    }

    pub async fn code_value(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Option<Arc<CodeValueFacts>>> {
        self.code_values
            .get_or_load(caller.tenant, id, || async {
                let reply = call::get(
                    PEER,
                    || Ok(caller.forward(pb::GetCodeValueRequest { id: id.to_string() })),
                    |request| {
                        let mut client = self.client.clone();
                        async move { client.get_code_value(request).await }
                    },
                )
                .await?;
                let Some(value) = reply.and_then(|r| r.code_value) else {
                    return Ok(None);
                };
                Ok(Some(CodeValueFacts {
                    code_list: pb::CodeList::try_from(value.code_list)
                        .ok()
                        .filter(|list| *list != pb::CodeList::Unspecified)
                        .ok_or_else(|| {
                            Error::Unavailable(format!(
                                "{PEER} service: unreadable code list {}",
                                value.code_list
                            ))
                        })?,
                    active: state_active(value.state)?,
                    code: value.code,
                }))
            })
            .await
    }

    /// Whether `id` names a program of the caller's tenant.
    pub async fn program_exists(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        let reply = call::get(
            PEER,
            || Ok(caller.forward(pb::GetProgramRequest { id: id.to_string() })),
            |request| {
                let mut client = self.client.clone();
                async move { client.get_program(request).await }
            },
        )
        .await?;
        Ok(reply.is_some())
    }

    /// The active codes of one of the tenant's code lists, every page.
    pub async fn active_codes(&self, caller: &Caller, list: pb::CodeList) -> Result<Vec<String>> {
        let mut codes = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = call(
                PEER,
                Retry::Idempotent,
                || {
                    Ok(caller.forward(pb::ListCodeValuesRequest {
                        page_size: 500,
                        page_token: page_token.clone(),
                        code_list: list as i32,
                        include_retired: false,
                    }))
                },
                |request| {
                    let mut client = self.client.clone();
                    async move { client.list_code_values(request).await }
                },
            )
            .await
            .map_err(|failure| failure.into_error(PEER))?;
            codes.extend(page.code_values.into_iter().map(|c| c.code));
            if page.next_page_token.is_empty() {
                return Ok(codes);
            }
            page_token = page.next_page_token;
        }
    }
}

/// A worker's name: the service asking and what the worker keeps.
fn worker_name(caller: &str, what: &str) -> &'static str {
    // Named once per worker at start-up.
    Box::leak(format!("{caller}-{what}").into_boxed_str())
}

/// A worker that drops `cache`'s entries as events of `event_types` arrive.
pub(crate) fn follow<V: Send + Sync + 'static>(
    node: &mut NodeBuilder,
    caller: &str,
    what: &str,
    cache: &Arc<KeyedCache<V>>,
    bus: &Bus,
    event_types: Vec<String>,
) {
    let (cache, bus) = (cache.clone(), bus.clone());
    node.add_worker(worker_name(caller, what), move |token| {
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
        let reply = call(
            PEER,
            Retry::Idempotent,
            || {
                self.identity.request(
                    pb::ListServiceRestrictionsRequest {},
                    self.caller,
                    tenant,
                    READ_SERVICE_RESTRICTIONS,
                )
            },
            |request| {
                let mut client = self.catalog.clone();
                async move { client.list_service_restrictions(request).await }
            },
        )
        .await
        .map_err(|failure| failure.into_error(PEER))?;
        let mut map = RestrictionMap::new();
        for restriction in reply.restrictions {
            // The catalog's own ids: one that does not parse is its fault, not the caller's,
            // and guessing could show what it hides.
            let service = call::id(PEER, "restricted service id", &restriction.service_id)?;
            let organizations = restriction
                .organization_ids
                .iter()
                .map(|o| call::id(PEER, "organization id", o))
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
    pub async fn hidden_from(
        &self,
        tenant: TenantId,
        principal: &Principal,
    ) -> Result<Vec<ServiceId>> {
        if principal.has_role(Role::TenantAdmin) {
            return Ok(Vec::new());
        }
        let map = self.of(tenant).await?;
        Ok(map
            .iter()
            .filter(|(_, organizations)| {
                !visible(organizations, &principal.organization_ids, false)
            })
            .map(|(service, _)| ServiceId(*service))
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
