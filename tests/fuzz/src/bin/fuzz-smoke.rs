//! `fuzz-smoke`: every fuzz target in one libFuzzer binary, the one CI's smoke run builds (`cargo
//! xtask fuzz --smoke`, feature `libfuzzer`). The target is named by `MESHGUARD_FUZZ_TARGET`.
//!
//! One binary instead of the 25 of `tests/fuzz/targets` links once, and it is built inside the
//! workspace with libFuzzer's coverage instrumentation on meshguard's own crates only, so it
//! reuses every dependency the test build just compiled. A campaign wants coverage of regorus
//! and wasmtime too, and builds the per-target binaries with `cargo fuzz`.
#![no_main]

use std::sync::OnceLock;

use meshguard_fuzz::Target;

static TARGET: OnceLock<&'static Target> = OnceLock::new();

libfuzzer_sys::fuzz_target!(
    init: {
        let name = std::env::var("MESHGUARD_FUZZ_TARGET").unwrap_or_default();
        match meshguard_fuzz::target(&name) {
            Some(target) => {
                let _ = TARGET.set(target);
            }
            None => {
                eprintln!(
                    "fuzz-smoke: set MESHGUARD_FUZZ_TARGET to a target's name (`cargo xtask fuzz \
                     --list`); got `{name}`"
                );
                std::process::exit(2);
            }
        }
    },
    |data: &[u8]| {
        if let Some(target) = TARGET.get() {
            (target.run)(data);
        }
    }
);
