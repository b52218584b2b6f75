#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `admission_review`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("admission_review", data));
