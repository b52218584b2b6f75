//! `meshguard_authz.wasm`: the authorization filter as a single-purpose proxy-wasm module.
//!
//! The filter's logic is the `meshguard_authz` library; this file only exports it (see the crate's
//! `Cargo.toml`). `cargo xtask build-filters` builds it for wasm32-wasip1 into
//! `target/filters/meshguard_authz.wasm`.

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(meshguard_authz::Authz);
