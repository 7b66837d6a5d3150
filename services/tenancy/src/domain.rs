//! Tenancy types and rules: what a tenant and an organization are, the inputs that create and
//! change them, and the checks those inputs must pass. No I/O, no proto, nothing async.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::idempotency::Fingerprint;
use caseway_platform::validate::Violations;

/// The rules of tenancy a change can break (FAILED_PRECONDITION). A taken slug or code is
/// ALREADY_EXISTS, a stale etag ABORTED, a bad field INVALID_ARGUMENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A purged tenant has no data left: it is never resumed.
    TenantPurged,
}

impl caseway_platform::error::Rule for Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::TenantPurged => "tenant_purged",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 2] = [TenantStatus::Active, TenantStatus::Suspended];

    pub fn as_str(&self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    /// The status named `text` ([`TenantStatus::as_str`]); None for any other text.
    pub fn parse(text: &str) -> Option<TenantStatus> {
        TenantStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub status: TenantStatus,
    /// Calls per second across every replica; None is the deployment's default.
    pub calls_per_second: Option<u32>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When its data was purged; None while it has data.
    pub purged_at: Option<DateTime<Utc>>,
}

impl Tenant {
    /// Its mutable fields as they are now.
    pub fn fields(&self) -> TenantFields {
        TenantFields {
            display_name: self.display_name.clone(),
            calls_per_second: self.calls_per_second,
        }
    }
}

/// The most calls per second a tenant's own limit may allow.
pub const MAX_CALLS_PER_SECOND: u32 = 1_000_000;

/// The fields of a tenant the hosting provider changes (its slug is for good; its status
/// changes by suspension and resumption).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantFields {
    pub display_name: String,
    pub calls_per_second: Option<u32>,
}

/// One mutable field of a tenant, as an update mask names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantField {
    DisplayName,
    Limits,
}

impl TenantField {
    pub const ALL: [TenantField; 2] = [TenantField::DisplayName, TenantField::Limits];

    /// The field's name in an update mask, an audit row and an event's `changed_fields`.
    pub fn name(self) -> &'static str {
        match self {
            TenantField::DisplayName => "display_name",
            TenantField::Limits => "limits",
        }
    }

    pub fn parse(name: &str) -> Option<TenantField> {
        TenantField::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl TenantFields {
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        violations.text(&format!("{field}.display_name"), &self.display_name, 1, 200);
        if self
            .calls_per_second
            .is_some_and(|limit| limit > MAX_CALLS_PER_SECOND)
        {
            violations.add(
                format!("{field}.limits.calls_per_second"),
                format!("must be 0 (the default) to {MAX_CALLS_PER_SECOND}"),
            );
        }
    }

    /// These fields with those of `mask` set as in `requested`, and the names of the fields
    /// that changed, in the mask's order.
    pub fn updated(
        &self,
        requested: &TenantFields,
        mask: &[TenantField],
    ) -> (TenantFields, Vec<String>) {
        let mut next = self.clone();
        let mut changed = Vec::new();
        for field in mask {
            match field {
                TenantField::DisplayName if next.display_name != requested.display_name => {
                    next.display_name = requested.display_name.clone();
                    changed.push(field.name().to_string());
                }
                TenantField::Limits if next.calls_per_second != requested.calls_per_second => {
                    next.calls_per_second = requested.calls_per_second;
                    changed.push(field.name().to_string());
                }
                _ => {}
            }
        }
        (next, changed)
    }
}

/// An update of a tenant: the fields of `mask` set as in `fields`, if the tenant is still at
/// `expected_version` (when given). The fields are checked once merged with the stored ones.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantUpdate {
    pub id: TenantId,
    pub expected_version: Option<i64>,
    pub fields: TenantFields,
    pub mask: Vec<TenantField>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewTenant {
    pub slug: String,
    pub display_name: String,
}

impl NewTenant {
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        let slug_ok = (3..=63).contains(&self.slug.len())
            && self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.slug.starts_with('-')
            && !self.slug.ends_with('-');
        if self.slug.is_empty() {
            violations.add(format!("{field}.slug"), "is required");
        } else if !slug_ok {
            violations.add(
                format!("{field}.slug"),
                "must be 3 to 63 lowercase letters, digits or inner dashes",
            );
        }
        violations.text(&format!("{field}.display_name"), &self.display_name, 1, 200);
    }
}

/// A tenant suspended or resumed, and why (told to the event's subscribers).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantStatusChange {
    pub tenant: TenantId,
    pub status: TenantStatus,
    pub reason: String,
}

impl TenantStatusChange {
    pub fn validate(&self, violations: &mut Violations) {
        violations.text("reason", &self.reason, 0, 1000);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Organization {
    /// Its mutable fields as they are now.
    pub fn fields(&self) -> OrganizationFields {
        OrganizationFields {
            code: self.code.clone(),
            name: self.name.clone(),
        }
    }
}

/// The mutable fields of an organization.
#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationFields {
    pub code: String,
    pub name: String,
}

/// One mutable field of an organization, as an update mask names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrganizationField {
    Code,
    Name,
}

impl OrganizationField {
    pub const ALL: [OrganizationField; 2] = [OrganizationField::Code, OrganizationField::Name];

    /// The field's name in an update mask, an audit row and an event's `changed_fields`.
    pub fn name(self) -> &'static str {
        match self {
            OrganizationField::Code => "code",
            OrganizationField::Name => "name",
        }
    }

    pub fn parse(name: &str) -> Option<OrganizationField> {
        OrganizationField::ALL
            .into_iter()
            .find(|f| f.name() == name)
    }
}

impl OrganizationFields {
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        violations.code(&format!("{field}.code"), &self.code, 32);
        violations.text(&format!("{field}.name"), &self.name, 1, 200);
    }

    /// These fields with those of `mask` set as in `requested`, and the names of the fields
    /// that changed, in the mask's order.
    pub fn updated(
        &self,
        requested: &OrganizationFields,
        mask: &[OrganizationField],
    ) -> (OrganizationFields, Vec<String>) {
        let mut next = self.clone();
        let mut changed = Vec::new();
        for field in mask {
            match field {
                OrganizationField::Code if next.code != requested.code => {
                    next.code = requested.code.clone();
                    changed.push(field.name().to_string());
                }
                OrganizationField::Name if next.name != requested.name => {
                    next.name = requested.name.clone();
                    changed.push(field.name().to_string());
                }
                _ => {}
            }
        }
        (next, changed)
    }
}

/// An update of an organization: the fields of `mask` set as in `fields`, if the organization
/// is still at `expected_version` (when given). The fields are checked once merged with the
/// stored ones.
#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationUpdate {
    pub id: Uuid,
    pub expected_version: Option<i64>,
    pub fields: OrganizationFields,
    pub mask: Vec<OrganizationField>,
}

/// The deletion of an organization, if it is still at `expected_version` (when given).
#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationDeletion {
    pub id: Uuid,
    pub expected_version: Option<i64>,
}

/// A change a caller may retry under its request id: a retry of the same request replays the
/// first answer, another request under the same id is refused. An empty request id makes the
/// change not retryable.
#[derive(Clone, Debug, PartialEq)]
pub struct Retryable<T> {
    pub request_id: String,
    /// What the request asked, hashed (see `caseway_platform::idempotency`).
    pub fingerprint: Fingerprint,
    pub change: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_tenant(slug: &str, display_name: &str) -> Vec<String> {
        let mut violations = Violations::new();
        NewTenant {
            slug: slug.into(),
            display_name: display_name.into(),
        }
        .validate("tenant", &mut violations);
        violations.fields()
    }

    #[test]
    fn a_slug_is_3_to_63_lowercase_letters_digits_or_inner_dashes() {
        assert!(new_tenant("agency-one", "Agency One").is_empty());
        assert!(new_tenant("a1b", "A").is_empty());
        for slug in ["", "ab", "Agency", "-agency", "agency-", "agency one"] {
            assert_eq!(new_tenant(slug, "Agency"), vec!["tenant.slug"], "{slug:?}");
        }
        assert_eq!(new_tenant(&"a".repeat(64), "Agency"), vec!["tenant.slug"]);
        assert_eq!(new_tenant("agency", ""), vec!["tenant.display_name"]);
    }

    #[test]
    fn a_tenant_status_parses_only_its_own_names() {
        for status in TenantStatus::ALL {
            assert_eq!(TenantStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TenantStatus::parse("closed"), None);
        assert_eq!(TenantStatus::parse(""), None);
    }

    #[test]
    fn a_status_change_reason_is_optional_and_bounded() {
        let change = |reason: &str| {
            let mut violations = Violations::new();
            TenantStatusChange {
                tenant: TenantId::new(),
                status: TenantStatus::Suspended,
                reason: reason.into(),
            }
            .validate(&mut violations);
            violations.fields()
        };
        assert!(change("").is_empty());
        assert!(change("unpaid invoices").is_empty());
        assert_eq!(change(&"x".repeat(1001)), vec!["reason"]);
    }

    #[test]
    fn an_update_changes_only_masked_fields_that_differ() {
        let current = OrganizationFields {
            code: "NORTH".into(),
            name: "North".into(),
        };
        let requested = OrganizationFields {
            code: "SOUTH".into(),
            name: "North".into(),
        };
        let (next, changed) = current.updated(&requested, &[OrganizationField::Name]);
        assert_eq!(next, current);
        assert!(changed.is_empty());
        let (next, changed) = current.updated(&requested, &OrganizationField::ALL);
        assert_eq!(next, requested);
        assert_eq!(changed, vec!["code"]);
    }

    #[test]
    fn organization_field_names_round_trip() {
        for field in OrganizationField::ALL {
            assert_eq!(OrganizationField::parse(field.name()), Some(field));
        }
        assert_eq!(OrganizationField::parse("id"), None);
    }
}
