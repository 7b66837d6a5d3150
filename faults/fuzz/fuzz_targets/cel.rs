#![no_main]

#[allow(dead_code)]
#[path = "../../tests/parsers/checks.rs"]
mod checks;

std::thread_local! {
    static CHECKER: caseway_eligibility::domain::Checker = checks::cel_checker();
}

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Err(broken) = CHECKER.with(|checker| checks::cel(checker, text)) {
        panic!("{broken}");
    }
});
