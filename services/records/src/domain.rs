//! Service record rules: what a delivery, a turn-away and an indirect service must say, checked
//! against the facts of the catalog and the client. No I/O here: the facts are looked up by
//! the API and handed in.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use caseway_platform::{AuthorizationId, ClientId, GrantId, RecordId, ServiceId};

use caseway_platform::auth::Role;
use caseway_platform::error::{Error, Result};
use caseway_platform::validate::Violations;

pub use caseway_peers::rules::{
    self, CodeValueFacts, EnrollmentFacts, GrantFacts, ServiceFacts, UnitOfMeasure,
    check_enrollment, check_grant, check_units, unit_value, visible,
};

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
    /// The kind of a stored row; a code this version does not know is an error, not a guess.
    pub fn of(code: i16) -> Result<Kind> {
        Kind::from_code(code)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown service record kind {code}")))
    }

    pub fn from_code(code: i16) -> Option<Kind> {
        Some(match code {
            1 => Kind::Delivered,
            2 => Kind::TurnAway,
            3 => Kind::Indirect,
            _ => return None,
        })
    }
}

/// Checks that need the service: usable by the caller, active, of the record's delivery mode.
pub fn check_service(
    service: &ServiceFacts,
    kind: Kind,
    field: &str,
    organizations: &[Uuid],
    admin: bool,
    v: &mut Violations,
) {
    rules::check_service(
        service,
        kind == Kind::Indirect,
        field,
        organizations,
        admin,
        v,
    );
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

/// A stored service record.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct RecordRow {
    pub id: RecordId,
    pub kind: i16,
    pub client_id: Option<ClientId>,
    pub service_id: ServiceId,
    pub service_group_id: Option<Uuid>,
    pub service_date: NaiveDate,
    pub grant_id: Option<GrantId>,
    pub enrollment_id: Option<Uuid>,
    pub program_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub units: Option<Decimal>,
    pub unit_value: Option<Decimal>,
    pub value: Option<Decimal>,
    pub reason_id: Option<Uuid>,
    pub goal_id: Option<Uuid>,
    pub referral_plan_id: Option<Uuid>,
    pub barrier_id: Option<Uuid>,
    pub comments: String,
    pub turn_away_reason_id: Option<Uuid>,
    pub people_reached: Option<i32>,
    pub authorization_id: Option<AuthorizationId>,
    pub recorded_by: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client's history is filtered by; every set part must match.
#[derive(Default)]
pub struct HistoryFilter {
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub service_id: Option<ServiceId>,
    pub service_group_id: Option<Uuid>,
    pub grant_id: Option<GrantId>,
    pub program_id: Option<Uuid>,
    pub enrollment_id: Option<Uuid>,
    pub kind: Option<i16>,
}

/// What totals are grouped by.
#[derive(Clone, Copy, Default)]
pub struct Grouping {
    pub grant: bool,
    pub program: bool,
    pub service: bool,
    pub service_group: bool,
    pub month: bool,
}

/// One row of `records.daily_totals`: one day's records of one kind, service, service group,
/// grant and program (the nil UUID for none), with the numbers of their distinct clients.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DailyTotals {
    pub service_date: NaiveDate,
    pub kind: i16,
    pub service_id: ServiceId,
    pub service_group_id: Uuid,
    pub grant_id: Uuid,
    pub program_id: Uuid,
    pub records: i64,
    pub units: Decimal,
    pub value: Decimal,
    pub people_reached: i64,
    /// The clients' numbers as 4-byte big-endian integers.
    pub client_set: Vec<u8>,
}

impl DailyTotals {
    /// The clients' numbers.
    pub fn clients(&self) -> impl Iterator<Item = i32> + '_ {
        self.client_set
            .chunks_exact(4)
            .map(|n| i32::from_be_bytes([n[0], n[1], n[2], n[3]]))
    }
}

/// The nil UUID the day totals write for none, as None.
fn some(id: Uuid) -> Option<Uuid> {
    (!id.is_nil()).then_some(id)
}

/// A group of totals, in the order the answer lists them: month, grant, program, service
/// group, then service, none first.
type TotalsKey = (
    Option<NaiveDate>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
);

/// The totals of `days` grouped `by`: deliveries and indirect services counted as delivered,
/// turn-aways apart, and each group's clients counted once (the union of its days' clients).
pub fn sum_totals(days: &[DailyTotals], by: Grouping) -> Vec<TotalsRow> {
    #[derive(Default)]
    struct Sums {
        units: Decimal,
        value: Decimal,
        records: i64,
        people_reached: i64,
        turn_aways: i64,
        clients: Vec<i32>,
        turned_away: Vec<i32>,
    }
    let mut groups: std::collections::BTreeMap<TotalsKey, Sums> = Default::default();
    for day in days {
        let key = (
            by.month.then(|| {
                day.service_date
                    .with_day(1)
                    .expect("every month has a day 1")
            }),
            by.grant.then(|| some(day.grant_id)).flatten(),
            by.program.then(|| some(day.program_id)).flatten(),
            by.service_group
                .then(|| some(day.service_group_id))
                .flatten(),
            by.service.then_some(day.service_id.0),
        );
        let sums = groups.entry(key).or_default();
        if day.kind == Kind::TurnAway as i16 {
            sums.turn_aways += day.records;
            sums.turned_away.extend(day.clients());
        } else {
            sums.units += day.units;
            sums.value += day.value;
            sums.records += day.records;
            sums.people_reached += day.people_reached;
            sums.clients.extend(day.clients());
        }
    }
    groups
        .into_iter()
        .map(
            |((month, grant, program, group, service), sums)| TotalsRow {
                grant_id: grant.map(GrantId),
                program_id: program,
                service_id: service.map(ServiceId),
                service_group_id: group,
                month,
                units: sums.units,
                value: sums.value,
                records: sums.records,
                unduplicated_clients: distinct(sums.clients),
                people_reached: sums.people_reached,
                turn_aways: sums.turn_aways,
                turned_away_clients: distinct(sums.turned_away),
            },
        )
        .collect()
}

/// How many distinct client numbers `numbers` holds: through a bitmap of them when they are
/// dense enough (a year of a large tenant is a million numbers), sorted otherwise.
fn distinct(mut numbers: Vec<i32>) -> i64 {
    let max = numbers.iter().copied().max().unwrap_or(0);
    let min = numbers.iter().copied().min().unwrap_or(0);
    if min >= 0 && numbers.len() >= max as usize / 64 {
        let mut seen = vec![0u64; max as usize / 64 + 1];
        for n in numbers {
            seen[n as usize / 64] |= 1 << (n % 64);
        }
        seen.iter().map(|word| i64::from(word.count_ones())).sum()
    } else {
        numbers.sort_unstable();
        numbers.dedup();
        numbers.len() as i64
    }
}

#[derive(Debug, PartialEq)]
pub struct TotalsRow {
    pub grant_id: Option<GrantId>,
    pub program_id: Option<Uuid>,
    pub service_id: Option<ServiceId>,
    pub service_group_id: Option<Uuid>,
    pub month: Option<NaiveDate>,
    pub units: Decimal,
    pub value: Decimal,
    pub records: i64,
    pub unduplicated_clients: i64,
    pub people_reached: i64,
    pub turn_aways: i64,
    pub turned_away_clients: i64,
}

/// A record as the caller wrote it, its ids and numbers parsed.
#[derive(Clone, Debug)]
pub struct Draft {
    pub kind: Kind,
    pub client_id: Option<ClientId>,
    pub service_id: Option<ServiceId>,
    pub service_date: Option<NaiveDate>,
    pub grant_id: Option<GrantId>,
    pub enrollment_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub units: Option<Decimal>,
    pub unit_value: Option<Decimal>,
    pub reason_id: Option<Uuid>,
    pub goal_id: Option<Uuid>,
    pub referral_plan_id: Option<Uuid>,
    pub barrier_id: Option<Uuid>,
    pub comments: String,
    pub turn_away_reason_id: Option<Uuid>,
    pub people_reached: Option<i32>,
    pub authorization_id: Option<AuthorizationId>,
}

impl Draft {
    /// A stored record as a draft, for an update to change.
    pub fn of(row: &RecordRow) -> Result<Draft> {
        Ok(Draft {
            kind: Kind::of(row.kind)?,
            client_id: row.client_id,
            service_id: Some(row.service_id),
            service_date: Some(row.service_date),
            grant_id: row.grant_id,
            enrollment_id: row.enrollment_id,
            provider_id: row.provider_id,
            units: row.units,
            unit_value: row.unit_value,
            reason_id: row.reason_id,
            goal_id: row.goal_id,
            referral_plan_id: row.referral_plan_id,
            barrier_id: row.barrier_id,
            comments: row.comments.clone(),
            turn_away_reason_id: row.turn_away_reason_id,
            people_reached: row.people_reached,
            authorization_id: row.authorization_id,
        })
    }
}

/// A stored record the caller may see: a record of a service hidden from it is NOT_FOUND, as
/// the service itself is.
pub fn visible_record(
    row: Option<RecordRow>,
    hidden: &[ServiceId],
    id: RecordId,
) -> Result<RecordRow> {
    row.filter(|row| !hidden.contains(&row.service_id))
        .ok_or_else(|| Error::not_found("service record", id))
}

/// The fields of a record an update may change.
pub const MUTABLE: &[&str] = &[
    "service_date",
    "grant_id",
    "enrollment_id",
    "provider_id",
    "units",
    "unit_value",
    "reason_id",
    "goal_id",
    "referral_plan_id",
    "barrier_id",
    "comments",
    "people_reached",
    "authorization_id",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn hours(fixed: bool) -> ServiceFacts {
        ServiceFacts {
            id: ServiceId::new(),
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
            id: GrantId::new(),
            active: true,
            start_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            end_date: NaiveDate::from_ymd_opt(2026, 12, 31),
        };
        let mut service = ServiceFacts {
            id: ServiceId::new(),
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

    #[test]
    fn totals_sum_the_days_and_count_each_groups_clients_once() {
        let service = ServiceId::new();
        let grant = Uuid::now_v7();
        let day =
            |date: &str, kind: Kind, records: i64, units: &str, clients: &[i32]| DailyTotals {
                service_date: NaiveDate::from_str(date).unwrap(),
                kind: kind as i16,
                service_id: service,
                service_group_id: Uuid::nil(),
                grant_id: grant,
                program_id: Uuid::nil(),
                records,
                units: d(units),
                value: d(units) * d("2"),
                people_reached: if kind == Kind::Indirect { 40 } else { 0 },
                client_set: clients.iter().flat_map(|n: &i32| n.to_be_bytes()).collect(),
            };
        let days = [
            day("2026-03-02", Kind::Delivered, 3, "4.5", &[1, 2]),
            day("2026-03-20", Kind::Delivered, 2, "2", &[2, 3]),
            day("2026-04-01", Kind::Delivered, 1, "1", &[1]),
            day("2026-04-01", Kind::TurnAway, 2, "0", &[1, 4]),
            day("2026-04-09", Kind::Indirect, 1, "1", &[]),
        ];
        let all = sum_totals(&days, Grouping::default());
        assert_eq!(all.len(), 1);
        let all = &all[0];
        assert_eq!((all.records, all.units, all.value), (7, d("8.5"), d("17")));
        assert_eq!(
            (
                all.unduplicated_clients,
                all.turn_aways,
                all.turned_away_clients
            ),
            (3, 2, 2),
            "clients 1, 2 and 3 received; 1 and 4 were turned away"
        );
        assert_eq!(all.people_reached, 40);
        assert_eq!(all.grant_id, None, "not grouped by grant");

        let by_month = sum_totals(
            &days,
            Grouping {
                month: true,
                grant: true,
                program: true,
                ..Grouping::default()
            },
        );
        let months: Vec<_> = by_month
            .iter()
            .map(|r| {
                (
                    r.month.unwrap().to_string(),
                    r.unduplicated_clients,
                    r.records,
                )
            })
            .collect();
        assert_eq!(
            months,
            [("2026-03-01".into(), 3, 5), ("2026-04-01".into(), 1, 2)]
        );
        assert_eq!(by_month[0].grant_id, Some(GrantId(grant)));
        assert_eq!(by_month[0].program_id, None, "the nil UUID is none");
        assert!(sum_totals(&[], Grouping::default()).is_empty());
    }

    #[test]
    fn distinct_numbers_are_counted_the_same_dense_or_sparse() {
        assert_eq!(distinct(vec![]), 0);
        assert_eq!(distinct(vec![0, 63, 64, 64, 63, 1]), 4, "dense: the bitmap");
        assert_eq!(distinct(vec![5, 1_000_000, 5, 7]), 3, "sparse: sorted");
        let many: Vec<i32> = (0..10_000).map(|i| (i * 7919) % 5000).collect();
        assert_eq!(distinct(many), 5000);
    }
}
