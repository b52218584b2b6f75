#![no_main]
//! libFuzzer binary of `meshguard_fuzz` target `policy_review`. It calls the function directly (not
//! through `meshguard_fuzz::run`), so it links only this target's code.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshguard_fuzz::engine::policy_review(data));
