//! The modules a filter scenario runs against: a filter's single-purpose module, or the
//! `meshguard` pipeline module with the same configuration in that filter's section (the
//! `meshguard_with_authz` build of it when a stage is [`Stage::Authz`]).
//!
//! Every Envoy scenario of a filter runs against both ([`scenarios!`]): the pipeline must do
//! whatever each single-purpose module does. Every filter of a scenario is named [`PLUGIN`], so
//! stats (`meshguard.<filter>.<plugin>.<stat>`) read the same in both; single-purpose modules
//! get one VM id each, as separate plugins do.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::FilterSpec;
use crate::paths::filter_module;

/// The plugin name of every filter a scenario configures.
pub const PLUGIN: &str = "edge";

/// A meshguard filter, as a stage of the pipeline or a module of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// JWT authentication.
    JwtAuth,
    /// Request authorization in Rego.
    Authz,
    /// Rate limiting.
    RateLimit,
    /// Canary routing.
    Canary,
    /// Circuit breaking.
    CircuitBreaker,
}

impl Stage {
    /// The single-purpose module's name (`target/filters/<name>.wasm`).
    pub fn module(self) -> &'static str {
        match self {
            Self::JwtAuth => "meshguard_jwt_auth",
            Self::Authz => "meshguard_authz",
            Self::RateLimit => "meshguard_rate_limit",
            Self::Canary => "meshguard_canary",
            Self::CircuitBreaker => "meshguard_circuit_breaker",
        }
    }

    /// The pipeline's configuration section.
    pub fn section(self) -> &'static str {
        match self {
            Self::JwtAuth => "jwtAuth",
            Self::Authz => "authz",
            Self::RateLimit => "rateLimit",
            Self::Canary => "canary",
            Self::CircuitBreaker => "circuitBreaker",
        }
    }

    /// The filter's name in stats (`meshguard.<name>.<plugin>...`).
    pub fn stats(self) -> &'static str {
        match self {
            Self::JwtAuth => "jwt_auth",
            Self::Authz => "authz",
            Self::RateLimit => "rate_limit",
            Self::Canary => "canary",
            Self::CircuitBreaker => "circuit_breaker",
        }
    }
}

/// Which module a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// One single-purpose module per filter, chained in the scenario's order.
    Single,
    /// The `meshguard` module, every filter a section of its configuration.
    Pipeline,
}

impl Module {
    /// The HTTP filters for `stages` (each with its JSON configuration), in order: one module
    /// per stage, or one pipeline holding them all; named [`PLUGIN`].
    pub fn filters(self, stages: &[(Stage, &str)]) -> anyhow::Result<Vec<FilterSpec>> {
        self.filters_named(PLUGIN, stages)
    }

    /// [`Module::filters`] for a plugin named `plugin` (several listeners of one Envoy, each
    /// with its own plugin).
    pub fn filters_named(
        self,
        plugin: &str,
        stages: &[(Stage, &str)],
    ) -> anyhow::Result<Vec<FilterSpec>> {
        match self {
            Self::Single => stages
                .iter()
                .map(|(stage, config)| {
                    Ok(FilterSpec::Wasm {
                        name: plugin.to_string(),
                        module: filter_module(stage.module())?,
                        config: (*config).to_string(),
                        vm_id: format!("{plugin}-{}", stage.stats()),
                    })
                })
                .collect(),
            Self::Pipeline => {
                let mut sections = Map::new();
                for (stage, config) in stages {
                    let section: Value = serde_json::from_str(config)
                        .with_context(|| format!("{} configuration", stage.section()))?;
                    sections.insert(stage.section().to_string(), section);
                }
                Ok(vec![FilterSpec::Wasm {
                    name: plugin.to_string(),
                    module: filter_module(pipeline_module(stages.iter().map(|(stage, _)| *stage)))?,
                    config: Value::Object(sections).to_string(),
                    vm_id: plugin.to_string(),
                }])
            }
        }
    }

    /// The HTTP filter for one stage.
    pub fn filter(self, stage: Stage, config: &str) -> anyhow::Result<FilterSpec> {
        self.filters(&[(stage, config)])?
            .pop()
            .context("no filter for the stage")
    }
}

/// The pipeline module that runs `stages`: `meshguard_with_authz` (built with the Rego engine)
/// when one is [`Stage::Authz`], else `meshguard`, which has no Rego engine and refuses an
/// `authz` section.
pub fn pipeline_module(stages: impl IntoIterator<Item = Stage>) -> &'static str {
    if stages.into_iter().any(|stage| stage == Stage::Authz) {
        "meshguard_with_authz"
    } else {
        "meshguard"
    }
}

/// The value of `stage`'s stat `stat` (`orders.allowed`) of the scenario's plugin, summed over
/// whatever prefix Envoy puts on custom stats (`wasmcustom.`); 0 if Envoy has none.
pub fn stat(stats: &BTreeMap<String, i64>, stage: Stage, stat: &str) -> i64 {
    stat_of(stats, stage, PLUGIN, stat)
}

/// [`stat`] of the plugin named `plugin`.
pub fn stat_of(stats: &BTreeMap<String, i64>, stage: Stage, plugin: &str, stat: &str) -> i64 {
    let name = format!("meshguard.{}.{plugin}.{stat}", stage.stats());
    stats
        .iter()
        .filter(|(key, _)| key.ends_with(&name))
        .map(|(_, value)| value)
        .sum()
}

/// Declares, for each scenario function `fn name(module: Module)`, a test module `name` with
/// two tests, `name::single` and `name::pipeline`.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn single() {
                    super::$name($crate::modules::Module::Single);
                }

                #[test]
                fn pipeline() {
                    super::$name($crate::modules::Module::Pipeline);
                }
            }
        )*
    };
}
