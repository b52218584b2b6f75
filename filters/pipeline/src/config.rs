//! The pipeline's configuration: one optional section per stage, each with exactly the schema
//! of that stage's single-purpose module.
//!
//! ```json
//! {
//!   "jwtAuth":        { "providers": [...], "rules": [...] },
//!   "authz":          { "modules": { "rbac.rego": "package envoy.authz ..." } },
//!   "rateLimit":      { "limits": [{ "name": "per-user", "key": [{ "claim": "sub" }], ... }] },
//!   "canary":         { "services": [...] },
//!   "circuitBreaker": { "breakers": [...] }
//! }
//! ```
//!
//! At least one section must be present, and every key must name a stage. Sections are
//! configured in stage order, each told what the stages before it provide ([`Env`]): a
//! `claim` key, and an `authz` policy reading the verified payload, need a `jwtAuth` section; a
//! breaker matched on `cluster` behind a canary needs every canary version to name its cluster. Errors name the path from the document's top,
//! `rateLimit.limits[0].rate.requests`.

use std::time::Duration;

use meshguard_filter_core::config::{key_field, parse_json};
use meshguard_filter_core::{ConfigError, Env, Host, RouteKnowledge};
use serde_json::{Map, Value};

use crate::stage::{LEFT_OUT, StageDef, StageRoot};

/// A configured stage.
pub struct Configured {
    /// Which stage.
    pub def: StageDef,
    /// Its root.
    pub root: Box<dyn StageRoot>,
    /// How often it ticks.
    pub period: Option<Duration>,
}

/// Configures `stages` (in their order) from the sections of `config`.
pub fn configure(
    host: &mut dyn Host,
    plugin: &str,
    stages: &[StageDef],
    config: &[u8],
) -> Result<Vec<Configured>, ConfigError> {
    let document: Map<String, Value> = parse_json(config)?;
    let known = || {
        stages
            .iter()
            .map(|stage| format!("`{}`", stage.section))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some((section, advice)) = LEFT_OUT
        .iter()
        .find(|(section, _)| document.contains_key(*section))
    {
        return Err(ConfigError::new(*section, *advice));
    }
    if let Some(unknown) = document
        .keys()
        .find(|key| !stages.iter().any(|stage| stage.section == key.as_str()))
    {
        // An empty key is named `""` (found by the pipeline_config fuzz target).
        let field = key_field(unknown);
        return Err(ConfigError::new(
            field.as_str(),
            format!(
                "`{field}` is not a stage of the meshguard module (stages: {})",
                known()
            ),
        ));
    }
    if document.is_empty() {
        return Err(ConfigError::new(
            ".",
            format!("configure at least one stage: {}", known()),
        ));
    }
    let mut env = Env::single(plugin);
    let mut configured = Vec::new();
    for stage in stages {
        let Some(section) = document.get(stage.section) else {
            continue;
        };
        if !section.is_object() {
            return Err(ConfigError::new(
                stage.section,
                "must be an object: the configuration of the single-purpose module",
            ));
        }
        let bytes = serde_json::to_vec(section)
            .map_err(|err| ConfigError::new(stage.section, err.to_string()))?;
        let root = stage
            .configure(host, &env, &bytes)
            .map_err(|err| relocate(err, stage.section))?;
        let provides = root.provides();
        env.claims |= provides.claims;
        env.route = match (env.route, provides.reroutes) {
            (RouteKnowledge::Unknown, _) | (_, Some(false)) => RouteKnowledge::Unknown,
            (_, Some(true)) => RouteKnowledge::Declared,
            (route, None) => route,
        };
        configured.push(Configured {
            def: *stage,
            period: root.tick_period(),
            root,
        });
    }
    Ok(configured)
}

/// A stage's error, placed under its section. A parse error's "at line L column C" points into
/// the section as re-serialised, not into the operator's document, so it goes.
fn relocate(err: ConfigError, section: &str) -> ConfigError {
    let position = err.message.rfind(" at line ").filter(|at| {
        err.message
            .get(*at..)
            .is_some_and(|tail| tail.contains(" column "))
    });
    let message = match position.and_then(|at| err.message.get(..at)) {
        Some(message) => message.to_string(),
        None => err.message.clone(),
    };
    ConfigError::new(err.field, message).within(section)
}
