//! The policy set: compiled templates and their constraints, indexed by the kinds the constraints
//! match, reviewed against AdmissionRequests (the webhook, the CLI) or existing objects (audit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::Value;
use serde_json::Value as Json;

use crate::constraint::{Constraint, ConstraintRef, is_constraint};
use crate::decision_cache::CacheStats;
use crate::document::{self, Document};
use crate::enforcement::{EnforcementAction, EnforcementPoint};
use crate::error::{LoadError, Location, ReviewError};
use crate::inventory::Inventory;
use crate::review::AdmissionRequest;
use crate::template::{Failure, Template, is_template};
use crate::vm::EvalMode;

/// How a review is run.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    /// Which enforcement point is asking (selects scoped enforcement actions).
    pub point: EnforcementPoint,
    /// Total evaluation time allowed for one review.
    pub deadline: Duration,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        Self {
            point: EnforcementPoint::Validation,
            deadline: Duration::from_secs(2),
        }
    }
}

impl ReviewOptions {
    /// Options for an enforcement point with the default deadline.
    pub fn at(point: EnforcementPoint) -> Self {
        Self {
            point,
            ..Self::default()
        }
    }
}

/// One result of `violation` for one constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The constraint (kind and name).
    pub constraint: ConstraintRef,
    /// The actions that apply at the enforcement point of the review (never empty).
    pub actions: Vec<EnforcementAction>,
    /// `msg`.
    pub message: String,
    /// `details` (`{}` when the template gives none).
    pub details: Json,
}

impl Violation {
    /// Whether one of the actions is `deny`.
    pub fn denies(&self) -> bool {
        self.actions.contains(&EnforcementAction::Deny)
    }

    /// Whether one of the actions is `warn`.
    pub fn warns(&self) -> bool {
        self.actions.contains(&EnforcementAction::Warn)
    }

    /// Whether one of the actions is `dryrun`.
    pub fn is_dryrun(&self) -> bool {
        self.actions.contains(&EnforcementAction::Dryrun)
    }

    /// Gatekeeper's message line: `[constraint-name] msg`.
    pub fn gatekeeper_line(&self) -> String {
        format!("[{}] {}", self.constraint.name, self.message)
    }
}

/// The identity of an audited object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace` ("" when cluster-scoped).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// Reads the identity of an object.
    pub fn of(object: &Json) -> Self {
        let s = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        Self {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// The result of an audit: violations per constraint, as Gatekeeper's audit reports them.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// Objects audited.
    pub objects: usize,
    /// Every constraint enforced at the audit point, with its violations (possibly none).
    pub by_constraint: BTreeMap<ConstraintRef, Vec<(ObjectRef, Violation)>>,
    /// Objects whose review failed (timeout, match error).
    pub errors: Vec<(ObjectRef, ReviewError)>,
}

impl AuditReport {
    /// Total violations.
    pub fn total(&self) -> usize {
        self.by_constraint.values().map(Vec::len).sum()
    }
}

/// Compiled templates and their constraints.
#[derive(Debug, Clone)]
pub struct PolicySet {
    templates: BTreeMap<String, Arc<Template>>,
    constraints: BTreeMap<ConstraintRef, Arc<Constraint>>,
    by_kind: HashMap<String, Vec<Arc<Constraint>>>,
    any_kind: Vec<Arc<Constraint>>,
    eval_mode: EvalMode,
    decision_cache: bool,
}

impl Default for PolicySet {
    fn default() -> Self {
        Self {
            templates: BTreeMap::new(),
            constraints: BTreeMap::new(),
            by_kind: HashMap::new(),
            any_kind: Vec::new(),
            eval_mode: EvalMode::default(),
            decision_cache: true,
        }
    }
}

impl PolicySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every ConstraintTemplate and Constraint found in the manifest files under `paths`
    /// (folders recursively); other documents (suites, sample objects) are ignored. All errors
    /// are collected and returned together.
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Self, LoadError> {
        Self::from_documents(&document::read_paths(paths)?)
    }

    /// Builds a set from documents: templates first, then constraints. Identical duplicates are
    /// accepted; differing ones are errors.
    pub fn from_documents(docs: &[Document]) -> Result<Self, LoadError> {
        let mut set = Self::new();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, (Location, Json)> = HashMap::new();
        for doc in docs.iter().filter(|doc| is_template(doc)) {
            let key = format!("ConstraintTemplate {}", doc.name());
            if let Some((first, value)) = seen.get(&key) {
                if *value != doc.value {
                    errors.push(LoadError::Duplicate {
                        location: doc.location.clone(),
                        what: key,
                        first: first.clone(),
                    });
                }
                continue;
            }
            seen.insert(key, (doc.location.clone(), doc.value.clone()));
            match Template::from_document(doc) {
                Ok(template) => {
                    set.insert_template(Arc::new(template));
                }
                Err(err) => errors.push(err),
            }
        }
        for doc in docs.iter().filter(|doc| is_constraint(doc)) {
            let key = format!("{} {}", doc.kind(), doc.name());
            if let Some((first, value)) = seen.get(&key) {
                if *value != doc.value {
                    errors.push(LoadError::Duplicate {
                        location: doc.location.clone(),
                        what: key,
                        first: first.clone(),
                    });
                }
                continue;
            }
            seen.insert(key, (doc.location.clone(), doc.value.clone()));
            match Constraint::from_document(doc).and_then(|c| set.add_constraint(c)) {
                Ok(()) => {}
                Err(err) => errors.push(err),
            }
        }
        LoadError::from_many(errors)?;
        Ok(set)
    }

    /// Adds (or replaces, by kind) a compiled template; returns the template it replaced.
    pub fn insert_template(&mut self, template: Arc<Template>) -> Option<Arc<Template>> {
        self.templates.insert(template.kind.clone(), template)
    }

    /// Removes the template of a kind and every constraint of that kind.
    pub fn remove_template(&mut self, kind: &str) -> Option<Arc<Template>> {
        let removed = self.templates.remove(kind);
        self.constraints.retain(|id, _| id.kind != kind);
        self.reindex();
        removed
    }

    /// Adds (or replaces, by kind and name) a constraint; its template must be loaded.
    pub fn add_constraint(&mut self, constraint: Constraint) -> Result<(), LoadError> {
        self.insert_constraint(Arc::new(constraint))
    }

    /// [`PolicySet::add_constraint`] for a shared constraint.
    pub fn insert_constraint(&mut self, constraint: Arc<Constraint>) -> Result<(), LoadError> {
        if !self.templates.contains_key(&constraint.id.kind) {
            return Err(LoadError::UnknownKind {
                location: constraint.location.clone(),
                kind: constraint.id.kind.clone(),
                name: constraint.id.name.clone(),
            });
        }
        self.constraints.insert(constraint.id.clone(), constraint);
        self.reindex();
        Ok(())
    }

    /// Removes a constraint.
    pub fn remove_constraint(&mut self, id: &ConstraintRef) -> Option<Arc<Constraint>> {
        let removed = self.constraints.remove(id);
        self.reindex();
        removed
    }

    /// Chooses the evaluator ([`EvalMode::Vm`] by default; the interpreter is kept for
    /// comparison and benchmarks).
    pub fn set_eval_mode(&mut self, mode: EvalMode) {
        self.eval_mode = mode;
    }

    /// Turns the decision cache on (the default) or off. With it on, a constraint whose template
    /// reads the same part of the request as an earlier review (and calls no clock, network or
    /// random builtin) gets that review's decision without evaluating; see
    /// [`crate::decision_cache`]. Off, every review evaluates (benchmarks compare both).
    pub fn set_decision_cache(&mut self, on: bool) {
        self.decision_cache = on;
    }

    /// [`PolicySet::set_decision_cache`] by value.
    pub fn with_decision_cache(mut self, on: bool) -> Self {
        self.decision_cache = on;
        self
    }

    /// Hits and misses of every template's decision cache, summed.
    pub fn cache_stats(&self) -> CacheStats {
        let mut total = CacheStats::default();
        for template in self.templates.values() {
            total += template.cache_stats();
        }
        total
    }

    /// [`PolicySet::set_eval_mode`] by value.
    pub fn with_eval_mode(mut self, mode: EvalMode) -> Self {
        self.eval_mode = mode;
        self
    }

    /// The evaluator in use.
    pub fn eval_mode(&self) -> EvalMode {
        self.eval_mode
    }

    /// The template defining a kind.
    pub fn template(&self, kind: &str) -> Option<&Arc<Template>> {
        self.templates.get(kind)
    }

    /// Every template, by kind.
    pub fn templates(&self) -> impl Iterator<Item = &Arc<Template>> {
        self.templates.values()
    }

    /// A constraint.
    pub fn constraint(&self, id: &ConstraintRef) -> Option<&Arc<Constraint>> {
        self.constraints.get(id)
    }

    /// Every constraint, by kind then name.
    pub fn constraints(&self) -> impl Iterator<Item = &Arc<Constraint>> {
        self.constraints.values()
    }

    fn reindex(&mut self) {
        self.by_kind.clear();
        self.any_kind.clear();
        for constraint in self.constraints.values() {
            let kinds = &constraint.matcher.kinds;
            let wildcard = kinds.is_empty()
                || kinds
                    .iter()
                    .any(|k| k.kinds.is_empty() || k.kinds.iter().any(|k| k == "*"));
            if wildcard {
                self.any_kind.push(constraint.clone());
                continue;
            }
            let names: BTreeSet<&String> = kinds.iter().flat_map(|k| k.kinds.iter()).collect();
            for name in names {
                self.by_kind
                    .entry(name.clone())
                    .or_default()
                    .push(constraint.clone());
            }
        }
    }

    /// Constraints whose `kinds` may match one of the request's objects.
    fn candidates(&self, request: &AdmissionRequest) -> Vec<&Arc<Constraint>> {
        let mut out: BTreeMap<&ConstraintRef, &Arc<Constraint>> = BTreeMap::new();
        for object in request.objects() {
            let listed = self.by_kind.get(&object.kind).into_iter().flatten();
            for constraint in listed.chain(self.any_kind.iter()) {
                if constraint
                    .matcher
                    .may_match_kind(&object.group, &object.kind)
                {
                    out.insert(&constraint.id, constraint);
                }
            }
        }
        out.into_values().collect()
    }

    /// Reviews a request at the webhook's enforcement point with the default deadline.
    pub fn review(
        &self,
        request: &AdmissionRequest,
        inventory: &Inventory,
    ) -> Result<Vec<Violation>, ReviewError> {
        self.review_with(request, inventory, &ReviewOptions::default())
    }

    /// Reviews a request: every constraint enforced at `options.point` whose match selects the
    /// request is evaluated (only templates with such constraints run). Violations are sorted by
    /// constraint, then message. A template's run-time error becomes a violation carrying the
    /// error, as in Gatekeeper; running past the deadline is an error.
    pub fn review_with(
        &self,
        request: &AdmissionRequest,
        inventory: &Inventory,
        options: &ReviewOptions,
    ) -> Result<Vec<Violation>, ReviewError> {
        let started = Instant::now();
        let candidates = self.candidates(request);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        if request.objects().is_empty() {
            return Err(ReviewError::Malformed(
                "neither object nor oldObject is set".into(),
            ));
        }
        let namespace = inventory.namespace(request.namespace());
        let mut violations = Vec::new();
        for constraint in candidates {
            let actions = constraint.enforcement.actions_at(options.point);
            if actions.is_empty() {
                continue;
            }
            let mut matched = false;
            for object in request.objects() {
                let hit = constraint
                    .matcher
                    .matches_object(object, request.namespace(), namespace)
                    .map_err(|message| ReviewError::Match {
                        constraint: constraint.id.to_string(),
                        message,
                    })?;
                if hit {
                    matched = true;
                    break;
                }
            }
            if !matched {
                continue;
            }
            let Some(template) = self.templates.get(&constraint.id.kind) else {
                continue;
            };
            let elapsed = started.elapsed();
            let remaining = options.deadline.saturating_sub(elapsed);
            if remaining.is_zero() {
                return Err(ReviewError::Timeout {
                    template: template.name.clone(),
                    limit: options.deadline,
                    elapsed,
                });
            }
            match template.decide(
                request.value(),
                &constraint.parameters_value,
                inventory,
                remaining,
                self.eval_mode,
                self.decision_cache,
            ) {
                Ok(results) => collect(&results, constraint, &actions, &mut violations),
                Err(Failure::Timeout) => {
                    return Err(ReviewError::Timeout {
                        template: template.name.clone(),
                        limit: options.deadline,
                        elapsed: started.elapsed(),
                    });
                }
                Err(Failure::Error(message)) => violations.push(Violation {
                    constraint: constraint.id.clone(),
                    actions: actions.clone(),
                    message,
                    details: Json::Object(Default::default()),
                }),
            }
        }
        violations.sort_by(|a, b| (&a.constraint, &a.message).cmp(&(&b.constraint, &b.message)));
        Ok(violations)
    }

    /// Audits existing objects against every constraint enforced at `audit.gatekeeper.sh`, as
    /// Gatekeeper's audit does: each object is reviewed as gator builds a review from a plain
    /// object; Namespaces for `namespaceSelector` come from the inventory.
    pub fn audit<'a>(
        &self,
        objects: impl IntoIterator<Item = &'a Json>,
        inventory: &Inventory,
        options: &ReviewOptions,
    ) -> AuditReport {
        let mut report = AuditReport::default();
        for constraint in self.constraints.values() {
            if !constraint.enforcement.actions_at(options.point).is_empty() {
                report
                    .by_constraint
                    .insert(constraint.id.clone(), Vec::new());
            }
        }
        for object in objects {
            report.objects += 1;
            let object_ref = ObjectRef::of(object);
            let outcome = AdmissionRequest::from_object(object)
                .and_then(|request| self.review_with(&request, inventory, options));
            match outcome {
                Ok(violations) => {
                    for violation in violations {
                        report
                            .by_constraint
                            .entry(violation.constraint.clone())
                            .or_default()
                            .push((object_ref.clone(), violation));
                    }
                }
                Err(err) => report.errors.push((object_ref, err)),
            }
        }
        report
    }
}

/// Turns the value of `violation` into violations (entries without `msg` are dropped, as
/// Gatekeeper's hook drops them).
fn collect(
    results: &Value,
    constraint: &Constraint,
    actions: &[EnforcementAction],
    out: &mut Vec<Violation>,
) {
    let entries: Vec<&Value> = match results {
        Value::Set(set) => set.iter().collect(),
        Value::Array(array) => array.iter().collect(),
        Value::Object(object) => object.values().collect(),
        _ => Vec::new(),
    };
    for entry in entries {
        let message = match &entry["msg"] {
            Value::Undefined => continue,
            Value::String(text) => text.to_string(),
            other => other.to_json_str().unwrap_or_default(),
        };
        let details = match &entry["details"] {
            Value::Undefined => Json::Object(Default::default()),
            other => serde_json::to_value(other).unwrap_or(Json::Null),
        };
        out.push(Violation {
            constraint: constraint.id.clone(),
            actions: actions.to_vec(),
            message,
            details,
        });
    }
}
