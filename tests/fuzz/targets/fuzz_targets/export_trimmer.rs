#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `export_trimmer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::run("export_trimmer", data));
