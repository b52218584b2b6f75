//! The authorization stage as a library, with no host behind it: configuration in, a prepared
//! policy out ([`prepare`]); request facts and verified claims in, a decision out
//! ([`Authorizer::decide`]).
//!
//! The single-purpose module ([`crate::filter`]) drives it from proxy-wasm callbacks; the
//! `meshguard` pipeline module runs it as the stage after `jwtAuth`, handing it the claims the
//! JWT stage verified in the same pass. Neither touches the policy, the input document, the
//! cache or the evaluation bound: those live here.

use std::rc::Rc;

use meshguard_filter_core::{ConfigError, LocalResponse};
use regorus::rvm::RegoVM;

use crate::body::Body;
use crate::cache::DecisionCache;
use crate::config::{Config, OnError, parse_config};
use crate::decision::Verdict;
use crate::input::{self, ClaimsMemo, InputError, RequestFacts, VerifiedClaims};
use crate::policy::{EvalError, Policy};

/// Everything prepared from a configuration, shared by the workers' [`Authorizer`]s.
#[derive(Debug)]
pub struct Prepared {
    /// The validated configuration.
    pub config: Config,
    /// The compiled policy.
    pub policy: Policy,
}

/// Parses, validates and compiles a configuration (JSON bytes).
pub fn prepare(bytes: &[u8]) -> Result<Rc<Prepared>, ConfigError> {
    prepare_config(parse_config(bytes)?)
}

/// Compiles a validated configuration (the pipeline parses its `authz` section itself).
pub fn prepare_config(config: Config) -> Result<Rc<Prepared>, ConfigError> {
    let policy = Policy::prepare(&config)?;
    Ok(Rc::new(Prepared { config, policy }))
}

impl Prepared {
    /// Whether a request with a body must be held until its body is buffered: the policy
    /// reads the body and buffering is configured.
    pub fn waits_for_body(&self) -> bool {
        self.policy.reads_body && self.config.max_request_bytes.is_some()
    }

    /// A short description for the configure-time log line.
    pub fn summary(&self) -> String {
        let cache = match (&self.policy.uncacheable, self.config.cache_size) {
            (_, 0) => "off".to_string(),
            (Some(why), _) => format!("off: {why}"),
            (None, size) => format!("{size} decisions per worker"),
        };
        let reads: Vec<String> = self
            .policy
            .reads
            .paths
            .iter()
            .map(|path| {
                if path.is_empty() {
                    "input".to_string()
                } else {
                    format!("input.{}", path.join("."))
                }
            })
            .collect();
        format!(
            "decision {}; reads {}; decision cache {cache}; at most {} instructions per evaluation{}",
            self.policy.rule,
            if reads.is_empty() {
                "nothing of input".to_string()
            } else {
                reads.join(", ")
            },
            self.config.max_instructions,
            if self.waits_for_body() {
                format!(
                    "; holds requests until their body (at most {} bytes) is buffered",
                    self.config.max_request_bytes.unwrap_or_default()
                )
            } else {
                String::new()
            }
        )
    }
}

/// Why a request had no decision from the policy; each kind is counted as `error.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input document could not be built (a path or body the policy cannot be shown).
    Input,
    /// The evaluation ran out of `maxInstructions`.
    Limit,
    /// A run-time error in the policy.
    Evaluation,
    /// The decision rule was undefined (no default).
    Undefined,
    /// The decision had the wrong shape.
    InvalidDecision,
}

impl ErrorKind {
    /// Every kind, in stat order.
    pub const ALL: [Self; 5] = [
        Self::Input,
        Self::Limit,
        Self::Evaluation,
        Self::Undefined,
        Self::InvalidDecision,
    ];

    /// The stat suffix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Limit => "limit",
            Self::Evaluation => "evaluation",
            Self::Undefined => "undefined",
            Self::InvalidDecision => "invalid_decision",
        }
    }
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let it go on, after the verdict's header changes.
    Allow(Rc<Verdict>),
    /// Answer locally.
    Deny(LocalResponse),
}

/// A decision and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// What to do.
    pub action: Action,
    /// `None`: the policy decided; otherwise the error that `onError` decided.
    pub error: Option<(ErrorKind, String)>,
    /// `Some(true)`: answered from the cache; `Some(false)`: evaluated and cached; `None`: the
    /// cache was not used.
    pub cache_hit: Option<bool>,
    /// Which rule decided (only with `explain`).
    pub explained: Option<String>,
}

/// One worker's stage: the prepared policy, a VM and the decision cache.
#[derive(Debug)]
pub struct Authorizer {
    prepared: Rc<Prepared>,
    vm: RegoVM,
    cache: DecisionCache,
    claims: ClaimsMemo,
}

impl Authorizer {
    /// A worker's stage.
    pub fn new(prepared: Rc<Prepared>) -> Self {
        let cache = if prepared.policy.uncacheable.is_some() {
            DecisionCache::new(0)
        } else {
            DecisionCache::new(prepared.config.cache_size)
        };
        Self {
            vm: prepared.policy.vm(),
            prepared,
            cache,
            claims: ClaimsMemo::default(),
        }
    }

    /// What was prepared.
    pub fn prepared(&self) -> &Rc<Prepared> {
        &self.prepared
    }

    /// Decisions cached on this worker.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Decides a request from its facts, the verified claims and (when the policy waits for
    /// it) the buffered body.
    pub fn decide(
        &mut self,
        facts: &mut dyn RequestFacts,
        claims: &mut dyn VerifiedClaims,
        body: Option<&Body>,
    ) -> Decided {
        let prepared = Rc::clone(&self.prepared);
        let policy = &prepared.policy;
        let input = match input::build(&policy.need, facts, claims, &mut self.claims, body) {
            Ok(input) => input,
            Err(err) => return self.on_error(ErrorKind::Input, input_reason(&err)),
        };
        if policy.reads.reads_numbers.is_some()
            && let Err(err) = input::check_numbers(&input)
        {
            return self.on_error(ErrorKind::Input, input_reason(&err));
        }
        let key = self.cache.key(&input);
        let cache_hit = key.as_ref().map(|_| false);
        if let Some(verdict) = key.as_deref().and_then(|key| self.cache.get(key)) {
            return Decided {
                action: action(verdict),
                error: None,
                cache_hit: Some(true),
                explained: explain(policy, &input),
            };
        }
        let value = match policy.evaluate(&mut self.vm, input.clone()) {
            Ok(value) => value,
            Err(err) => {
                // The VM may hold the failed run's state: start the next one afresh.
                self.vm = policy.vm();
                let kind = match err {
                    EvalError::Limit(_) => ErrorKind::Limit,
                    EvalError::Runtime(_) | EvalError::Conflict(_) => ErrorKind::Evaluation,
                };
                return self.on_error(kind, err.to_string());
            }
        };
        let verdict = match Verdict::from_value(&value) {
            Ok(verdict) => Rc::new(verdict),
            Err(err) => {
                let kind = if value == regorus::Value::Undefined {
                    ErrorKind::Undefined
                } else {
                    ErrorKind::InvalidDecision
                };
                return self.on_error(kind, err);
            }
        };
        let explained = explain(policy, &input);
        if let Some(key) = &key {
            self.cache.insert(key, Rc::clone(&verdict));
        }
        Decided {
            action: action(verdict),
            error: None,
            cache_hit,
            explained,
        }
    }

    /// The answer to a request whose body is over `withRequestBody.maxRequestBytes` (ext_authz
    /// answers 413 too).
    pub fn body_too_large(&self) -> LocalResponse {
        LocalResponse::new(413, "")
    }

    fn on_error(&self, kind: ErrorKind, reason: String) -> Decided {
        let config = &self.prepared.config;
        let action = match config.on_error {
            OnError::Deny => Action::Deny(LocalResponse::new(config.status_on_error, "")),
            OnError::Allow => Action::Allow(Rc::new(Verdict::plain(true))),
        };
        Decided {
            action,
            error: Some((kind, reason)),
            cache_hit: None,
            explained: None,
        }
    }
}

fn action(verdict: Rc<Verdict>) -> Action {
    if verdict.allowed {
        Action::Allow(verdict)
    } else {
        Action::Deny(LocalResponse {
            status: verdict.status,
            headers: verdict.headers.clone(),
            body: verdict.body.clone().into_bytes(),
        })
    }
}

fn explain(policy: &Policy, input: &regorus::Value) -> Option<String> {
    policy.explainer.as_ref().map(|explainer| {
        explainer.explain(input).map_or_else(
            |err| format!("(explain failed: {err})"),
            |by| by.to_string(),
        )
    })
}

fn input_reason(err: &InputError) -> String {
    format!("cannot build the input document: {err}")
}

#[cfg(test)]
mod tests;
