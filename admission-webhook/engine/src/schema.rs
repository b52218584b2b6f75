//! Constraint parameters checked against their template's structural schema
//! (`spec.crd.spec.validation.openAPIV3Schema`), the way the API server checks a constraint
//! against the CRD Gatekeeper generates from the template, so that the CLI's verdict and the
//! webhook's agree: a constraint whose parameters do not follow the schema is not loaded by
//! either (the webhook reports it and does not enforce it).
//!
//! Validation is the maintained `jsonschema` crate (JSON Schema draft 4, the dialect OpenAPI
//! v3.0 schemas are written in: `exclusiveMinimum` is a boolean there too), after translating
//! the parts of a Kubernetes structural schema that are not JSON Schema:
//!
//! - `nullable: true` admits `null` besides what the node describes;
//! - `x-kubernetes-int-or-string: true` admits an integer or a string;
//! - `x-kubernetes-preserve-unknown-fields: true` keeps fields the schema does not list;
//! - `x-kubernetes-list-type: set` requires unique items, `map` unique
//!   `x-kubernetes-list-map-keys` (checked beside the validator, as the API server does);
//! - `x-kubernetes-embedded-resource: true` keeps `apiVersion`, `kind` and `metadata`.
//!
//! Unknown fields are pruned as the API server prunes them (the constraint keeps the parameters
//! the template declared, and each pruned field is reported as a warning, as `kubectl apply`
//! warns), except where unknown fields are preserved: everywhere for `legacySchema: true` (the
//! default of `templates.gatekeeper.sh/v1beta1` templates, as in Gatekeeper), under a node with
//! `x-kubernetes-preserve-unknown-fields`, and for templates without a schema. Patterns use the
//! `regex` crate (RE2 syntax, as the API server's Go regexp). Formats are not checked, and
//! neither are `x-kubernetes-validations` rules: they are CEL, which this engine does not run.

use serde_json::{Map, Value as Json};

/// A compiled parameter schema.
#[derive(Debug)]
pub(crate) struct ParameterSchema {
    validator: jsonschema::Validator,
    /// The schema as written (pruning and the list-type checks walk it).
    structural: Json,
    /// `legacySchema`: unknown fields are kept everywhere.
    preserve_unknown: bool,
}

/// Parameters that follow their schema: as the API server would store them, and its warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The parameters with unknown fields pruned.
    pub parameters: Json,
    /// One line per pruned field (`spec.parameters.x: unknown field, pruned`).
    pub warnings: Vec<String>,
}

impl ParameterSchema {
    /// Compiles a template's `spec.crd.spec.validation` (None when it declares no schema).
    /// `legacy_default` is `legacySchema` when the template does not set it (true for
    /// `v1beta1`/`v1alpha1` templates, false for `v1`). The error says why the schema is not
    /// usable.
    pub fn compile(validation: &Json, legacy_default: bool) -> Result<Option<Self>, String> {
        let Some(structural) = validation.get("openAPIV3Schema") else {
            return Ok(None);
        };
        if !structural.is_object() {
            return Err("openAPIV3Schema: must be an object".into());
        }
        let preserve_unknown = match validation.get("legacySchema") {
            None | Some(Json::Null) => legacy_default,
            Some(Json::Bool(flag)) => *flag,
            Some(other) => return Err(format!("legacySchema: must be a boolean, got {other}")),
        };
        let translated = draft4(structural);
        let validator = jsonschema::draft4::options()
            .should_validate_formats(false)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&translated)
            .map_err(|err| format!("openAPIV3Schema: {err}"))?;
        Ok(Some(Self {
            validator,
            structural: structural.clone(),
            preserve_unknown,
        }))
    }

    /// Checks parameters (`spec.parameters`, `{}` when absent); every problem is returned, each
    /// as `spec.parameters.<path>: <what>`.
    pub fn check(&self, parameters: &Json) -> Result<Checked, Vec<String>> {
        let mut problems: Vec<String> = self
            .validator
            .iter_errors(parameters)
            .map(|err| {
                format!(
                    "{}: {err}",
                    field_path(parameters, err.instance_path().as_str())
                )
            })
            .collect();
        list_types(
            &self.structural,
            parameters,
            "spec.parameters",
            &mut problems,
        );
        if !problems.is_empty() {
            problems.sort();
            problems.dedup();
            return Err(problems);
        }
        let mut pruned = parameters.clone();
        let mut warnings = Vec::new();
        if !self.preserve_unknown {
            prune(
                &self.structural,
                &mut pruned,
                "spec.parameters",
                &mut warnings,
            );
        }
        Ok(Checked {
            parameters: pruned,
            warnings,
        })
    }
}

// === translation to JSON Schema draft 4 ===

/// The structural schema as draft 4: Kubernetes' extensions turned into JSON Schema.
fn draft4(schema: &Json) -> Json {
    let Some(node) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in node {
        let translated = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => match value.as_object() {
                Some(children) => Json::Object(
                    children
                        .iter()
                        .map(|(name, child)| (name.clone(), draft4(child)))
                        .collect(),
                ),
                None => value.clone(),
            },
            "items" => match value {
                Json::Array(items) => Json::Array(items.iter().map(draft4).collect()),
                other => draft4(other),
            },
            "additionalProperties" | "additionalItems" | "not" => match value {
                Json::Object(_) => draft4(value),
                other => other.clone(),
            },
            "allOf" | "anyOf" | "oneOf" => match value.as_array() {
                Some(items) => Json::Array(items.iter().map(draft4).collect()),
                None => value.clone(),
            },
            // OpenAPI and Kubernetes keywords have no JSON Schema meaning; the ones that
            // constrain values are translated below or checked beside the validator.
            "nullable" | "example" | "externalDocs" | "discriminator" | "readOnly"
            | "writeOnly" | "xml" | "deprecated" => continue,
            extension if extension.starts_with("x-kubernetes-") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    let flag = |name: &str| node.get(name).and_then(Json::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            serde_json::json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    let mut translated = Json::Object(out);
    if flag("nullable") {
        translated = serde_json::json!({"anyOf": [{"type": "null"}, translated]});
    }
    translated
}

// === Kubernetes list types ===

/// `x-kubernetes-list-type: set|map` uniqueness, walking schema and value together.
fn list_types(schema: &Json, value: &Json, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    match value {
        Json::Array(items) => {
            match node.get("x-kubernetes-list-type").and_then(Json::as_str) {
                Some("set") => {
                    for (index, item) in items.iter().enumerate() {
                        if items.iter().take(index).any(|earlier| earlier == item) {
                            problems.push(format!(
                                "{path}[{index}]: duplicate item {item} in a list of type set"
                            ));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = node
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Json::as_array)
                        .map(|keys| keys.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default();
                    let key_of = |item: &Json| -> Vec<Json> {
                        keys.iter()
                            .map(|k| item.get(*k).cloned().unwrap_or(Json::Null))
                            .collect()
                    };
                    for (index, item) in items.iter().enumerate() {
                        let key = key_of(item);
                        if items
                            .iter()
                            .take(index)
                            .any(|earlier| key_of(earlier) == key)
                        {
                            problems.push(format!(
                                "{path}[{index}]: duplicate entry for key {} in a list of type map",
                                Json::from(key)
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(item_schema) = node.get("items") {
                for (index, item) in items.iter().enumerate() {
                    list_types(item_schema, item, &format!("{path}[{index}]"), problems);
                }
            }
        }
        Json::Object(fields) => {
            let properties = node.get("properties").and_then(Json::as_object);
            for (name, field) in fields {
                let child = properties
                    .and_then(|p| p.get(name))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(child) = child {
                    list_types(child, field, &format!("{path}.{name}"), problems);
                }
            }
        }
        _ => {}
    }
}

// === pruning ===

/// Removes the fields the schema does not declare, as the API server's structural pruning does.
fn prune(schema: &Json, value: &mut Json, path: &str, warnings: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    let flag = |name: &str| node.get(name).and_then(Json::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        return;
    }
    match value {
        Json::Object(fields) => {
            let properties = node.get("properties").and_then(Json::as_object);
            let additional = node.get("additionalProperties");
            let preserve = flag("x-kubernetes-preserve-unknown-fields")
                || matches!(additional, Some(Json::Bool(true)));
            let embedded = flag("x-kubernetes-embedded-resource");
            let mut dropped = Vec::new();
            for (name, field) in fields.iter_mut() {
                let child_path = format!("{path}.{name}");
                if let Some(child) = properties.and_then(|p| p.get(name)) {
                    prune(child, field, &child_path, warnings);
                } else if let Some(child) = additional.filter(|a| a.is_object()) {
                    prune(child, field, &child_path, warnings);
                } else if !(preserve
                    || embedded && matches!(name.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                    dropped.push(name.clone());
                }
            }
            for name in dropped {
                fields.remove(&name);
                warnings.push(format!("{path}.{name}: unknown field, pruned"));
            }
        }
        Json::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{index}]"), warnings);
                }
            }
        }
        _ => {}
    }
}

/// `spec.parameters.labels[0].key` for the JSON pointer `/labels/0/key` into `parameters`.
fn field_path(parameters: &Json, pointer: &str) -> String {
    let mut out = String::from("spec.parameters");
    let mut at = Some(parameters);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Json::Array(items)) => {
                out.push_str(&format!("[{segment}]"));
                at = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                out.push('.');
                out.push_str(&segment);
                at = other.and_then(|v| v.get(&segment));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
