//! Which rule decided (`"explain": true`): for each request, the definitions of the decision
//! rule that produced a value, by module and line, or the `default` rule when none did.
//!
//! How: at configure time every definition of the decision rule (`allow if {...}`, one per
//! head) gets its head renamed in a copy of the modules (`__mg_decided_3 if {...}`), so that
//! each definition becomes a rule of its own, and the copy is compiled with one VM entry point
//! per definition. After a decision, each entry point runs on the same input within the same
//! instruction budget: a definition is reported when its renamed rule is defined. This is what
//! OPA's `explain` output answers for one rule, and it works the same in Envoy (the filter logs
//! it) and in `meshguard filter run` (which prints the filter's log).
//!
//! It costs one evaluation per definition on every request, so it is for finding out why, not
//! for production traffic.

use std::sync::Arc;

use meshguard_filter_core::ConfigError;
use regorus::Value;
use regorus::rvm::{Program, RegoVM};
use regorus::unstable::{Rule, RuleHead};

use crate::config::Config;
use crate::policy::{self, EvalError};

/// Where a definition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Module (file name as configured).
    pub module: String,
    /// 1-based line of the rule head.
    pub line: u32,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.module, self.line)
    }
}

/// What decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// These definitions produced a value.
    Rules(Vec<Site>),
    /// No definition did; the `default` rule gave the value.
    Default(Site),
    /// No definition did and there is no default.
    Nothing,
}

impl std::fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rules(sites) => {
                let sites: Vec<String> = sites.iter().map(ToString::to_string).collect();
                write!(f, "{}", sites.join(", "))
            }
            Self::Default(site) => write!(f, "the default rule at {site}"),
            Self::Nothing => write!(f, "no rule (undefined)"),
        }
    }
}

/// The renamed-definitions program.
#[derive(Debug)]
pub struct Explainer {
    program: Arc<Program>,
    data: Value,
    definitions: Vec<(String, Site)>,
    default: Option<Site>,
    max_instructions: usize,
}

impl Explainer {
    /// Finds the decision rule's definitions in `engine`'s modules and compiles the copy.
    pub(crate) fn prepare(
        engine: &mut regorus::Engine,
        modules: &[(String, String)],
        config: &Config,
        data: &Value,
    ) -> Result<Self, ConfigError> {
        let mut edits: Vec<(String, u32, u32, String)> = Vec::new();
        let mut definitions = Vec::new();
        let mut default = None;
        for module in engine.get_modules().iter() {
            let package = module.package.refr.span().text().to_string();
            let Some(rest) = config.rule.strip_prefix(&format!("data.{package}.")) else {
                continue;
            };
            let file = module.package.span.source.file().clone();
            for rule in &module.policy {
                match &**rule {
                    Rule::Spec { head, .. } => {
                        let (RuleHead::Compr { refr, .. }
                        | RuleHead::Set { refr, .. }
                        | RuleHead::Func { refr, .. }) = head;
                        let span = refr.span();
                        if span.text() != rest {
                            continue;
                        }
                        let name = format!("__mg_decided_{}", definitions.len());
                        definitions.push((
                            format!("data.{package}.{name}"),
                            Site {
                                module: file.clone(),
                                line: span.line,
                            },
                        ));
                        edits.push((file.clone(), span.start, span.end, name));
                    }
                    Rule::Default { refr, span, .. } => {
                        if refr.span().text() == rest {
                            default = Some(Site {
                                module: file.clone(),
                                line: span.line,
                            });
                        }
                    }
                }
            }
        }
        let renamed: Vec<(String, String)> = modules
            .iter()
            .map(|(name, source)| {
                let mut source = source.clone();
                let mut mine: Vec<&(String, u32, u32, String)> =
                    edits.iter().filter(|(file, ..)| file == name).collect();
                mine.sort_by_key(|(_, start, ..)| std::cmp::Reverse(*start));
                for (_, start, end, replacement) in mine {
                    let range = usize::try_from(*start).unwrap_or(usize::MAX)
                        ..usize::try_from(*end).unwrap_or(usize::MAX);
                    if source.get(range.clone()).is_some() {
                        source.replace_range(range, replacement);
                    }
                }
                (name.clone(), source)
            })
            .collect();
        let mut copy = policy::engine(&renamed)?;
        let entries: Vec<String> = definitions.iter().map(|(entry, _)| entry.clone()).collect();
        let program = policy::compile_entries(&mut copy, config, &config.rule, &entries)
            .map_err(|err| ConfigError::new("explain", err.to_string()))?;
        Ok(Self {
            program,
            data: data.clone(),
            definitions,
            default,
            max_instructions: config.max_instructions,
        })
    }

    /// Which definitions decide on `input`.
    pub fn explain(&self, input: &Value) -> Result<DecidedBy, EvalError> {
        let mut vm: RegoVM =
            policy::new_vm(&self.program, &self.data).map_err(EvalError::Runtime)?;
        let mut fired = Vec::new();
        for (entry, site) in &self.definitions {
            let value = policy::evaluate(
                &mut vm,
                input.clone(),
                self.max_instructions,
                Some(entry.as_str()),
            )?;
            if value != Value::Undefined {
                fired.push(site.clone());
            }
        }
        Ok(if !fired.is_empty() {
            DecidedBy::Rules(fired)
        } else if let Some(site) = &self.default {
            DecidedBy::Default(site.clone())
        } else {
            DecidedBy::Nothing
        })
    }
}
