#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `stamp_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("stamp_config", data));
