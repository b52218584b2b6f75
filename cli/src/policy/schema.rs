//! Constraint parameters checked against the template's `openAPIV3Schema`, as the API server
//! checks them when a constraint is applied and as gator does offline.
//!
//! In a cluster, the constraint CRD Gatekeeper generates from the template rejects parameters of
//! the wrong type; the engine leaves that to the API server. Offline there is no API server, so
//! `policy verify` (for gator's `invalid: true` tests) and `policy check` validate here. The
//! subset is the structural-schema one CRDs use: `type`, `properties`, `required`, `items`,
//! `additionalProperties`, `enum`, numeric and length bounds, `pattern`, `nullable`,
//! `x-kubernetes-int-or-string` and `x-kubernetes-preserve-unknown-fields`. Unknown fields are
//! not errors (the API server prunes them); `anyOf`/`oneOf`/`allOf` are checked when present.

use serde_json::Value as Json;

/// Validates `parameters` (a constraint's `spec.parameters`) against the parameter schema of a
/// template document (`spec.crd.spec.validation.openAPIV3Schema`; none means anything goes).
/// Returns every problem, each as `spec.parameters.<path>: <what>`.
pub fn validate_parameters(template: &Json, parameters: &Json) -> Vec<String> {
    let Some(schema) = template.pointer("/spec/crd/spec/validation/openAPIV3Schema") else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    validate(schema, parameters, "spec.parameters", &mut errors);
    errors
}

fn validate(schema: &Json, value: &Json, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() && schema.get("nullable").and_then(Json::as_bool) == Some(true) {
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Json::as_bool)
        == Some(true)
    {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!(
                "{path}: must be an integer or a string, got {}",
                type_of(value)
            ));
        }
        return;
    }
    if let Some(kind) = schema.get("type").and_then(Json::as_str)
        && !has_type(value, kind)
    {
        errors.push(format!(
            "{path}: must be of type {kind}, got {}",
            type_of(value)
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Json::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{path}: must be one of {}, got {value}",
            Json::from(allowed.clone())
        ));
    }
    check_bounds(schema, value, path, errors);
    match value {
        Json::Object(map) => {
            let properties = schema.get("properties").and_then(Json::as_object);
            for field in schema
                .get("required")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(field) = field.as_str()
                    && !map.contains_key(field)
                {
                    errors.push(format!("{path}.{field}: required"));
                }
            }
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    validate(sub, child, &child_path, errors);
                } else if let Some(extra) = schema.get("additionalProperties") {
                    match extra {
                        Json::Bool(false) => {
                            errors.push(format!(
                                "{child_path}: unknown field (additionalProperties: false)"
                            ));
                        }
                        Json::Object(_) => validate(extra, child, &child_path, errors),
                        _ => {}
                    }
                }
            }
        }
        Json::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
    combinators(schema, value, path, errors);
}

fn combinators(
    schema: &serde_json::Map<String, Json>,
    value: &Json,
    path: &str,
    errors: &mut Vec<String>,
) {
    let passes = |sub: &Json| {
        let mut found = Vec::new();
        validate(sub, value, path, &mut found);
        found.is_empty()
    };
    if let Some(all) = schema.get("allOf").and_then(Json::as_array) {
        for sub in all {
            validate(sub, value, path, errors);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Json::as_array)
        && !any.iter().any(passes)
    {
        errors.push(format!("{path}: matches none of the anyOf schemas"));
    }
    if let Some(one) = schema.get("oneOf").and_then(Json::as_array) {
        let matching = one.iter().filter(|sub| passes(sub)).count();
        if matching != 1 {
            errors.push(format!(
                "{path}: must match exactly one oneOf schema, matches {matching}"
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errors.push(format!("{path}: must not match the `not` schema"));
    }
}

fn check_bounds(
    schema: &serde_json::Map<String, Json>,
    value: &Json,
    path: &str,
    errors: &mut Vec<String>,
) {
    let num = |key: &str| schema.get(key).and_then(Json::as_f64);
    let flag = |key: &str| schema.get(key).and_then(Json::as_bool) == Some(true);
    if let Some(n) = value.as_f64() {
        if let Some(min) = num("minimum")
            && (n < min || (flag("exclusiveMinimum") && n == min))
        {
            errors.push(format!(
                "{path}: must be at least {min}{}, got {value}",
                excl(flag("exclusiveMinimum"))
            ));
        }
        if let Some(max) = num("maximum")
            && (n > max || (flag("exclusiveMaximum") && n == max))
        {
            errors.push(format!(
                "{path}: must be at most {max}{}, got {value}",
                excl(flag("exclusiveMaximum"))
            ));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as f64;
        if num("minLength").is_some_and(|min| len < min) {
            errors.push(format!("{path}: is shorter than minLength"));
        }
        if num("maxLength").is_some_and(|max| len > max) {
            errors.push(format!("{path}: is longer than maxLength"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Json::as_str) {
            match regex::Regex::new(pattern) {
                Ok(re) if !re.is_match(text) => {
                    errors.push(format!(
                        "{path}: {text:?} does not match the pattern {pattern:?}"
                    ));
                }
                Ok(_) => {}
                Err(_) => errors.push(format!(
                    "{path}: the schema's pattern {pattern:?} is not a valid regular expression"
                )),
            }
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as f64;
        if num("minItems").is_some_and(|min| len < min) {
            errors.push(format!("{path}: has fewer items than minItems"));
        }
        if num("maxItems").is_some_and(|max| len > max) {
            errors.push(format!("{path}: has more items than maxItems"));
        }
    }
}

fn excl(exclusive: bool) -> &'static str {
    if exclusive { " (exclusive)" } else { "" }
}

fn has_type(value: &Json, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        _ => true,
    }
}

fn type_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "number",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate_parameters;

    fn template(schema: serde_json::Value) -> serde_json::Value {
        json!({"spec": {"crd": {"spec": {"validation": {"openAPIV3Schema": schema}}}}})
    }

    #[test]
    fn types_required_and_items() {
        let t = template(json!({"type": "object", "properties": {
            "labels": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}},
            "max": {"type": "integer", "minimum": 1},
        }}));
        assert!(validate_parameters(&t, &json!({"labels": [{"key": "app"}], "max": 3})).is_empty());
        let errors = validate_parameters(&t, &json!({"labels": [{"value": "x"}, "y"], "max": 0}));
        assert_eq!(
            errors,
            [
                "spec.parameters.labels[0].key: required",
                "spec.parameters.labels[1]: must be of type object, got string",
                "spec.parameters.max: must be at least 1, got 0",
            ]
        );
    }

    #[test]
    fn int_or_string_additional_properties_and_unknown_fields() {
        let t = template(json!({"type": "object", "properties": {
            "cpu": {"x-kubernetes-int-or-string": true},
            "selector": {"type": "object", "additionalProperties": {"type": "string"}},
        }}));
        assert!(
            validate_parameters(&t, &json!({"cpu": 2, "selector": {"a": "b"}, "unknown": 1}))
                .is_empty()
        );
        assert!(validate_parameters(&t, &json!({"cpu": "500m"})).is_empty());
        let errors = validate_parameters(&t, &json!({"cpu": [1], "selector": {"a": 1}}));
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn no_schema_accepts_anything() {
        assert!(validate_parameters(&json!({"spec": {}}), &json!({"x": [1]})).is_empty());
    }
}
