//! Catalog types and rules: what each resource holds, what makes it valid, how a patch of its
//! fields merges into it, and who sees a restricted service; the inputs of the catalog's use
//! cases (a create under its request id, an update, a retire or delete, a list's filter) and
//! the catalog's rules. No I/O, no proto, nothing async here.

use std::fmt::Debug;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_peers::rules;
use caseway_platform::auth::{Principal, Role};
use caseway_platform::idempotency::Fingerprint;
use caseway_platform::validate::Violations;

/// Caps on list fields, so one request cannot write an unbounded row.
pub const MAX_LINKS: usize = 200;

/// The rules of the catalog a change can break (FAILED_PRECONDITION). The catalog has none
/// today: a bad field, or a reference to an entry the tenant does not have, is
/// INVALID_ARGUMENT; a taken code or name ALREADY_EXISTS; a stale etag ABORTED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {}

impl caseway_platform::error::Rule for Rule {
    fn name(self) -> &'static str {
        match self {}
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value named `text` (its `as_str`); None for any other text.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(
    /// How a service's units are counted.
    UnitOfMeasure { Dollars => "dollars", Hours => "hours", Minutes => "minutes", Count => "count" }
);
text_enum!(
    /// Direct: to an identified client. Indirect: to anonymous people, counted.
    DeliveryMode { Direct => "direct", Indirect => "indirect" }
);
text_enum!(
    /// Whether an entry is still offered for new work.
    State { Active => "active", Retired => "retired" }
);
text_enum!(ProviderKind { Staff => "staff", Vendor => "vendor" });
text_enum!(
    /// The tenant-configurable lists recording forms pick from.
    CodeList {
        Reason => "reason",
        Goal => "goal",
        ReferralPlan => "referral_plan",
        BarrierType => "barrier_type",
        TurnAwayReason => "turn_away_reason",
        Race => "race",
        Ethnicity => "ethnicity",
        Gender => "gender",
    }
);

/// A stored catalog entry: its identity, lifecycle and version, and its own fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<F> {
    pub id: Uuid,
    pub version: i64,
    pub state: State,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub fields: F,
}

/// What every kind of catalog entry tells the shared create/update/retire/delete mechanism.
pub trait Resource: Clone + PartialEq + Send + Sync + 'static {
    /// `service_group`, `service`, ...: names audit actions and event types.
    const KIND: &'static str;
    /// Fields an update mask may name.
    const MUTABLE: &'static [&'static str];

    /// The fields as a request gives them: a value for each field it sets and that parsed
    /// (every field, for a create; those of the update mask, for an update).
    type Patch: Clone + Debug + PartialEq + Send + Sync + 'static;

    /// Every field of `self`, as a patch.
    fn patch(&self) -> Self::Patch;

    /// Adds a violation for every invalid field `patch` gives; paths start with `prefix`.
    fn check(patch: &Self::Patch, prefix: &str, violations: &mut Violations);

    /// The entry a patch of every field describes; None when the patch lacks one (a field that
    /// did not parse, and was reported).
    fn complete(patch: Self::Patch) -> Option<Self>;

    /// Copies the fields `patch` gives into `self`; returns the names of those that changed.
    fn merge(&mut self, patch: &Self::Patch) -> Vec<String>;

    /// Adds a violation for every invalid field; paths start with `prefix`.
    fn validate(&self, prefix: &str, violations: &mut Violations) {
        Self::check(&self.patch(), prefix, violations);
    }
}

/// Copies one field when the patch gives it and the value differs.
pub fn merge_field<T: PartialEq + Clone>(
    name: &'static str,
    target: &mut T,
    given: &Option<T>,
    changed: &mut Vec<String>,
) {
    if let Some(value) = given
        && target != value
    {
        *target = value.clone();
        changed.push(name.to_string());
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceGroupFields {
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceGroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

impl Resource for ServiceGroupFields {
    const KIND: &'static str = "service_group";
    const MUTABLE: &'static [&'static str] = &["name", "description"];
    type Patch = ServiceGroupPatch;

    fn patch(&self) -> ServiceGroupPatch {
        ServiceGroupPatch {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
        }
    }

    fn check(p: &ServiceGroupPatch, prefix: &str, v: &mut Violations) {
        if let Some(name) = &p.name {
            v.text(&format!("{prefix}.name"), name, 1, 200);
        }
        if let Some(description) = &p.description {
            v.text(&format!("{prefix}.description"), description, 0, 4000);
        }
    }

    fn complete(p: ServiceGroupPatch) -> Option<Self> {
        Some(ServiceGroupFields {
            name: p.name?,
            description: p.description?,
        })
    }

    fn merge(&mut self, p: &ServiceGroupPatch) -> Vec<String> {
        let mut changed = Vec::new();
        merge_field("name", &mut self.name, &p.name, &mut changed);
        merge_field(
            "description",
            &mut self.description,
            &p.description,
            &mut changed,
        );
        changed
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFields {
    pub code: String,
    pub name: String,
    pub description: String,
    pub unit_of_measure: UnitOfMeasure,
    pub default_unit_value: Decimal,
    pub delivery_mode: DeliveryMode,
    pub service_group_id: Option<Uuid>,
    pub organization_ids: Vec<Uuid>,
    pub grant_ids: Vec<Uuid>,
    pub program_ids: Vec<Uuid>,
    /// Records must use the default unit value.
    pub unit_value_fixed: bool,
}

impl ServiceFields {
    /// Whether `principal` may see this service: tenant administrators see all; others see
    /// unrestricted services and those restricted to one of their organizations (the rule of
    /// `caseway_peers::rules::visible`, which records and authorizations apply too).
    pub fn visible_to(&self, principal: &Principal) -> bool {
        rules::visible(
            &self.organization_ids,
            &principal.organization_ids,
            principal.has_role(Role::TenantAdmin),
        )
    }
}

/// The organizations whose restricted services `principal` sees in a list: None for a tenant
/// administrator (every service), otherwise its own.
pub fn visible_organizations(principal: &Principal) -> Option<Vec<Uuid>> {
    (!principal.has_role(Role::TenantAdmin)).then(|| principal.organization_ids.clone())
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub unit_of_measure: Option<UnitOfMeasure>,
    pub default_unit_value: Option<Decimal>,
    pub delivery_mode: Option<DeliveryMode>,
    /// `Some(None)`: no group.
    pub service_group_id: Option<Option<Uuid>>,
    pub organization_ids: Option<Vec<Uuid>>,
    pub grant_ids: Option<Vec<Uuid>>,
    pub program_ids: Option<Vec<Uuid>>,
    pub unit_value_fixed: Option<bool>,
}

impl Resource for ServiceFields {
    const KIND: &'static str = "service";
    const MUTABLE: &'static [&'static str] = &[
        "code",
        "name",
        "description",
        "unit_of_measure",
        "default_unit_value",
        "delivery_mode",
        "service_group_id",
        "organization_ids",
        "grant_ids",
        "program_ids",
        "unit_value_fixed",
    ];
    type Patch = ServicePatch;

    fn patch(&self) -> ServicePatch {
        ServicePatch {
            code: Some(self.code.clone()),
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            unit_of_measure: Some(self.unit_of_measure),
            default_unit_value: Some(self.default_unit_value),
            delivery_mode: Some(self.delivery_mode),
            service_group_id: Some(self.service_group_id),
            organization_ids: Some(self.organization_ids.clone()),
            grant_ids: Some(self.grant_ids.clone()),
            program_ids: Some(self.program_ids.clone()),
            unit_value_fixed: Some(self.unit_value_fixed),
        }
    }

    fn check(p: &ServicePatch, prefix: &str, v: &mut Violations) {
        if let Some(code) = &p.code {
            v.code(&format!("{prefix}.code"), code, 32);
        }
        if let Some(name) = &p.name {
            v.text(&format!("{prefix}.name"), name, 1, 200);
        }
        if let Some(description) = &p.description {
            v.text(&format!("{prefix}.description"), description, 0, 4000);
        }
        if let Some(value) = p.default_unit_value
            && value.is_sign_negative()
            && !value.is_zero()
        {
            v.add(
                format!("{prefix}.default_unit_value"),
                "must not be negative",
            );
        }
    }

    fn complete(p: ServicePatch) -> Option<Self> {
        Some(ServiceFields {
            code: p.code?,
            name: p.name?,
            description: p.description?,
            unit_of_measure: p.unit_of_measure?,
            default_unit_value: p.default_unit_value?,
            delivery_mode: p.delivery_mode?,
            service_group_id: p.service_group_id?,
            organization_ids: p.organization_ids?,
            grant_ids: p.grant_ids?,
            program_ids: p.program_ids?,
            unit_value_fixed: p.unit_value_fixed?,
        })
    }

    fn merge(&mut self, p: &ServicePatch) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", &mut self.code, &p.code, &mut c);
        merge_field("name", &mut self.name, &p.name, &mut c);
        merge_field("description", &mut self.description, &p.description, &mut c);
        merge_field(
            "unit_of_measure",
            &mut self.unit_of_measure,
            &p.unit_of_measure,
            &mut c,
        );
        merge_field(
            "default_unit_value",
            &mut self.default_unit_value,
            &p.default_unit_value,
            &mut c,
        );
        merge_field(
            "delivery_mode",
            &mut self.delivery_mode,
            &p.delivery_mode,
            &mut c,
        );
        merge_field(
            "service_group_id",
            &mut self.service_group_id,
            &p.service_group_id,
            &mut c,
        );
        merge_field(
            "organization_ids",
            &mut self.organization_ids,
            &p.organization_ids,
            &mut c,
        );
        merge_field("grant_ids", &mut self.grant_ids, &p.grant_ids, &mut c);
        merge_field("program_ids", &mut self.program_ids, &p.program_ids, &mut c);
        merge_field(
            "unit_value_fixed",
            &mut self.unit_value_fixed,
            &p.unit_value_fixed,
            &mut c,
        );
        c
    }
}

fn validate_period(prefix: &str, start: NaiveDate, end: Option<NaiveDate>, v: &mut Violations) {
    if let Some(end) = end
        && end < start
    {
        v.add(
            format!("{prefix}.end_date"),
            "must not be before start_date",
        );
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GrantFields {
    pub code: String,
    pub name: String,
    pub funder: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub budget: Option<Decimal>,
}

impl GrantFields {
    /// Whether the grant period covers `date`.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.start_date <= date && self.end_date.is_none_or(|end| date <= end)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GrantPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub funder: Option<String>,
    pub start_date: Option<NaiveDate>,
    /// `Some(None)`: open-ended.
    pub end_date: Option<Option<NaiveDate>>,
    /// `Some(None)`: not tracked.
    pub budget: Option<Option<Decimal>>,
}

impl Resource for GrantFields {
    const KIND: &'static str = "grant";
    const MUTABLE: &'static [&'static str] =
        &["code", "name", "funder", "start_date", "end_date", "budget"];
    type Patch = GrantPatch;

    fn patch(&self) -> GrantPatch {
        GrantPatch {
            code: Some(self.code.clone()),
            name: Some(self.name.clone()),
            funder: Some(self.funder.clone()),
            start_date: Some(self.start_date),
            end_date: Some(self.end_date),
            budget: Some(self.budget),
        }
    }

    fn check(p: &GrantPatch, prefix: &str, v: &mut Violations) {
        if let Some(code) = &p.code {
            v.code(&format!("{prefix}.code"), code, 32);
        }
        if let Some(name) = &p.name {
            v.text(&format!("{prefix}.name"), name, 1, 200);
        }
        if let Some(funder) = &p.funder {
            v.text(&format!("{prefix}.funder"), funder, 0, 200);
        }
        if let (Some(start), Some(end)) = (p.start_date, p.end_date) {
            validate_period(prefix, start, end, v);
        }
    }

    fn complete(p: GrantPatch) -> Option<Self> {
        Some(GrantFields {
            code: p.code?,
            name: p.name?,
            funder: p.funder?,
            start_date: p.start_date?,
            end_date: p.end_date?,
            budget: p.budget?,
        })
    }

    fn merge(&mut self, p: &GrantPatch) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", &mut self.code, &p.code, &mut c);
        merge_field("name", &mut self.name, &p.name, &mut c);
        merge_field("funder", &mut self.funder, &p.funder, &mut c);
        merge_field("start_date", &mut self.start_date, &p.start_date, &mut c);
        merge_field("end_date", &mut self.end_date, &p.end_date, &mut c);
        merge_field("budget", &mut self.budget, &p.budget, &mut c);
        c
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProgramFields {
    pub code: String,
    pub name: String,
    pub description: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub start_date: Option<NaiveDate>,
    /// `Some(None)`: open-ended.
    pub end_date: Option<Option<NaiveDate>>,
}

impl Resource for ProgramFields {
    const KIND: &'static str = "program";
    const MUTABLE: &'static [&'static str] =
        &["code", "name", "description", "start_date", "end_date"];
    type Patch = ProgramPatch;

    fn patch(&self) -> ProgramPatch {
        ProgramPatch {
            code: Some(self.code.clone()),
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            start_date: Some(self.start_date),
            end_date: Some(self.end_date),
        }
    }

    fn check(p: &ProgramPatch, prefix: &str, v: &mut Violations) {
        if let Some(code) = &p.code {
            v.code(&format!("{prefix}.code"), code, 32);
        }
        if let Some(name) = &p.name {
            v.text(&format!("{prefix}.name"), name, 1, 200);
        }
        if let Some(description) = &p.description {
            v.text(&format!("{prefix}.description"), description, 0, 4000);
        }
        if let (Some(start), Some(end)) = (p.start_date, p.end_date) {
            validate_period(prefix, start, end, v);
        }
    }

    fn complete(p: ProgramPatch) -> Option<Self> {
        Some(ProgramFields {
            code: p.code?,
            name: p.name?,
            description: p.description?,
            start_date: p.start_date?,
            end_date: p.end_date?,
        })
    }

    fn merge(&mut self, p: &ProgramPatch) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", &mut self.code, &p.code, &mut c);
        merge_field("name", &mut self.name, &p.name, &mut c);
        merge_field("description", &mut self.description, &p.description, &mut c);
        merge_field("start_date", &mut self.start_date, &p.start_date, &mut c);
        merge_field("end_date", &mut self.end_date, &p.end_date, &mut c);
        c
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderFields {
    pub name: String,
    pub kind: ProviderKind,
    pub email: String,
    pub phone: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub kind: Option<ProviderKind>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl Resource for ProviderFields {
    const KIND: &'static str = "provider";
    const MUTABLE: &'static [&'static str] = &["name", "kind", "email", "phone"];
    type Patch = ProviderPatch;

    fn patch(&self) -> ProviderPatch {
        ProviderPatch {
            name: Some(self.name.clone()),
            kind: Some(self.kind),
            email: Some(self.email.clone()),
            phone: Some(self.phone.clone()),
        }
    }

    fn check(p: &ProviderPatch, prefix: &str, v: &mut Violations) {
        if let Some(name) = &p.name {
            v.text(&format!("{prefix}.name"), name, 1, 200);
        }
        if let Some(email) = &p.email {
            v.text(&format!("{prefix}.email"), email, 0, 320);
            if !email.is_empty() && !email.contains('@') {
                v.add(format!("{prefix}.email"), "must be an email address");
            }
        }
        if let Some(phone) = &p.phone {
            v.text(&format!("{prefix}.phone"), phone, 0, 40);
        }
    }

    fn complete(p: ProviderPatch) -> Option<Self> {
        Some(ProviderFields {
            name: p.name?,
            kind: p.kind?,
            email: p.email?,
            phone: p.phone?,
        })
    }

    fn merge(&mut self, p: &ProviderPatch) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("name", &mut self.name, &p.name, &mut c);
        merge_field("kind", &mut self.kind, &p.kind, &mut c);
        merge_field("email", &mut self.email, &p.email, &mut c);
        merge_field("phone", &mut self.phone, &p.phone, &mut c);
        c
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CodeValueFields {
    /// Fixed at creation: a code means one thing in one list.
    pub code_list: CodeList,
    pub code: String,
    pub label: String,
    pub sort_order: i32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeValuePatch {
    /// Given by a create only: an update cannot move a code to another list, so a merge leaves
    /// the list as it is.
    pub code_list: Option<CodeList>,
    pub code: Option<String>,
    pub label: Option<String>,
    pub sort_order: Option<i32>,
}

impl Resource for CodeValueFields {
    const KIND: &'static str = "code_value";
    const MUTABLE: &'static [&'static str] = &["code", "label", "sort_order"];
    type Patch = CodeValuePatch;

    fn patch(&self) -> CodeValuePatch {
        CodeValuePatch {
            code_list: Some(self.code_list),
            code: Some(self.code.clone()),
            label: Some(self.label.clone()),
            sort_order: Some(self.sort_order),
        }
    }

    fn check(p: &CodeValuePatch, prefix: &str, v: &mut Violations) {
        if let Some(code) = &p.code {
            v.code(&format!("{prefix}.code"), code, 32);
        }
        if let Some(label) = &p.label {
            v.text(&format!("{prefix}.label"), label, 1, 200);
        }
    }

    fn complete(p: CodeValuePatch) -> Option<Self> {
        Some(CodeValueFields {
            code_list: p.code_list?,
            code: p.code?,
            label: p.label?,
            sort_order: p.sort_order?,
        })
    }

    fn merge(&mut self, p: &CodeValuePatch) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", &mut self.code, &p.code, &mut c);
        merge_field("label", &mut self.label, &p.label, &mut c);
        merge_field("sort_order", &mut self.sort_order, &p.sort_order, &mut c);
        c
    }
}

// ---- the inputs of the use cases ----

/// A create a caller may retry under its request id: a retry of the same request replays the
/// first answer, another request under the same id is refused. An empty request id makes the
/// create not retryable.
#[derive(Clone, Debug, PartialEq)]
pub struct Retryable<T> {
    pub request_id: String,
    /// What the request asked, hashed (see `caseway_platform::idempotency`).
    pub fingerprint: Fingerprint,
    pub change: T,
}

/// An update of an entry: the fields `patch` gives, if the entry is still at
/// `expected_version` (when given). The fields are checked once merged with the stored ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Update<P> {
    pub id: Uuid,
    pub expected_version: Option<i64>,
    pub patch: P,
}

/// The entry a retire or a delete acts on, if it is still at `expected_version` (when given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: Uuid,
    pub expected_version: Option<i64>,
}

/// Filters of a service list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceFilter {
    pub service_group_id: Option<Uuid>,
    pub delivery_mode: Option<DeliveryMode>,
    pub grant_id: Option<Uuid>,
    pub program_id: Option<Uuid>,
    pub query: Option<String>,
    pub include_retired: bool,
    /// None: every service (tenant_admin); Some: unrestricted ones and those of these organizations.
    pub visible_to_organizations: Option<Vec<Uuid>>,
}

/// Filters of a grant or a program list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeriodFilter {
    /// A case-insensitive match on the code or the name (and a grant's funder).
    pub query: Option<String>,
    /// Only entries whose period covers this date.
    pub active_on: Option<NaiveDate>,
    pub include_retired: bool,
}

/// Filters of a provider list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderFilter {
    /// A match on the name that tolerates typos.
    pub query: Option<String>,
    pub kind: Option<ProviderKind>,
    pub include_retired: bool,
}

/// Filters of a code value list: one list.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeValueFilter {
    pub code_list: CodeList,
    pub include_retired: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(orgs: Vec<Uuid>) -> ServiceFields {
        ServiceFields {
            code: "FA".into(),
            name: "Financial Assistance".into(),
            description: String::new(),
            unit_of_measure: UnitOfMeasure::Dollars,
            default_unit_value: Decimal::ONE,
            delivery_mode: DeliveryMode::Direct,
            service_group_id: None,
            organization_ids: orgs,
            grant_ids: vec![],
            program_ids: vec![],
            unit_value_fixed: false,
        }
    }

    fn principal(roles: Vec<Role>, orgs: Vec<Uuid>) -> Principal {
        Principal {
            user_id: "u".into(),
            tenant_id: None,
            organization_ids: orgs,
            roles,
            permissions: vec![],
            service: None,
        }
    }

    #[test]
    fn restricted_service_is_visible_only_inside_its_organizations() {
        let north = Uuid::now_v7();
        let south = Uuid::now_v7();
        let restricted = service(vec![north]);
        assert!(restricted.visible_to(&principal(vec![Role::Caseworker], vec![north])));
        assert!(!restricted.visible_to(&principal(vec![Role::Caseworker], vec![south])));
        assert!(restricted.visible_to(&principal(vec![Role::TenantAdmin], vec![])));
        assert!(service(vec![]).visible_to(&principal(vec![Role::Caseworker], vec![])));
    }

    #[test]
    fn a_list_shows_administrators_every_service_and_others_their_organizations() {
        let north = Uuid::now_v7();
        assert_eq!(
            visible_organizations(&principal(vec![Role::TenantAdmin], vec![north])),
            None
        );
        assert_eq!(
            visible_organizations(&principal(vec![Role::Caseworker], vec![north])),
            Some(vec![north])
        );
    }

    #[test]
    fn merge_copies_only_the_fields_of_the_patch_and_reports_changes() {
        let mut current = service(vec![]);
        let patch = ServicePatch {
            name: Some("Cash Assistance".into()),
            ..Default::default()
        };
        let changed = current.merge(&patch);
        assert_eq!(changed, vec!["name".to_string()]);
        assert_eq!(current.name, "Cash Assistance");
        assert_eq!(current.code, "FA");
        // A field given with the value it has is not a change.
        let same = ServicePatch {
            code: Some("FA".into()),
            ..Default::default()
        };
        assert!(current.merge(&same).is_empty());
    }

    #[test]
    fn a_patch_of_every_field_completes_and_a_partial_one_does_not() {
        let fields = service(vec![Uuid::now_v7()]);
        assert_eq!(
            ServiceFields::complete(fields.patch()),
            Some(fields.clone())
        );
        let mut partial = fields.patch();
        partial.unit_of_measure = None;
        assert_eq!(ServiceFields::complete(partial), None);
    }

    #[test]
    fn a_code_value_keeps_its_list_through_a_merge() {
        let mut value = CodeValueFields {
            code_list: CodeList::Reason,
            code: "EVICTION".into(),
            label: "Facing eviction".into(),
            sort_order: 0,
        };
        let changed = value.merge(&CodeValuePatch {
            code_list: Some(CodeList::Goal),
            label: Some("Eviction".into()),
            ..Default::default()
        });
        assert_eq!(changed, vec!["label".to_string()]);
        assert_eq!(value.code_list, CodeList::Reason);
    }

    #[test]
    fn grant_period_must_not_end_before_it_starts() {
        let grant = GrantFields {
            code: "G".into(),
            name: "Grant".into(),
            funder: String::new(),
            start_date: NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
            end_date: NaiveDate::from_ymd_opt(2026, 6, 30),
            budget: None,
        };
        let mut v = Violations::new();
        grant.validate("grant", &mut v);
        assert_eq!(v.fields(), vec!["grant.end_date"]);
    }

    #[test]
    fn a_patch_is_checked_for_the_fields_it_gives() {
        let mut v = Violations::new();
        ServiceFields::check(
            &ServicePatch {
                name: Some(String::new()),
                ..Default::default()
            },
            "service",
            &mut v,
        );
        assert_eq!(v.fields(), vec!["service.name"]);
    }

    #[test]
    fn grant_covers_its_period_inclusive_and_open_ended() {
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        let mut grant = GrantFields {
            code: "G".into(),
            name: "Grant".into(),
            funder: String::new(),
            start_date: day(1, 1),
            end_date: Some(day(6, 30)),
            budget: None,
        };
        assert!(grant.covers(day(1, 1)));
        assert!(grant.covers(day(6, 30)));
        assert!(!grant.covers(day(7, 1)));
        grant.end_date = None;
        assert!(grant.covers(day(12, 31)));
    }

    #[test]
    fn text_values_parse_only_their_own_names() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(*state));
        }
        for list in CodeList::ALL {
            assert_eq!(CodeList::parse(list.as_str()), Some(*list));
        }
        assert_eq!(UnitOfMeasure::parse("DOLLARS"), None);
        assert_eq!(State::parse(""), None);
    }
}
