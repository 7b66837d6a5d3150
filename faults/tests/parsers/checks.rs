//! What each domain parser promises for any input: it answers (no panic), and what it accepts
//! keeps its promises. Shared by the proptest run (`tests/parsers.rs`) and the libFuzzer
//! targets (`fuzz/`), which include this file as it is. Each check says whether the parser
//! accepted the input, or what promise it broke.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};

use caseway_authorizations::recurrence::Rule;
use caseway_clients::domain::{NameQuery, Ssn, name_words};
use caseway_eligibility::domain::{Checker, FactSchema, FieldType};
use caseway_platform::validate::{Violations, date, storable};

pub type Checked = Result<bool, String>;

macro_rules! ensure {
    ($holds:expr, $($why:tt)+) => {
        if !$holds {
            return Err(format!($($why)+));
        }
    };
}

/// A recurrence rule prints back to itself, and its occurrences over 2026 are in the year,
/// in order, at most one a day.
pub fn recurrence(text: &str) -> Checked {
    let Ok(rule) = Rule::parse(text) else {
        return Ok(false);
    };
    let printed = rule.to_text();
    match Rule::parse(&printed) {
        Ok(again) => ensure!(
            again.to_text() == printed,
            "{text:?} printed {printed:?}, which prints {:?}",
            again.to_text()
        ),
        Err(error) => return Err(format!("{text:?} printed {printed:?}, refused: {error}")),
    }
    let (begin, end) = (
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default(),
    );
    if let Ok(days) = rule.occurrences(begin, end) {
        ensure!(days.len() <= 365, "{printed}: {} occurrences", days.len());
        ensure!(
            days.windows(2).all(|w| w[0] < w[1]),
            "{printed}: out of order"
        );
        ensure!(
            days.iter().all(|d| (begin..=end).contains(d)),
            "{printed}: outside the period"
        );
    }
    Ok(true)
}

/// A decimal is exact, within its scale, not negative and storable; a refusal has a reason.
pub fn decimal(text: &str) -> Checked {
    let mut v = Violations::new();
    match v.decimal("units", text, 4) {
        Some(d) => {
            ensure!(v.is_empty(), "{text:?} accepted with a violation");
            ensure!(d.scale() <= 4, "{text:?} -> {d}: more than 4 places");
            ensure!(!d.is_sign_negative() || d.is_zero(), "{text:?} -> {d}");
            ensure!(storable(d), "{text:?} -> {d}: not storable");
            Ok(true)
        }
        None => {
            ensure!(!v.is_empty(), "{text:?} refused without a reason");
            Ok(false)
        }
    }
}

/// A date is a real one of years 1 to 9999, the one given; a refusal names its field.
pub fn calendar_date(year: i32, month: i32, day: i32) -> Checked {
    let mut v = Violations::new();
    let given = caseway_api::google::r#type::Date { year, month, day };
    match date(&mut v, "service_date", Some(&given), true) {
        Some(d) => {
            ensure!((1..=9999).contains(&d.year()), "{given:?} -> {d}");
            ensure!(
                (d.year(), d.month() as i32, d.day() as i32) == (year, month, day),
                "{given:?} -> {d}"
            );
            Ok(true)
        }
        None => {
            ensure!(v.mentions("service_date"), "{given:?} refused unnamed");
            Ok(false)
        }
    }
}

/// A searched name has a reading for each split between two of its words, both ways, and
/// the whole as one name; no words, no reading.
pub fn name_phrase(text: &str) -> Checked {
    let words = name_words(text);
    let Some(query) = NameQuery::parse(text) else {
        ensure!(words == 0, "{text:?} has {words} words and no reading");
        return Ok(false);
    };
    ensure!(words > 0, "{text:?} read with no word");
    ensure!(query.first.len() == query.last.len(), "{text:?}");
    ensure!(
        query.first.len() <= 2 * (words - 1).max(1),
        "{text:?}: {} readings of {words} words",
        query.first.len()
    );
    ensure!(query.single.len() == query.single_least.len(), "{text:?}");
    ensure!(
        !query.first.is_empty() || !query.single.is_empty(),
        "{text:?} has no reading"
    );
    Ok(true)
}

/// An SSN is nine ASCII digits, its last four theirs.
pub fn ssn(text: &str) -> Checked {
    let Ok(ssn) = Ssn::parse(text) else {
        return Ok(false);
    };
    ensure!(ssn.digits().len() == 9, "{text:?} -> {}", ssn.digits());
    ensure!(
        ssn.digits().bytes().all(|b| b.is_ascii_digit()),
        "{text:?} -> {}",
        ssn.digits()
    );
    ensure!(ssn.digits().ends_with(ssn.last4()), "{text:?}");
    Ok(true)
}

/// The checker of a tenant with an INCOME assessment (a decimal and an integer field) and the
/// service FIN_ASSIST.
pub fn cel_checker() -> Checker {
    let fields = BTreeMap::from([
        ("monthly_income".to_string(), FieldType::Decimal),
        ("household_size".to_string(), FieldType::Integer),
    ]);
    Checker::new(FactSchema {
        assessment_types: BTreeMap::from([("INCOME".to_string(), fields)]),
        service_codes: BTreeSet::from(["FIN_ASSIST".to_string()]),
    })
}

/// A CEL rule is checked or refused naming a line, a column and a reason.
pub fn cel(checker: &Checker, text: &str) -> Checked {
    match checker.check(text) {
        Ok(_) => Ok(true),
        Err(error) => {
            ensure!(error.line >= 1 && error.column >= 1, "{text:?}: {error:?}");
            ensure!(!error.reason.is_empty(), "{text:?} refused with no reason");
            Ok(false)
        }
    }
}
