#![no_main]

#[allow(dead_code)]
#[path = "../../tests/parsers/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Err(broken) = checks::name_phrase(text) {
        panic!("{broken}");
    }
});
