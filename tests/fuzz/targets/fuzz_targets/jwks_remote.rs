#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `jwks_remote`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("jwks_remote", data));
