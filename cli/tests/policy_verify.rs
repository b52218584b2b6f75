//! `meshguard policy verify`: the repository's suites, gator's corner cases, failing and broken
//! suites, and a regression in a template caught by its suite.

mod support;

use support::{counts, meshguard};

const FIXTURES: &str = "cli/tests/fixtures/verify";

#[test]
fn repository_suites_all_pass() {
    let run = meshguard(&["policy", "verify", "gatekeeper/"]);
    run.expect_code(0);
    let (passed, failed, skipped) = counts(run.last_line());
    assert!(passed >= 80, "only {passed} cases ran");
    assert_eq!((failed, skipped), (0, 0));
    let suites = std::fs::read_dir(support::root().join("gatekeeper"))
        .unwrap()
        .count();
    assert!(suites >= 12, "{suites} template folders");
    let ok_lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ok    gatekeeper/") && l.contains("/suite.yaml"))
        .count();
    assert_eq!(ok_lines, suites, "{}", run.stdout);
}

#[test]
fn corner_cases_follow_gator() {
    let run = meshguard(&[
        "policy",
        "verify",
        "-v",
        &format!("{FIXTURES}/corner"),
        &format!("{FIXTURES}/skipped"),
    ]);
    run.expect_code(0).stdout_has(&[
        "    ok    three-missing-labels",
        "    ok    update-changing-immutable-label",
        "violation [FixtureGuard/guard] label <team> is immutable (was <checkout>, now <growth>)",
        "    ok    delete-reviews-the-old-object",
        "violation [FixtureGuard/guard] Deployment <cart> is protected and cannot be deleted",
        "  ok    invalid-constraint-parameters [invalid]",
        "  ok    invalid-template-rego [invalid]",
        "    ok    namespace-missing-from-inventory",
        "  skip  skipped-test",
        "    skip  skipped",
        "skip  cli/tests/fixtures/verify/skipped/suite.yaml",
    ]);
    assert_eq!(run.last_line(), "13 passed, 0 failed, 4 skipped");
}

#[test]
fn failing_cases_say_why() {
    let run = meshguard(&["policy", "verify", &format!("{FIXTURES}/failing")]);
    run.expect_code(1).stdout_has(&[
        "FAIL  wrong-count",
        "got 3 violations but want exactly 2: got messages [\"missing label <app>\", \"missing label <team>\", \"missing label <tier>\"]",
        "got 0 violations containing \"^no such message$\" but want at least 1",
        "got 3 violations but want none",
        "two_objects.yaml: defines 2 objects; a case object file must define exactly one",
        "not_there.yaml: cannot read it",
        "the case has no assertions (gator requires at least one)",
        "review_without_objects.json:1 (document 1): malformed admission request: the AdmissionRequest has neither an object nor an oldObject to review",
        "FAIL  expected-invalid-but-valid [invalid]",
        "the test expects the template or the constraint to be invalid, but both loaded",
        "FAIL  template-does-not-compile",
        "template_broken_rego.yaml:16: ConstraintTemplate fixtureguard",
        "FAIL  cli/tests/fixtures/verify/failing/suite.yaml",
    ]);
    assert_eq!(run.last_line(), "0 passed, 9 failed");
}

#[test]
fn broken_suites_are_load_errors() {
    let cases = [
        (
            "yaml",
            "broken/yaml/suite.yaml:8:1: document 1: invalid YAML",
        ),
        (
            "violations",
            "field `tests[0].cases[0].assertions[0].violations`: must be a non-negative integer, \"yes\" or \"no\", got \"maybe\"",
        ),
        (
            "regex",
            "field `tests[0].cases[0].assertions[0].message`: not a valid regular expression",
        ),
        (
            "field",
            "field `tests[0].cases[0].assertion`: unknown field `assertion`",
        ),
    ];
    for (dir, message) in cases {
        let run = meshguard(&["policy", "verify", &format!("{FIXTURES}/broken/{dir}")]);
        run.expect_code(2).stderr_has(&[message]);
    }
    meshguard(&["policy", "verify", "no/such/dir"])
        .expect_code(2)
        .stderr_has(&["cannot access no/such/dir"]);
    meshguard(&["policy", "verify", "policies/"])
        .expect_code(2)
        .stderr_has(&["no gator Suites"]);
    meshguard(&["policy", "verify", "gatekeeper/hpa-replicas/template.yaml"])
        .expect_code(2)
        .stderr_has(&["not a gator Suite"]);
    meshguard(&["policy", "verify", "--run", "a//b//c", "gatekeeper"])
        .expect_code(2)
        .stderr_has(&["at most one \"//\""]);
}

#[test]
fn run_selects_tests_and_cases() {
    let run = meshguard(&[
        "policy",
        "verify",
        "--run",
        "admission-reviews//delete",
        &format!("{FIXTURES}/corner"),
    ]);
    run.expect_code(0).stdout_has(&[
        "ok    delete-reviews-the-old-object",
        "ok    delete-unprotected",
    ]);
    let (passed, failed, _) = counts(run.last_line());
    assert_eq!((passed, failed), (2, 0));
    assert!(!run.stdout.contains("update-keeping-the-label"));
    let run = meshguard(&["policy", "verify", "--run", "unreadable", "gatekeeper/"]);
    assert_eq!(counts(run.last_line()).0, 1);
}

#[test]
fn json_format_lists_cases_and_violations() {
    let run = meshguard(&[
        "policy",
        "verify",
        "--format",
        "json",
        &format!("{FIXTURES}/corner"),
    ]);
    run.expect_code(0)
        .stderr_has(&["13 passed, 0 failed, 2 skipped"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let test = doc["suites"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "numeric-counts-and-messages")
        .unwrap();
    let case = &test["cases"][0];
    assert_eq!(case["passed"], true);
    assert_eq!(case["violations"].as_array().unwrap().len(), 3);
    assert_eq!(case["violations"][0]["constraint"], "FixtureGuard/guard");
    assert_eq!(doc["summary"]["passed"], 13);
}

#[test]
fn a_regression_in_a_template_fails_its_suite() {
    let dir = support::scratch("regression");
    support::copy_dir(&support::root().join("gatekeeper/image-tags"), &dir);
    let template = dir.join("template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    // Break the rule for the disallowed tag: compare with a tag no image uses.
    let broken = text.replace(
        "lower(tag) == lower(input.parameters.disallowedTags[_])",
        "lower(tag) == \"never\"",
    );
    assert_ne!(text, broken, "the rule text moved; update this test");
    std::fs::write(&template, broken).unwrap();
    let run = meshguard(&["policy", "verify", dir.to_str().unwrap()]);
    run.expect_code(1).stdout_has(&[
        "FAIL  latest-tag",
        "got 0 violations containing \"uses the disallowed tag <latest>\" but want exactly 1",
    ]);
}

#[test]
fn junit_format_has_a_testcase_per_case() {
    let run = meshguard(&[
        "policy",
        "verify",
        "--format",
        "junit",
        &format!("{FIXTURES}/corner"),
        &format!("{FIXTURES}/failing"),
    ]);
    run.expect_code(1).stdout_has(&[
        "<testsuites name=\"meshguard policy verify\" tests=\"24\" skipped=\"2\" failures=\"9\" errors=\"0\"",
        "<testcase name=\"numeric-counts-and-messages/three-missing-labels\" classname=\"cli/tests/fixtures/verify/corner/suite.yaml\"",
        "<system-out>violation [FixtureGuard/guard] missing label &lt;app&gt;",
        "<testcase name=\"assertions-that-do-not-hold/wrong-count\"",
        "<failure message=\"got 3 violations but want exactly 2: got messages",
        "<testcase name=\"template-does-not-compile\"",
    ]);
    assert_eq!(
        run.stderr.trim_end().lines().last(),
        Some("13 passed, 9 failed, 2 skipped")
    );
}
