//! The commerce demo: the platform's backend behind real Envoy with meshguard's filters, driven
//! by a scripted scenario, ending in a readable summary.
//!
//! The demo is a sequence of independent acts (one per capability); each starts what it needs
//! (upstreams, an Envoy) and returns the steps it took with their outcome. Adding a capability
//! means adding a module and one line to [`ACTS`].

mod admission;
mod canary;
mod circuit_breaker;
mod edge;
mod gateway;
mod global_rate_limit;
mod jwt_auth;
mod monitoring;
mod rate_limit;

use anyhow::ensure;

use crate::build::build_filters;

/// One line of the summary.
pub struct Step {
    /// What was done (`GET /api/orders as alice`).
    pub request: String,
    /// What happened, readable.
    pub outcome: String,
    /// Whether it is what the act expected.
    pub ok: bool,
}

impl Step {
    /// A step.
    pub fn new(request: impl Into<String>, outcome: impl Into<String>, ok: bool) -> Self {
        Self {
            request: request.into(),
            outcome: outcome.into(),
            ok,
        }
    }
}

type Act = fn() -> anyhow::Result<Vec<Step>>;

/// The acts in order: name and function.
const ACTS: &[(&str, Act)] = &[
    ("gateway", gateway::run),
    ("jwt-auth", jwt_auth::run),
    ("canary", canary::run),
    ("circuit-breaker", circuit_breaker::run),
    ("rate-limit", rate_limit::run),
    (
        "global rate limit (two gateways, one budget)",
        global_rate_limit::run,
    ),
    ("meshguard edge (one module, every policy)", edge::run),
    ("admission", admission::run),
    ("monitoring (what the alerts said)", monitoring::run),
];

/// Runs every act and prints the summary; fails if any step did not go as expected.
pub fn run() -> anyhow::Result<()> {
    build_filters()?;
    let mut failed = 0;
    let mut total = 0;
    for (name, act) in ACTS {
        println!("\n== {name} ==");
        let steps = act()?;
        for step in &steps {
            println!(
                "  {} {:<40} {}",
                if step.ok { "ok  " } else { "FAIL" },
                step.request,
                step.outcome
            );
        }
        total += steps.len();
        failed += steps.iter().filter(|step| !step.ok).count();
    }
    println!(
        "\ndemo: {} acts, {total} steps, {failed} not as expected",
        ACTS.len()
    );
    ensure!(failed == 0, "{failed} demo step(s) did not go as expected");
    Ok(())
}
