#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `jwt_token`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("jwt_token", data));
