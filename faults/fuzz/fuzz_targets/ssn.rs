#![no_main]

#[allow(dead_code)]
#[path = "../../tests/parsers/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Err(broken) = checks::ssn(text) {
        panic!("{broken}");
    }
});
