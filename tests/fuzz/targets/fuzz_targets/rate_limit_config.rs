#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `rate_limit_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("rate_limit_config", data));
