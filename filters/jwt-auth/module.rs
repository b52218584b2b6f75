//! `meshguard_jwt_auth.wasm`: the JWT filter as a single-purpose proxy-wasm module.
//!
//! The filter's logic is the `meshguard_jwt_auth` library; this file only exports it (see the crate's
//! `Cargo.toml`). `cargo xtask build-filters` builds it for wasm32-wasip1 into
//! `target/filters/meshguard_jwt_auth.wasm`.

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(meshguard_jwt_auth::JwtAuth);
