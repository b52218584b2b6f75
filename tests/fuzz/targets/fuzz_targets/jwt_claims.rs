#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `jwt_claims`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("jwt_claims", data));
