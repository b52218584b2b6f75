#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `rego_rewrite`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("rego_rewrite", data));
