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
//! module stays small; its one check over regorus' `Value` ([`numbers::check_strings`], for the
//! crates that hold one anyway) sits behind the `value` feature.
//!
//! - [`rego_scan`]: a Rego tokenizer (strings, raw strings, comments) and the parse
//!   compensations (a line starting with `(`, chained rule bodies).
//! - [`nesting`]: a bound on the text inside nested brackets, whose parse cost doubles per
//!   level in regorus.
//! - [`depth`]: a bound on how deep an expression's tree is (unary minus, operator chains),
//!   which regorus recurses through on a thread's stack.
//! - [`numbers`]: a bound on number exponents, which regorus expands into big integers (in
//!   modules and in JSON documents); [`check_parse_cost`] runs the three bounds on a module.
//! - [`rewrite`]: OPA's `not f(args)` expansion, `sprintf` with missing arguments, the VM's
//!   assignment guard, and OPA's deprecated `any`/`all`.
//! - [`vm_rules`]: complete rules that may produce several values, checked for OPA's conflict
//!   error on regorus' VM, and lookup-table functions made one lookup.
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

pub mod depth;
pub mod nesting;
pub mod numbers;
pub mod rego_scan;
pub mod rewrite;
pub mod vm_rules;

/// Why regorus' parser would spend seconds or more on a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooCostly {
    /// Brackets nest too deep ([`nesting`]).
    Nesting(nesting::TooDeep),
    /// A number's exponent is too large ([`numbers`]).
    Number(numbers::HugeNumber),
    /// An expression's tree is too deep ([`depth`]).
    Depth(depth::DeepExpression),
}

impl TooCostly {
    /// The 1-based line to name.
    pub fn line(&self) -> usize {
        match self {
            Self::Nesting(err) => err.line,
            Self::Number(err) => err.line,
            Self::Depth(err) => err.line,
        }
    }
}

impl std::fmt::Display for TooCostly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nesting(err) => err.fmt(f),
            Self::Number(err) => err.fmt(f),
            Self::Depth(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for TooCostly {}

/// The bounds every caller checks before regorus parses a module (Rego text), in one pass over
/// its tokens; the first token that breaks one is named.
pub fn check_parse_cost(text: &str) -> Result<(), TooCostly> {
    let mut brackets = nesting::Walk::default();
    let mut literals = numbers::Literals::default();
    let mut expressions = depth::Walk::default();
    rego_scan::Tokens::new(text).try_for_each(|token| {
        brackets.step(&token).map_err(TooCostly::Nesting)?;
        literals.step(text, &token).map_err(TooCostly::Number)?;
        expressions.step(text, &token).map_err(TooCostly::Depth)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_names_the_first_bound_broken() {
        let deep = format!("x := {}1{}", "[".repeat(24), "]".repeat(24));
        let text = format!("package p\n\ny := 1e+5000\n{deep}\n");
        let err = check_parse_cost(&text).unwrap_err();
        assert!(matches!(err, TooCostly::Number(_)), "{err}");
        assert_eq!(err.line(), 3);
        let text = format!("package p\n\n{deep}\ny := 1e+5000\n");
        let err = check_parse_cost(&text).unwrap_err();
        assert!(matches!(err, TooCostly::Nesting(_)), "{err}");
        assert_eq!(err.line(), 3);
        assert_eq!(
            check_parse_cost("package p\n\nx := [1e1000, {\"a\": [2.5E-3]}]\n"),
            Ok(())
        );
        // A signed exponent split over three tokens is joined in the single pass too.
        assert!(matches!(
            check_parse_cost("package p\nx := [1E-1001]\n"),
            Err(TooCostly::Number(_))
        ));
    }
}

#[cfg(test)]
mod repository {
    use std::path::{Path, PathBuf};

    /// Every `.rego` file and Gatekeeper YAML in the repository (whole YAML files are an upper
    /// bound on their Rego's cost: the YAML around it adds few brackets and operators).
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "rego" || ext == "yaml")
            {
                out.push(path);
            }
        }
    }

    /// The largest `cost` over the repository's Rego, and where.
    fn most<T: Ord + Copy>(cost: impl Fn(&str) -> T) -> (T, PathBuf) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut paths = Vec::new();
        for dir in [
            "policies",
            "gatekeeper",
            "istio/authz",
            "filters/host/examples",
            "admission-webhook/engine/benches-data",
        ] {
            files(&root.join(dir), &mut paths);
        }
        assert!(paths.len() > 20, "found only {paths:?}");
        paths
            .into_iter()
            .map(|path| (cost(&std::fs::read_to_string(&path).unwrap()), path))
            .max()
            .unwrap()
    }

    #[test]
    fn the_repositorys_rego_is_far_below_the_bracket_budget() {
        let (most, path) = most(super::nesting::work);
        eprintln!("most bracket work: {most} in {}", path.display());
        assert!(
            most <= super::nesting::MAX_WORK / 16,
            "{} costs {most} token parses, within 16x of the budget",
            path.display()
        );
    }

    #[test]
    fn the_repositorys_rego_is_far_below_the_depth_bound() {
        let (most, path) = most(super::depth::deepest);
        eprintln!("deepest expression: {most} in {}", path.display());
        assert!(
            most <= super::depth::MAX_DEPTH / 4,
            "{} has an expression {most} deep, within 4x of the bound",
            path.display()
        );
    }
}
