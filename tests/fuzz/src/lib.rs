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
//! `targets/fuzz_targets/` are one line each, calling [`TARGETS`]' function by name; `cargo
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
    /// The seed corpus, from the tests' own inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "jwt_token",
        about: "a raw token: strict parsing, then the whole authenticate path against fixed keys",
        run: jwt::token,
        seeds: seeds::jwt_tokens,
    },
    Target {
        name: "jwt_claims",
        about: "fuzzed JOSE header and claims, signed with the fixed keys, through authenticate",
        run: jwt::claims,
        seeds: seeds::jwt_claims,
    },
    Target {
        name: "jwks",
        about: "a JWKS document, parsed strictly and leniently",
        run: jwt::jwks,
        seeds: seeds::jwks,
    },
    Target {
        name: "jwks_remote",
        about: "a remote JWKS answer (status, headers, body) fetched by a tick, then a request",
        run: jwt::jwks_remote,
        seeds: seeds::jwks_remote,
    },
    Target {
        name: "admission_review",
        about: "AdmissionReview / AdmissionRequest JSON decoded as the webhook decodes it",
        run: engine::admission_review,
        seeds: seeds::admission_reviews,
    },
    Target {
        name: "policy_review",
        about: "a fuzzed object against the repository's policy set: VM + cache = interpreter",
        run: engine::policy_review,
        seeds: seeds::admission_reviews,
    },
    Target {
        name: "rego_rewrite",
        about: "Rego-like text through the scanner and every rewrite: no panic, bounded output",
        run: rego::rewrite,
        seeds: seeds::rego_modules,
    },
    Target {
        name: "rego_differential",
        about: "generated Rego and input, evaluated with and without the rewrites: they agree",
        run: rego::differential,
        seeds: seeds::rego_programs,
    },
    Target {
        name: "rego_template",
        about: "Rego as a ConstraintTemplate: scan, rewrite, compile for both evaluators",
        run: rego::template,
        seeds: seeds::rego_modules,
    },
    Target {
        name: "wasm_host",
        about: "wasm-smith modules in the embedded host: refused, or run within fuel and memory",
        run: wasm::host,
        seeds: seeds::wasm_smith,
    },
    Target {
        name: "export_trimmer",
        about: "arbitrary bytes through the export trimmer: an error or a module",
        run: wasm::trimmer,
        seeds: seeds::trimmer_modules,
    },
    Target {
        name: "stamp_config",
        about: "stamp configuration JSON: Ok or a ConfigError naming a field",
        run: filters::stamp_config,
        seeds: seeds::stamp_configs,
    },
    Target {
        name: "canary_config",
        about: "canary configuration JSON: Ok or a ConfigError naming a field",
        run: filters::canary_config,
        seeds: seeds::canary_configs,
    },
    Target {
        name: "circuit_breaker_config",
        about: "circuit-breaker configuration JSON: Ok or a ConfigError naming a field",
        run: filters::circuit_breaker_config,
        seeds: seeds::circuit_breaker_configs,
    },
    Target {
        name: "rate_limit_config",
        about: "rate-limit configuration JSON: Ok or a ConfigError naming a field",
        run: filters::rate_limit_config,
        seeds: seeds::rate_limit_configs,
    },
    Target {
        name: "jwt_auth_config",
        about: "jwt-auth configuration JSON: Ok or a ConfigError naming a field",
        run: filters::jwt_auth_config,
        seeds: seeds::jwt_auth_configs,
    },
    Target {
        name: "stamp_request",
        about: "fuzzed header maps through the stamp filter on the mock host",
        run: filters::stamp_request,
        seeds: seeds::stamp_requests,
    },
    Target {
        name: "canary_request",
        about: "fuzzed header maps (cookies, X-Forwarded-For, overrides) through the canary",
        run: filters::canary_request,
        seeds: seeds::canary_requests,
    },
    Target {
        name: "circuit_breaker_request",
        about: "fuzzed requests and responses through the circuit breaker, several in a row",
        run: filters::circuit_breaker_request,
        seeds: seeds::circuit_breaker_requests,
    },
    Target {
        name: "rate_limit_request",
        about: "fuzzed header maps through the rate limiter, several in a row",
        run: filters::rate_limit_request,
        seeds: seeds::rate_limit_requests,
    },
    Target {
        name: "authz_config",
        about: "authz configuration JSON with its Rego: Ok or a ConfigError naming a field",
        run: filters::authz_config,
        seeds: seeds::authz_configs,
    },
    Target {
        name: "pipeline_config",
        about: "the meshguard module's configuration, every stage's section: Ok or a field",
        run: filters::pipeline_config,
        seeds: seeds::pipeline_configs,
    },
    Target {
        name: "authz_request",
        about: "requests, claims and JSON bodies through the authz filter's Rego policies",
        run: filters::authz_request,
        seeds: seeds::authz_requests,
    },
    Target {
        name: "pipeline_request",
        about: "fuzzed requests through the meshguard module's stages in one pass",
        run: filters::pipeline_request,
        seeds: seeds::pipeline_requests,
    },
    Target {
        name: "jwt_auth_request",
        about: "fuzzed header maps (tokens in headers, cookies, query) through jwt-auth",
        run: filters::jwt_auth_request,
        seeds: seeds::jwt_auth_requests,
    },
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
