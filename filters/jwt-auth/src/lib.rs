//! `jwt-auth`: JWT authentication in front of the commerce APIs, with the features operators use
//! in Envoy's native `jwt_authn` and Istio's `RequestAuthentication`, and none of the bypasses.
//!
//! Tokens come from the platform's OIDC provider (Keycloak-style: an issuer URL, a JWKS URI,
//! realm roles in claims). Per request the filter strips the headers it writes (so clients cannot
//! spoof them), finds the first rule matching the path and method, and evaluates its requirement
//! (`provider`, `anyOf`, `allOf`, `allowMissing`, `allowMissingOrFailed`, `none`; deny when no
//! rule matches). A token is parsed strictly ([`token`]), checked against the provider's issuer,
//! clock and audiences ([`claims`]), matched to a key by `kid` or algorithm ([`verify`]) and its
//! signature verified on Envoy's BoringSSL through the `verify_signature` foreign function where
//! the host offers it, in wasm otherwise ([`crypto`]). Verified tokens are remembered per worker
//! ([`cache`]); remote JWKS are fetched once per Envoy and shared across workers ([`remote`]).
//!
//! The decision code is a pure function of configuration, request facts, keys and time; only
//! [`filter`] and [`auth`] touch the request model ([`meshguard_filter_core::Ctx`]), and only
//! the shim touches proxy-wasm. In the `meshguard` pipeline the verified tokens' claims are
//! published to the stages after this one ([`meshguard_filter_core::Ctx::set_identity`]), so a
//! limit or a canary keyed on `claim: sub` uses the verified claim, never a header.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod auth;
pub mod cache;
pub mod claims;
pub mod config;
pub mod crypto;
pub mod der;
pub mod extract;
pub mod failure;
pub mod filter;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod remote;
pub mod request;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod token;
pub mod verify;

pub use config::{Config, parse_config};
pub use filter::{JwtAuth, JwtHttp, JwtRoot};
