//! `meshguard.wasm`: every meshguard filter in one module, as stages of one pipeline.
//!
//! The pipeline is the `meshguard_pipeline` library; this file only exports it (see the crate's
//! `Cargo.toml`; `module_with_authz.rs` is the same export, built with the `authz` feature).
//! `cargo xtask build-filters` builds it for wasm32-wasip1 into `target/filters/meshguard.wasm`.

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(meshguard_pipeline::Pipeline);
