#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `canary_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("canary_config", data));
