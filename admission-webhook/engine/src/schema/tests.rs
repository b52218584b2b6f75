//! The structural schema checks, each stated as the API server decides it.

use serde_json::json;

use super::*;

fn schema(openapi: Json) -> ParameterSchema {
    ParameterSchema::compile(&json!({"openAPIV3Schema": openapi}), false)
        .unwrap()
        .unwrap()
}

fn problems(openapi: Json, parameters: Json) -> Vec<String> {
    match schema(openapi).check(&parameters) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[test]
fn types_required_items_and_bounds_name_the_field() {
    let openapi = json!({"type": "object", "properties": {
        "labels": {"type": "array", "items": {"type": "object",
            "properties": {"key": {"type": "string"}}, "required": ["key"]}},
        "max": {"type": "integer", "minimum": 1},
    }});
    assert!(
        problems(
            openapi.clone(),
            json!({"labels": [{"key": "app"}], "max": 3})
        )
        .is_empty()
    );
    let found = problems(openapi, json!({"labels": [{"value": "x"}, "y"], "max": 0}));
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("spec.parameters.labels[0]: "),
        "{found:?}"
    );
    assert!(
        found[0].contains("\"key\" is a required property"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("spec.parameters.labels[1]: "),
        "{found:?}"
    );
    assert!(found[1].contains("\"object\""), "{found:?}");
    assert!(found[2].starts_with("spec.parameters.max: "), "{found:?}");
}

#[test]
fn openapi_exclusive_bounds_are_booleans() {
    let openapi = json!({"type": "object", "properties": {
        "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
    }});
    assert!(problems(openapi.clone(), json!({"ratio": 0.5})).is_empty());
    assert_eq!(problems(openapi, json!({"ratio": 0})).len(), 1);
}

#[test]
fn int_or_string_and_nullable() {
    let openapi = json!({"type": "object", "properties": {
        "cpu": {"x-kubernetes-int-or-string": true},
        "note": {"type": "string", "nullable": true},
    }});
    assert!(problems(openapi.clone(), json!({"cpu": 2, "note": null})).is_empty());
    assert!(problems(openapi.clone(), json!({"cpu": "500m", "note": "x"})).is_empty());
    let found = problems(openapi, json!({"cpu": [1], "note": 3}));
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn patterns_use_re2_syntax_and_enums_are_checked() {
    let openapi = json!({"type": "object", "properties": {
        "prefix": {"type": "string", "pattern": "^[a-z]+/$"},
        "mode": {"type": "string", "enum": ["audit", "enforce"]},
    }});
    assert!(problems(openapi.clone(), json!({"prefix": "corp/", "mode": "audit"})).is_empty());
    assert_eq!(
        problems(openapi, json!({"prefix": "Corp", "mode": "x"})).len(),
        2
    );
    let broken = ParameterSchema::compile(
        &json!({"openAPIV3Schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}}),
        false,
    );
    assert!(broken.is_err());
}

#[test]
fn list_types_require_unique_items_and_keys() {
    let openapi = json!({"type": "object", "properties": {
        "names": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                  "items": {"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}}},
    }});
    assert!(
        problems(
            openapi.clone(),
            json!({"names": ["a", "b"], "ports": [{"port": 1}, {"port": 2}]})
        )
        .is_empty()
    );
    let found = problems(
        openapi,
        json!({"names": ["a", "a"], "ports": [{"port": 1, "name": "x"}, {"port": 1, "name": "y"}]}),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("spec.parameters.names[1]"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("spec.parameters.ports[1]"))
    );
}

#[test]
fn unknown_fields_are_pruned_unless_preserved() {
    let openapi = json!({"type": "object", "properties": {
        "labels": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "selector": {"type": "object", "additionalProperties": {"type": "string"}},
    }});
    let checked = schema(openapi.clone())
        .check(&json!({"labels": ["a"], "typo": 1, "extra": {"any": 1}, "selector": {"k": "v"}}))
        .unwrap();
    assert_eq!(
        checked.parameters,
        json!({"labels": ["a"], "extra": {"any": 1}, "selector": {"k": "v"}})
    );
    assert_eq!(
        checked.warnings,
        ["spec.parameters.typo: unknown field, pruned"]
    );
    // legacySchema (the v1beta1 default) keeps everything, as Gatekeeper's generated CRD does.
    let legacy = ParameterSchema::compile(&json!({"openAPIV3Schema": openapi}), true)
        .unwrap()
        .unwrap();
    let kept = legacy.check(&json!({"typo": 1})).unwrap();
    assert_eq!(kept.parameters, json!({"typo": 1}));
    assert!(kept.warnings.is_empty());
    let explicit = ParameterSchema::compile(
        &json!({"legacySchema": true, "openAPIV3Schema": {"type": "object"}}),
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        explicit.check(&json!({"a": 1})).unwrap().parameters,
        json!({"a": 1})
    );
}

#[test]
fn no_schema_accepts_anything() {
    assert!(
        ParameterSchema::compile(&json!({}), false)
            .unwrap()
            .is_none()
    );
}
