#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `authz_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("authz_config", data));
