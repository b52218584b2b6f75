//! The policy set: compiled templates and their constraints, indexed by the kinds the constraints
//! match, reviewed against AdmissionRequests (the webhook, the CLI) or existing objects (audit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::Value;
use serde_json::Value as Json;

use crate::constraint::{Constraint, ConstraintRef, is_constraint};
use crate::decision_cache::{CacheCounters, CacheStats};
use crate::document::{self, Document};
use crate::enforcement::{EnforcementAction, EnforcementPoint};
use crate::error::{LoadError, Location, ReviewError};
use crate::inventory::Inventory;
use crate::parallel;
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

/// A policy set built from what was valid, and the documents left out
/// ([`PolicySet::load_documents`]).
#[derive(Debug, Default)]
pub struct Loaded {
    /// The templates and constraints that loaded.
    pub set: PolicySet,
    /// Each document left out, and why.
    pub rejected: Vec<Rejected>,
}

/// A template or constraint document that was not loaded, so is not enforced.
#[derive(Debug)]
pub struct Rejected {
    /// The document.
    pub document: Document,
    /// Why.
    pub error: LoadError,
}

impl Rejected {
    /// Whether the document is a ConstraintTemplate (else a constraint).
    pub fn is_template(&self) -> bool {
        is_template(&self.document)
    }

    /// `ConstraintTemplate name` or `Kind name`, as a person names it.
    pub fn what(&self) -> String {
        if self.is_template() {
            format!("ConstraintTemplate {}", self.document.name())
        } else {
            format!("{} {}", self.document.kind(), self.document.name())
        }
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
    cache_counters: Arc<CacheCounters>,
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
            cache_counters: Arc::default(),
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
    /// accepted; differing ones are errors. Any error fails the whole set (the CLI's behaviour);
    /// [`PolicySet::load_documents`] keeps what is valid.
    pub fn from_documents(docs: &[Document]) -> Result<Self, LoadError> {
        let loaded = Self::load_documents(docs);
        LoadError::from_many(loaded.rejected.into_iter().map(|r| r.error).collect())?;
        Ok(loaded.set)
    }

    /// Builds a set from what is valid among the documents, and says why the others were left
    /// out: a template that does not compile, a constraint with an invalid field, parameters
    /// that do not follow the template's schema, a template that failed to load, an unknown kind
    /// or a differing duplicate. What is left out is not enforced, as Gatekeeper does not enforce
    /// a constraint the API server refused; the webhook reports each one.
    pub fn load_documents(docs: &[Document]) -> Loaded {
        let mut set = Self::new();
        let mut rejected = Vec::new();
        let mut seen: HashMap<String, (Location, Json)> = HashMap::new();
        let mut failed_templates: HashMap<String, String> = HashMap::new();
        let mut duplicate = |doc: &Document, key: String, rejected: &mut Vec<Rejected>| {
            if let Some((first, value)) = seen.get(&key) {
                if *value != doc.value {
                    rejected.push(Rejected {
                        document: doc.clone(),
                        error: LoadError::Duplicate {
                            location: doc.location.clone(),
                            what: key,
                            first: first.clone(),
                        },
                    });
                }
                return true;
            }
            seen.insert(key, (doc.location.clone(), doc.value.clone()));
            false
        };
        for doc in docs.iter().filter(|doc| is_template(doc)) {
            if duplicate(
                doc,
                format!("ConstraintTemplate {}", doc.name()),
                &mut rejected,
            ) {
                continue;
            }
            match Template::from_document(doc) {
                Ok(template) => {
                    set.insert_template(Arc::new(template));
                }
                Err(err) => {
                    if let Some(kind) = doc
                        .value
                        .pointer("/spec/crd/spec/names/kind")
                        .and_then(Json::as_str)
                    {
                        failed_templates.insert(kind.to_string(), doc.name().to_string());
                    }
                    rejected.push(Rejected {
                        document: doc.clone(),
                        error: err,
                    });
                }
            }
        }
        for doc in docs.iter().filter(|doc| is_constraint(doc)) {
            if duplicate(doc, format!("{} {}", doc.kind(), doc.name()), &mut rejected) {
                continue;
            }
            let outcome = Constraint::from_document(doc).and_then(|constraint| {
                match failed_templates.get(&constraint.id.kind) {
                    Some(template) if set.template(&constraint.id.kind).is_none() => {
                        Err(LoadError::TemplateNotLoaded {
                            location: constraint.location.clone(),
                            what: constraint.what(),
                            template: template.clone(),
                        })
                    }
                    _ => set.add_constraint(constraint),
                }
            });
            if let Err(err) = outcome {
                rejected.push(Rejected {
                    document: doc.clone(),
                    error: err,
                });
            }
        }
        Loaded { set, rejected }
    }

    /// Adds (or replaces, by kind) a compiled template; returns the template it replaced.
    /// Constraints are checked against their template when they are added, so add (or replace)
    /// a template before its constraints.
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

    /// [`PolicySet::add_constraint`] for a shared constraint. The parameters are checked against
    /// the template's schema first (see [`crate::schema`]): a constraint the API server would
    /// refuse is refused here, so no front end can enforce it; unknown fields are pruned as the
    /// API server prunes them.
    pub fn insert_constraint(&mut self, constraint: Arc<Constraint>) -> Result<(), LoadError> {
        let Some(template) = self.templates.get(&constraint.id.kind) else {
            return Err(LoadError::UnknownKind {
                location: constraint.location.clone(),
                kind: constraint.id.kind.clone(),
                name: constraint.id.name.clone(),
            });
        };
        let checked = template
            .check_parameters(&constraint.parameters)
            .map_err(|problems| LoadError::Parameters {
                location: constraint.location.clone(),
                what: constraint.what(),
                template: template.name.clone(),
                problems,
            })?;
        let constraint = if checked.parameters == constraint.parameters
            && checked.warnings == constraint.warnings
        {
            constraint
        } else {
            Arc::new(constraint.with_parameters(checked.parameters, checked.warnings))
        };
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

    /// Hits and misses of the decision caches since the counters were made (a set and its
    /// clones share them; see [`PolicySet::set_cache_counters`]).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache_counters.stats()
    }

    /// Counts this set's cache hits and misses in `counters`: a front end that replaces its
    /// policy set hands the same counters to the new one, so the counts never go down.
    pub fn set_cache_counters(&mut self, counters: Arc<CacheCounters>) {
        self.cache_counters = counters;
    }

    /// The counters this set counts cache hits and misses in.
    pub fn cache_counters(&self) -> &Arc<CacheCounters> {
        &self.cache_counters
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
                self.decision_cache.then_some(&*self.cache_counters),
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

    /// Reviews many requests on every core ([`crate::parallel`]); the results are in the order
    /// of `requests`.
    pub fn review_all(
        &self,
        requests: &[AdmissionRequest],
        inventory: &Inventory,
        options: &ReviewOptions,
    ) -> Vec<Result<Vec<Violation>, ReviewError>> {
        parallel::map_in_order(requests, None, |request| {
            self.review_with(request, inventory, options)
        })
    }

    /// Audits existing objects against every constraint enforced at `audit.gatekeeper.sh`, as
    /// Gatekeeper's audit does: each object is reviewed as gator builds a review from a plain
    /// object; Namespaces for `namespaceSelector` come from the inventory. Objects are reviewed
    /// on every core; the report lists them in the order given.
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
        let objects: Vec<&Json> = objects.into_iter().collect();
        let outcomes = parallel::map_in_order(&objects, None, |object| {
            AdmissionRequest::from_object(object)
                .and_then(|request| self.review_with(&request, inventory, options))
        });
        for (object, outcome) in objects.into_iter().zip(outcomes) {
            report.objects += 1;
            let object_ref = ObjectRef::of(object);
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
