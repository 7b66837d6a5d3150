#![no_main]

#[allow(dead_code)]
#[path = "../../tests/parsers/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|parts: (i32, i32, i32)| {
    if let Err(broken) = checks::calendar_date(parts.0, parts.1, parts.2) {
        panic!("{broken}");
    }
});
