//! The service room of the clients service: the use cases of clients and enrollments, one
//! function per operation, each owning its transaction, idempotency, audit and the events it
//! enqueues. SSNs are sealed before they are stored and opened only to be shown whole to a
//! caller allowed to see them, and then the read is audited; whole-SSN searches are audited
//! and their misses counted per user.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use caseway_api::clients::v1 as pb;
use caseway_peers::catalog::Catalog;
use caseway_platform::audit::{self, AuditEntry, AuditRecord};
use caseway_platform::auth::Principal;
use caseway_platform::caller::Caller;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Fingerprint, Key};
use caseway_platform::outbox;
use caseway_platform::paging::PageRequest;
use caseway_platform::rate_limit::FailureLimit;
use caseway_platform::server::Platform;
use caseway_platform::validate::Violations;
use caseway_platform::{Scoped, TenantId};

use crate::cache::ClientCache;
use crate::convert;
use crate::domain::*;
use crate::events;
use crate::pii::ssn_context;
use crate::store::{self, ClientRecord};
use crate::tenant_keys::{TENANT_KEY_ID, TenantKey, TenantKeys};

/// What an idempotent use case gives: what it did, or the reply it gave the first time the
/// same request came (stored as it was sent, so a retry reads what the first call read).
pub enum Outcome<T, R> {
    Done(T),
    Replay(R),
}

impl<T, R> Outcome<T, R> {
    /// The reply: `encode` of what was done, or the stored one.
    pub fn reply(self, encode: impl FnOnce(&T) -> R) -> R {
        match self {
            Outcome::Done(value) => encode(&value),
            Outcome::Replay(reply) => reply,
        }
    }
}

/// INVALID_ARGUMENT naming `field` unless `client_id` is a (not deleted) client of the tenant.
pub(crate) async fn client_must_exist(
    tx: &mut impl Scoped,
    field: &str,
    client_id: Uuid,
) -> Result<()> {
    if store::load(tx.conn(), client_id, false).await?.is_none() {
        return Err(Error::invalid(
            field,
            "does not name a client of this tenant",
        ));
    }
    Ok(())
}

/// NOT_FOUND unless `client_id` is a (not deleted) client of the tenant.
pub(crate) async fn ensure_client(tx: &mut impl Scoped, client_id: Uuid) -> Result<()> {
    if store::load(tx.conn(), client_id, false).await?.is_none() {
        return Err(Error::not_found("client", client_id));
    }
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

/// Seals again with the tenant's own key the SSNs sealed with a deployment key before
/// tenants had keys of their own (and indexes them with its hash key), `batch` clients a
/// transaction; how many. Until then a whole-SSN search does not find them, and a purge
/// of the tenant cannot shred them.
pub async fn reseal_legacy_ssns(
    db: &Db,
    keys: &TenantKeys,
    tenant: TenantId,
    batch: i64,
) -> Result<u64> {
    let mut resealed = 0;
    loop {
        let mut tx = db.tenant_tx(tenant).await?;
        let legacy = store::legacy_sealed_ssns(tx.conn(), TENANT_KEY_ID, batch).await?;
        if legacy.is_empty() {
            // A tenant with nothing to move gets no key for it.
            tx.commit().await?;
            return Ok(resealed);
        }
        let key = keys
            .key(tenant)
            .await
            .map_err(|e| Error::Unavailable(format!("the tenant key store: {e:#}")))?;
        for (id, sealed) in &legacy {
            let context = ssn_context(tenant, *id);
            let digits = keys
                .deployment()
                .open(sealed, &context)
                .map_err(Error::internal)?;
            let again = key.seal(&digits, &context);
            store::reseal_ssn(tx.conn(), *id, &again, &key.blind_index(&digits)).await?;
        }
        tx.commit().await?;
        resealed += legacy.len() as u64;
        if (legacy.len() as i64) < batch {
            return Ok(resealed);
        }
    }
}

pub struct Clients {
    platform: Arc<Platform>,
    keys: Arc<TenantKeys>,
    catalog: Arc<Catalog>,
    /// Clients as GetClient shows them with the SSN masked.
    cache: Arc<ClientCache>,
    /// Whole-SSN searches that found no one, per user and hour.
    ssn_misses: FailureLimit,
}

impl Clients {
    pub fn new(
        platform: Arc<Platform>,
        keys: Arc<TenantKeys>,
        catalog: Arc<Catalog>,
        cache: Arc<ClientCache>,
    ) -> Self {
        let ssn_misses = FailureLimit::new(
            platform.redis.clone(),
            "ssn-search-misses",
            platform.config.ssn_search_misses_per_hour,
            std::time::Duration::from_secs(3600),
        );
        Clients {
            platform,
            keys,
            catalog,
            cache,
            ssn_misses,
        }
    }

    /// Checks each demographic against the tenant's code list of its category (asked of the
    /// catalog with the caller's credentials): the category must be race, ethnicity or gender
    /// and the code an active value of that list.
    async fn check_demographics(
        &self,
        caller: &Caller,
        demographics: &[Demographic],
        v: &mut Violations,
    ) -> Result<()> {
        let mut lists: Vec<(DemographicCategory, Vec<String>)> = Vec::new();
        for (index, demographic) in demographics.iter().enumerate() {
            let Some(category) = DemographicCategory::parse(&demographic.category) else {
                v.add(
                    format!("client.demographics[{index}].category"),
                    "must be race, ethnicity or gender",
                );
                continue;
            };
            let codes = match lists.iter().position(|(c, _)| *c == category) {
                Some(at) => &lists[at].1,
                None => {
                    let codes = self
                        .catalog
                        .active_codes(caller, convert::code_list(category))
                        .await?;
                    lists.push((category, codes));
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

    /// The tenant's own PII key (made on its first use); UNAVAILABLE while its store is.
    async fn tenant_key(&self, tenant: TenantId) -> Result<Arc<TenantKey>> {
        self.keys
            .key(tenant)
            .await
            .map_err(|e| Error::Unavailable(format!("the tenant key store: {e:#}")))
    }

    async fn open_ssn(&self, tenant: TenantId, record: &ClientRecord) -> Result<Option<Ssn>> {
        let Some(sealed) = &record.ssn_sealed else {
            return Ok(None);
        };
        let context = ssn_context(tenant, record.client.id);
        let digits = if sealed.key_id == TENANT_KEY_ID {
            self.tenant_key(tenant).await?.open(sealed, &context)
        } else {
            // Sealed before tenants had keys of their own (`caseway tenant reseal` moves it).
            self.keys.deployment().open(sealed, &context)
        }
        .map_err(Error::internal)?;
        Ssn::parse(&digits)
            .map(Some)
            .map_err(|e| Error::internal(anyhow::anyhow!(e)))
    }

    /// Seals `ssn` into `record` (or clears it) with the tenant's key.
    fn protect(key: &TenantKey, tenant: TenantId, record: &mut ClientRecord, ssn: Option<&Ssn>) {
        match ssn {
            Some(ssn) => {
                record.ssn_sealed =
                    Some(key.seal(ssn.digits(), &ssn_context(tenant, record.client.id)));
                record.ssn_hash = Some(key.blind_index(ssn.digits()));
                record.client.ssn_last4 = Some(ssn.last4().to_string());
            }
            None => {
                record.ssn_sealed = None;
                record.ssn_hash = None;
                record.client.ssn_last4 = None;
            }
        }
    }

    /// Creates a client. A retry is known by the request's keyed hash, so no plain hash of an
    /// SSN is ever stored.
    pub async fn create(
        &self,
        caller: &Caller,
        input: NewClient,
    ) -> Result<Outcome<Client, pb::CreateClientResponse>> {
        let tenant = caller.tenant;
        let mut v = Violations::new();
        self.check_demographics(caller, &input.fields.demographics, &mut v)
            .await?;
        v.finish()?;

        let method = "clients.client.create";
        let tenant_key = self.tenant_key(tenant).await?;
        let fingerprint = Fingerprint::of_bytes(&tenant_key.keyed_hash(&input.asked.request));
        let key = Key::new(method, &input.asked.request_id, fingerprint);
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(Outcome::Replay(previous));
        }
        let mut record = ClientRecord {
            client: Client::new(
                Uuid::now_v7(),
                input.organization_id,
                Utc::now(),
                &input.fields,
            ),
            ssn_sealed: None,
            ssn_hash: None,
        };
        Self::protect(&tenant_key, tenant, &mut record, input.fields.ssn.as_ref());
        let stored = store::insert(tx.conn(), tenant, &record).await?.client;
        audit_client(&mut tx, &caller.principal, method, stored.id, &[]).await?;
        outbox::enqueue(&mut tx, events::client_created(&stored).event()).await?;
        idempotency::complete(&mut tx, &key, &convert::client_created(&stored)).await?;
        tx.commit().await?;
        Ok(Outcome::Done(stored))
    }

    /// The client, with its SSN whole when asked for (which takes the permission to see it,
    /// and is audited when there is one to show). With the SSN masked, from the cache of
    /// clients when it holds it (the hot read path; docs/api.md says how fresh it is), unless
    /// the caller asks for a fresh read.
    pub async fn get(
        &self,
        caller: &Caller,
        input: ClientRead,
    ) -> Result<(Arc<Client>, Option<Ssn>)> {
        if input.whole_ssn {
            may_see_whole_ssn(&caller.principal, "seeing")?;
        }
        let (tenant, id) = (caller.tenant, input.id);
        if !input.whole_ssn {
            // Nothing to audit: one statement, no transaction.
            let load = || async {
                let mut read = self.platform.db.tenant_statements(tenant).await?;
                let record = store::read(&mut read, id).await?;
                read.done();
                Ok::<_, Error>(record.map(|record| record.client))
            };
            let client = self
                .cache
                .read(caller, id, load)
                .await?
                .ok_or_else(|| Error::not_found("client", id))?;
            return Ok((client, None));
        }
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let record = store::load(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        let ssn = self.open_ssn(tenant, &record).await?;
        if ssn.is_some() {
            audit_client(
                &mut tx,
                &caller.principal,
                "clients.client.read_ssn",
                id,
                &[],
            )
            .await?;
        }
        tx.commit().await?;
        Ok((Arc::new(record.client), ssn))
    }

    /// Changes the masked fields of a client; the stored client when nothing changes.
    pub async fn update(&self, caller: &Caller, input: ClientUpdate) -> Result<Client> {
        let (tenant, id) = (caller.tenant, input.id);
        if input.mask.contains(&"demographics") {
            let mut v = Violations::new();
            self.check_demographics(caller, &input.fields.demographics, &mut v)
                .await?;
            v.finish()?;
        }

        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut record = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        check_version(input.expected, record.client.version)?;
        let mut next = record.client.fields(self.open_ssn(tenant, &record).await?);
        let changed = next.merge(&input.fields, &input.mask);
        let mut v = Violations::new();
        next.validate("client", Utc::now().date_naive(), &mut v);
        v.finish()?;
        if changed.is_empty() {
            return Ok(record.client);
        }
        record.client.apply(&next);
        if changed.iter().any(|f| f == "ssn") {
            let key = self.tenant_key(tenant).await?;
            Self::protect(&key, tenant, &mut record, next.ssn.as_ref());
        }
        let stored = store::update(tx.conn(), &record).await?.client;
        audit_client(
            &mut tx,
            &caller.principal,
            "clients.client.update",
            id,
            &changed,
        )
        .await?;
        outbox::enqueue(&mut tx, events::client_updated(&stored, changed).event()).await?;
        tx.commit().await?;
        self.cache.invalidate(tenant, id);
        Ok(stored)
    }

    pub async fn delete(&self, caller: &Caller, input: ClientDeletion) -> Result<()> {
        let id = input.id;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let record = store::load(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("client", id))?;
        check_version(input.expected, record.client.version)?;
        store::delete(tx.conn(), id, &input.reason).await?;
        audit_client(&mut tx, &caller.principal, "clients.client.delete", id, &[]).await?;
        outbox::enqueue(&mut tx, events::client_deleted(&record.client).event()).await?;
        tx.commit().await?;
        self.cache.invalidate(caller.tenant, id);
        Ok(())
    }

    /// A page of a client's audit trail, newest first.
    pub async fn history(
        &self,
        caller: &Caller,
        input: HistoryRequest,
    ) -> Result<Listed<AuditRecord>> {
        let id = input.id;
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        ensure_client(&mut tx, id).await?;
        let page = audit::history_page_of(
            &self.platform.page_tokens,
            caller.tenant,
            id,
            input.page.size,
            &input.page.token,
        )?;
        let (items, next_page_token) = audit::history_page(&mut tx, "client", id, &page).await?;
        tx.commit().await?;
        Ok(Listed {
            items,
            next_page_token,
        })
    }

    /// Clients matching a search, best first. A whole-SSN search is audited whatever it found,
    /// and a first page that found no one counts as a miss of the caller's.
    pub async fn search(
        &self,
        caller: &Caller,
        input: ClientSearch,
    ) -> Result<Listed<ClientMatch>> {
        let tenant = caller.tenant;
        let (ssn_hash, ssn_last4) = match &input.ssn {
            None => (None, None),
            Some(SsnQuery::Last4(digits)) => (None, Some(digits.clone())),
            Some(SsnQuery::Whole(ssn)) => {
                let key = self.tenant_key(tenant).await?;
                (Some(key.blind_index(ssn.digits())), None)
            }
        };
        // The filter a page token is bound to; the SSN enters it only as its keyed hash.
        let mut filter = input.filter;
        filter.extend(ssn_hash.iter().flatten());
        filter.extend(ssn_last4.iter().flat_map(|s| s.bytes()));
        let page = self.platform.page_tokens.page::<(f64, Uuid)>(
            tenant,
            &filter,
            input.page.size,
            &input.page.token,
        )?;
        let search = Search {
            name: input.name,
            birth_date: input.birth_date,
            ssn_hash,
            ssn_last4,
        };
        let whole_ssn = search.ssn_hash.is_some();
        if whole_ssn {
            // Numbers cannot be guessed one search at a time: the misses are counted.
            self.ssn_misses
                .check(tenant, &caller.principal.user_id)
                .await?;
        }
        if !whole_ssn && search.name.is_none() {
            // Nothing to audit and no name to score: one statement, no transaction.
            let mut read = self.platform.db.tenant_statements(tenant).await?;
            let mut matches =
                store::search(read.conn(), tenant, &search, page.after, page.limit + 1).await?;
            read.done();
            let next_page_token = page.finish(&mut matches, |(r, score)| (*score, r.client.id));
            return Ok(listed(matches, next_page_token));
        }
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut matches =
            store::search(tx.conn(), tenant, &search, page.after, page.limit + 1).await?;
        if whole_ssn {
            // Every whole-SSN search is audited, whatever it found; each client found shows it
            // in its own history too.
            let found: Vec<String> = matches
                .iter()
                .map(|(c, _)| c.client.id.to_string())
                .collect();
            audit::record(
                &mut tx,
                &caller.principal,
                AuditEntry {
                    action: "clients.ssn_search",
                    resource_type: "ssn_search",
                    resource_id: Uuid::now_v7(),
                    changed_fields: &found,
                },
            )
            .await?;
            for (record, _) in &matches {
                audit_client(
                    &mut tx,
                    &caller.principal,
                    "clients.client.ssn_search",
                    record.client.id,
                    &[],
                )
                .await?;
            }
        }
        tx.commit().await?;
        if whole_ssn && matches.is_empty() && page.after.is_none() {
            self.ssn_misses
                .failed(tenant, &caller.principal.user_id)
                .await?;
        }
        let next_page_token = page.finish(&mut matches, |(r, score)| (*score, r.client.id));
        Ok(listed(matches, next_page_token))
    }

    /// Enrolls a client in a program of the tenant (asked of the catalog with the caller's
    /// credentials), unless it has an open enrollment there.
    pub async fn start_enrollment(
        &self,
        caller: &Caller,
        input: NewEnrollment,
    ) -> Result<Outcome<Enrollment, pb::StartEnrollmentResponse>> {
        let tenant = caller.tenant;
        let (client_id, program_id) = (input.client_id, input.program_id);
        if !self.catalog.program_exists(caller, program_id).await? {
            return Err(Error::invalid(
                "enrollment.program_id",
                "does not name a program of this tenant",
            ));
        }
        let method = "clients.enrollment.start";
        let key = Key::new(
            method,
            &input.asked.request_id,
            Fingerprint::of_bytes(&input.asked.request),
        );
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(Outcome::Replay(previous));
        }
        if store::load(tx.conn(), client_id, true).await?.is_none() {
            return Err(Error::invalid(
                "enrollment.client_id",
                "does not name a client of this tenant",
            ));
        }
        if let Some(open) = store::open_enrollment(tx.conn(), client_id, program_id).await? {
            return Err(Error::precondition(
                Rule::OneOpenEnrollmentPerProgram,
                format!("enrollments/{open}"),
                "the client already has an open enrollment in this program; exit it first",
            ));
        }
        let enrollment =
            store::insert_enrollment(tx.conn(), tenant, client_id, program_id, input.entry_date)
                .await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: method,
                resource_type: "enrollment",
                resource_id: enrollment.id,
                changed_fields: &[],
            },
        )
        .await?;
        outbox::enqueue(&mut tx, events::enrollment_started(&enrollment).event()).await?;
        idempotency::complete(&mut tx, &key, &convert::enrollment_started(&enrollment)).await?;
        tx.commit().await?;
        Ok(Outcome::Done(enrollment))
    }

    /// Exits an open enrollment, not before its entry nor in the future; a retry under the
    /// same request id answers with the first reply (a second exit would be refused).
    pub async fn exit_enrollment(
        &self,
        caller: &Caller,
        input: EnrollmentExit,
    ) -> Result<pb::ExitEnrollmentResponse> {
        let id = input.id;
        let key = Key::new(
            "clients.enrollment.exit",
            &input.request_id,
            input.fingerprint,
        );
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, &key).await? {
            return Ok(previous);
        }
        let current = store::load_enrollment(tx.conn(), id, true)
            .await?
            .ok_or_else(|| Error::not_found("enrollment", id))?;
        check_version(input.expected, current.version)?;
        if current.exit_date.is_some() {
            return Err(Error::precondition(
                Rule::EnrollmentIsOpen,
                format!("enrollments/{id}"),
                "the enrollment has already been exited",
            ));
        }
        let mut v = Violations::new();
        validate_exit(
            current.entry_date,
            input.exit_date,
            Utc::now().date_naive(),
            &input.exit_destination,
            &mut v,
        );
        v.finish()?;
        let enrollment =
            store::exit_enrollment(tx.conn(), id, input.exit_date, &input.exit_destination).await?;
        let changed = vec!["exit_date".to_string(), "exit_destination".to_string()];
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "clients.enrollment.exit",
                resource_type: "enrollment",
                resource_id: id,
                changed_fields: &changed,
            },
        )
        .await?;
        outbox::enqueue(&mut tx, events::enrollment_exited(&enrollment).event()).await?;
        let reply = convert::enrollment_exited(&enrollment);
        idempotency::complete(&mut tx, &key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get_enrollment(&self, caller: &Caller, id: Uuid) -> Result<Enrollment> {
        let mut tx = self.platform.db.tenant_tx(caller.tenant).await?;
        let enrollment = store::load_enrollment(tx.conn(), id, false)
            .await?
            .ok_or_else(|| Error::not_found("enrollment", id))?;
        tx.commit().await?;
        Ok(enrollment)
    }

    /// A page of a client's enrollments, latest entry first.
    /// A page of the tenant's clients by id (their SSNs masked by the caller's encoding).
    pub async fn list(&self, caller: &Caller, page: PageRequest) -> Result<Listed<Client>> {
        let tenant = caller.tenant;
        let page = self.platform.page_tokens.page::<Uuid>(
            tenant,
            b"clients.list",
            page.size,
            &page.token,
        )?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        let mut rows: Vec<Client> = store::list(tx.conn(), page.after, page.limit + 1)
            .await?
            .into_iter()
            .map(|r| r.client)
            .collect();
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |c| c.id);
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }

    pub async fn list_enrollments(
        &self,
        caller: &Caller,
        input: EnrollmentList,
    ) -> Result<Listed<Enrollment>> {
        let tenant = caller.tenant;
        let page = self
            .platform
            .page_tokens
            .page::<(chrono::NaiveDate, Uuid)>(
                tenant,
                &input.filter,
                input.page.size,
                &input.page.token,
            )?;
        let mut tx = self.platform.db.tenant_tx(tenant).await?;
        ensure_client(&mut tx, input.client_id).await?;
        let mut rows =
            store::list_enrollments(tx.conn(), input.client_id, page.after, page.limit + 1).await?;
        tx.commit().await?;
        let next_page_token = page.finish(&mut rows, |e| (e.entry_date, e.id));
        Ok(Listed {
            items: rows,
            next_page_token,
        })
    }
}

/// A page of search matches, as the caller sees them.
fn listed(matches: Vec<(ClientRecord, f64)>, next_page_token: String) -> Listed<ClientMatch> {
    Listed {
        items: matches
            .into_iter()
            .map(|(record, score)| ClientMatch {
                client: record.client,
                score,
            })
            .collect(),
        next_page_token,
    }
}
