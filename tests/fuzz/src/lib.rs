//! meshguard's fuzz targets: everything hostile that meshguard reads, driven by libFuzzer.
//!
//! Every byte meshguard reads may come from someone hostile: tokens, headers, cookies and filter
//! configurations in the proxy, AdmissionReviews and Rego at admission, modules in the embedded
//! host. A panic in a filter kills its V8 VM (every later request on that worker fails); a wrong
//! edit by the Rego rewriter silently changes what a policy decides.
//!
//! Each target is one function here, `fn(&[u8])`, calling the public API of the crate under test
//! and panicking only when that crate breaks a promise (a panic of its own, a refused config
//! without a field path, a rewrite that changes a decision). The libFuzzer binaries in
//! `targets/fuzz_targets/` are one line each, calling their [`TARGETS`] entry's function; `cargo
//! xtask fuzz` builds them with `cargo fuzz` on the workspace's stable toolchain (sanitizer
//! `none`) and runs each for a bounded time. Because the work is here, it is built, linted and
//! tested with the workspace: `tests/replay.rs` runs every seed ([`seeds`]) and every input
//! that once crashed (`regressions/<target>/`) through its target in the ordinary test suite.

pub mod engine;
pub mod filters;
pub mod jwt;
pub mod lines;
pub mod rego;
pub mod seeds;
pub mod wasm;

/// xtask's export trimmer (`cargo xtask build-filters`), compiled here too so that it can be
/// fuzzed: xtask is a binary crate.
#[path = "../../../xtask/src/exports.rs"]
pub mod export_trimmer;

/// One fuzz target: its name (the libFuzzer binary's), what it runs on each input, and where
/// its seeds come from.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name, also its binary in `targets/fuzz_targets/<name>.rs`.
    pub name: &'static str,
    /// What one input exercises.
    pub about: &'static str,
    /// Runs one input; panics only on a bug in the code under test.
    pub run: fn(&[u8]),
    /// The path of `run` in this crate (`filters::stamp_request`), which the target's libFuzzer
    /// binary calls directly: a binary that calls only its own function links only that
    /// target's code, so libFuzzer scans only its coverage counters after every input instead
    /// of every target's (wasmtime's and regorus' among them: 791,155 counters in each binary
    /// when they all went through [`crate::run`], most of the per-input cost of the fast targets).
    pub function: &'static str,
    /// The seed corpus, from the tests' own inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Builds [`TARGETS`]: the function's path is both called ([`Target::run`]) and named
/// ([`Target::function`]) from the same tokens, so a binary and the test suite cannot drift
/// apart.
macro_rules! targets {
    ($($name:literal: $module:ident::$function:ident, $seeds:ident, $about:literal;)*) => {
        &[$(Target {
            name: $name,
            about: $about,
            run: $module::$function,
            function: concat!(stringify!($module), "::", stringify!($function)),
            seeds: seeds::$seeds,
        }),*]
    };
}

/// Every target, in the order `cargo xtask fuzz` runs them. Each entry is
/// `name: module::function, seeds_function, "about"`.
pub const TARGETS: &[Target] = targets![
    "jwt_token": jwt::token, jwt_tokens,
        "a raw token: strict parsing, then the whole authenticate path against fixed keys";
    "jwt_claims": jwt::claims, jwt_claims,
        "fuzzed JOSE header and claims, signed with the fixed keys, through authenticate";
    "jwks": jwt::jwks, jwks,
        "a JWKS document, parsed strictly and leniently";
    "jwks_remote": jwt::jwks_remote, jwks_remote,
        "a remote JWKS answer (status, headers, body) fetched by a tick, then a request";
    "admission_review": engine::admission_review, admission_reviews,
        "AdmissionReview / AdmissionRequest JSON decoded as the webhook decodes it";
    "policy_review": engine::policy_review, admission_reviews,
        "a fuzzed object against the repository's policy set: VM + cache = interpreter";
    "rego_rewrite": rego::rewrite, rego_modules,
        "Rego-like text through the scanner and every rewrite: no panic, bounded output";
    "rego_differential": rego::differential, rego_programs,
        "generated Rego and input, evaluated with and without the rewrites: they agree";
    "rego_template": rego::template, rego_modules,
        "Rego as a ConstraintTemplate: scan, rewrite, compile for both evaluators";
    "wasm_host": wasm::host, wasm_smith,
        "wasm-smith modules in the embedded host: refused, or run within fuel and memory";
    "export_trimmer": wasm::trimmer, trimmer_modules,
        "arbitrary bytes through the export trimmer: an error or a module";
    "stamp_config": filters::stamp_config, stamp_configs,
        "stamp configuration JSON: Ok or a ConfigError naming a field";
    "canary_config": filters::canary_config, canary_configs,
        "canary configuration JSON: Ok or a ConfigError naming a field";
    "circuit_breaker_config": filters::circuit_breaker_config, circuit_breaker_configs,
        "circuit-breaker configuration JSON: Ok or a ConfigError naming a field";
    "rate_limit_config": filters::rate_limit_config, rate_limit_configs,
        "rate-limit configuration JSON: Ok or a ConfigError naming a field";
    "jwt_auth_config": filters::jwt_auth_config, jwt_auth_configs,
        "jwt-auth configuration JSON: Ok or a ConfigError naming a field";
    "stamp_request": filters::stamp_request, stamp_requests,
        "fuzzed header maps through the stamp filter on the mock host";
    "canary_request": filters::canary_request, canary_requests,
        "fuzzed header maps (cookies, X-Forwarded-For, overrides) through the canary";
    "circuit_breaker_request": filters::circuit_breaker_request, circuit_breaker_requests,
        "fuzzed requests and responses through the circuit breaker, several in a row";
    "rate_limit_request": filters::rate_limit_request, rate_limit_requests,
        "fuzzed header maps through the rate limiter, several in a row";
    "authz_config": filters::authz_config, authz_configs,
        "authz configuration JSON with its Rego: Ok or a ConfigError naming a field";
    "pipeline_config": filters::pipeline_config, pipeline_configs,
        "the meshguard module's configuration, every stage's section: Ok or a field";
    "authz_request": filters::authz_request, authz_requests,
        "requests, claims and JSON bodies through the authz filter's Rego policies";
    "pipeline_request": filters::pipeline_request, pipeline_requests,
        "fuzzed requests through the meshguard module's stages in one pass";
    "jwt_auth_request": filters::jwt_auth_request, jwt_auth_requests,
        "fuzzed header maps (tokens in headers, cookies, query) through jwt-auth";
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Runs `name`'s function on `data` (what each libFuzzer binary does per input).
///
/// # Panics
/// When no target has that name (a binary out of step with [`TARGETS`]), or when the input
/// finds a bug.
pub fn run(name: &str, data: &[u8]) {
    match target(name) {
        Some(target) => (target.run)(data),
        None => panic!("no fuzz target named {name}"),
    }
}

/// A file name for an input: the FNV-1a 64 hash of its bytes, in hex (stable across runs, so
/// rewriting the seeds does not duplicate them).
pub fn content_name(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("seed-{hash:016x}")
}
