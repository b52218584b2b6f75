//! Constraints (`constraints.gatekeeper.sh`, any kind a template defines): match criteria,
//! parameters (`input.parameters`) and enforcement, parsed once into validated types.

use regorus::Value;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::document::Document;
use crate::enforcement::{self, Enforcement, RawScopedAction};
use crate::error::{LoadError, Location};
use crate::matching::{Match, RawMatch};

/// The API group of constraints.
pub const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";

/// A constraint's identity: kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConstraintRef {
    /// The kind (the template's `spec.crd.spec.names.kind`).
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl std::fmt::Display for ConstraintRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// A validated constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Kind and name.
    pub id: ConstraintRef,
    /// `spec.match`.
    pub matcher: Match,
    /// `spec.parameters` (`{}` when absent, as Gatekeeper defaults it); once the constraint is in
    /// a [`crate::PolicySet`], as the API server stores them: checked against the template's
    /// schema, unknown fields pruned.
    pub parameters: Json,
    /// What the API server would warn about when the constraint is applied (pruned fields).
    pub warnings: Vec<String>,
    /// `spec.enforcementAction` / `spec.scopedEnforcementActions`.
    pub enforcement: Enforcement,
    /// Where it was defined.
    pub location: Location,
    /// `spec.parameters` as a Rego value.
    pub(crate) parameters_value: Value,
    /// The whole document as loaded (cluster mode compares it to skip unchanged updates).
    pub source: Json,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConstraint {
    api_version: String,
    kind: String,
    metadata: RawMetadata,
    #[serde(default)]
    spec: RawSpec,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    #[serde(default, rename = "match")]
    matcher: Option<RawMatch>,
    #[serde(default)]
    parameters: Option<Json>,
    #[serde(default)]
    enforcement_action: Option<String>,
    #[serde(default)]
    scoped_enforcement_actions: Vec<RawScopedAction>,
}

/// Whether a document is a constraint (by its API group).
pub fn is_constraint(doc: &Document) -> bool {
    doc.api_version()
        .split_once('/')
        .is_some_and(|(group, _)| group == CONSTRAINTS_GROUP)
}

impl Constraint {
    /// The constraint with other parameters (the value the evaluation reads is kept in step).
    pub(crate) fn with_parameters(&self, parameters: Json, warnings: Vec<String>) -> Self {
        Self {
            parameters_value: Value::from(parameters.clone()),
            parameters,
            warnings,
            ..self.clone()
        }
    }

    /// `Kind name`, as errors name a constraint.
    pub fn what(&self) -> String {
        format!("{} {}", self.id.kind, self.id.name)
    }

    /// Parses a constraint document.
    pub fn from_document(doc: &Document) -> Result<Self, LoadError> {
        let what = format!("{} {}", doc.kind(), doc.name());
        let field_error = |field: String, message: String| LoadError::Field {
            location: doc.location.clone(),
            what: what.clone(),
            field,
            message,
        };
        let raw: RawConstraint = serde_path_to_error::deserialize(&doc.value)
            .map_err(|err| field_error(err.path().to_string(), err.inner().to_string()))?;
        match raw.api_version.split_once('/') {
            Some((CONSTRAINTS_GROUP, "v1beta1" | "v1" | "v1alpha1")) => {}
            _ => {
                return Err(field_error(
                    "apiVersion".into(),
                    format!(
                        "{:?} is not a constraint version (expected {CONSTRAINTS_GROUP}/v1beta1)",
                        raw.api_version
                    ),
                ));
            }
        }
        if raw.kind.is_empty() {
            return Err(field_error("kind".into(), "must not be empty".into()));
        }
        if raw.metadata.name.is_empty() {
            return Err(field_error(
                "metadata.name".into(),
                "must not be empty".into(),
            ));
        }
        let matcher = match raw.spec.matcher {
            Some(raw) => Match::try_from(raw)
                .map_err(|(field, message)| field_error(format!("spec.match.{field}"), message))?,
            None => Match::default(),
        };
        let enforcement = enforcement::parse(
            raw.spec.enforcement_action.as_deref(),
            raw.spec.scoped_enforcement_actions,
        )
        .map_err(|(field, message)| field_error(field, message))?;
        let parameters = match raw.spec.parameters {
            None | Some(Json::Null) => Json::Object(Default::default()),
            Some(other) => other,
        };
        let parameters_value = Value::from(parameters.clone());
        Ok(Constraint {
            id: ConstraintRef {
                kind: raw.kind,
                name: raw.metadata.name,
            },
            matcher,
            parameters,
            warnings: Vec::new(),
            enforcement,
            location: doc.location.clone(),
            parameters_value,
            source: doc.value.clone(),
        })
    }
}
