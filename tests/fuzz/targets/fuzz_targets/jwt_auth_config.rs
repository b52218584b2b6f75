#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `jwt_auth_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("jwt_auth_config", data));
