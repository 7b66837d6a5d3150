//! The domain's parsers fuzzed: recurrence rules, decimals, dates, name phrases, SSNs and CEL
//! rules, each fed its kept corpus (`faults/fuzz/corpus/<parser>/`, inputs that once broke
//! it or sit at its edges, and what libFuzzer found worth keeping) and then inputs made up by
//! proptest, from arbitrary text and from the parser's own grammar cut up and recombined.
//! None may panic or run long, and what each accepts must keep the parser's promises
//! (`parsers/checks.rs`, which the libFuzzer targets of `faults/fuzz/` share).
//!
//! `CASEWAY_FUZZ_CASES` sets the made-up inputs per parser (2,000 in CI; a million on
//! demand). An input that breaks a parser goes into its corpus with the fix.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[path = "../parsers/checks.rs"]
mod checks;

/// The longest one input may take a parser (with the rule's expansion over a year).
const BOUND: Duration = Duration::from_millis(250);

/// The kept inputs of `parser`, one to a file, as libFuzzer keeps them (those that are not
/// UTF-8, which a text parser never sees, left out).
fn corpus(parser: &str) -> Vec<String> {
    let dir = format!("{}/fuzz/corpus/{parser}", env!("CARGO_MANIFEST_DIR"));
    let mut kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .filter_map(|bytes| String::from_utf8(bytes).ok())
        .collect();
    kept.sort();
    kept
}

fn cases() -> u32 {
    std::env::var("CASEWAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Arbitrary text, and text made of `pieces` (a parser's grammar) recombined with a few
/// characters that break grammars.
fn input(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => proptest::sample::select(pieces).prop_map(str::to_string),
        1 => proptest::sample::select(&[";", ",", "=", "-", " ", "", "\u{0}", "é", "9", "(", "'"][..])
            .prop_map(str::to_string),
        1 => "[0-9]{1,12}",
    ];
    prop_oneof![
        1 => any::<String>(),
        3 => prop::collection::vec(piece, 0..12).prop_map(|parts| parts.concat()),
    ]
}

/// Runs `check` on the corpus of `parser`, which holds inputs it accepts and inputs it
/// refuses, then on made-up inputs; every input within the time bound.
fn fuzz(parser: &str, pieces: &'static [&'static str], check: impl Fn(&str) -> checks::Checked) {
    let timed = |text: &str| -> Result<bool, TestCaseError> {
        let started = Instant::now();
        let accepted = check(text).map_err(TestCaseError::fail)?;
        let took = started.elapsed();
        prop_assert!(took < BOUND, "{text:?} took {took:?}");
        Ok(accepted)
    };
    let kept = corpus(parser);
    let mut accepted = 0;
    for text in &kept {
        accepted += usize::from(
            timed(text).unwrap_or_else(|e| panic!("{parser} corpus input {text:?}: {e}")),
        );
    }
    assert!(
        accepted > 0 && accepted < kept.len(),
        "{parser}: the corpus holds inputs accepted and refused ({accepted} of {})",
        kept.len()
    );
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&input(pieces), |text| timed(&text).map(|_| ()))
        .unwrap_or_else(|failure| panic!("{parser}: {failure}"));
    println!(
        "{parser}: {} kept and {} made-up inputs",
        kept.len(),
        cases()
    );
}

#[test]
fn recurrence_rules() {
    const PIECES: &[&str] = &[
        "FREQ=",
        "DAILY",
        "WEEKLY",
        "MONTHLY",
        "YEARLY",
        "SECONDLY",
        ";",
        "INTERVAL=",
        "COUNT=",
        "UNTIL=",
        "20260630",
        "20261231T000000Z",
        "BYDAY=",
        "MO",
        "TU",
        "WE",
        "TH",
        "FR",
        "SA",
        "SU",
        "1MO",
        "-1FR",
        "5SU",
        "BYMONTHDAY=",
        "31",
        "-1",
        "0",
        "RRULE:",
        ",",
        "=",
    ];
    fuzz("recurrence", PIECES, checks::recurrence);
}

#[test]
fn decimals() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "9",
        ".",
        "-",
        "+",
        "e",
        "E",
        "5",
        "0000",
        "99999999999",
        "1234",
        ".5",
        "NaN",
        "inf",
        " ",
        "_",
        ",",
    ];
    fuzz("decimal", PIECES, checks::decimal);
}

#[test]
fn dates() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let parts = prop_oneof![
        (any::<i32>(), any::<i32>(), any::<i32>()),
        (-2i32..10_002, -1i32..14, -1i32..33),
    ];
    runner
        .run(&parts, |(year, month, day)| {
            checks::calendar_date(year, month, day)
                .map(|_| ())
                .map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|failure| panic!("dates: {failure}"));
}

const NAME_PIECES: &[&str] = &[
    "Maria",
    "Garcia",
    " ",
    ",",
    "-",
    "'",
    "de la",
    "O'Brien",
    "Zoë",
    "王",
    "Mc",
    "Jr.",
    "  ",
    "\t",
    "123-45-6789",
    "000",
    "66",
    "9",
    "ー",
];

#[test]
fn name_phrases() {
    fuzz("name_phrase", NAME_PIECES, checks::name_phrase);
}

#[test]
fn ssns() {
    fuzz("ssn", NAME_PIECES, checks::ssn);
}

#[test]
fn cel_rules() {
    const PIECES: &[&str] = &[
        "age",
        ">=",
        "18",
        " && ",
        " || ",
        "!",
        "veteran",
        "assessments.INCOME.monthly_income",
        "<=",
        "2 * 1215",
        "barriers.exists(b, ",
        "b.type == 'HOUSING'",
        ")",
        "(",
        "enrollments.exists(e, e.program == 'PREVENTION' && e.active)",
        "delivered('FIN_ASSIST', 365)",
        ".value",
        " < 1500",
        "size(",
        "barriers",
        "[0]",
        "1 / 0",
        "'a'",
        "+",
        "null",
        "true",
        "int(",
        "double(",
        "timestamp('2026-01-01T00:00:00Z')",
        "has(",
        "map(",
        "x, x",
        "]",
    ];
    let checker = checks::cel_checker();
    fuzz("cel", PIECES, |text| checks::cel(&checker, text));
}
