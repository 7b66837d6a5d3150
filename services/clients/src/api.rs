//! The clients gRPC API: decode, authorize, validate, call the store, encode. SSNs leave this
//! service masked unless the caller may see them whole, and then the read is audited.

use std::sync::Arc;

use chrono::Utc;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use caseway_api::catalog::v1::catalog_service_client::CatalogServiceClient;
use caseway_api::catalog::v1::{CodeList, GetProgramRequest, ListCodeValuesRequest};
use caseway_api::clients::v1 as pb;
use caseway_api::clients::v1::clients_service_server::ClientsService;
use caseway_api::events::v1::{ClientChanged, EnrollmentChanged};
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Authorization, Principal, authorization_of, on_behalf_of, principal};
use caseway_platform::convert::{date, timestamp};
use caseway_platform::error::{Error, Reason, Result};
use caseway_platform::etag::{self, check_version};
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event};
use caseway_platform::pii::PiiCipher;
use caseway_platform::rate_limit::FailureLimit;
use caseway_platform::server::Platform;
use caseway_platform::validate::{self, Violations, parse_id};
use caseway_platform::{Scoped, TenantId};
use tonic::transport::Channel;

use crate::domain::*;
use crate::store::{self, ClientRecord, EnrollmentRecord, NameQuery, Search};

use crate::SOURCE;

pub struct ClientsApi {
    platform: Arc<Platform>,
    cipher: Arc<PiiCipher>,
    catalog: CatalogServiceClient<Channel>,
    /// Whole-SSN searches that found no one, per user and hour.
    ssn_misses: FailureLimit,
}

impl ClientsApi {
    pub fn new(
        platform: Arc<Platform>,
        cipher: Arc<PiiCipher>,
        catalog_endpoint: &str,
    ) -> anyhow::Result<Self> {
        let channel = platform.peers.channel(catalog_endpoint)?;
        let ssn_misses = FailureLimit::new(
            platform.redis.clone(),
            "ssn-search-misses",
            platform.config.ssn_search_misses_per_hour,
            std::time::Duration::from_secs(3600),
        );
        Ok(ClientsApi {
            platform,
            cipher,
            catalog: CatalogServiceClient::new(channel),
            ssn_misses,
        })
    }

    /// Whether `program_id` names a program of the caller's tenant, asked of the catalog with
    /// the caller's own credentials.
    async fn program_exists(
        &self,
        authorization: Option<&Authorization>,
        program_id: Uuid,
    ) -> Result<bool> {
        let request = on_behalf_of(
            GetProgramRequest {
                id: program_id.to_string(),
            },
            authorization,
        );
        match self.catalog.clone().get_program(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(Error::Unavailable(format!(
                "catalog service: {}",
                status.message()
            ))),
        }
    }

    /// Checks each demographic against the tenant's code list of its category (asked of the
    /// catalog with the caller's credentials): the category must be race, ethnicity or gender
    /// and the code an active value of that list.
    async fn check_demographics(
        &self,
        authorization: Option<&Authorization>,
        demographics: &[Demographic],
        v: &mut Violations,
    ) -> Result<()> {
        let mut lists: Vec<(CodeList, Vec<String>)> = Vec::new();
        for (index, demographic) in demographics.iter().enumerate() {
            let Some(list) = demographic_list(&demographic.category) else {
                v.add(
                    format!("client.demographics[{index}].category"),
                    "must be race, ethnicity or gender",
                );
                continue;
            };
            let codes = match lists.iter().position(|(l, _)| *l == list) {
                Some(at) => &lists[at].1,
                None => {
                    let codes = self.active_codes(authorization, list).await?;
                    lists.push((list, codes));
                    &lists[lists.len() - 1].1
                }
            };
            if !codes.contains(&demographic.code) {
                v.add(
                    format!("client.demographics[{index}].code"),
                    format!(
                        "is not an active code of the tenant's {} list",
                        demographic.category
                    ),
                );
            }
        }
        Ok(())
    }

    /// The active codes of one of the tenant's code lists.
    async fn active_codes(
        &self,
        authorization: Option<&Authorization>,
        list: CodeList,
    ) -> Result<Vec<String>> {
        let mut codes = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = on_behalf_of(
                ListCodeValuesRequest {
                    page_size: 500,
                    page_token,
                    code_list: list as i32,
                    include_retired: false,
                },
                authorization,
            );
            let page = self
                .catalog
                .clone()
                .list_code_values(request)
                .await
                .map_err(|status| {
                    Error::Unavailable(format!("catalog service: {}", status.message()))
                })?
                .into_inner();
            codes.extend(page.code_values.into_iter().map(|c| c.code));
            if page.next_page_token.is_empty() {
                return Ok(codes);
            }
            page_token = page.next_page_token;
        }
    }

    /// What binds a sealed SSN to its row: it opens nowhere else.
    fn context(tenant: TenantId, id: Uuid) -> Vec<u8> {
        [tenant.as_uuid().as_bytes().as_slice(), id.as_bytes()].concat()
    }

    fn open_ssn(&self, tenant: TenantId, record: &ClientRecord) -> Result<Option<Ssn>> {
        let Some(sealed) = &record.ssn_sealed else {
            return Ok(None);
        };
        let digits = self
            .cipher
            .open(sealed, &Self::context(tenant, record.id))
            .map_err(Error::internal)?;
        Ssn::parse(&digits)
            .map(Some)
            .map_err(|e| Error::internal(anyhow::anyhow!(e)))
    }

    /// Seals the SSN of `fields` into `record`.
    fn protect(&self, tenant: TenantId, record: &mut ClientRecord, ssn: Option<&Ssn>) {
        match ssn {
            Some(ssn) => {
                record.ssn_sealed = Some(
                    self.cipher
                        .seal(ssn.digits(), &Self::context(tenant, record.id)),
                );
                record.ssn_hash = Some(self.cipher.blind_index(tenant, ssn.digits()));
                record.ssn_last4 = Some(ssn.last4().to_string());
            }
            None => {
                record.ssn_sealed = None;
                record.ssn_hash = None;
                record.ssn_last4 = None;
            }
        }
    }

    /// The request as idempotency fingerprints it: the SSN replaced by its keyed hash, so no
    /// plain hash of an SSN is ever stored.
    fn fingerprint(
        &self,
        tenant: TenantId,
        request: &pb::CreateClientRequest,
    ) -> pb::CreateClientRequest {
        let mut copy = request.clone();
        if let Some(client) = copy.client.as_mut()
            && !client.ssn.is_empty()
        {
            let digest = self.cipher.blind_index(tenant, &client.ssn);
            client.ssn = digest.iter().map(|b| format!("{b:02x}")).collect();
        }
        copy
    }
}

fn quality(v: &mut Violations, field: &str, code: i32) -> DataQuality {
    match code {
        0 => DataQuality::NotCollected,
        code => DataQuality::from_code(code).unwrap_or_else(|| {
            v.add(field, "is not a data quality code");
            DataQuality::NotCollected
        }),
    }
}

fn parse_fields(p: &pb::Client, v: &mut Violations) -> ClientFields {
    let ssn = if p.ssn.is_empty() {
        None
    } else {
        match Ssn::parse(&p.ssn) {
            Ok(ssn) => Some(ssn),
            Err(description) => {
                v.add("client.ssn", description);
                None
            }
        }
    };
    let veteran_status = match p.veteran_status {
        0 => VeteranStatus::NotCollected,
        code => VeteranStatus::from_code(code).unwrap_or_else(|| {
            v.add("client.veteran_status", "is not a veteran status");
            VeteranStatus::NotCollected
        }),
    };
    let contact = p.contact.clone().unwrap_or_default();
    ClientFields {
        first_name: p.first_name.clone(),
        middle_name: p.middle_name.clone(),
        last_name: p.last_name.clone(),
        suffix: p.suffix.clone(),
        preferred_name: p.preferred_name.clone(),
        birth_date: validate::date(v, "client.birth_date", p.birth_date.as_ref(), false),
        birth_date_quality: quality(v, "client.birth_date_quality", p.birth_date_quality),
        ssn,
        ssn_quality: quality(v, "client.ssn_quality", p.ssn_quality),
        veteran_status,
        demographics: p
            .demographics
            .iter()
            .map(|d| Demographic {
                category: d.category.clone(),
                code: d.code.clone(),
            })
            .collect(),
        contact: Contact {
            phone: contact.phone,
            email: contact.email,
            address_line1: contact.address_line1,
            address_line2: contact.address_line2,
            city: contact.city,
            state: contact.state,
            postal_code: contact.postal_code,
        },
    }
}

fn fields_of(record: &ClientRecord, ssn: Option<Ssn>) -> ClientFields {
    ClientFields {
        first_name: record.first_name.clone(),
        middle_name: record.middle_name.clone(),
        last_name: record.last_name.clone(),
        suffix: record.suffix.clone(),
        preferred_name: record.preferred_name.clone(),
        birth_date: record.birth_date,
        birth_date_quality: record.birth_date_quality,
        ssn,
        ssn_quality: record.ssn_quality,
        veteran_status: record.veteran_status,
        demographics: record.demographics.clone(),
        contact: record.contact.clone(),
    }
}

fn apply(record: &mut ClientRecord, fields: &ClientFields) {
    record.first_name = fields.first_name.clone();
    record.middle_name = fields.middle_name.clone();
    record.last_name = fields.last_name.clone();
    record.suffix = fields.suffix.clone();
    record.preferred_name = fields.preferred_name.clone();
    record.birth_date = fields.birth_date;
    record.birth_date_quality = fields.birth_date_quality;
    record.ssn_quality = fields.ssn_quality;
    record.veteran_status = fields.veteran_status;
    record.demographics = fields.demographics.clone();
    record.contact = fields.contact.clone();
}

/// The client as it leaves the service: the SSN whole only when `whole` is given.
pub fn client_to_proto(record: &ClientRecord, whole: Option<&Ssn>) -> pb::Client {
    let last4 = record.ssn_last4.clone().unwrap_or_default();
    pb::Client {
        id: record.id.to_string(),
        first_name: record.first_name.clone(),
        middle_name: record.middle_name.clone(),
        last_name: record.last_name.clone(),
        suffix: record.suffix.clone(),
        preferred_name: record.preferred_name.clone(),
        birth_date: record.birth_date.map(date),
        birth_date_quality: record.birth_date_quality as i32,
        ssn: match (whole, record.ssn_last4.is_some()) {
            (Some(ssn), _) => ssn.formatted(),
            (None, true) => masked(&last4),
            (None, false) => String::new(),
        },
        ssn_last4: last4,
        ssn_quality: record.ssn_quality as i32,
        veteran_status: record.veteran_status as i32,
        demographics: record
            .demographics
            .iter()
            .map(|d| pb::Demographic {
                category: d.category.clone(),
                code: d.code.clone(),
            })
            .collect(),
        contact: Some(pb::Contact {
            phone: record.contact.phone.clone(),
            email: record.contact.email.clone(),
            address_line1: record.contact.address_line1.clone(),
            address_line2: record.contact.address_line2.clone(),
            city: record.contact.city.clone(),
            state: record.contact.state.clone(),
            postal_code: record.contact.postal_code.clone(),
        }),
        organization_id: record
            .organization_id
            .map(|o| o.to_string())
            .unwrap_or_default(),
        etag: etag::format(record.version),
        create_time: Some(timestamp(record.created_at)),
        update_time: Some(timestamp(record.updated_at)),
    }
}

async fn publish(
    tx: &mut impl Scoped,
    verb: &str,
    record: &ClientRecord,
    changed_fields: Vec<String>,
) -> Result<()> {
    let payload = ClientChanged {
        client: Some(client_to_proto(record, None)),
        changed_fields,
    };
    outbox::enqueue(
        tx,
        Event {
            event_type: &format!("clients.client_{verb}.v1"),
            source: SOURCE,
            subject: record.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}

/// The catalog code list a demographic category takes its codes from.
fn demographic_list(category: &str) -> Option<CodeList> {
    match category {
        "race" => Some(CodeList::Race),
        "ethnicity" => Some(CodeList::Ethnicity),
        "gender" => Some(CodeList::Gender),
        _ => None,
    }
}

pub fn enrollment_to_proto(record: &EnrollmentRecord) -> pb::Enrollment {
    pb::Enrollment {
        id: record.id.to_string(),
        client_id: record.client_id.to_string(),
        program_id: record.program_id.to_string(),
        entry_date: Some(date(record.entry_date)),
        exit_date: record.exit_date.map(date),
        exit_destination: record.exit_destination.clone(),
        etag: etag::format(record.version),
        create_time: Some(timestamp(record.created_at)),
        update_time: Some(timestamp(record.updated_at)),
    }
}

async fn publish_enrollment(
    tx: &mut impl Scoped,
    verb: &str,
    record: &EnrollmentRecord,
) -> Result<()> {
    let payload = EnrollmentChanged {
        enrollment: Some(enrollment_to_proto(record)),
    };
    outbox::enqueue(
        tx,
        Event {
            event_type: &format!("clients.enrollment_{verb}.v1"),
            source: SOURCE,
            subject: record.id.to_string(),
            payload: &payload,
        },
    )
    .await?;
    Ok(())
}

async fn audit_client(
    tx: &mut impl Scoped,
    principal: &Principal,
    action: &str,
    id: Uuid,
    changed: &[String],
) -> Result<()> {
    audit::record(
        tx,
        principal,
        AuditEntry {
            action,
            resource_type: "client",
            resource_id: id,
            changed_fields: changed,
        },
    )
    .await
}

#[tonic::async_trait]
impl ClientsService for ClientsApi {
    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = authorization_of(&request);
        let message = request.into_inner();
        let input = message
            .client
            .clone()
            .ok_or_else(|| Error::invalid("client", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let fields = parse_fields(&input, &mut v);
        let requested = v.optional_id("client.organization_id", &input.organization_id);
        let organization_id = owning_organization(&caller, requested, &mut v);
        fields.validate("client", Utc::now().date_naive(), &mut v);
        v.finish()?;
        let mut v = Violations::new();
        self.check_demographics(authorization.as_ref(), &fields.demographics, &mut v)
            .await?;
        v.finish()?;

        let method = "clients.client.create";
        let fingerprint = self.fingerprint(tenant, &message);
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, method, &message.request_id, &fingerprint).await?
        {
            return Ok(Response::new(previous));
        }
        let now = Utc::now();
        let mut record = ClientRecord {
            id: Uuid::now_v7(),
            first_name: String::new(),
            middle_name: String::new(),
            last_name: String::new(),
            suffix: String::new(),
            preferred_name: String::new(),
            birth_date: None,
            birth_date_quality: DataQuality::NotCollected,
            ssn_sealed: None,
            ssn_hash: None,
            ssn_last4: None,
            ssn_quality: DataQuality::NotCollected,
            veteran_status: VeteranStatus::NotCollected,
            demographics: vec![],
            contact: Contact::default(),
            organization_id,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        apply(&mut record, &fields);
        self.protect(tenant, &mut record, fields.ssn.as_ref());
        let stored = store::insert(tx.conn(), tenant, &record).await?;
        audit_client(&mut tx, &caller, "clients.client.create", stored.id, &[]).await?;
        publish(&mut tx, "created", &stored, vec![]).await?;
        let reply = pb::CreateClientResponse {
            client: Some(client_to_proto(&stored, None)),
        };
        idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::GetClientResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let whole = match pb::SsnView::try_from(request.get_ref().ssn_view) {
            Ok(pb::SsnView::Full) => true,
            Ok(_) => false,
            Err(_) => return Err(Error::invalid("ssn_view", "is not an SSN view").into()),
        };
        if whole && !caller.has_permission(READ_SSN) {
            return Err(Error::denied(
                Reason::PermissionMissing,
                format!("seeing a whole SSN requires the {READ_SSN} permission"),
            )
            .into());
        }
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        let ssn = if whole {
            let ssn = self.open_ssn(tenant, &record)?;
            if ssn.is_some() {
                audit_client(&mut tx, &caller, "clients.client.read_ssn", id, &[]).await?;
            }
            ssn
        } else {
            None
        };
        tx.commit().await?;
        Ok(Response::new(pb::GetClientResponse {
            client: Some(client_to_proto(&record, ssn.as_ref())),
        }))
    }

    async fn update_client(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Result<Response<pb::UpdateClientResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = authorization_of(&request);
        let message = request.into_inner();
        let input = message
            .client
            .ok_or_else(|| Error::invalid("client", "is required"))?;
        let id = parse_id("client.id", &input.id)?;
        let expected = etag::parse("client.etag", &input.etag)?;
        let mask = validate::update_mask(message.update_mask.as_ref(), ClientFields::MUTABLE)?;
        let mut v = Violations::new();
        let fields = parse_fields(&input, &mut v);
        v.retain_masked("client", &mask);
        v.finish()?;
        if mask.contains(&"demographics") {
            let mut v = Violations::new();
            self.check_demographics(authorization.as_ref(), &fields.demographics, &mut v)
                .await?;
            v.finish()?;
        }

        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut record = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        check_version(expected, record.version)?;
        let mut next = fields_of(&record, self.open_ssn(tenant, &record)?);
        let changed = next.merge(&fields, &mask);
        let mut v = Violations::new();
        next.validate("client", Utc::now().date_naive(), &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(Response::new(pb::UpdateClientResponse {
                client: Some(client_to_proto(&record, None)),
            }));
        }
        apply(&mut record, &next);
        if changed.iter().any(|f| f == "ssn") {
            self.protect(tenant, &mut record, next.ssn.as_ref());
        }
        let stored = store::update(tx.conn(), &record).await?;
        audit_client(&mut tx, &caller, "clients.client.update", id, &changed).await?;
        publish(&mut tx, "updated", &stored, changed).await?;
        tx.commit().await?;
        Ok(Response::new(pb::UpdateClientResponse {
            client: Some(client_to_proto(&stored, None)),
        }))
    }

    async fn delete_client(
        &self,
        request: Request<pb::DeleteClientRequest>,
    ) -> Result<Response<pb::DeleteClientResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id)?;
        let expected = etag::parse("etag", &message.etag)?;
        let mut v = Violations::new();
        v.text("reason", &message.reason, 1, 1000);
        v.finish()?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        check_version(expected, record.version)?;
        store::delete(tx.conn(), id, &message.reason).await?;
        audit_client(&mut tx, &caller, "clients.client.delete", id, &[]).await?;
        publish(&mut tx, "deleted", &record, vec![]).await?;
        tx.commit().await?;
        Ok(Response::new(pb::DeleteClientResponse {}))
    }

    async fn list_client_history(
        &self,
        request: Request<pb::ListClientHistoryRequest>,
    ) -> Result<Response<pb::ListClientHistoryResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let id = parse_id("client_id", &message.client_id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if store::load(tx.conn(), id, false).await?.is_none() {
            return Err(Error::not_found("client", id).into());
        }
        let (entries, next_page_token) = audit::history_page(
            &mut tx,
            &self.platform.page_tokens,
            "client",
            id,
            &message.page_token,
            message.page_size,
        )
        .await?;
        tx.commit().await?;
        Ok(Response::new(pb::ListClientHistoryResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::ClientHistoryEntry {
                    action: e.action,
                    actor: e.actor,
                    changed_fields: e.changed_fields,
                    time: Some(timestamp(e.occurred_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn search_clients(
        &self,
        request: Request<pb::SearchClientsRequest>,
    ) -> Result<Response<pb::SearchClientsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let limit = validate::page_size(message.page_size)?;
        let mut v = Violations::new();
        let name = message.name.trim();
        // The edge refused a name over 200 characters; a name is read only once it passed
        // every check, since each split between words is one more reading to look up.
        let name_query = if name.is_empty() {
            None
        } else {
            let before = v.fields().len();
            v.text("name", name, 2, 200);
            if store::name_words(name) > store::MAX_NAME_WORDS {
                v.add(
                    "name",
                    format!("must have at most {} words", store::MAX_NAME_WORDS),
                );
            }
            if v.fields().len() > before {
                None
            } else {
                let parsed = NameQuery::parse(name);
                if parsed.is_none() {
                    v.add("name", "must hold at least one letter or digit");
                }
                parsed
            }
        };
        let birth_date = validate::date(&mut v, "birth_date", message.birth_date.as_ref(), false);
        let digits: String = message
            .ssn
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .collect();
        let (ssn_hash, ssn_last4) = match digits.len() {
            0 => (None, None),
            4 if digits.chars().all(|c| c.is_ascii_digit()) => (None, Some(digits.clone())),
            9 if digits.chars().all(|c| c.is_ascii_digit()) => {
                if !caller.has_permission(READ_SSN) {
                    return Err(Error::denied(
                        Reason::PermissionMissing,
                        format!("searching by a whole SSN requires the {READ_SSN} permission"),
                    )
                    .into());
                }
                (Some(self.cipher.blind_index(tenant, &digits)), None)
            }
            _ => {
                v.add("ssn", "must be the last four digits or all nine");
                (None, None)
            }
        };
        if name.is_empty() && birth_date.is_none() && digits.is_empty() {
            v.add(
                "name",
                "give a name, a date of birth or an SSN to search by",
            );
        }
        v.finish()?;
        // The filter a page token is bound to; the SSN enters it only as its keyed hash.
        let mut filter = pb::SearchClientsRequest {
            ssn: String::new(),
            page_size: 0,
            page_token: String::new(),
            ..message.clone()
        }
        .encode_to_vec();
        filter.extend(ssn_hash.iter().flatten());
        filter.extend(ssn_last4.iter().flat_map(|s| s.bytes()));
        let tokens = &self.platform.page_tokens;
        let after: Option<(f64, Uuid)> = tokens.decode(&message.page_token, tenant, &filter)?;
        let search = Search {
            name: name_query,
            birth_date,
            ssn_hash,
            ssn_last4,
        };
        let whole_ssn = search.ssn_hash.is_some();
        if whole_ssn {
            // Numbers cannot be guessed one search at a time: the misses are counted.
            self.ssn_misses.check(tenant, &caller.user_id).await?;
        }
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut matches = store::search(tx.conn(), &search, after, limit + 1).await?;
        if whole_ssn {
            // Every whole-SSN search is audited, whatever it found; each client found shows it
            // in its own history too.
            let found: Vec<String> = matches.iter().map(|(c, _)| c.id.to_string()).collect();
            audit::record(
                &mut tx,
                &caller,
                AuditEntry {
                    action: "clients.ssn_search",
                    resource_type: "ssn_search",
                    resource_id: Uuid::now_v7(),
                    changed_fields: &found,
                },
            )
            .await?;
            for (client, _) in &matches {
                audit_client(
                    &mut tx,
                    &caller,
                    "clients.client.ssn_search",
                    client.id,
                    &[],
                )
                .await?;
            }
        }
        tx.commit().await?;
        if whole_ssn && matches.is_empty() && message.page_token.is_empty() {
            self.ssn_misses.failed(tenant, &caller.user_id).await?;
        }
        let next_page_token =
            tokens.finish_page(&mut matches, limit, tenant, &filter, |(c, score)| {
                (*score, c.id)
            });
        Ok(Response::new(pb::SearchClientsResponse {
            matches: matches
                .iter()
                .map(|(client, score)| pb::ClientMatch {
                    client: Some(client_to_proto(client, None)),
                    score: *score,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn start_enrollment(
        &self,
        request: Request<pb::StartEnrollmentRequest>,
    ) -> Result<Response<pb::StartEnrollmentResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let authorization = authorization_of(&request);
        let message = request.into_inner();
        let input = message
            .enrollment
            .clone()
            .ok_or_else(|| Error::invalid("enrollment", "is required"))?;
        let mut v = Violations::new();
        v.request_id(&message.request_id);
        let client_id = v.id("enrollment.client_id", &input.client_id);
        let program_id = v.id("enrollment.program_id", &input.program_id);
        let entry_date = validate::date(
            &mut v,
            "enrollment.entry_date",
            input.entry_date.as_ref(),
            true,
        );
        validate_entry(entry_date, Utc::now().date_naive(), &mut v);
        v.finish()?;
        let (client_id, program_id, entry_date) = (
            client_id.expect("validated"),
            program_id.expect("validated"),
            entry_date.expect("validated"),
        );
        if !self
            .program_exists(authorization.as_ref(), program_id)
            .await?
        {
            return Err(Error::invalid(
                "enrollment.program_id",
                "does not name a program of this tenant",
            )
            .into());
        }
        let method = "clients.enrollment.start";
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) =
            idempotency::claim(&mut tx, method, &message.request_id, &message).await?
        {
            return Ok(Response::new(previous));
        }
        if store::load(tx.conn(), client_id, true).await?.is_none() {
            return Err(Error::invalid(
                "enrollment.client_id",
                "does not name a client of this tenant",
            )
            .into());
        }
        if let Some(open) = store::open_enrollment(tx.conn(), client_id, program_id).await? {
            return Err(Error::precondition(
                "one_open_enrollment_per_program",
                format!("enrollments/{open}"),
                "the client already has an open enrollment in this program; exit it first",
            )
            .into());
        }
        let record =
            store::insert_enrollment(tx.conn(), tenant, client_id, program_id, entry_date).await?;
        audit::record(
            &mut tx,
            &caller,
            AuditEntry {
                action: "clients.enrollment.start",
                resource_type: "enrollment",
                resource_id: record.id,
                changed_fields: &[],
            },
        )
        .await?;
        publish_enrollment(&mut tx, "started", &record).await?;
        let reply = pb::StartEnrollmentResponse {
            enrollment: Some(enrollment_to_proto(&record)),
        };
        idempotency::complete(&mut tx, method, &message.request_id, &reply).await?;
        tx.commit().await?;
        Ok(Response::new(reply))
    }

    async fn exit_enrollment(
        &self,
        request: Request<pb::ExitEnrollmentRequest>,
    ) -> Result<Response<pb::ExitEnrollmentResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id)?;
        let expected = etag::parse("etag", &message.etag)?;
        let mut v = Violations::new();
        let exit_date = validate::date(&mut v, "exit_date", message.exit_date.as_ref(), true);
        v.finish()?;
        let exit_date = exit_date.expect("validated");
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let current = store::load_enrollment(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("enrollment", id))?;
        check_version(expected, current.version)?;
        if current.exit_date.is_some() {
            return Err(Error::precondition(
                "enrollment_is_open",
                format!("enrollments/{id}"),
                "the enrollment has already been exited",
            )
            .into());
        }
        let mut v = Violations::new();
        validate_exit(
            current.entry_date,
            exit_date,
            Utc::now().date_naive(),
            &message.exit_destination,
            &mut v,
        );
        v.finish()?;
        let record =
            store::exit_enrollment(tx.conn(), id, exit_date, &message.exit_destination).await?;
        let changed = vec!["exit_date".to_string(), "exit_destination".to_string()];
        audit::record(
            &mut tx,
            &caller,
            AuditEntry {
                action: "clients.enrollment.exit",
                resource_type: "enrollment",
                resource_id: id,
                changed_fields: &changed,
            },
        )
        .await?;
        publish_enrollment(&mut tx, "exited", &record).await?;
        tx.commit().await?;
        Ok(Response::new(pb::ExitEnrollmentResponse {
            enrollment: Some(enrollment_to_proto(&record)),
        }))
    }

    async fn get_enrollment(
        &self,
        request: Request<pb::GetEnrollmentRequest>,
    ) -> Result<Response<pb::GetEnrollmentResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let id = parse_id("id", &request.get_ref().id)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load_enrollment(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("enrollment", id))?;
        tx.commit().await?;
        Ok(Response::new(pb::GetEnrollmentResponse {
            enrollment: Some(enrollment_to_proto(&record)),
        }))
    }

    async fn list_enrollments(
        &self,
        request: Request<pb::ListEnrollmentsRequest>,
    ) -> Result<Response<pb::ListEnrollmentsResponse>, Status> {
        let caller = principal(&request)?;
        let tenant = caller.tenant()?;
        let message = request.into_inner();
        let client_id = parse_id("client_id", &message.client_id)?;
        let limit = validate::page_size(message.page_size)?;
        let filter = message.client_id.as_bytes();
        let tokens = &self.platform.page_tokens;
        let after = tokens.decode(&message.page_token, tenant, filter)?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if store::load(tx.conn(), client_id, false).await?.is_none() {
            return Err(Error::not_found("client", client_id).into());
        }
        let mut rows = store::list_enrollments(tx.conn(), client_id, after, limit + 1).await?;
        tx.commit().await?;
        let next_page_token =
            tokens.finish_page(&mut rows, limit, tenant, filter, |e| (e.entry_date, e.id));
        Ok(Response::new(pb::ListEnrollmentsResponse {
            enrollments: rows.iter().map(enrollment_to_proto).collect(),
            next_page_token,
        }))
    }
}
