//! A constraint's `spec.match`, with Gatekeeper's semantics (pkg/mutation/match in Gatekeeper):
//! every criterion that is set must hold; an unset criterion matches everything.
//!
//! - `kinds`: any entry whose `kinds` (or `*`, or empty) holds the object's kind and whose
//!   `apiGroups` (or `*`, or empty) holds its group.
//! - `scope`: `Cluster` matches cluster-scoped objects and Namespaces, `Namespaced` the others, `*`
//!   (or anything else) all.
//! - `namespaces` / `excludedNamespaces`: the object's namespace (a Namespace's own name) against
//!   names with a prefix (`kube-*`), suffix (`*-system`) or infix (`*x*`) glob; cluster-scoped
//!   objects are never excluded or filtered out by these.
//! - `labelSelector`: the object's labels; `namespaceSelector`: the labels of the object's
//!   Namespace (a Namespace's own labels; cluster-scoped objects always match; a namespaced object
//!   whose Namespace is unknown is an error, as in Gatekeeper).
//! - `name`: the object's name, with the same globs.
//! - An UPDATE matches when either the new or the old object matches; a DELETE is matched on the
//!   old object.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::review::ObjectFacts;

/// A name with an optional `*` at the start and/or end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard(pub String);

impl Wildcard {
    /// Whether `candidate` matches: `pre*` by prefix, `*suf` by suffix, `*mid*` by substring,
    /// anything else exactly.
    pub fn matches(&self, candidate: &str) -> bool {
        let w = self.0.as_str();
        match (w.strip_prefix('*'), w.strip_suffix('*')) {
            (Some(_), Some(_)) if w.len() >= 2 => {
                candidate.contains(w.get(1..w.len() - 1).unwrap_or(""))
            }
            (Some(suffix), None) => candidate.ends_with(suffix),
            (None, Some(prefix)) => candidate.starts_with(prefix),
            _ => w == candidate,
        }
    }
}

/// `apiGroups` x `kinds`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindSelector {
    /// API groups (`""` is the core group, `*` any).
    pub api_groups: Vec<String>,
    /// Kinds (`*` any).
    pub kinds: Vec<String>,
}

impl KindSelector {
    fn matches(&self, group: &str, kind: &str) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.iter().any(|k| k == "*" || k == kind);
        let group_ok =
            self.api_groups.is_empty() || self.api_groups.iter().any(|g| g == "*" || g == group);
        kind_ok && group_ok
    }
}

/// `scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// `*` or unset: every object.
    #[default]
    All,
    /// `Cluster`: cluster-scoped objects and Namespaces.
    Cluster,
    /// `Namespaced`: objects in a namespace.
    Namespaced,
}

/// `source`: which objects a constraint applies to when Gatekeeper expands generators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// `All` or unset.
    #[default]
    All,
    /// `Original`: objects as submitted (every admission request).
    Original,
    /// `Generated`: only objects expanded from generators (never an admission request here).
    Generated,
}

/// A label selector requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Values (In/NotIn only).
    pub values: Vec<String>,
}

/// A Kubernetes label selector (`matchLabels` AND `matchExpressions`; empty matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Exact labels.
    pub match_labels: BTreeMap<String, String>,
    /// Expressions.
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// Whether the labels satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator {
                    Operator::In => value.is_some_and(|v| req.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// A constraint's `spec.match`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// `kinds`.
    pub kinds: Vec<KindSelector>,
    /// `scope`.
    pub scope: Scope,
    /// `namespaces`.
    pub namespaces: Vec<Wildcard>,
    /// `excludedNamespaces`.
    pub excluded_namespaces: Vec<Wildcard>,
    /// `labelSelector`.
    pub label_selector: Option<LabelSelector>,
    /// `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// `name`.
    pub name: Option<Wildcard>,
    /// `source`.
    pub source: Source,
}

/// The facts about one object's Namespace that matching needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl Match {
    /// Whether the kind index may skip this constraint for (group, kind): false only when `kinds`
    /// rules the pair out.
    pub fn may_match_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k.matches(group, kind))
    }

    /// Matches one object. `request_namespace` is the AdmissionRequest's namespace (used when the
    /// object does not carry one); `namespace` is that Namespace's facts, when known.
    pub fn matches_object(
        &self,
        object: &ObjectFacts,
        request_namespace: &str,
        namespace: Option<&NamespaceFacts>,
    ) -> Result<bool, String> {
        if self.source == Source::Generated {
            return Ok(false);
        }
        if !self.may_match_kind(&object.group, &object.kind) {
            return Ok(false);
        }
        let is_namespace = object.is_namespace();
        let ns_name = if !object.namespace.is_empty() {
            object.namespace.as_str()
        } else {
            request_namespace
        };
        let has_namespace = !ns_name.is_empty();
        let scope_ok = match self.scope {
            Scope::All => true,
            Scope::Cluster => is_namespace || !has_namespace,
            Scope::Namespaced => !is_namespace && has_namespace,
        };
        if !scope_ok {
            return Ok(false);
        }
        // The namespace the namespaces/excludedNamespaces lists look at (None: cluster-scoped).
        let effective_ns = if is_namespace {
            Some(object.name.as_str())
        } else if has_namespace {
            Some(ns_name)
        } else {
            None
        };
        if let Some(ns) = effective_ns {
            if !self.namespaces.is_empty() && !self.namespaces.iter().any(|w| w.matches(ns)) {
                return Ok(false);
            }
            if self.excluded_namespaces.iter().any(|w| w.matches(ns)) {
                return Ok(false);
            }
        }
        if let Some(selector) = &self.label_selector
            && !selector.matches(&object.labels)
        {
            return Ok(false);
        }
        if let Some(selector) = &self.namespace_selector {
            let ok = if is_namespace {
                selector.matches(&object.labels)
            } else if !has_namespace {
                true
            } else {
                match namespace {
                    Some(facts) => selector.matches(&facts.labels),
                    None => {
                        return Err(format!(
                            "namespaceSelector for an object in namespace {ns_name:?}, but that \
                             Namespace is not known (add it to the inventory)"
                        ));
                    }
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        if let Some(name) = &self.name
            && !name.0.is_empty()
            && !name.matches(&object.name)
        {
            return Ok(false);
        }
        Ok(true)
    }
}

// === impl raw (serde) ===

/// `spec.match` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawMatch {
    #[serde(default)]
    kinds: Vec<RawKinds>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    excluded_namespaces: Vec<String>,
    #[serde(default)]
    label_selector: Option<RawLabelSelector>,
    #[serde(default)]
    namespace_selector: Option<RawLabelSelector>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKinds {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLabelSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<RawRequirement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRequirement {
    key: String,
    operator: Operator,
    #[serde(default)]
    values: Vec<String>,
}

/// A validation failure: field path (relative to `spec.match`) and message.
pub(crate) type FieldError = (String, String);

impl TryFrom<RawMatch> for Match {
    type Error = FieldError;

    fn try_from(raw: RawMatch) -> Result<Self, FieldError> {
        let scope = match raw.scope.as_deref() {
            None | Some("*") | Some("") => Scope::All,
            Some("Cluster") => Scope::Cluster,
            Some("Namespaced") => Scope::Namespaced,
            Some(other) => {
                return Err((
                    "scope".into(),
                    format!(
                        "unsupported value {other:?} (expected \"*\", \"Cluster\" or \"Namespaced\")"
                    ),
                ));
            }
        };
        let source = match raw.source.as_deref() {
            None | Some("") | Some("All") => Source::All,
            Some("Original") => Source::Original,
            Some("Generated") => Source::Generated,
            Some(other) => {
                return Err((
                    "source".into(),
                    format!("unsupported value {other:?} (expected All, Original or Generated)"),
                ));
            }
        };
        for (index, kinds) in raw.kinds.iter().enumerate() {
            if kinds.api_groups.iter().any(|g| g == "*") && kinds.api_groups.len() > 1 {
                return Err((
                    format!("kinds[{index}].apiGroups"),
                    "`*` must be the only entry".into(),
                ));
            }
        }
        Ok(Match {
            kinds: raw
                .kinds
                .into_iter()
                .map(|k| KindSelector {
                    api_groups: k.api_groups,
                    kinds: k.kinds,
                })
                .collect(),
            scope,
            namespaces: raw.namespaces.into_iter().map(Wildcard).collect(),
            excluded_namespaces: raw.excluded_namespaces.into_iter().map(Wildcard).collect(),
            label_selector: raw
                .label_selector
                .map(|s| selector(s, "labelSelector"))
                .transpose()?,
            namespace_selector: raw
                .namespace_selector
                .map(|s| selector(s, "namespaceSelector"))
                .transpose()?,
            name: raw.name.map(Wildcard),
            source,
        })
    }
}

fn selector(raw: RawLabelSelector, field: &str) -> Result<LabelSelector, FieldError> {
    for (index, req) in raw.match_expressions.iter().enumerate() {
        let path = format!("{field}.matchExpressions[{index}]");
        if req.key.is_empty() {
            return Err((format!("{path}.key"), "must not be empty".into()));
        }
        match req.operator {
            Operator::In | Operator::NotIn if req.values.is_empty() => {
                return Err((
                    format!("{path}.values"),
                    format!("must be non-empty when operator is {:?}", req.operator),
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !req.values.is_empty() => {
                return Err((
                    format!("{path}.values"),
                    format!("must be empty when operator is {:?}", req.operator),
                ));
            }
            _ => {}
        }
    }
    Ok(LabelSelector {
        match_labels: raw.match_labels,
        match_expressions: raw
            .match_expressions
            .into_iter()
            .map(|r| Requirement {
                key: r.key,
                operator: r.operator,
                values: r.values,
            })
            .collect(),
    })
}
