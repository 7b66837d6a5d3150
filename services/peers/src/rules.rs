//! What the catalog and the clients service say of the things a record or an authorization
//! names, and the rules records and authorizations both apply to them: the units of measure
//! and their scale, who may use a service restricted to security organizations, a grant's and
//! an enrollment's period. No I/O here.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_api::catalog::v1::CodeList;
use caseway_platform::validate::Violations;
use caseway_platform::{ClientId, GrantId, ServiceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitOfMeasure {
    Dollars,
    Hours,
    Minutes,
    Count,
}

impl UnitOfMeasure {
    /// Decimal places a quantity of this unit may have: cents of dollars, hundredths of hours,
    /// whole minutes and counts.
    pub fn scale(self) -> u32 {
        match self {
            UnitOfMeasure::Dollars | UnitOfMeasure::Hours => 2,
            UnitOfMeasure::Minutes | UnitOfMeasure::Count => 0,
        }
    }

    /// The catalog's name of it: DOLLARS, HOURS, MINUTES, COUNT.
    pub fn code(self) -> &'static str {
        match self {
            UnitOfMeasure::Dollars => "DOLLARS",
            UnitOfMeasure::Hours => "HOURS",
            UnitOfMeasure::Minutes => "MINUTES",
            UnitOfMeasure::Count => "COUNT",
        }
    }

    /// The unit of a catalog code (DOLLARS, HOURS, MINUTES, COUNT).
    pub fn of_code(code: &str) -> Option<UnitOfMeasure> {
        [
            UnitOfMeasure::Dollars,
            UnitOfMeasure::Hours,
            UnitOfMeasure::Minutes,
            UnitOfMeasure::Count,
        ]
        .into_iter()
        .find(|unit| unit.code() == code)
    }

    /// The catalog's wire value of it.
    pub fn to_proto(self) -> caseway_api::catalog::v1::UnitOfMeasure {
        use caseway_api::catalog::v1::UnitOfMeasure as Pb;
        match self {
            UnitOfMeasure::Dollars => Pb::Dollars,
            UnitOfMeasure::Hours => Pb::Hours,
            UnitOfMeasure::Minutes => Pb::Minutes,
            UnitOfMeasure::Count => Pb::Count,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnitOfMeasure::Dollars => "dollars",
            UnitOfMeasure::Hours => "hours",
            UnitOfMeasure::Minutes => "minutes",
            UnitOfMeasure::Count => "a count",
        }
    }
}

/// A stored code read back (for `#[sqlx(try_from = "String")]`): one this version does not
/// know is an error, never a guess.
impl TryFrom<String> for UnitOfMeasure {
    type Error = String;

    fn try_from(code: String) -> Result<Self, String> {
        UnitOfMeasure::of_code(&code).ok_or_else(|| format!("unknown unit of measure {code:?}"))
    }
}

/// What the catalog says of a service, as recording and authorizing need it.
#[derive(Clone, Debug)]
pub struct ServiceFacts {
    pub id: ServiceId,
    pub active: bool,
    pub direct: bool,
    pub unit_of_measure: UnitOfMeasure,
    pub default_unit_value: Decimal,
    pub organization_ids: Vec<Uuid>,
    pub grant_ids: Vec<GrantId>,
    pub service_group_id: Option<Uuid>,
    /// Records must use the default unit value.
    pub unit_value_fixed: bool,
}

impl ServiceFacts {
    /// Whether a caller in `organizations` may use it (see [`visible`]).
    pub fn visible_to(&self, organizations: &[Uuid], admin: bool) -> bool {
        visible(&self.organization_ids, organizations, admin)
    }
}

/// Whether a service restricted to `restricted_to` (empty: not restricted) is visible to a
/// caller in `organizations`: unrestricted, restricted to one of theirs, or the caller
/// administers the tenant. A service invisible to a caller hides its records and
/// authorizations from them too.
pub fn visible(restricted_to: &[Uuid], organizations: &[Uuid], admin: bool) -> bool {
    admin || restricted_to.is_empty() || restricted_to.iter().any(|o| organizations.contains(o))
}

#[derive(Clone, Debug)]
pub struct GrantFacts {
    pub id: GrantId,
    pub active: bool,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

/// A code value's list and whether it is still offered.
#[derive(Clone, Debug)]
pub struct CodeValueFacts {
    pub code: String,
    pub code_list: CodeList,
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct EnrollmentFacts {
    pub id: Uuid,
    pub client_id: ClientId,
    pub program_id: Uuid,
    pub entry_date: NaiveDate,
    pub exit_date: Option<NaiveDate>,
}

/// Checks that need the service: usable by the caller, active, and of the delivery mode
/// asked for (`indirect`: recorded for no client).
pub fn check_service(
    service: &ServiceFacts,
    indirect: bool,
    field: &str,
    organizations: &[Uuid],
    admin: bool,
    v: &mut Violations,
) {
    if !service.visible_to(organizations, admin) {
        v.add(
            field,
            "is restricted to security organizations you do not belong to",
        );
    } else if !service.active {
        v.add(field, "is retired and takes no new records");
    } else if indirect && service.direct {
        v.add(field, "is a DIRECT service; record it for a client");
    } else if !indirect && !service.direct {
        v.add(
            field,
            "is an INDIRECT service; record it as an indirect service",
        );
    }
}

/// The grant funds the service and its period covers the service date.
pub fn check_grant(
    grant: &GrantFacts,
    service: &ServiceFacts,
    date: NaiveDate,
    field: &str,
    v: &mut Violations,
) {
    check_grant_over(grant, service, (date, date), "the service date", field, v);
}

/// The grant funds the service and its period covers all of `period` (first and last day),
/// which the refusal calls `what`: a record's date, an authorization's period.
pub fn check_grant_over(
    grant: &GrantFacts,
    service: &ServiceFacts,
    (first, last): (NaiveDate, NaiveDate),
    what: &str,
    field: &str,
    v: &mut Violations,
) {
    if !service.grant_ids.contains(&grant.id) {
        v.add(field, "is not a grant of this service");
    } else if !grant.active {
        v.add(field, "is retired");
    } else if first < grant.start_date || grant.end_date.is_some_and(|end| last > end) {
        v.add(field, format!("does not cover {what}"));
    }
}

/// The enrollment is the client's and covers the date.
pub fn check_enrollment(
    enrollment: &EnrollmentFacts,
    client_id: ClientId,
    date: NaiveDate,
    field: &str,
    v: &mut Violations,
) {
    if enrollment.client_id != client_id {
        v.add(field, "is not an enrollment of this client");
    } else if date < enrollment.entry_date || enrollment.exit_date.is_some_and(|exit| date > exit) {
        v.add(field, "does not cover the service date");
    }
}

/// Units: positive and of the unit of measure's precision.
pub fn check_units(units: Decimal, unit: UnitOfMeasure, field: &str, v: &mut Violations) {
    if units <= Decimal::ZERO {
        v.add(field, "must be positive");
    } else if units.normalize().scale() > unit.scale() {
        v.add(
            field,
            match unit.scale() {
                0 => format!("must be whole for {}", unit.name()),
                n => format!("must have at most {n} decimal places for {}", unit.name()),
            },
        );
    }
}

/// The unit value a record uses: the service's default, or the recorder's own where the
/// service allows it.
pub fn unit_value(
    given: Option<Decimal>,
    service: &ServiceFacts,
    field: &str,
    v: &mut Violations,
) -> Decimal {
    match given {
        Some(given) if service.unit_value_fixed && given != service.default_unit_value => {
            v.add(
                field,
                format!(
                    "is fixed at {} for this service",
                    service.default_unit_value.round_dp(2)
                ),
            );
            service.default_unit_value
        }
        Some(given) => given,
        None => service.default_unit_value,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn units_fit_their_unit_of_measure() {
        for (units, unit, ok) in [
            ("15", UnitOfMeasure::Minutes, true),
            ("15.5", UnitOfMeasure::Minutes, false),
            ("1.25", UnitOfMeasure::Hours, true),
            ("1.255", UnitOfMeasure::Hours, false),
            ("250.00", UnitOfMeasure::Dollars, true),
            ("0.001", UnitOfMeasure::Dollars, false),
            ("3", UnitOfMeasure::Count, true),
            ("0", UnitOfMeasure::Count, false),
            ("-2", UnitOfMeasure::Count, false),
        ] {
            let mut v = Violations::new();
            check_units(Decimal::from_str(units).unwrap(), unit, "units", &mut v);
            assert_eq!(v.is_empty(), ok, "{units} {unit:?}");
        }
    }

    #[test]
    fn a_restricted_service_is_visible_inside_its_organizations_and_to_admins() {
        let (north, south) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(visible(&[], &[], false));
        assert!(visible(&[north], &[north], false));
        assert!(!visible(&[north], &[south], false));
        assert!(visible(&[north], &[], true));
    }
}
