#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `wasm_host`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("wasm_host", data));
