#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `policy_review`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("policy_review", data));
