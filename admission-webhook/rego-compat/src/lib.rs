//! Source rewrites that make regorus decide as OPA does, for every place meshguard runs Rego:
//! the admission engine (`meshguard-policy-engine`, Gatekeeper templates) and the proxy's
//! authorization filter (`meshguard-authz`, on regorus' bytecode VM inside Envoy).
//!
//! Why a crate of its own: the measured divergences between regorus 0.14 and OPA
//! (`/work/shared/REGORUS.md` in the team's notes; `admission-webhook/engine`'s docs list them)
//! change decisions, and one of them (`not f(x)` with `x` undefined is true in regorus) can
//! turn a deny into an allow. The admission engine compensates them by rewriting the source;
//! the proxy runs the same Rego and must decide the same way, so both take the rewrites from
//! here. The crate is plain text processing with no regorus dependency, so the filter's wasm
//! module stays small.
//!
//! - [`rego_scan`]: a Rego tokenizer (strings, raw strings, comments) and the parse
//!   compensations (a line starting with `(`, chained rule bodies).
//! - [`nesting`]: a bound on bracket nesting, whose parse cost doubles per level in regorus.
//! - [`rewrite`]: OPA's `not f(args)` expansion, `sprintf` with missing arguments, the VM's
//!   assignment guard, and OPA's deprecated `any`/`all`.
//!
//! Every rewrite keeps each line where it was, so Rego errors still point at the author's lines.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod nesting;
pub mod rego_scan;
pub mod rewrite;
