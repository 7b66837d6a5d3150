//! The eligibility service's use cases, one function per operation: rules drafted, checked
//! against the tenant's fact schema, and published as versions that never change; checks that
//! evaluate published versions on the client's facts and store each decision with what it
//! read; replays of stored decisions; and the facts the other services' events bring, after
//! which the client's eligibility is looked at again and a flip is published. Each owns its
//! transaction: the rows, their audit rows, their events and, where a retry could repeat it,
//! the idempotent reply.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Utc};
use uuid::Uuid;

use caseway_api::eligibility::v1 as pb;
use caseway_api::encoded::Encoded;
use caseway_peers::rules::visible;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::auth::{Principal, Role};
use caseway_platform::caller::Caller;
use caseway_platform::error::{Error, Result};
use caseway_platform::etag::check_version;
use caseway_platform::idempotency::{self, Claim, Key};
use caseway_platform::inbox;
use caseway_platform::outbox;
use caseway_platform::paging::Page;
use caseway_platform::validate::Violations;
use caseway_platform::{ClientId, Db, DecisionId, RuleId, Scoped, ServiceId, TenantId};

use crate::convert::{Change, Creation, View, check_response, rule_to_proto, version_to_proto};
use crate::domain::*;
use crate::events;
use crate::reads::{DeliveriesRead, Reads};
use crate::store::{self, ServiceFact};

/// Where the transaction that writes a fact announces it (see [`Eligibility::facts_changed`]).
pub const FACTS_CHANNEL: &str = store::FACTS_CHANNEL;

/// Who decisions taken after new facts name as their decider.
pub const WORKER: &str = "caseway/eligibility-worker";

/// Compiled rule versions kept, at most; past it one goes for each that comes.
const COMPILED_CAPACITY: usize = 20_000;

/// A rule version's criteria, compiled against the schema it was published with, and what
/// they read.
struct CompiledVersion {
    criteria: Arc<[Criterion]>,
    compiled: Vec<Compiled>,
    reads: Reads,
}

/// How long a tenant's published versions are trusted without an event saying one changed.
const PUBLISHED_TTL: Duration = Duration::from_secs(60);

pub struct Eligibility {
    db: Db,
    /// Compiled versions by (tenant, rule, version): a version never changes.
    compiled: Mutex<HashMap<(TenantId, RuleId, i32), Arc<CompiledVersion>>>,
    /// Each tenant's published versions, dropped by `eligibility.rule_published.v1` (in every
    /// replica) and after [`PUBLISHED_TTL`].
    published: Mutex<HashMap<TenantId, Published>>,
    /// Bumped by every drop, so a load that raced with one is not kept.
    published_generation: AtomicU64,
    /// Checks stored, by digest: a check that takes the same decisions again answers with it.
    stored: Mutex<HashMap<(TenantId, Digest), store::Stored>>,
    /// The last check of every service per client, date and viewer, and the facts checks
    /// read; used only while this replica hears the announcements of new facts
    /// ([`Eligibility::hear_facts`]).
    memo: Mutex<Kept>,
    memo_heard: AtomicBool,
    /// Bumped by every announcement, so a check that read facts older than one keeps nothing.
    memo_generation: AtomicU64,
}

/// A tenant's published versions and when they were read.
type Published = (Arc<Vec<RuleVersionRow>>, Instant);

/// Checks remembered, at most; past it one goes for each that comes. An entry holds up to a
/// decision per service of the tenant, each with its criteria and facts, and its reply in each
/// view once asked for (about 26 KB for 50 services: up to 7 MB for the memo's replies).
const MEMO_CAPACITY: usize = 256;

/// Clients whose facts are remembered, at most (a client with a few years of history takes
/// kilobytes); past it one client's go for each that comes, and are read again when asked.
const FACTS_CAPACITY: usize = 1024;

/// A tenant's live services by id.
type Services = BTreeMap<ServiceId, ServiceFact>;

/// What a replica keeps of checks while it hears the announcements of new facts: the checks,
/// and what they read (each client's facts, each tenant's services), each dropped by the
/// announcements that change it.
#[derive(Default)]
struct Kept {
    checks: HashMap<MemoKey, Arc<Memo>>,
    /// Each client's facts, with which of its deliveries they hold.
    facts: HashMap<(TenantId, ClientId), (Arc<ClientFacts>, DeliveriesRead)>,
    services: HashMap<TenantId, Arc<Services>>,
}

impl Kept {
    fn clear(&mut self) {
        self.checks.clear();
        self.facts.clear();
        self.services.clear();
    }

    /// Forgets what a fact of the tenant changes: its services, and every client's facts
    /// (they name services and programs by code) and checks.
    fn forget_tenant(&mut self, tenant: TenantId) {
        self.checks.retain(|key, _| key.0 != tenant);
        self.facts.retain(|key, _| key.0 != tenant);
        self.services.remove(&tenant);
    }

    /// Forgets what a fact of one client changes: its facts and its checks.
    fn forget_client(&mut self, tenant: TenantId, client: Uuid) {
        self.checks
            .retain(|key, _| key.0 != tenant || key.1.0 != client);
        self.facts.remove(&(tenant, ClientId(client)));
    }
}

/// Who sees which services: a check's decisions are those of the services its caller sees.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Viewer {
    admin: bool,
    organization_ids: Vec<Uuid>,
}

impl Viewer {
    fn of(caller: &Caller) -> Viewer {
        let mut organization_ids = caller.principal.organization_ids.clone();
        organization_ids.sort_unstable();
        Viewer {
            admin: admin(caller),
            organization_ids,
        }
    }
}

/// A check of every service, kept with the published versions it evaluated. Until the
/// client's facts or the tenant's change (a change announced by the transaction that writes
/// it, see `store::FACTS_CHANNEL`) or other versions are published, the same check takes the
/// same (stored) decisions, so it answers with these.
struct Memo {
    published: Arc<Vec<RuleVersionRow>>,
    services: Arc<Services>,
    decisions: Arc<Vec<DecisionRow>>,
    /// The reply of the check in each view, encoded the first time it is asked for.
    full_reply: OnceLock<Bytes>,
    basic_reply: OnceLock<Bytes>,
}

/// Makes room for one more entry in a cache of at most `capacity`: past it, one entry goes
/// (which one matters little to a cache). Starting a full cache again would make one call pay
/// for dropping all it held (a memo of 256 checks is about 13,000 decisions).
fn make_room<K: Clone + Eq + Hash, V>(cache: &mut HashMap<K, V>, capacity: usize) {
    if cache.len() < capacity {
        return;
    }
    if let Some(key) = cache.keys().next().cloned() {
        cache.remove(&key);
    }
}

type MemoKey = (TenantId, ClientId, NaiveDate, Viewer);

/// What identifies a check: SHA-256 of the client, the date, the snapshot its decisions were
/// taken on and each decision (rule version and what it found), so the same check taken again
/// on the same facts is stored once (the facts each criterion read follow from the snapshot).
fn digest(decisions: &[DecisionRow], snapshot: &Digest) -> Digest {
    let mut hash = Sha256::new();
    hash.update(snapshot);
    if let Some(first) = decisions.first() {
        hash.update(first.client_id.0.as_bytes());
        hash.update(first.as_of.num_days_from_ce().to_be_bytes());
    }
    for d in decisions {
        hash.update(d.rule_id.0.as_bytes());
        hash.update(d.rule_version.to_be_bytes());
        hash.update(d.outcome.as_i16().to_be_bytes());
        hash.update((d.results.len() as u64).to_be_bytes());
        for result in &d.results {
            let reason = result.reason.as_deref().unwrap_or_default();
            hash.update(result.outcome.as_i16().to_be_bytes());
            hash.update((reason.len() as u64).to_be_bytes());
            hash.update(reason.as_bytes());
        }
    }
    hash.finalize().into()
}

/// The time now as PostgreSQL keeps it (to the microsecond), so what a call answers reads
/// back the same.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Audits a rule's change and publishes `eligibility.rule_<verb>.v1`.
async fn record_change(
    tx: &mut impl Scoped,
    actor: &Principal,
    verb: &str,
    row: &RuleRow,
    changed_fields: Vec<String>,
) -> Result<()> {
    audit::record(
        tx,
        actor,
        AuditEntry {
            action: &format!("eligibility.rule.{verb}"),
            resource_type: "eligibility_rule",
            resource_id: row.id.into(),
            changed_fields: &changed_fields,
        },
    )
    .await?;
    let event_type = events::rule_event_type(verb);
    let payload = events::rule_changed(row, changed_fields);
    outbox::enqueue(tx, events::rule_event(&event_type, row, &payload)).await?;
    Ok(())
}

/// Who takes a decision and when.
struct Decider<'a> {
    by: &'a str,
    at: DateTime<Utc>,
}

/// The decision a published version takes on a client's facts as of a date, taken on
/// `snapshot`; its id is given when it is stored ([`Eligibility::store_decisions`]).
fn take_decision(
    version: &RuleVersionRow,
    c: &CompiledVersion,
    on: &FactsOn<'_>,
    snapshot: &Snapshot,
    service_code: String,
    decider: &Decider<'_>,
) -> DecisionRow {
    let (outcome, results) = decide(&c.criteria, &c.compiled, on);
    DecisionRow {
        id: None,
        client_id: ClientId(on.client_id()),
        service_id: version.service_id,
        service_code,
        rule_id: version.rule_id,
        rule_version: version.version,
        mode: version.mode,
        as_of: on.as_of(),
        outcome,
        criteria: c.criteria.clone(),
        results,
        facts: snapshot.facts.clone(),
        decided_by: decider.by.to_string(),
        decided_at: decider.at,
    }
}

fn admin(caller: &Caller) -> bool {
    caller.principal.has_role(Role::TenantAdmin)
}

/// Whether the caller may see a service (and its rule and decisions).
fn sees(caller: &Caller, service: &ServiceFact) -> bool {
    visible(
        &service.organization_ids,
        &caller.principal.organization_ids,
        admin(caller),
    )
}

/// The rule if it exists and its service is visible to the caller; NOT_FOUND otherwise.
async fn visible_rule(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    id: RuleId,
    lock: bool,
) -> Result<RuleRow> {
    let not_found = || Error::not_found("rule", id);
    let rule = store::rule(conn, id, lock).await?.ok_or_else(not_found)?;
    let services = store::services(conn, Some(&[rule.service_id.0])).await?;
    match services.get(&rule.service_id) {
        Some(service) if !sees(caller, service) => Err(not_found()),
        _ => Ok(rule),
    }
}

/// INVALID_ARGUMENT naming the first of `ids` that is not a live service the caller sees.
fn known_services(
    caller: &Caller,
    ids: &[ServiceId],
    known: &BTreeMap<ServiceId, ServiceFact>,
) -> Result<()> {
    match ids
        .iter()
        .position(|id| !known.get(id).is_some_and(|s| sees(caller, s)))
    {
        Some(i) => Err(Error::invalid(
            format!("service_ids[{i}]"),
            "does not name a service of this tenant",
        )),
        None => Ok(()),
    }
}

/// Checks a rule's criteria against the tenant's schema as it now stands.
fn check_criteria(
    schema: FactSchema,
    prefix: &str,
    criteria: &[Criterion],
    v: &mut Violations,
) -> Option<Vec<Compiled>> {
    Checker::new(schema).check_rule(prefix, criteria, v)
}

impl Eligibility {
    pub fn new(db: Db) -> Self {
        Eligibility {
            db,
            compiled: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            published_generation: AtomicU64::new(0),
            stored: Mutex::new(HashMap::new()),
            memo: Mutex::new(Kept::default()),
            memo_heard: AtomicBool::new(false),
            memo_generation: AtomicU64::new(0),
        }
    }

    /// A published version compiled, from the cache or against its own schema.
    fn compile(&self, tenant: TenantId, version: &RuleVersionRow) -> Result<Arc<CompiledVersion>> {
        let key = (tenant, version.rule_id, version.version);
        if let Some(found) = self.compiled.lock().expect("cache lock").get(&key) {
            return Ok(found.clone());
        }
        let checker = Checker::new(version.fact_schema.clone());
        let mut v = Violations::new();
        let compiled = checker
            .check_rule("", &version.criteria, &mut v)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "published version {} of rule {} does not compile against its own schema: {:?}",
                    version.version,
                    version.rule_id,
                    v.fields()
                ))
            })?;
        let entry = Arc::new(CompiledVersion {
            criteria: version.criteria.clone().into(),
            reads: Reads::union(compiled.iter().map(|c| c.reads.as_ref())),
            compiled,
        });
        let mut cache = self.compiled.lock().expect("cache lock");
        make_room(&mut cache, COMPILED_CAPACITY);
        cache.insert(key, entry.clone());
        Ok(entry)
    }

    /// The tenant's published versions, from the cache or the database.
    async fn published(
        &self,
        tx: &mut caseway_platform::TenantTx,
    ) -> Result<Arc<Vec<RuleVersionRow>>> {
        let tenant = tx.tenant_id();
        if let Some(versions) = self.published_cached(tenant) {
            return Ok(versions);
        }
        let generation = self.published_generation.load(Ordering::Acquire);
        let versions = Arc::new(store::published(tx.conn()).await?);
        let mut cache = self.published.lock().expect("cache lock");
        if self.published_generation.load(Ordering::Acquire) == generation {
            make_room(&mut cache, COMPILED_CAPACITY);
            cache.insert(tenant, (versions.clone(), Instant::now()));
        }
        Ok(versions)
    }

    /// The tenant's published versions, from the cache or read in a transaction of their own.
    async fn published_for(&self, tenant: TenantId) -> Result<Arc<Vec<RuleVersionRow>>> {
        if let Some(versions) = self.published_cached(tenant) {
            return Ok(versions);
        }
        let mut tx = self.db.tenant_tx(tenant).await?;
        let versions = self.published(&mut tx).await?;
        tx.commit().await?;
        Ok(versions)
    }

    /// The tenant's published versions if cached and fresh.
    fn published_cached(&self, tenant: TenantId) -> Option<Arc<Vec<RuleVersionRow>>> {
        match self.published.lock().expect("cache lock").get(&tenant) {
            Some((versions, loaded)) if loaded.elapsed() < PUBLISHED_TTL => Some(versions.clone()),
            _ => None,
        }
    }

    /// Whether this replica hears the announcements of new facts: from when it listens (the
    /// memo starts empty) until it may have missed one (the memo is dropped and not used).
    pub fn hear_facts(&self, heard: bool) {
        let mut kept = self.memo.lock().expect("cache lock");
        self.memo_generation.fetch_add(1, Ordering::AcqRel);
        self.memo_heard.store(heard, Ordering::Release);
        kept.clear();
    }

    /// Forgets every check: an announcement was heard that does not say which it changes.
    pub fn forget_checks(&self) {
        let mut kept = self.memo.lock().expect("cache lock");
        self.memo_generation.fetch_add(1, Ordering::AcqRel);
        kept.clear();
    }

    /// Forgets the checks a new fact changes: the client's, or every client's of the tenant
    /// when `scope` is the tenant's own.
    pub fn facts_changed(&self, tenant: TenantId, scope: Uuid) {
        let mut kept = self.memo.lock().expect("cache lock");
        self.memo_generation.fetch_add(1, Ordering::AcqRel);
        if scope == tenant.as_uuid() {
            kept.forget_tenant(tenant);
        } else {
            kept.forget_client(tenant, scope);
        }
    }

    /// Forgets a tenant's published versions: one was published, here or elsewhere.
    pub fn forget_published(&self, tenant: TenantId) {
        let mut cache = self.published.lock().expect("cache lock");
        self.published_generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(&tenant);
        drop(cache);
        let mut kept = self.memo.lock().expect("cache lock");
        self.memo_generation.fetch_add(1, Ordering::AcqRel);
        kept.checks.retain(|key, _| key.0 != tenant);
    }

    /// What the published `versions` read, together: what a check, an enforcement and a look
    /// after new facts read of the client, and the snapshot each stores as of its date.
    fn reads(&self, tenant: TenantId, versions: &[RuleVersionRow]) -> Result<Reads> {
        let compiled = versions
            .iter()
            .map(|version| self.compile(tenant, version))
            .collect::<Result<Vec<_>>>()?;
        Ok(Reads::union(compiled.iter().map(|c| &c.reads)))
    }

    /// Stores the decisions of a check of `tenant`, with the snapshot they were taken on, unless
    /// the same check is stored already, and gives each its id and the check's decider and
    /// time. Stored by one statement (in a transaction, or committed by itself on a
    /// [`TenantStatements`](caseway_platform::TenantStatements)); the caller remembers the
    /// check once it is committed.
    async fn store_decisions(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        snapshot: &Snapshot,
        decisions: &mut [DecisionRow],
    ) -> Result<Option<(Digest, store::Stored)>> {
        if decisions.is_empty() {
            return Ok(None);
        }
        if decisions.len() > MAX_DECISIONS_PER_CHECK {
            return Err(Error::internal(anyhow::anyhow!(
                "a check of {} decisions; a check names at most {MAX_DECISIONS_PER_CHECK}",
                decisions.len()
            )));
        }
        let digest = digest(decisions, &snapshot.digest);
        let known = self
            .stored
            .lock()
            .expect("cache lock")
            .get(&(tenant, digest))
            .cloned();
        let (stored, fresh) = match known {
            Some(stored) => (stored, false),
            None => {
                let stored =
                    store::insert_check(conn, tenant, snapshot, &digest, decisions).await?;
                (stored, true)
            }
        };
        for (n, decision) in decisions.iter_mut().enumerate() {
            decision.id = Some(decision_id(stored.check_id, n + 1));
            decision.decided_by = stored.decided_by.clone();
            decision.decided_at = stored.decided_at;
        }
        Ok(fresh.then_some((digest, stored)))
    }

    /// Remembers a check a committed transaction stored.
    fn remember(&self, tenant: TenantId, fresh: Option<(Digest, store::Stored)>) {
        let Some((digest, found)) = fresh else {
            return;
        };
        let mut stored = self.stored.lock().expect("cache lock");
        make_room(&mut stored, COMPILED_CAPACITY * 5);
        stored.insert((tenant, digest), found);
    }

    /// Creates a rule's draft after checking it; a retry under `key` answers with the first
    /// reply.
    pub async fn create_rule(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        creation: Creation,
        mut v: Violations,
    ) -> Result<pb::CreateRuleResponse> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let mut service_code = String::new();
        if let Some(service_id) = creation.service_id {
            let services = store::services(tx.conn(), Some(&[service_id.0])).await?;
            match services.get(&service_id) {
                Some(service) if sees(caller, service) => service_code = service.code.clone(),
                _ => v.add("rule.service_id", "does not name a service of this tenant"),
            }
        }
        let schema = store::fact_schema(tx.conn()).await?;
        if !creation.criteria.is_empty() || v.is_empty() {
            check_criteria(schema, "rule.", &creation.criteria, &mut v);
        }
        let service_id = v.finish_with(creation.service_id)?;
        let now = now();
        let row = RuleRow {
            id: RuleId::new(),
            service_id,
            service_code,
            mode: creation.mode,
            criteria: creation.criteria,
            published_version: 0,
            draft_changed: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::insert_rule(tx.conn(), caller.tenant, &row)
            .await
            .map_err(|e| match e {
                Error::AlreadyExists(_) => Error::AlreadyExists(format!(
                    "service {service_id} already has a rule; change it with UpdateRule"
                )),
                other => other,
            })?;
        record_change(&mut tx, &caller.principal, "created", &row, Vec::new()).await?;
        let reply = pb::CreateRuleResponse {
            rule: Some(rule_to_proto(&row)),
        };
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        Ok(reply)
    }

    pub async fn get_rule(&self, caller: &Caller, id: RuleId) -> Result<RuleRow> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let rule = visible_rule(tx.conn(), caller, id, false).await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// Changes a rule's draft (checked again as a whole), if still at `expected`.
    pub async fn update_rule(
        &self,
        caller: &Caller,
        change: Change,
        mut v: Violations,
    ) -> Result<RuleRow> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rule = visible_rule(tx.conn(), caller, change.id, true).await?;
        check_version(change.expected, rule.version)?;
        let mut changed = Vec::new();
        if let Some(mode) = change.mode
            && mode != rule.mode
        {
            rule.mode = mode;
            changed.push("mode".to_string());
        }
        if let Some(criteria) = change.criteria {
            let schema = store::fact_schema(tx.conn()).await?;
            check_criteria(schema, "rule.", &criteria, &mut v);
            if criteria != rule.criteria {
                rule.criteria = criteria;
                changed.push("criteria".to_string());
            }
        }
        v.finish()?;
        if changed.is_empty() {
            tx.commit().await?;
            return Ok(rule);
        }
        rule.draft_changed = true;
        rule.version += 1;
        rule.updated_at = now();
        store::update_rule(tx.conn(), &rule).await?;
        record_change(&mut tx, &caller.principal, "updated", &rule, changed).await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// Publishes a rule's draft as its next version; a retry under `key` answers with the
    /// first reply.
    pub async fn publish_rule(
        &self,
        caller: &Caller,
        key: &Key<'_>,
        id: RuleId,
        expected: Option<i64>,
    ) -> Result<pb::PublishRuleResponse> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if let Claim::Replay(previous) = idempotency::claim(&mut tx, key).await? {
            return Ok(previous);
        }
        let mut rule = visible_rule(tx.conn(), caller, id, true).await?;
        check_version(expected, rule.version)?;
        let subject = format!("rules/{id}");
        if !rule.draft_changed && rule.published_version > 0 {
            return Err(Error::precondition(
                EligibilityRule::RulePublished,
                subject,
                format!(
                    "the draft is version {} as published; change it before publishing again",
                    rule.published_version
                ),
            ));
        }
        let schema = store::fact_schema(tx.conn()).await?;
        let mut v = Violations::new();
        if check_criteria(schema.clone(), "rule.", &rule.criteria, &mut v).is_none() {
            return Err(Error::precondition(
                EligibilityRule::RuleChecks,
                subject,
                format!(
                    "the draft no longer checks against the tenant's facts ({}); change it first",
                    v.into_inner()
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.description))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
        let now = now();
        let version = RuleVersionRow {
            rule_id: rule.id,
            version: rule.published_version + 1,
            service_id: rule.service_id,
            mode: rule.mode,
            criteria: rule.criteria.clone(),
            fact_schema: schema,
            published_by: caller.principal.user_id.clone(),
            published_at: now,
        };
        store::insert_version(tx.conn(), caller.tenant, &version).await?;
        rule.published_version = version.version;
        rule.draft_changed = false;
        rule.version += 1;
        rule.updated_at = now;
        store::update_rule(tx.conn(), &rule).await?;
        record_change(
            &mut tx,
            &caller.principal,
            "published",
            &rule,
            vec!["published_version".into()],
        )
        .await?;
        let reply = pb::PublishRuleResponse {
            rule: Some(rule_to_proto(&rule)),
            version: Some(version_to_proto(&version)),
        };
        idempotency::complete(&mut tx, key, &reply).await?;
        tx.commit().await?;
        self.forget_published(caller.tenant);
        Ok(reply)
    }

    /// A page of the rules whose services the caller may see, by service code.
    pub async fn list_rules(
        &self,
        caller: &Caller,
        page: Page<(String, Uuid)>,
    ) -> Result<(Vec<RuleRow>, String)> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let services = store::services(tx.conn(), None).await?;
        let mut rows = store::list_rules(tx.conn(), page.after.as_ref(), page.limit).await?;
        tx.commit().await?;
        let next = page.finish(&mut rows, |r| (r.service_code.clone(), r.id.0));
        rows.retain(|r| services.get(&r.service_id).is_none_or(|s| sees(caller, s)));
        Ok((rows, next))
    }

    pub async fn rule_version(
        &self,
        caller: &Caller,
        id: RuleId,
        version: i32,
    ) -> Result<RuleVersionRow> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        visible_rule(tx.conn(), caller, id, false).await?;
        let found = store::version(tx.conn(), id, version).await?;
        tx.commit().await?;
        found.ok_or_else(|| Error::not_found("rule version", format!("{id}/{version}")))
    }

    /// The tenant's fact schema as the events have kept it.
    pub async fn fact_schema(&self, caller: &Caller) -> Result<FactSchema> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let schema = store::fact_schema(tx.conn()).await?;
        tx.commit().await?;
        Ok(schema)
    }

    /// Evaluates a rule's draft (version 0) or a published version for a client; nothing is
    /// stored.
    pub async fn test_rule(
        &self,
        caller: &Caller,
        id: RuleId,
        version: i32,
        client: ClientId,
        as_of: NaiveDate,
    ) -> Result<DecisionRow> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let rule = visible_rule(tx.conn(), caller, id, false).await?;
        let facts = store::client_facts(tx.conn(), caller.tenant, client)
            .await?
            .ok_or_else(|| Error::not_found("client", client))?;
        let (mode, c) = if version == 0 {
            let schema = store::fact_schema(tx.conn()).await?;
            let mut v = Violations::new();
            let compiled =
                check_criteria(schema, "rule.", &rule.criteria, &mut v).ok_or_else(|| {
                    Error::precondition(
                        EligibilityRule::RuleChecks,
                        format!("rules/{id}"),
                        "the draft no longer checks against the tenant's facts; change it first",
                    )
                })?;
            let c = CompiledVersion {
                criteria: rule.criteria.clone().into(),
                reads: Reads::union(compiled.iter().map(|c| c.reads.as_ref())),
                compiled,
            };
            (rule.mode, Arc::new(c))
        } else {
            let published = store::version(tx.conn(), id, version)
                .await?
                .ok_or_else(|| Error::not_found("rule version", format!("{id}/{version}")))?;
            (published.mode, self.compile(caller.tenant, &published)?)
        };
        tx.commit().await?;
        let on = facts.on(as_of);
        let (outcome, results) = decide(&c.criteria, &c.compiled, &on);
        Ok(DecisionRow {
            id: None,
            client_id: client,
            service_id: rule.service_id,
            service_code: rule.service_code,
            rule_id: rule.id,
            rule_version: version,
            mode,
            as_of,
            outcome,
            criteria: c.criteria.clone(),
            results,
            facts: Snapshot::of(&on, &c.reads).facts,
            decided_by: caller.principal.user_id.clone(),
            decided_at: now(),
        })
    }

    /// Decides the client's eligibility as of `as_of` for every service with a published rule
    /// the caller may see, stores the check, and answers with the decisions of `services`
    /// (all when None): naming services narrows the answer, not the check, so a decision is
    /// the same however it was asked. A check asked again while the client's facts and the
    /// tenant's published versions are as they were answers with the decisions it took (and
    /// stored) before, read from the memo.
    pub async fn check(
        &self,
        caller: &Caller,
        client: ClientId,
        services: Option<Vec<ServiceId>>,
        as_of: NaiveDate,
    ) -> Result<Arc<Vec<DecisionRow>>> {
        let checked = self.check_all(caller, client, as_of).await?;
        let Some(ids) = services else {
            return Ok(checked.decisions.clone());
        };
        known_services(caller, &ids, &checked.services)?;
        let ids: BTreeSet<ServiceId> = ids.into_iter().collect();
        Ok(Arc::new(
            checked
                .decisions
                .iter()
                .filter(|d| ids.contains(&d.service_id))
                .cloned()
                .collect(),
        ))
    }

    /// The reply, encoded, to a check of every service the caller sees in `view` (`check` with
    /// no services named). It is kept with the check, so a check answered again from the memo
    /// sends the bytes encoded the first time: building and encoding a reply of 50 decisions
    /// and their criteria cost more than the rest of such a call.
    pub async fn check_reply(
        &self,
        caller: &Caller,
        client: ClientId,
        as_of: NaiveDate,
        view: View,
    ) -> Result<Bytes> {
        let checked = self.check_all(caller, client, as_of).await?;
        let kept = match view {
            View::Full => &checked.full_reply,
            View::Basic => &checked.basic_reply,
        };
        let reply = kept.get_or_init(|| Encoded::encode(&check_response(&checked.decisions, view)));
        Ok(reply.clone())
    }

    /// The check of every service the caller sees: from the memo, or decided and stored.
    async fn check_all(
        &self,
        caller: &Caller,
        client: ClientId,
        as_of: NaiveDate,
    ) -> Result<Arc<Memo>> {
        let key = (caller.tenant, client, as_of, Viewer::of(caller));
        let generation = self.memo_generation.load(Ordering::Acquire);
        let heard = self.memo_heard.load(Ordering::Acquire);
        let (memo, kept_facts, kept_services) = if heard {
            let kept = self.memo.lock().expect("cache lock");
            (
                kept.checks.get(&key).cloned(),
                kept.facts.get(&(caller.tenant, client)).cloned(),
                kept.services.get(&caller.tenant).cloned(),
            )
        } else {
            (None, None, None)
        };
        if let Some(memo) = memo
            && let Some(versions) = self.published_cached(caller.tenant)
            && Arc::ptr_eq(&memo.published, &versions)
        {
            return Ok(memo);
        }
        let versions = self.published_for(caller.tenant).await?;
        // Of the client's deliveries, those in the windows the rules ask `delivered` for.
        let reads = self.reads(caller.tenant, &versions)?;
        let needed = reads.deliveries_on(as_of);
        // The read (when the replica does not hold the client's facts) and the store are a
        // statement each, each entering the tenant and committing by itself.
        let mut statements = self.db.tenant_statements(caller.tenant).await?;
        let kept_facts = kept_facts.filter(|(_, took)| took.covers(&needed));
        let (facts, services) = match (kept_facts, kept_services) {
            (Some((facts, _)), Some(services)) => (facts, services),
            (_, kept_services) => {
                // The services too, unless the replica holds them.
                let only = kept_services.is_some().then_some(&[][..]);
                let read = store::facts_and_services(
                    statements.conn(),
                    caller.tenant,
                    client,
                    only,
                    &needed,
                )
                .await?;
                let facts = read
                    .facts
                    .ok_or_else(|| Error::not_found("client", client))?;
                let services = kept_services.unwrap_or_else(|| Arc::new(read.services));
                let read = (Arc::new(facts), services);
                if heard {
                    self.keep_facts_read(caller.tenant, client, &read, needed, generation);
                }
                read
            }
        };
        let decider = Decider {
            by: &caller.principal.user_id,
            at: now(),
        };
        let on = facts.on(as_of);
        let snapshot = Snapshot::of(&on, &reads);
        let mut decisions = Vec::with_capacity(versions.len());
        for version in versions.iter() {
            let Some(service) = services.get(&version.service_id) else {
                continue;
            };
            if !sees(caller, service) {
                continue;
            }
            let c = self.compile(caller.tenant, version)?;
            let code = service.code.clone();
            decisions.push(take_decision(version, &c, &on, &snapshot, code, &decider));
        }
        let fresh = self
            .store_decisions(statements.conn(), caller.tenant, &snapshot, &mut decisions)
            .await?;
        statements.done();
        self.remember(caller.tenant, fresh);
        decisions.sort_by(|a, b| a.service_code.cmp(&b.service_code));
        let checked = Arc::new(Memo {
            published: versions,
            services,
            decisions: Arc::new(decisions),
            full_reply: OnceLock::new(),
            basic_reply: OnceLock::new(),
        });
        if heard {
            let mut kept = self.memo.lock().expect("cache lock");
            if self.memo_generation.load(Ordering::Acquire) == generation {
                make_room(&mut kept.checks, MEMO_CAPACITY);
                kept.checks.insert(key, checked.clone());
            }
        }
        Ok(checked)
    }

    /// Keeps a client's facts and the tenant's services as a check read them, unless an
    /// announcement came since `generation` (what was read may be older than it).
    fn keep_facts_read(
        &self,
        tenant: TenantId,
        client: ClientId,
        (facts, services): &(Arc<ClientFacts>, Arc<Services>),
        took: DeliveriesRead,
        generation: u64,
    ) {
        let mut kept = self.memo.lock().expect("cache lock");
        if self.memo_generation.load(Ordering::Acquire) != generation {
            return;
        }
        make_room(&mut kept.facts, FACTS_CAPACITY);
        kept.facts.insert((tenant, client), (facts.clone(), took));
        kept.services.insert(tenant, services.clone());
    }

    /// For the records and authorizations services: when the service's published rule is
    /// REQUIRED, decides the client's eligibility as of `as_of` and stores the decision; None
    /// otherwise. A client whose facts have not come yet has none, so a rule needing them is
    /// UNDETERMINED, which does not refuse.
    pub async fn enforce(
        &self,
        caller: &Caller,
        client: ClientId,
        service: ServiceId,
        as_of: NaiveDate,
    ) -> Result<Option<DecisionRow>> {
        let required = |v: &&RuleVersionRow| v.service_id == service && v.mode == Mode::Required;
        let mut published = self.published_for(caller.tenant).await?;
        if caller.fresh && !published.iter().any(|v| required(&v)) {
            // The caller caches an answer of no REQUIRED rule: it must not come from a cache
            // of the rules that has not yet heard of one just published.
            let mut tx = self.db.tenant_tx(caller.tenant).await?;
            published = Arc::new(store::published(tx.conn()).await?);
            tx.commit().await?;
        }
        let Some(version) = published.iter().find(required) else {
            return Ok(None);
        };
        let reads = self.reads(caller.tenant, &published)?;
        let needed = reads.deliveries_on(as_of);
        // The read and the store are a statement each, as in a check.
        let mut statements = self.db.tenant_statements(caller.tenant).await?;
        let read = store::facts_and_services(
            statements.conn(),
            caller.tenant,
            client,
            Some(&[service.0]),
            &needed,
        )
        .await?;
        let services = read.services;
        let facts = read.facts.unwrap_or_else(|| ClientFacts {
            client_id: client.0,
            ..Default::default()
        });
        let c = self.compile(caller.tenant, version)?;
        let code = services
            .get(&service)
            .map(|s| s.code.clone())
            .unwrap_or_default();
        let decider = Decider {
            by: &caller.principal.user_id,
            at: now(),
        };
        let on = facts.on(as_of);
        let snapshot = Snapshot::of(&on, &reads);
        let mut decision = [take_decision(version, &c, &on, &snapshot, code, &decider)];
        let fresh = self
            .store_decisions(statements.conn(), caller.tenant, &snapshot, &mut decision)
            .await?;
        statements.done();
        self.remember(caller.tenant, fresh);
        let [decision] = decision;
        Ok(Some(decision))
    }

    /// A stored decision, if its service is visible to the caller, explained by its rule
    /// version (compiled).
    async fn stored_decision(
        &self,
        caller: &Caller,
        id: DecisionId,
    ) -> Result<(DecisionRow, Arc<CompiledVersion>)> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let not_found = || Error::not_found("decision", id);
        let (mut decision, found) = store::decision(tx.conn(), id)
            .await?
            .ok_or_else(not_found)?;
        let services = store::services(tx.conn(), Some(&[decision.service_id.0])).await?;
        if let Some(service) = services.get(&decision.service_id)
            && !sees(caller, service)
        {
            return Err(not_found());
        }
        let version = store::version(tx.conn(), decision.rule_id, decision.rule_version)
            .await?
            .ok_or_else(|| Error::not_found("rule version", decision.rule_id))?;
        tx.commit().await?;
        let c = self.compile(caller.tenant, &version)?;
        decision.results = explain(&c.compiled, found, &decision.facts, decision.as_of);
        Ok((decision, c))
    }

    /// A stored decision, if its service is visible to the caller.
    pub async fn decision(&self, caller: &Caller, id: DecisionId) -> Result<DecisionRow> {
        Ok(self.stored_decision(caller, id).await?.0)
    }

    /// A stored decision and its rule version evaluated again on its stored facts.
    pub async fn replay(
        &self,
        caller: &Caller,
        id: DecisionId,
    ) -> Result<(DecisionRow, DecisionRow)> {
        let (decision, c) = self.stored_decision(caller, id).await?;
        let (outcome, results) =
            decide(&c.criteria, &c.compiled, &decision.facts.on(decision.as_of));
        let replayed = DecisionRow {
            id: None,
            outcome,
            criteria: c.criteria.clone(),
            results,
            decided_by: caller.principal.user_id.clone(),
            decided_at: now(),
            ..decision.clone()
        };
        Ok((decision, replayed))
    }

    /// Keeps the facts events of one tenant brought, in one transaction: each event once (the
    /// inbox), each fact only when newer than what is kept; then looks again, as of today, at
    /// the eligibility of each client whose facts changed, and announces what changed. The
    /// tenant's own facts come first and the clients' in the order of their ids (each client's
    /// in the order they came), so transactions applying facts at once lock rows in one order.
    pub async fn apply_facts(&self, tenant: TenantId, mut facts: Vec<(Uuid, Fact)>) -> Result<()> {
        facts.sort_by_key(|(_, fact)| fact.client());
        let mut tx = self.db.tenant_tx(tenant).await?;
        let ids: Vec<Uuid> = facts.iter().map(|(id, _)| *id).collect();
        let mut first = inbox::first_deliveries(&mut tx, events::CONSUMER, &ids).await?;
        let mut changed = BTreeSet::new();
        // Deliveries, the most numerous (one for each service recorded), in one statement.
        let mut deliveries = Vec::new();
        for (event_id, fact) in &facts {
            // Each event once, also when it came twice in this batch.
            if first.remove(event_id) {
                match fact {
                    Fact::Delivery { .. } => deliveries.push(fact),
                    _ => {
                        store::apply(tx.conn(), tenant, fact, &mut changed).await?;
                    }
                }
            }
        }
        store::apply_deliveries(tx.conn(), tenant, &deliveries, &mut changed).await?;
        let today = Utc::now().date_naive();
        for scope in &changed {
            if *scope != tenant.as_uuid() {
                self.reconsider(&mut tx, ClientId(*scope), today).await?;
            }
        }
        store::announce(tx.conn(), &changed).await?;
        tx.commit().await
    }

    /// Keeps facts read from their sources (a rebuild): each written only when newer than what
    /// is kept, as its event would have been, in transactions of a thousand.
    pub async fn keep_facts(&self, tenant: TenantId, facts: Vec<Fact>) -> Result<usize> {
        let mut written = 0;
        for chunk in facts.chunks(1000) {
            let mut tx = self.db.tenant_tx(tenant).await?;
            let mut changed = BTreeSet::new();
            for fact in chunk {
                if store::apply(tx.conn(), tenant, fact, &mut changed).await? {
                    written += 1;
                }
            }
            store::announce(tx.conn(), &changed).await?;
            tx.commit().await?;
        }
        Ok(written)
    }

    /// Evaluates every published rule for a client as of `on`: the first outcome is kept as
    /// where the client stands; an outcome that differs from it is stored as a decision and
    /// published as `eligibility.eligibility_changed.v1`.
    async fn reconsider(
        &self,
        tx: &mut caseway_platform::TenantTx,
        client: ClientId,
        on: NaiveDate,
    ) -> Result<()> {
        let tenant = tx.tenant_id();
        let versions = self.published(tx).await?;
        if versions.is_empty() {
            return Ok(());
        }
        store::lock_client(tx.conn(), client).await?;
        let reads = self.reads(tenant, &versions)?;
        let needed = reads.deliveries_on(on);
        let read = store::facts_and_services(tx.conn(), tenant, client, None, &needed).await?;
        let (Some(facts), services) = (read.facts, read.services) else {
            return Ok(());
        };
        let before = store::outcomes(tx.conn(), client).await?;
        let decider = Decider {
            by: WORKER,
            at: now(),
        };
        let facts_on = facts.on(on);
        let snapshot = Snapshot::of(&facts_on, &reads);
        let mut decisions = Vec::new();
        for version in versions.iter() {
            let c = self.compile(tenant, version)?;
            let code = services
                .get(&version.service_id)
                .map(|s| s.code.clone())
                .unwrap_or_default();
            let decision = take_decision(version, &c, &facts_on, &snapshot, code, &decider);
            if before.get(&version.service_id) != Some(&decision.outcome) {
                decisions.push(decision);
            }
        }
        self.store_decisions(tx.conn(), tenant, &snapshot, &mut decisions)
            .await?;
        let mut changed = BTreeSet::new();
        for decision in &decisions {
            let id = decision.id.unwrap_or_default();
            let service = decision.service_id;
            store::swap_outcome(tx.conn(), tenant, client, service, decision.outcome, id).await?;
            if let Some(was) = before.get(&service) {
                let payload =
                    events::eligibility_changed(client, service, *was, decision.outcome, id);
                outbox::enqueue(tx, events::eligibility_event(client, &payload)).await?;
                changed.insert(service);
            }
        }
        if !changed.is_empty() {
            tracing::debug!(client = %client, services = changed.len(), "eligibility changed");
        }
        Ok(())
    }
}
