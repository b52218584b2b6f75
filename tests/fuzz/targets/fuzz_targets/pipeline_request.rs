#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `pipeline_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("pipeline_request", data));
