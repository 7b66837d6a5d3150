//! What an expression reads of a client's facts, found in its checked tree, and what follows
//! from it: the snapshot a decision stores (only what its rule read, as of its date, so a
//! replay evaluates exactly the same inputs) and each criterion's explanation (the facts it
//! read, with their values and where they came from).

use std::collections::{BTreeMap, BTreeSet};

use cel_core::{Expr, SpannedExpr};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    Answer, AssessmentFact, BarrierFact, ClientFacts, DeliveryFact, EnrollmentFact, age_on, walk,
};

/// The facts one expression (or a rule, once joined) reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reads {
    pub age: bool,
    pub veteran: bool,
    /// (assessment type code, field key); an empty key for a test of the type alone
    /// (`has(assessments.INCOME)`).
    pub assessment_fields: BTreeSet<(String, String)>,
    /// Whether `assessments` is read as a whole (every type's latest assessment is needed).
    pub all_assessments: bool,
    pub barriers: bool,
    pub enrollments: bool,
    /// (service code, window in days); no window when the days are not a literal.
    pub delivered: BTreeSet<(String, Option<i64>)>,
}

fn ident(expr: &SpannedExpr) -> Option<&str> {
    match &expr.node {
        Expr::Ident(name) | Expr::RootIdent(name) => Some(name),
        _ => None,
    }
}

impl Reads {
    /// What the checked expression `expr` reads.
    pub fn of(expr: &SpannedExpr) -> Reads {
        let mut reads = Reads::default();
        let (mut assessments, mut selected) = (0usize, 0usize);
        walk(expr, &mut |node| match &node.node {
            Expr::Ident(name) | Expr::RootIdent(name) => match name.as_str() {
                "age" => reads.age = true,
                "veteran" => reads.veteran = true,
                "barriers" => reads.barriers = true,
                "enrollments" => reads.enrollments = true,
                "assessments" => assessments += 1,
                _ => {}
            },
            Expr::Member { expr, field, .. } | Expr::MemberTestOnly { expr, field } => {
                if ident(expr) == Some("assessments") {
                    selected += 1;
                    reads
                        .assessment_fields
                        .insert((field.clone(), String::new()));
                } else if let Expr::Member {
                    expr: inner,
                    field: type_code,
                    ..
                } = &expr.node
                    && ident(inner) == Some("assessments")
                {
                    reads
                        .assessment_fields
                        .insert((type_code.clone(), field.clone()));
                }
            }
            Expr::Call { expr: callee, args } if ident(callee) == Some("delivered") => {
                if let Some(Expr::String(code)) = args.first().map(|a| &a.node) {
                    let days = match args.get(1).map(|a| &a.node) {
                        Some(Expr::Int(days)) => Some(*days),
                        _ => None,
                    };
                    reads.delivered.insert((code.clone(), days));
                }
            }
            _ => {}
        });
        reads.all_assessments = assessments > selected;
        reads
    }

    /// What any of `reads` reads.
    pub fn union<'a>(reads: impl IntoIterator<Item = &'a Reads>) -> Reads {
        let mut all = Reads::default();
        for r in reads {
            all.age |= r.age;
            all.veteran |= r.veteran;
            all.all_assessments |= r.all_assessments;
            all.barriers |= r.barriers;
            all.enrollments |= r.enrollments;
            all.assessment_fields
                .extend(r.assessment_fields.iter().cloned());
            all.delivered.extend(r.delivered.iter().cloned());
        }
        all
    }

    /// Which deliveries these reads need as of `on`: those of the services `delivered` names,
    /// from the first day of the widest window (every date when a window is not a literal).
    pub fn deliveries_on(&self, on: NaiveDate) -> DeliveriesRead {
        let mut since = Some(on);
        for (_, days) in &self.delivered {
            since = since
                .zip(*days)
                .and_then(|(since, days)| first_day(days, on).map(|first| since.min(first)));
        }
        DeliveriesRead {
            codes: Some(
                self.delivered
                    .iter()
                    .map(|(code, _)| code.clone())
                    .collect(),
            ),
            since,
        }
    }

    fn reads_assessment_type(&self, code: &str) -> bool {
        self.all_assessments || self.assessment_fields.iter().any(|(t, _)| t == code)
    }
}

/// Which of a client's deliveries a read takes: of some services, from some date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveriesRead {
    /// The services' codes; None for every service.
    pub codes: Option<BTreeSet<String>>,
    /// The first service date; None for every date.
    pub since: Option<NaiveDate>,
}

impl DeliveriesRead {
    /// Every delivery.
    pub const ALL: DeliveriesRead = DeliveriesRead {
        codes: None,
        since: None,
    };

    /// Whether what this read took holds all that `needed` would take.
    pub fn covers(&self, needed: &DeliveriesRead) -> bool {
        let codes = match (&self.codes, &needed.codes) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.is_subset(mine),
        };
        let since = match (self.since, needed.since) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine <= theirs,
        };
        codes && since
    }
}

/// The first day of a window of `days` days ending on `on`; None when the window reaches
/// before the calendar does (every date).
fn first_day(days: i64, on: NaiveDate) -> Option<NaiveDate> {
    let back = u64::try_from(days.max(1) - 1).ok()?;
    on.checked_sub_days(chrono::Days::new(back))
}

/// Where a fact came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FactSource {
    /// "client", "assessment", "barrier", "enrollment" or "service_record".
    pub kind: String,
    pub id: Option<Uuid>,
    pub effective_date: Option<NaiveDate>,
}

/// One fact an expression read, with its value as of the decision's date.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FactUse {
    pub path: String,
    /// None when the client's record has no such fact.
    pub value: Option<String>,
    pub sources: Vec<FactSource>,
}

fn source(kind: &str, id: Uuid, effective_date: Option<NaiveDate>) -> FactSource {
    FactSource {
        kind: kind.into(),
        id: Some(id),
        effective_date,
    }
}

/// A barrier's status on `on`: resolved by then, still being dealt with when resolved later,
/// else as it stands.
pub(crate) fn barrier_status_on(barrier: &BarrierFact, on: NaiveDate) -> &str {
    match (
        barrier.resolved_date.filter(|d| *d <= on),
        barrier.status.as_str(),
    ) {
        (Some(_), _) => "RESOLVED",
        (None, "RESOLVED") => "BEING_ADDRESSED",
        (None, status) => status,
    }
}

/// The latest assessment of each type dated on or before `on`.
pub(crate) fn latest_assessments(
    assessments: &[AssessmentFact],
    on: NaiveDate,
) -> BTreeMap<&str, &AssessmentFact> {
    let mut latest: BTreeMap<&str, &AssessmentFact> = BTreeMap::new();
    for assessment in assessments.iter().filter(|a| a.assessment_date <= on) {
        let entry = latest
            .entry(assessment.type_code.as_str())
            .or_insert(assessment);
        if assessment.assessment_date > entry.assessment_date {
            *entry = assessment;
        }
    }
    latest
}

/// The deliveries of `code` in the `days` days ending on `on` (all up to `on` without a
/// window).
pub(crate) fn in_window<'a>(
    deliveries: &'a [DeliveryFact],
    code: &'a str,
    days: Option<i64>,
    on: NaiveDate,
) -> impl Iterator<Item = &'a DeliveryFact> + 'a {
    let first = days.filter(|d| *d >= 1).and_then(|d| first_day(d, on));
    deliveries.iter().filter(move |d| {
        d.service_code == code && d.service_date <= on && first.is_none_or(|f| d.service_date >= f)
    })
}

fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Integer(i) => i.to_string(),
        Answer::Decimal(d) => d.to_string(),
        Answer::Boolean(b) => b.to_string(),
        Answer::Date(d) => d.to_string(),
        Answer::Code(s) | Answer::Text(s) => s.clone(),
    }
}

impl ClientFacts {
    /// What of these facts `reads` needs as of `on`: the birth date and veteran status if read,
    /// the latest assessment on or before `on` of each type read, the barriers and enrollments
    /// begun by then if read, and the deliveries in each window read. Evaluated as of `on`, the
    /// snapshot gives what the whole facts give.
    pub fn snapshot(&self, on: NaiveDate, reads: &Reads) -> ClientFacts {
        let assessments = latest_assessments(&self.assessments, on)
            .into_values()
            .filter(|a| reads.reads_assessment_type(&a.type_code))
            .cloned()
            .collect();
        let barriers: Vec<BarrierFact> = if reads.barriers {
            self.barriers
                .iter()
                .filter(|b| b.identified_date <= on)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let enrollments: Vec<EnrollmentFact> = if reads.enrollments {
            self.enrollments
                .iter()
                .filter(|e| e.entry_date <= on)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mut records = BTreeMap::new();
        for (code, days) in &reads.delivered {
            for delivery in in_window(&self.deliveries, code, *days, on) {
                records.insert(delivery.id, delivery.clone());
            }
        }
        ClientFacts {
            client_id: self.client_id,
            birth_date: self.birth_date.filter(|_| reads.age),
            veteran: self.veteran.filter(|_| reads.veteran),
            assessments,
            barriers,
            enrollments,
            deliveries: records.into_values().collect(),
        }
    }

    /// The facts `reads` read as of `on`, with their values and sources, in a fixed order.
    pub fn uses(&self, on: NaiveDate, reads: &Reads) -> Vec<FactUse> {
        let client = || vec![source("client", self.client_id, None)];
        let mut uses = Vec::new();
        if reads.age {
            uses.push(FactUse {
                path: "age".into(),
                value: self
                    .birth_date
                    .and_then(|b| age_on(b, on))
                    .map(|a| a.to_string()),
                sources: client(),
            });
        }
        if reads.veteran {
            uses.push(FactUse {
                path: "veteran".into(),
                value: self.veteran.map(|v| v.to_string()),
                sources: client(),
            });
        }
        let latest = latest_assessments(&self.assessments, on);
        for (type_code, field) in &reads.assessment_fields {
            let assessment = latest.get(type_code.as_str());
            let sources: Vec<FactSource> = assessment
                .map(|a| source("assessment", a.id, Some(a.assessment_date)))
                .into_iter()
                .collect();
            if field.is_empty() {
                if reads
                    .assessment_fields
                    .iter()
                    .any(|(t, f)| t == type_code && !f.is_empty())
                {
                    continue;
                }
                uses.push(FactUse {
                    path: format!("assessments.{type_code}"),
                    value: assessment.map(|a| format!("assessed on {}", a.assessment_date)),
                    sources,
                });
            } else {
                uses.push(FactUse {
                    path: format!("assessments.{type_code}.{field}"),
                    value: assessment
                        .and_then(|a| a.answers.get(field))
                        .map(answer_text),
                    sources,
                });
            }
        }
        if reads.barriers {
            let open: Vec<&BarrierFact> = self
                .barriers
                .iter()
                .filter(|b| b.identified_date <= on)
                .collect();
            uses.push(FactUse {
                path: "barriers".into(),
                value: Some(listing(open.iter().map(|b| {
                    format!(
                        "{} {} since {}",
                        b.type_code,
                        barrier_status_on(b, on),
                        b.identified_date
                    )
                }))),
                sources: open
                    .iter()
                    .map(|b| source("barrier", b.id, Some(b.identified_date)))
                    .collect(),
            });
        }
        if reads.enrollments {
            let begun: Vec<&EnrollmentFact> = self
                .enrollments
                .iter()
                .filter(|e| e.entry_date <= on)
                .collect();
            uses.push(FactUse {
                path: "enrollments".into(),
                value: Some(listing(begun.iter().map(|e| {
                    let state = if e.exit_date.is_some_and(|d| d < on) {
                        "exited"
                    } else {
                        "active"
                    };
                    format!("{} {state} since {}", e.program_code, e.entry_date)
                }))),
                sources: begun
                    .iter()
                    .map(|e| source("enrollment", e.id, Some(e.entry_date)))
                    .collect(),
            });
        }
        for (code, days) in &reads.delivered {
            let records: Vec<&DeliveryFact> =
                in_window(&self.deliveries, code, *days, on).collect();
            let value: Decimal = records.iter().map(|r| r.value).sum();
            let units: Decimal = records.iter().map(|r| r.units).sum();
            let window = days.map_or_else(|| "days".to_string(), |d| d.to_string());
            uses.push(FactUse {
                path: format!("delivered('{code}', {window})"),
                value: Some(format!(
                    "value {}, units {}, count {}",
                    value.normalize(),
                    units.normalize(),
                    records.len()
                )),
                sources: records
                    .iter()
                    .map(|r| source("service_record", r.id, Some(r.service_date)))
                    .collect(),
            });
        }
        uses
    }
}

fn listing(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Checker, FactSchema, FieldType};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn reads(expression: &str) -> Reads {
        let schema = FactSchema {
            assessment_types: BTreeMap::from([(
                "INCOME".to_string(),
                BTreeMap::from([("monthly_income".to_string(), FieldType::Decimal)]),
            )]),
            service_codes: BTreeSet::from(["FIN_ASSIST".to_string()]),
        };
        let compiled = Checker::new(schema).check(expression).expect(expression);
        (*compiled.reads).clone()
    }

    #[test]
    fn the_facts_an_expression_reads_are_found_in_its_tree() {
        let r = reads(
            "age >= 18 && assessments.INCOME.monthly_income < 2430.0 && \
             barriers.exists(b, b.type == 'HOUSING') && delivered('FIN_ASSIST', 365).value < 1500",
        );
        assert!(r.age && r.barriers && !r.veteran && !r.enrollments && !r.all_assessments);
        assert!(
            r.assessment_fields
                .contains(&("INCOME".into(), "monthly_income".into()))
        );
        assert_eq!(
            r.delivered,
            BTreeSet::from([("FIN_ASSIST".to_string(), Some(365))])
        );
        assert!(
            reads("has(assessments.INCOME)")
                .assessment_fields
                .contains(&("INCOME".into(), String::new()))
        );
        assert!(reads("[assessments].size() == 1").all_assessments);
    }

    #[test]
    fn a_snapshot_keeps_only_what_was_read_as_of_the_date_and_explains_it() {
        let client_id = Uuid::now_v7();
        let old = Uuid::now_v7();
        let new = Uuid::now_v7();
        let income = |id, date, amount: i64| AssessmentFact {
            id,
            type_code: "INCOME".into(),
            assessment_date: date,
            answers: BTreeMap::from([(
                "monthly_income".to_string(),
                Answer::Decimal(Decimal::new(amount, 0)),
            )]),
        };
        let record = Uuid::now_v7();
        let facts = ClientFacts {
            client_id,
            birth_date: Some(day(1990, 1, 1)),
            veteran: Some(true),
            assessments: vec![
                income(old, day(2026, 1, 1), 3000),
                income(new, day(2026, 3, 1), 900),
            ],
            barriers: Vec::new(),
            enrollments: Vec::new(),
            deliveries: vec![
                DeliveryFact {
                    id: record,
                    service_code: "FIN_ASSIST".into(),
                    service_date: day(2026, 2, 1),
                    units: Decimal::ONE,
                    value: Decimal::new(400, 0),
                },
                DeliveryFact {
                    id: Uuid::now_v7(),
                    service_code: "FIN_ASSIST".into(),
                    service_date: day(2024, 2, 1),
                    units: Decimal::ONE,
                    value: Decimal::new(400, 0),
                },
            ],
        };
        let r = reads(
            "assessments.INCOME.monthly_income < 1000.0 && delivered('FIN_ASSIST', 365).value < 1500",
        );
        let on = day(2026, 3, 15);
        let snapshot = facts.snapshot(on, &r);
        assert_eq!(snapshot.birth_date, None, "age is not read");
        assert_eq!(snapshot.assessments.len(), 1);
        assert_eq!(snapshot.assessments[0].id, new);
        assert_eq!(
            snapshot.deliveries.len(),
            1,
            "the 2024 record is outside the window"
        );
        let uses = snapshot.uses(on, &r);
        assert_eq!(
            uses,
            facts.uses(on, &r),
            "the snapshot explains as the facts do"
        );
        assert_eq!(uses[0].path, "assessments.INCOME.monthly_income");
        assert_eq!(uses[0].value.as_deref(), Some("900"));
        assert_eq!(uses[0].sources[0].id, Some(new));
        assert_eq!(uses[1].path, "delivered('FIN_ASSIST', 365)");
        assert_eq!(
            uses[1].value.as_deref(),
            Some("value 400, units 1, count 1")
        );
        assert_eq!(uses[1].sources[0].id, Some(record));
        let before = facts.uses(day(2025, 12, 1), &r);
        assert_eq!(before[0].value, None, "no income assessment yet");
        assert!(before[0].sources.is_empty());
    }

    #[test]
    fn a_check_reads_only_the_deliveries_in_the_windows_its_rules_ask_for() {
        let on = day(2026, 3, 15);
        let r = Reads::union([
            &reads("delivered('FIN_ASSIST', 365).value < 1500"),
            &reads("delivered('FIN_ASSIST', 30).count < 3 && age >= 18"),
        ]);
        let needed = r.deliveries_on(on);
        assert_eq!(
            needed.codes,
            Some(BTreeSet::from(["FIN_ASSIST".to_string()]))
        );
        assert_eq!(
            needed.since,
            Some(day(2025, 3, 16)),
            "the widest window's first day"
        );
        assert_eq!(
            reads("age >= 18").deliveries_on(on).codes,
            Some(BTreeSet::new()),
            "a rule without delivered reads no delivery"
        );
        // A window longer than the calendar reaches back to the first delivery, and a window
        // that is not a literal does too.
        let forever = reads("delivered('FIN_ASSIST', 9223372036854775807).value < 1500");
        assert_eq!(forever.deliveries_on(on).since, None);
        let computed = reads("delivered('FIN_ASSIST', 300 + 65).value < 1500");
        assert_eq!(computed.deliveries_on(on).since, None);
        // What was read for a wider window and more services serves a narrower one; not the
        // other way round.
        let later = r.deliveries_on(day(2026, 6, 1));
        assert!(needed.covers(&later) && !later.covers(&needed));
        assert!(DeliveriesRead::ALL.covers(&needed) && !needed.covers(&DeliveriesRead::ALL));
        let none = reads("age >= 18").deliveries_on(on);
        assert!(needed.covers(&none) && !none.covers(&needed));
    }

    #[test]
    fn a_window_longer_than_the_calendar_counts_every_delivery_and_never_panics() {
        let facts = [DeliveryFact {
            id: Uuid::now_v7(),
            service_code: "FIN_ASSIST".into(),
            service_date: day(1900, 1, 1),
            units: Decimal::ONE,
            value: Decimal::ONE,
        }];
        let on = day(2026, 3, 15);
        assert_eq!(
            in_window(&facts, "FIN_ASSIST", Some(i64::MAX), on).count(),
            1
        );
        assert_eq!(in_window(&facts, "FIN_ASSIST", Some(365), on).count(), 0);
    }
}
