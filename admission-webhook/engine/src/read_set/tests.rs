//! The read set of each idiom public template libraries use, stated as the paths the decision
//! cache keys on (`value`, `type`, `shape`; see the module docs). That cached and uncached
//! decisions agree is checked on whole corpora in `tests/vm_equivalence.rs`.

use crate::document;
use crate::template::Template;

/// A template around `rego` (package `t`) with `libs`; the cache key paths, or the fallback.
fn paths_with_libs(rego: &str, libs: &[&str]) -> Vec<String> {
    let indent =
        |text: &str| -> String { text.lines().map(|l| format!("        {l}\n")).collect() };
    let mut yaml = format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: t}}\nspec:\n  crd: {{spec: {{names: {{kind: T}}}}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n        package t\n{}",
        indent(rego)
    );
    if !libs.is_empty() {
        yaml.push_str("    libs:\n");
        for lib in libs {
            yaml.push_str("    - |\n");
            yaml.push_str(&indent(lib));
        }
    }
    let docs = document::parse_documents("t.yaml", &yaml).unwrap();
    let template = Template::from_document(&docs[0]).unwrap_or_else(|err| panic!("{err}"));
    if let Some(why) = template.cache_fallback() {
        return vec![format!("fallback: {why}")];
    }
    template.cache_key_paths()
}

fn paths(rego: &str) -> Vec<String> {
    paths_with_libs(rego, &[])
}

#[test]
fn a_local_bound_to_the_object_reads_only_what_is_used() {
    let rego = r#"violation[{"msg": "host network"}] {
  obj := input.review.object
  obj.spec.hostNetwork
}"#;
    assert_eq!(
        paths(rego),
        [
            "value input.review.object.spec.hostNetwork",
            "type input.review.object"
        ]
    );
}

#[test]
fn helper_functions_are_analysed_with_their_arguments() {
    let rego = r#"violation[{"msg": "shares a host namespace"}] {
  shares_host(input.review.object)
}
shares_host(o) { o.spec.hostPID }
shares_host(o) { o.spec.hostIPC }"#;
    assert_eq!(
        paths(rego),
        [
            "value input.review.object.spec.hostIPC",
            "value input.review.object.spec.hostPID",
            "type input.review.object"
        ]
    );
}

#[test]
fn the_review_as_a_whole_in_a_lib_reads_the_operation() {
    let lib =
        "package lib.exclude_update\nis_update(review) {\n  review.operation == \"UPDATE\"\n}";
    let rego = r#"import data.lib.exclude_update.is_update
violation[{"msg": "privileged"}] {
  not is_update(input.review)
  input.review.object.spec.containers[_].securityContext.privileged
}"#;
    assert_eq!(
        paths_with_libs(rego, &[lib]),
        [
            "value input.review.object.spec.containers",
            "value input.review.operation",
            "type input.review"
        ]
    );
}

#[test]
fn containers_iterated_through_a_library_rule() {
    let lib = "package lib.pods\ncontainers[c] { c := input.review.object.spec.containers[_] }\ncontainers[c] { c := input.review.object.spec.initContainers[_] }";
    let rego = r#"violation[{"msg": msg}] {
  c := data.lib.pods.containers[_]
  not c.resources.limits.memory
  msg := sprintf("container <%v> has no memory limit", [c.name])
}"#;
    assert_eq!(
        paths_with_libs(rego, &[lib]),
        [
            "value input.review.object.spec.containers",
            "value input.review.object.spec.initContainers"
        ]
    );
}

#[test]
fn parameters_through_object_get_on_the_whole_input() {
    let lib = r#"package lib.exempt_container
is_exempt(container) {
  exempt_images := object.get(object.get(input, "parameters", {}), "exemptImages", [])
  img := container.image
  exemption := exempt_images[_]
  img == exemption
}"#;
    let rego = r#"import data.lib.exempt_container.is_exempt
violation[{"msg": "privileged"}] {
  c := input.review.object.spec.containers[_]
  not is_exempt(c)
  c.securityContext.privileged
}"#;
    assert_eq!(
        paths_with_libs(rego, &[lib]),
        [
            "value input.parameters.exemptImages",
            "value input.review.object.spec.containers",
            "type input",
            "type input.parameters"
        ]
    );
}

#[test]
fn names_in_messages_are_shapes() {
    let rego = r#"violation[{"msg": msg, "details": {"pod": name}}] {
  obj := input.review.object
  obj.spec.automountServiceAccountToken == true
  name := obj.metadata.name
  msg := sprintf("Automounting service account token is disallowed, pod: %v", [obj.metadata.name])
}"#;
    assert_eq!(
        paths(rego),
        [
            "value input.review.object.spec.automountServiceAccountToken",
            "type input.review.object",
            "shape input.review.object.metadata.name"
        ]
    );
}

#[test]
fn a_name_the_decision_compares_is_a_value() {
    let rego = r#"violation[{"msg": "reserved name"}] {
  name := input.review.object.metadata.name
  startswith(name, "kube-")
}"#;
    assert_eq!(paths(rego), ["value input.review.object.metadata.name"]);
}

#[test]
fn keys_known_to_be_a_few_strings_refine_the_path() {
    let rego = r#"violation[{"msg": msg}] {
  fields := ["runAsUser", "runAsGroup"]
  field := fields[_]
  rule := input.parameters[field].rule
  rule == "MustRunAs"
  msg := sprintf("%v", [field])
}"#;
    assert_eq!(
        paths(rego),
        [
            "value input.parameters.runAsGroup.rule",
            "value input.parameters.runAsUser.rule"
        ]
    );
}

#[test]
fn what_the_analysis_does_not_model_falls_back_to_the_text_scan() {
    let rego = r#"violation[{"msg": "x"}] {
  f with input as {"a": 1}
}
f { input.a == 1 }"#;
    let found = paths(rego);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("fallback: a `with` modifier"),
        "{found:?}"
    );
}

#[test]
fn nondeterministic_builtins_are_never_cached() {
    let text = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: t}\nspec:\n  crd: {spec: {names: {kind: T}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package t\n      violation[{\"msg\": \"late\"}] { time.now_ns() > input.parameters.deadline }\n";
    let docs = document::parse_documents("t.yaml", text).unwrap();
    let template = Template::from_document(&docs[0]).unwrap();
    assert_eq!(template.uncacheable(), Some("calls time.now_ns (line 2)"));
}
