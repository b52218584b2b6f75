//! `meshguard policy check`: manifests against the repository's policies (and fixture ones for
//! enforcement actions), every output format, stdin, and broken inputs.

mod support;

use support::{meshguard, meshguard_stdin};

const FIXTURES: &str = "cli/tests/fixtures/check";
const GUARD_TEMPLATE: &str = "cli/tests/fixtures/verify/corner/guard/template.yaml";

#[test]
fn compliant_release_passes() {
    let run = meshguard(&["policy", "check", "-f", &format!("{FIXTURES}/good.yaml")]);
    run.expect_code(0);
    assert_eq!(
        run.last_line(),
        "checked 5 objects against 17 constraints: 0 violations (0 deny, 0 warn, 0 dryrun)"
    );
}

#[test]
fn violations_name_object_constraint_and_message() {
    let run = meshguard(&["policy", "check", "-f", &format!("{FIXTURES}/bad.yaml")]);
    run.expect_code(1).stdout_has(&[
        "cli/tests/fixtures/check/bad.yaml:1 (document 1) Deployment commerce/payment",
        "  deny   [commerce-pinned-image-tags] Deployment <payment>: container <payment> image <nginx:latest> uses the disallowed tag <latest>",
        "  deny   [commerce-required-labels] Deployment <payment> is missing the required label <team>",
        "  deny   [commerce-tier1-replicas] Deployment <payment> runs tier-1 service <payment> with 1 replica(s)",
        "  deny   [commerce-tier1-disruption-budget]",
        "cli/tests/fixtures/check/bad.yaml:27 (document 2) Service commerce/payment-v2",
        "  deny   [commerce-unique-service-selector] Service <payment-v2> in namespace <commerce> has the same selector {\"app\": \"payment\"} as Service <payment>",
    ]);
    assert_eq!(
        run.last_line(),
        "checked 3 objects against 17 constraints: 7 violations (7 deny, 0 warn, 0 dryrun)"
    );
}

#[test]
fn stdin_is_read_like_helm_output() {
    let manifest =
        std::fs::read_to_string(support::root().join(FIXTURES).join("bad.yaml")).unwrap();
    let run = meshguard_stdin(&["policy", "check", "-f", "-"], &manifest);
    run.expect_code(1)
        .stdout_has(&["<stdin>:1 (document 1) Deployment commerce/payment"]);
    let good = std::fs::read_to_string(support::root().join(FIXTURES).join("good.yaml")).unwrap();
    meshguard_stdin(&["policy", "check", "-f", "-"], &good).expect_code(0);
}

#[test]
fn warn_passes_unless_strict_and_dryrun_never_fails() {
    let args = [
        "policy",
        "check",
        "-f",
        "cli/tests/fixtures/check/list.json",
        "--policies",
        GUARD_TEMPLATE,
        "--policies",
        "cli/tests/fixtures/check/guard_actions.yaml",
    ];
    let run = meshguard(&args);
    run.expect_code(0).stdout_has(&[
        "cli/tests/fixtures/check/list.json:1 (document 1) Deployment shop/cart",
        "  warn   [team-label-warn] missing label <team>",
        "  dryrun [tier-label-dryrun] missing label <tier>",
    ]);
    assert!(
        !run.stdout.contains("Deployment shop/search"),
        "{}",
        run.stdout
    );
    let mut strict = args.to_vec();
    strict.push("--strict");
    meshguard(&strict).expect_code(1);
}

#[test]
fn templates_and_constraints_may_come_with_the_manifests() {
    let run = meshguard(&[
        "policy",
        "check",
        "-f",
        "cli/tests/fixtures/check/list.json",
        "-f",
        GUARD_TEMPLATE,
        "-f",
        "cli/tests/fixtures/check/guard_deny.yaml",
        "--policies",
        "cli/tests/fixtures/check/guard_actions.yaml",
    ]);
    run.expect_code(0);
    assert!(
        run.last_line().contains("against 3 constraints"),
        "{}",
        run.stdout
    );
    let run = meshguard(&[
        "policy",
        "check",
        "-f",
        "cli/tests/fixtures/verify/corner/guard/deployment_no_labels.yaml",
        "-f",
        GUARD_TEMPLATE,
        "-f",
        "cli/tests/fixtures/check/guard_deny.yaml",
        "--policies",
        "cli/tests/fixtures/check/guard_actions.yaml",
    ]);
    run.expect_code(1)
        .stdout_has(&["  deny   [app-label-deny] missing label <app>"]);
}

#[test]
fn admission_reviews_are_reviewed_as_requests() {
    let run = meshguard(&[
        "policy",
        "check",
        "-f",
        "cli/tests/fixtures/verify/corner/guard/review_update_team_changed.json",
        "--policies",
        GUARD_TEMPLATE,
        "--policies",
        "cli/tests/fixtures/verify/corner/guard/constraint.yaml",
    ]);
    run.expect_code(1).stdout_has(&[
        "Deployment shop/cart (UPDATE)",
        "[guard] label <team> is immutable (was <checkout>, now <growth>)",
    ]);
}

#[test]
fn json_sarif_and_github_formats() {
    let bad = format!("{FIXTURES}/bad.yaml");
    let run = meshguard(&["policy", "check", "-f", &bad, "--format", "json"]);
    run.expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["summary"]["violations"], 7);
    assert_eq!(doc["summary"]["failed"], true);
    let first = &doc["violations"][0];
    assert_eq!(first["file"], "cli/tests/fixtures/check/bad.yaml");
    assert_eq!(first["enforcementAction"], "deny");
    assert_eq!(first["details"]["image"], "nginx:latest");

    let run = meshguard(&["policy", "check", "-f", &bad, "--format", "sarif"]);
    run.expect_code(1);
    let sarif: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 17);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    let service = results
        .iter()
        .find(|r| r["ruleId"] == "MeshguardUniqueServiceSelector/commerce-unique-service-selector")
        .unwrap();
    assert_eq!(service["level"], "error");
    let location = &service["locations"][0]["physicalLocation"];
    assert_eq!(
        location["artifactLocation"]["uri"],
        "cli/tests/fixtures/check/bad.yaml"
    );
    assert!(location["region"]["startLine"] == 27 || location["region"]["startLine"] == 36);

    let run = meshguard(&["policy", "check", "-f", &bad, "--format", "github"]);
    run.expect_code(1).stdout_has(&[
        "::error file=cli/tests/fixtures/check/bad.yaml,line=1,title=[commerce-required-labels] Deployment commerce/payment::Deployment <payment> is missing the required label <team>",
        "::notice title=meshguard policy check::checked 3 objects",
    ]);
}

#[test]
fn broken_inputs_are_load_errors() {
    meshguard(&["policy", "check", "-f", &format!("{FIXTURES}/broken.yaml")])
        .expect_code(2)
        .stderr_has(&["cli/tests/fixtures/check/broken.yaml:11:1: document 2: invalid YAML"]);
    meshguard(&["policy", "check", "-f", &format!("{FIXTURES}/good.yaml"), "-f", &format!("{FIXTURES}/unknown_kind.yaml")])
        .expect_code(2)
        .stderr_has(&["unknown_kind.yaml (document 1): NoSuchTemplateKind orphan: no ConstraintTemplate defines kind NoSuchTemplateKind"]);
    meshguard(&[
        "policy", "check", "-f", &format!("{FIXTURES}/good.yaml"),
        "--policies", "gatekeeper", "--policies", &format!("{FIXTURES}/bad_parameters.yaml"),
    ])
    .expect_code(2)
    .stderr_has(&["MeshguardHpaReplicas hpa-with-string-bound: parameters do not follow the schema of ConstraintTemplate meshguardhpareplicas: spec.parameters.maxReplicas: \"twenty\" is not of type \"integer\""]);
    meshguard(&[
        "policy",
        "check",
        "-f",
        &format!("{FIXTURES}/good.yaml"),
        "--policies",
        "policies",
    ])
    .expect_code(2)
    .stderr_has(&["no ConstraintTemplates found"]);
    meshguard(&["policy", "check", "-f", "no/such.yaml"])
        .expect_code(2)
        .stderr_has(&["cannot access no/such.yaml"]);
    meshguard(&["policy", "check"]).expect_code(2);
    meshguard_stdin(&["policy", "check", "-f", "-"], "kind: [")
        .expect_code(2)
        .stderr_has(&["<stdin>:2:1: document 1: invalid YAML"]);
}

/// Objects are reviewed on every core; the report still follows the manifests' order (the
/// documents of a `helm template` output, here 48 Deployments whose image tags alternate).
#[test]
fn parallel_reviews_report_in_manifest_order() {
    let bad = std::fs::read_to_string(support::root().join(FIXTURES).join("bad.yaml")).unwrap();
    let deployment = bad.split("\n---").next().unwrap();
    let mut manifest = String::new();
    for index in 0..48 {
        let tag = if index % 2 == 0 { "latest" } else { "1.27.3" };
        let copy = deployment
            .replace("name: payment\n", &format!("name: payment-{index:02}\n"))
            .replace("nginx:latest", &format!("nginx:{tag}"));
        manifest.push_str(&copy);
        manifest.push_str("\n---\n");
    }
    let run = meshguard_stdin(&["policy", "check", "-f", "-"], &manifest);
    run.expect_code(1);
    let objects: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("<stdin>:"))
        .collect();
    assert_eq!(objects.len(), 48, "{}", run.stdout);
    for (index, line) in objects.iter().enumerate() {
        assert!(
            line.contains(&format!(
                "(document {}) Deployment commerce/payment-{index:02}",
                index + 1
            )),
            "{line}"
        );
    }
    let tags = run
        .stdout
        .lines()
        .filter(|l| l.contains("uses the disallowed tag <latest>"))
        .count();
    assert_eq!(tags, 24, "{}", run.stdout);
}
