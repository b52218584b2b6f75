//! `authz`: request authorization in Rego at the proxy, with OPA-Envoy's contract and no
//! network hop.
//!
//! The security team's Rego runs inside the filter on regorus, compiled to a VM program once
//! at configure time ([`policy`]). Each request is shown the OPA-Envoy input document
//! ([`input`]), built from only what the policy reads ([`reads`]); the decision is a boolean or
//! an object as OPA-Envoy accepts them ([`decision`]); a denial answers locally and is counted
//! by reason ([`metrics`]). Decisions are cached per worker, keyed by the input the policy
//! reads ([`cache`]); every evaluation runs within an instruction budget, and an error (the
//! budget exceeded included) is decided by `onError` ([`config`]). The verified JWT payload
//! comes from the JWT filter's filter state (`meshguard_filter_core::claims`) in the
//! single-purpose module, and from the identities the `jwtAuth` stage published in the
//! `meshguard` pipeline ([`AuthzStage`]); never from a header a client could send.
//!
//! The stage itself is a library with a clean entry ([`stage`]): configuration in, a prepared
//! policy out; request facts and verified claims in, a decision out. [`filter`] is the thin
//! shell on the filter API ([`Authz`]); `module.rs` exports it as the single-purpose module
//! `meshguard_authz.wasm`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod body;
pub mod cache;
pub mod config;
pub mod decision;
pub mod explain;
pub mod filter;
pub mod input;
pub mod metrics;
pub mod policy;
pub mod reads;
pub mod stage;
pub mod url;

pub use config::{Config, OnError, parse_config};
pub use filter::{Authz, AuthzHttp, AuthzRoot, AuthzStage, ClaimsFrom};
pub use stage::{Action, Authorizer, Decided, ErrorKind, Prepared, prepare, prepare_config};
