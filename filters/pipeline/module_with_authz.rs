//! `meshguard_with_authz.wasm`: the `meshguard` pipeline with the `authz` stage (the Rego engine).
//!
//! The same export as `module.rs`, built with the crate's `authz` feature (the example requires
//! it). A file of its own only because cargo warns on every build when two targets share one.

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(meshguard_pipeline::Pipeline);
