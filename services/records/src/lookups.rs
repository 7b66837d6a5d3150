//! What recording needs to know from the catalog and the clients service, asked over gRPC with
//! the caller's credentials and cached in process: catalog entries (services, grants,
//! providers, code values) until a catalog event says they changed; a client that exists until
//! `clients.client_deleted.v1`, an enrollment until `clients.enrollment_exited.v1`, a barrier's
//! client for good (it never changes). Only what was found is cached, so a client created a
//! moment ago is asked for, not refused; a deletion is felt when its event arrives (a few
//! milliseconds after its commit).

use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tonic::transport::Channel;
use uuid::Uuid;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::clients::v1::barriers_service_client::BarriersServiceClient;
use caseway_api::clients::v1::clients_service_client::ClientsServiceClient;
use caseway_api::common::v1::LifecycleState;
use caseway_platform::TenantId;
use caseway_platform::auth::{Authorization, on_behalf_of};
use caseway_platform::cache::KeyedCache;
use caseway_platform::error::{Error, Result};
use caseway_platform::server::NodeBuilder;

use crate::domain::{EnrollmentFacts, GrantFacts, ServiceFacts, UnitOfMeasure};

pub struct Lookups {
    catalog: CatalogServiceClient<Channel>,
    clients: ClientsServiceClient<Channel>,
    barriers: BarriersServiceClient<Channel>,
    services: Arc<KeyedCache<ServiceFacts>>,
    grants: Arc<KeyedCache<GrantFacts>>,
    providers: Arc<KeyedCache<bool>>,
    code_values: Arc<KeyedCache<CodeValueFacts>>,
    clients_found: Arc<KeyedCache<()>>,
    enrollments: Arc<KeyedCache<EnrollmentFacts>>,
    barrier_clients: Arc<KeyedCache<Uuid>>,
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
    pub fn new(catalog_endpoint: &str, clients_endpoint: &str) -> anyhow::Result<Self> {
        let catalog = Channel::from_shared(catalog_endpoint.to_string())?.connect_lazy();
        let clients = Channel::from_shared(clients_endpoint.to_string())?.connect_lazy();
        Ok(Lookups {
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
    pub fn follow_events(&self, platform_bus: &caseway_platform::bus::Bus, node: &mut NodeBuilder) {
        fn changes(kind: &str) -> Vec<String> {
            ["updated", "retired", "deleted"]
                .iter()
                .map(|verb| format!("catalog.{kind}_{verb}.v1"))
                .collect()
        }
        let bus = platform_bus.clone();
        let services = self.services.clone();
        node.add_worker("records-service-cache", move |token| {
            services.follow_events(bus, changes("service"), token)
        });
        let bus = platform_bus.clone();
        let grants = self.grants.clone();
        node.add_worker("records-grant-cache", move |token| {
            grants.follow_events(bus, changes("grant"), token)
        });
        let bus = platform_bus.clone();
        let providers = self.providers.clone();
        node.add_worker("records-provider-cache", move |token| {
            providers.follow_events(bus, changes("provider"), token)
        });
        let bus = platform_bus.clone();
        let code_values = self.code_values.clone();
        node.add_worker("records-code-value-cache", move |token| {
            code_values.follow_events(bus, changes("code_value"), token)
        });
        let bus = platform_bus.clone();
        let clients = self.clients_found.clone();
        node.add_worker("records-client-cache", move |token| {
            clients.follow_events(bus, vec!["clients.client_deleted.v1".into()], token)
        });
        let bus = platform_bus.clone();
        let enrollments = self.enrollments.clone();
        node.add_worker("records-enrollment-cache", move |token| {
            enrollments.follow_events(bus, vec!["clients.enrollment_exited.v1".into()], token)
        });
    }

    /// The service as the catalog shows it to some caller of the tenant; visibility to this
    /// caller is the domain's check.
    pub async fn service(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<ServiceFacts>>> {
        if let Some(found) = self.services.get(tenant, id) {
            return Ok(Some(found));
        }
        let generation = self.services.generation();
        let request = on_behalf_of(
            catalog_pb::GetServiceRequest { id: id.to_string() },
            authorization,
        );
        let service = match self.catalog.clone().get_service(request).await {
            Ok(reply) => reply.into_inner().service.unwrap_or_default(),
            Err(status) => return absent(status, "catalog"),
        };
        let unit_of_measure = match catalog_pb::UnitOfMeasure::try_from(service.unit_of_measure) {
            Ok(catalog_pb::UnitOfMeasure::Dollars) => UnitOfMeasure::Dollars,
            Ok(catalog_pb::UnitOfMeasure::Hours) => UnitOfMeasure::Hours,
            Ok(catalog_pb::UnitOfMeasure::Minutes) => UnitOfMeasure::Minutes,
            _ => UnitOfMeasure::Count,
        };
        let facts = Arc::new(ServiceFacts {
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
        });
        // A restricted service answered to one caller is checked for the next one by the
        // domain, so it may be cached whoever asked.
        self.services.insert(tenant, id, facts.clone(), generation);
        Ok(Some(facts))
    }

    pub async fn grant(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<GrantFacts>>> {
        if let Some(found) = self.grants.get(tenant, id) {
            return Ok(Some(found));
        }
        let generation = self.grants.generation();
        let request = on_behalf_of(
            catalog_pb::GetGrantRequest { id: id.to_string() },
            authorization,
        );
        let grant = match self.catalog.clone().get_grant(request).await {
            Ok(reply) => reply.into_inner().grant.unwrap_or_default(),
            Err(status) => return absent(status, "catalog"),
        };
        let facts = Arc::new(GrantFacts {
            id,
            active: grant.state != LifecycleState::Retired as i32,
            start_date: date(grant.start_date.as_ref()).unwrap_or(NaiveDate::MIN),
            end_date: date(grant.end_date.as_ref()),
        });
        self.grants.insert(tenant, id, facts.clone(), generation);
        Ok(Some(facts))
    }

    pub async fn provider_exists(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<bool> {
        if self.providers.get(tenant, id).is_some() {
            return Ok(true);
        }
        let generation = self.providers.generation();
        let request = on_behalf_of(
            catalog_pb::GetProviderRequest { id: id.to_string() },
            authorization,
        );
        match self.catalog.clone().get_provider(request).await {
            Ok(_) => {
                self.providers
                    .insert(tenant, id, Arc::new(true), generation);
                Ok(true)
            }
            Err(status) => absent::<()>(status, "catalog").map(|_| false),
        }
    }

    pub async fn code_value(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<CodeValueFacts>>> {
        if let Some(found) = self.code_values.get(tenant, id) {
            return Ok(Some(found));
        }
        let generation = self.code_values.generation();
        let request = on_behalf_of(
            catalog_pb::GetCodeValueRequest { id: id.to_string() },
            authorization,
        );
        let value = match self.catalog.clone().get_code_value(request).await {
            Ok(reply) => reply.into_inner().code_value.unwrap_or_default(),
            Err(status) => return absent(status, "catalog"),
        };
        let facts = Arc::new(CodeValueFacts {
            code_list: catalog_pb::CodeList::try_from(value.code_list)
                .unwrap_or(catalog_pb::CodeList::Unspecified),
            active: value.state != LifecycleState::Retired as i32,
        });
        self.code_values
            .insert(tenant, id, facts.clone(), generation);
        Ok(Some(facts))
    }

    pub async fn client_exists(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<bool> {
        if self.clients_found.get(tenant, id).is_some() {
            return Ok(true);
        }
        let generation = self.clients_found.generation();
        let request = on_behalf_of(
            clients_pb::GetClientRequest {
                id: id.to_string(),
                ssn_view: 0,
            },
            authorization,
        );
        match self.clients.clone().get_client(request).await {
            Ok(_) => {
                self.clients_found
                    .insert(tenant, id, Arc::new(()), generation);
                Ok(true)
            }
            Err(status) => absent::<()>(status, "clients").map(|_| false),
        }
    }

    pub async fn enrollment(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Arc<EnrollmentFacts>>> {
        if let Some(found) = self.enrollments.get(tenant, id) {
            return Ok(Some(found));
        }
        let generation = self.enrollments.generation();
        let request = on_behalf_of(
            clients_pb::GetEnrollmentRequest { id: id.to_string() },
            authorization,
        );
        let enrollment = match self.clients.clone().get_enrollment(request).await {
            Ok(reply) => reply.into_inner().enrollment.unwrap_or_default(),
            Err(status) => return absent(status, "clients"),
        };
        let facts = Arc::new(EnrollmentFacts {
            id,
            client_id: uuid(&enrollment.client_id).unwrap_or_default(),
            program_id: uuid(&enrollment.program_id).unwrap_or_default(),
            entry_date: date(enrollment.entry_date.as_ref()).unwrap_or(NaiveDate::MAX),
            exit_date: date(enrollment.exit_date.as_ref()),
        });
        self.enrollments
            .insert(tenant, id, facts.clone(), generation);
        Ok(Some(facts))
    }

    /// The client a barrier belongs to.
    pub async fn barrier_client(
        &self,
        authorization: Option<&Authorization>,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Uuid>> {
        if let Some(client) = self.barrier_clients.get(tenant, id) {
            return Ok(Some(*client));
        }
        let generation = self.barrier_clients.generation();
        let request = on_behalf_of(
            clients_pb::GetBarrierRequest { id: id.to_string() },
            authorization,
        );
        match self.barriers.clone().get_barrier(request).await {
            Ok(reply) => {
                let client = reply.into_inner().barrier.and_then(|b| uuid(&b.client_id));
                if let Some(client) = client {
                    self.barrier_clients
                        .insert(tenant, id, Arc::new(client), generation);
                }
                Ok(client)
            }
            Err(status) => absent(status, "clients"),
        }
    }
}
