//! Service record rules: what a delivery, a turn-away and an indirect service must say, checked
//! against the facts of the catalog and the client. No I/O here: the facts are looked up by
//! the API and handed in.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_platform::auth::Role;
use caseway_platform::validate::Violations;

/// Roles that record and read service records.
pub const RECORD_ROLES: &[Role] = &[Role::Caseworker, Role::Supervisor, Role::TenantAdmin];

/// Roles that may delete a service record.
pub const DELETE_ROLES: &[Role] = &[Role::Supervisor, Role::TenantAdmin];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Delivered = 1,
    TurnAway = 2,
    Indirect = 3,
}

impl Kind {
    pub fn from_code(code: i16) -> Option<Kind> {
        Some(match code {
            1 => Kind::Delivered,
            2 => Kind::TurnAway,
            3 => Kind::Indirect,
            _ => return None,
        })
    }
}

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

    pub fn name(self) -> &'static str {
        match self {
            UnitOfMeasure::Dollars => "dollars",
            UnitOfMeasure::Hours => "hours",
            UnitOfMeasure::Minutes => "minutes",
            UnitOfMeasure::Count => "a count",
        }
    }
}

/// What the catalog says of a service, as the recording form needs it.
#[derive(Clone, Debug)]
pub struct ServiceFacts {
    pub id: Uuid,
    pub active: bool,
    pub direct: bool,
    pub unit_of_measure: UnitOfMeasure,
    pub default_unit_value: Decimal,
    pub organization_ids: Vec<Uuid>,
    pub grant_ids: Vec<Uuid>,
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
    pub id: Uuid,
    pub active: bool,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

#[derive(Clone, Debug)]
pub struct EnrollmentFacts {
    pub id: Uuid,
    pub client_id: Uuid,
    pub program_id: Uuid,
    pub entry_date: NaiveDate,
    pub exit_date: Option<NaiveDate>,
}

/// Checks that need the service: active, of the right delivery mode, usable by the caller.
pub fn check_service(
    service: &ServiceFacts,
    kind: Kind,
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
    } else if kind == Kind::Indirect && service.direct {
        v.add(field, "is a DIRECT service; record it for a client");
    } else if kind != Kind::Indirect && !service.direct {
        v.add(
            field,
            "is an INDIRECT service; record it as an indirect service",
        );
    }
}

/// The grant funds the service and its period covers the date.
pub fn check_grant(
    grant: &GrantFacts,
    service: &ServiceFacts,
    date: NaiveDate,
    field: &str,
    v: &mut Violations,
) {
    if !service.grant_ids.contains(&grant.id) {
        v.add(field, "is not a grant of this service");
    } else if !grant.active {
        v.add(field, "is retired");
    } else if date < grant.start_date || grant.end_date.is_some_and(|end| date > end) {
        v.add(field, "does not cover the service date");
    }
}

/// The enrollment is the client's and covers the date.
pub fn check_enrollment(
    enrollment: &EnrollmentFacts,
    client_id: Uuid,
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

/// How much a record says was delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantities {
    pub units: Option<Decimal>,
    pub unit_value: Option<Decimal>,
    pub people_reached: Option<i32>,
}

/// Field names under one prefix (`record.`, `lines[3].`), written into one buffer: a form's
/// lines name a dozen fields each, and most are never reported.
pub struct Fields<'a> {
    prefix: &'a str,
    name: String,
}

impl<'a> Fields<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Fields {
            prefix,
            name: String::with_capacity(prefix.len() + 24),
        }
    }

    pub fn at(&mut self, name: &str) -> &str {
        self.name.clear();
        self.name.push_str(self.prefix);
        self.name.push_str(name);
        &self.name
    }
}

/// The quantities a record of `kind` stores, from what was given: a delivery needs units; an
/// indirect service is one session unless said otherwise and needs a positive count of people;
/// a turn-away delivers no units. Units fit the service's unit of measure; the unit value is
/// the service's unless it allows another. Violations are named under `prefix`.
pub fn quantities(
    kind: Kind,
    given: Quantities,
    service: &ServiceFacts,
    prefix: &str,
    v: &mut Violations,
) -> Quantities {
    let mut f = Fields::new(prefix);
    let people_reached = match (kind, given.people_reached) {
        (Kind::Indirect, Some(n)) if n > 0 => Some(n),
        (Kind::Indirect, _) => {
            v.add(
                f.at("people_reached"),
                "must be positive for an indirect service",
            );
            None
        }
        (_, Some(_)) => {
            v.add(f.at("people_reached"), "is only for an indirect service");
            None
        }
        (_, None) => None,
    };
    if kind == Kind::TurnAway {
        if given.units.is_some() {
            v.add(f.at("units"), "a turn-away delivers no units");
        }
        return Quantities {
            people_reached,
            ..Quantities::default()
        };
    }
    let units = match (given.units, kind) {
        (Some(units), _) => units,
        (None, Kind::Indirect) => Decimal::ONE,
        (None, _) => {
            // Unless it was given and is not a number (already said).
            if !v.mentions(f.at("units")) {
                v.add(f.at("units"), "is required");
            }
            Decimal::ONE
        }
    };
    check_units(units, service.unit_of_measure, f.at("units"), v);
    let unit_value = unit_value(given.unit_value, service, f.at("unit_value"), v);
    if !caseway_platform::validate::storable(units * unit_value) {
        v.add(
            f.at("units"),
            "times the unit value is more than a value can be (under 10^14)",
        );
    }
    Quantities {
        units: Some(units),
        unit_value: Some(unit_value),
        people_reached,
    }
}

/// value = units x unit value, exactly.
pub fn value(units: Decimal, unit_value: Decimal) -> Decimal {
    (units * unit_value).normalize()
}

/// A date of service: not in the future.
pub fn check_date(date: NaiveDate, today: NaiveDate, field: &str, v: &mut Violations) {
    if date > today {
        v.add(field, "must not be in the future");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

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
            check_units(d(units), unit, "units", &mut v);
            assert_eq!(v.is_empty(), ok, "{units} {unit:?}");
        }
    }

    fn hours(fixed: bool) -> ServiceFacts {
        ServiceFacts {
            id: Uuid::now_v7(),
            active: true,
            direct: true,
            unit_of_measure: UnitOfMeasure::Hours,
            default_unit_value: d("45"),
            organization_ids: vec![],
            grant_ids: vec![],
            service_group_id: None,
            unit_value_fixed: fixed,
        }
    }

    #[test]
    fn quantities_follow_the_kind_of_record() {
        let given = |units: Option<&str>, price: Option<&str>, people: Option<i32>| Quantities {
            units: units.map(d),
            unit_value: price.map(d),
            people_reached: people,
        };
        let mut v = Violations::new();
        let q = quantities(
            Kind::Delivered,
            given(Some("1.5"), None, None),
            &hours(false),
            "",
            &mut v,
        );
        assert!(v.is_empty());
        assert_eq!((q.units, q.unit_value), (Some(d("1.5")), Some(d("45"))));
        let mut v = Violations::new();
        let q = quantities(
            Kind::Indirect,
            given(None, Some("30"), Some(40)),
            &hours(false),
            "",
            &mut v,
        );
        assert!(v.is_empty());
        assert_eq!(
            (q.units, q.unit_value, q.people_reached),
            (Some(Decimal::ONE), Some(d("30")), Some(40))
        );
        for (kind, g, field) in [
            (Kind::Delivered, given(None, None, None), "units"),
            (Kind::TurnAway, given(Some("1"), None, None), "units"),
            (Kind::Indirect, given(None, None, Some(0)), "people_reached"),
            (
                Kind::Delivered,
                given(Some("1"), None, Some(3)),
                "people_reached",
            ),
            // Each part fits; the value they make could not be stored.
            (
                Kind::Delivered,
                given(Some("999999999999"), Some("999999999999"), None),
                "units",
            ),
        ] {
            let mut v = Violations::new();
            quantities(kind, g, &hours(false), "", &mut v);
            assert_eq!(v.fields(), [field], "{kind:?}");
        }
        let mut v = Violations::new();
        quantities(
            Kind::Delivered,
            given(Some("1"), Some("50"), None),
            &hours(true),
            "",
            &mut v,
        );
        assert_eq!(v.fields(), ["unit_value"], "a fixed unit value");
    }

    #[test]
    fn value_is_exact() {
        assert_eq!(value(d("1.25"), d("45.00")), d("56.25"));
        assert_eq!(value(d("0.1"), d("0.2")), d("0.02"));
        assert_eq!(value(d("3"), d("33.33")).to_string(), "99.99");
    }

    #[test]
    fn grants_must_fund_the_service_and_cover_the_date() {
        let grant = GrantFacts {
            id: Uuid::now_v7(),
            active: true,
            start_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            end_date: NaiveDate::from_ymd_opt(2026, 12, 31),
        };
        let mut service = ServiceFacts {
            id: Uuid::now_v7(),
            active: true,
            direct: true,
            unit_of_measure: UnitOfMeasure::Dollars,
            default_unit_value: Decimal::ONE,
            organization_ids: vec![],
            grant_ids: vec![],
            service_group_id: None,
            unit_value_fixed: false,
        };
        let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let mut v = Violations::new();
        check_grant(&grant, &service, day, "grant_id", &mut v);
        assert!(!v.is_empty(), "not linked");
        service.grant_ids.push(grant.id);
        let mut v = Violations::new();
        check_grant(&grant, &service, day, "grant_id", &mut v);
        assert!(v.is_empty());
        let mut v = Violations::new();
        let late = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        check_grant(&grant, &service, late, "grant_id", &mut v);
        assert!(!v.is_empty(), "outside the period");
    }
}
