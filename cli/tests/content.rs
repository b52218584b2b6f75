//! The repository's policy set holds together: each template embeds its `policies/` source
//! verbatim (so the unit tests test what Gatekeeper runs), every template has a suite with
//! allowed and disallowed samples and message assertions, and the Rego avoids the regorus
//! divergences listed in the engine's table (`meshguard_policy_engine::divergences`).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

fn template_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(support::root().join("gatekeeper"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("template.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn yaml(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn name_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn at_least_twelve_templates_each_with_suite_and_samples() {
    let dirs = template_dirs();
    assert!(dirs.len() >= 12, "{} templates", dirs.len());
    for dir in &dirs {
        assert!(
            dir.join("suite.yaml").is_file(),
            "{} has no suite.yaml",
            dir.display()
        );
        let mut allowed = 0;
        let mut disallowed = 0;
        let samples = std::fs::read_dir(dir.join("samples")).unwrap();
        for sample in samples {
            let sample = sample.unwrap().path();
            assert!(
                sample.join("constraint.yaml").is_file(),
                "{} has no constraint.yaml",
                sample.display()
            );
            for file in std::fs::read_dir(&sample).unwrap() {
                let name = file.unwrap().file_name().to_string_lossy().into_owned();
                allowed += usize::from(name.starts_with("example_allowed"));
                disallowed += usize::from(name.starts_with("example_disallowed"));
            }
        }
        assert!(
            allowed >= 1 && disallowed >= 1,
            "{}: {allowed} allowed, {disallowed} disallowed",
            dir.display()
        );
    }
}

#[test]
fn templates_embed_their_policy_source_verbatim() {
    for dir in template_dirs() {
        let name = name_of(&dir);
        let template = yaml(&dir.join("template.yaml"));
        let source_path = support::root()
            .join("policies")
            .join(&name)
            .join("src.rego");
        let source = std::fs::read_to_string(&source_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every template's Rego lives in policies/<name>/src.rego)",
                source_path.display()
            )
        });
        let embedded = template["spec"]["targets"][0]["rego"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            embedded, source,
            "gatekeeper/{name}/template.yaml: spec.targets[0].rego differs from policies/{name}/src.rego; copy the source into the template"
        );
        assert!(
            support::root()
                .join("policies")
                .join(&name)
                .join("src_test.rego")
                .is_file(),
            "policies/{name} has no src_test.rego"
        );
        let kind = template["spec"]["crd"]["spec"]["names"]["kind"]
            .as_str()
            .unwrap();
        let meta_name = template["metadata"]["name"].as_str().unwrap();
        assert_eq!(meta_name, kind.to_lowercase());
        assert!(
            source.starts_with(&format!("package {meta_name}\n")),
            "{name}: package must be {meta_name}"
        );
    }
}

/// Every violation rule has a disallowed case asserting on a message, and every suite has an
/// allowed case.
#[test]
fn suites_assert_messages_for_each_rule() {
    for dir in template_dirs() {
        let name = name_of(&dir);
        let rules = std::fs::read_to_string(
            support::root()
                .join("policies")
                .join(&name)
                .join("src.rego"),
        )
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("violation["))
        .count();
        let suite = yaml(&dir.join("suite.yaml"));
        let (mut allowed, mut with_message) = (0, 0);
        for test in suite["tests"].as_array().unwrap() {
            for case in test["cases"].as_array().unwrap() {
                let assertions = case["assertions"].as_array().unwrap();
                let expects_none = assertions
                    .iter()
                    .any(|a| a["violations"] == "no" && a["message"].is_null());
                let message_hit = assertions.iter().any(|a| {
                    a["message"].is_string() && a["violations"] != "no" && a["violations"] != 0
                });
                allowed += usize::from(expects_none);
                with_message += usize::from(message_hit);
            }
        }
        assert!(
            allowed >= 1,
            "gatekeeper/{name}/suite.yaml has no allowed case"
        );
        assert!(
            with_message >= rules,
            "gatekeeper/{name}/suite.yaml: {rules} violation rules but {with_message} disallowed cases with a message assertion"
        );
    }
}

/// Divergences 1-3 of the engine's table (`meshguard_policy_engine::divergences`): a line starting with `(`, chained rule bodies `} {`, and `not f(...)`
/// with an argument that is not a plain variable.
#[test]
fn policies_avoid_regorus_divergences() {
    let negated_call =
        regex::Regex::new(r"^\s*not\s+([A-Za-z_][A-Za-z0-9_.]*)\((.*)\)\s*$").unwrap();
    for dir in template_dirs() {
        let path = support::root()
            .join("policies")
            .join(name_of(&dir))
            .join("src.rego");
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            let code = line.split('#').next().unwrap_or("");
            assert!(
                !code.trim_start().starts_with('('),
                "{at}: a line starting with `(` is read as a call by regorus"
            );
            assert!(
                !code.contains("} {"),
                "{at}: chained rule bodies are read as `else` by regorus"
            );
            if let Some(caps) = negated_call.captures(code) {
                let args = &caps[2];
                assert!(
                    !args.contains('.') && !args.contains('['),
                    "{at}: `not {}(...)` has an argument that may be undefined; bind it to a variable first",
                    &caps[1]
                );
            }
        }
    }
}
