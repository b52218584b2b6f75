#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `circuit_breaker_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("circuit_breaker_request", data));
