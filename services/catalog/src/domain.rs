//! Catalog types and rules: what each resource holds, what makes it valid, how an update mask
//! merges into it, and who sees a restricted service. No I/O here.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_platform::auth::{Principal, Role};
use caseway_platform::validate::Violations;

/// Caps on list fields, so one request cannot write an unbounded row.
pub const MAX_LINKS: usize = 200;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

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

    /// Adds a violation for every invalid field; paths start with `prefix`.
    fn validate(&self, prefix: &str, violations: &mut Violations);

    /// Copies the masked fields of `input` into `self`; returns the names of those that changed.
    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String>;
}

/// Copies one field when the mask names it and the value differs.
pub fn merge_field<T: PartialEq + Clone>(
    name: &'static str,
    mask: &[&'static str],
    target: &mut T,
    input: &T,
    changed: &mut Vec<String>,
) {
    if mask.contains(&name) && target != input {
        *target = input.clone();
        changed.push(name.to_string());
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceGroupFields {
    pub name: String,
    pub description: String,
}

impl Resource for ServiceGroupFields {
    const KIND: &'static str = "service_group";
    const MUTABLE: &'static [&'static str] = &["name", "description"];

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.description"), &self.description, 0, 4000);
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut changed = Vec::new();
        merge_field("name", mask, &mut self.name, &input.name, &mut changed);
        merge_field(
            "description",
            mask,
            &mut self.description,
            &input.description,
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
    /// unrestricted services and those restricted to one of their organizations.
    pub fn visible_to(&self, principal: &Principal) -> bool {
        self.organization_ids.is_empty()
            || principal.has_role(Role::TenantAdmin)
            || self
                .organization_ids
                .iter()
                .any(|o| principal.organization_ids.contains(o))
    }
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

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.code(&format!("{prefix}.code"), &self.code, 32);
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.description"), &self.description, 0, 4000);
        if self.default_unit_value.is_sign_negative() && !self.default_unit_value.is_zero() {
            v.add(
                format!("{prefix}.default_unit_value"),
                "must not be negative",
            );
        }
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", mask, &mut self.code, &input.code, &mut c);
        merge_field("name", mask, &mut self.name, &input.name, &mut c);
        merge_field(
            "description",
            mask,
            &mut self.description,
            &input.description,
            &mut c,
        );
        merge_field(
            "unit_of_measure",
            mask,
            &mut self.unit_of_measure,
            &input.unit_of_measure,
            &mut c,
        );
        merge_field(
            "default_unit_value",
            mask,
            &mut self.default_unit_value,
            &input.default_unit_value,
            &mut c,
        );
        merge_field(
            "delivery_mode",
            mask,
            &mut self.delivery_mode,
            &input.delivery_mode,
            &mut c,
        );
        merge_field(
            "service_group_id",
            mask,
            &mut self.service_group_id,
            &input.service_group_id,
            &mut c,
        );
        merge_field(
            "organization_ids",
            mask,
            &mut self.organization_ids,
            &input.organization_ids,
            &mut c,
        );
        merge_field(
            "grant_ids",
            mask,
            &mut self.grant_ids,
            &input.grant_ids,
            &mut c,
        );
        merge_field(
            "program_ids",
            mask,
            &mut self.program_ids,
            &input.program_ids,
            &mut c,
        );
        merge_field(
            "unit_value_fixed",
            mask,
            &mut self.unit_value_fixed,
            &input.unit_value_fixed,
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

impl Resource for GrantFields {
    const KIND: &'static str = "grant";
    const MUTABLE: &'static [&'static str] =
        &["code", "name", "funder", "start_date", "end_date", "budget"];

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.code(&format!("{prefix}.code"), &self.code, 32);
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.funder"), &self.funder, 0, 200);
        validate_period(prefix, self.start_date, self.end_date, v);
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", mask, &mut self.code, &input.code, &mut c);
        merge_field("name", mask, &mut self.name, &input.name, &mut c);
        merge_field("funder", mask, &mut self.funder, &input.funder, &mut c);
        merge_field(
            "start_date",
            mask,
            &mut self.start_date,
            &input.start_date,
            &mut c,
        );
        merge_field(
            "end_date",
            mask,
            &mut self.end_date,
            &input.end_date,
            &mut c,
        );
        merge_field("budget", mask, &mut self.budget, &input.budget, &mut c);
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

impl Resource for ProgramFields {
    const KIND: &'static str = "program";
    const MUTABLE: &'static [&'static str] =
        &["code", "name", "description", "start_date", "end_date"];

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.code(&format!("{prefix}.code"), &self.code, 32);
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.description"), &self.description, 0, 4000);
        validate_period(prefix, self.start_date, self.end_date, v);
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", mask, &mut self.code, &input.code, &mut c);
        merge_field("name", mask, &mut self.name, &input.name, &mut c);
        merge_field(
            "description",
            mask,
            &mut self.description,
            &input.description,
            &mut c,
        );
        merge_field(
            "start_date",
            mask,
            &mut self.start_date,
            &input.start_date,
            &mut c,
        );
        merge_field(
            "end_date",
            mask,
            &mut self.end_date,
            &input.end_date,
            &mut c,
        );
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

impl Resource for ProviderFields {
    const KIND: &'static str = "provider";
    const MUTABLE: &'static [&'static str] = &["name", "kind", "email", "phone"];

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.text(&format!("{prefix}.name"), &self.name, 1, 200);
        v.text(&format!("{prefix}.email"), &self.email, 0, 320);
        if !self.email.is_empty() && !self.email.contains('@') {
            v.add(format!("{prefix}.email"), "must be an email address");
        }
        v.text(&format!("{prefix}.phone"), &self.phone, 0, 40);
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("name", mask, &mut self.name, &input.name, &mut c);
        merge_field("kind", mask, &mut self.kind, &input.kind, &mut c);
        merge_field("email", mask, &mut self.email, &input.email, &mut c);
        merge_field("phone", mask, &mut self.phone, &input.phone, &mut c);
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

impl Resource for CodeValueFields {
    const KIND: &'static str = "code_value";
    const MUTABLE: &'static [&'static str] = &["code", "label", "sort_order"];

    fn validate(&self, prefix: &str, v: &mut Violations) {
        v.code(&format!("{prefix}.code"), &self.code, 32);
        v.text(&format!("{prefix}.label"), &self.label, 1, 200);
    }

    fn merge(&mut self, input: &Self, mask: &[&'static str]) -> Vec<String> {
        let mut c = Vec::new();
        merge_field("code", mask, &mut self.code, &input.code, &mut c);
        merge_field("label", mask, &mut self.label, &input.label, &mut c);
        merge_field(
            "sort_order",
            mask,
            &mut self.sort_order,
            &input.sort_order,
            &mut c,
        );
        c
    }
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
    fn merge_copies_only_masked_fields_and_reports_changes() {
        let mut current = service(vec![]);
        let mut input = service(vec![]);
        input.name = "Cash Assistance".into();
        input.code = "CA".into();
        let changed = current.merge(&input, &["name"]);
        assert_eq!(changed, vec!["name".to_string()]);
        assert_eq!(current.name, "Cash Assistance");
        assert_eq!(current.code, "FA");
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
        assert!(!v.is_empty());
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
}
