#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `authz_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("authz_request", data));
