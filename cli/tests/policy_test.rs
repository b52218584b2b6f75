//! `meshguard policy test`: the repository's Rego unit tests and fixtures for every outcome.

mod support;

use support::{counts, meshguard};

const FIXTURES: &str = "cli/tests/fixtures/rego";

#[test]
fn repository_policies_all_pass() {
    let run = meshguard(&["policy", "test", "policies/"]);
    run.expect_code(0);
    let (passed, failed, skipped) = counts(run.last_line());
    assert!(passed >= 100, "only {passed} tests ran");
    assert_eq!((failed, skipped), (0, 0));
    // Every test file of every policy folder ran.
    let mut files = 0;
    for entry in std::fs::read_dir(support::root().join("policies")).unwrap() {
        let dir = entry.unwrap().file_name().into_string().unwrap();
        for file in std::fs::read_dir(support::root().join("policies").join(&dir)).unwrap() {
            let file = file.unwrap().file_name().into_string().unwrap();
            if file.ends_with("_test.rego") {
                run.stdout_has(&[&format!("policies/{dir}/{file}:")]);
                files += 1;
            }
        }
    }
    assert!(files >= 18, "only {files} test files found");
}

/// One folder per class of failure seen running a public v0 library's unit tests with plain
/// regorus (`fixtures/rego/opa/README.md`); each passes as under `opa test`, because modules go
/// through the engine's path, and `-v` names the rewrite that made the difference.
#[test]
fn rego_that_opa_passes_passes_here() {
    let classes = [
        ("chained-bodies", 4, "line 8: chained rule body"),
        (
            "paren-line",
            2,
            "line 10: a line starting with `(` ends the previous expression",
        ),
        (
            "not-undefined-argument",
            4,
            "line 10: `not` call arguments bound before the negation",
        ),
    ];
    for (class, passed, note) in classes {
        let dir = format!("{FIXTURES}/opa/{class}");
        let run = meshguard(&["policy", "test", "-v", &dir]);
        run.expect_code(0).stderr_has(&[&format!(
            "rewritten as OPA reads it: {dir}/policy.rego: {note}"
        )]);
        assert_eq!(counts(run.last_line()), (passed, 0, 0), "{class}");
    }
    // Rego v1 when the flag says so (the same module is a parse error as v0).
    let v1 = format!("{FIXTURES}/opa/v1");
    let run = meshguard(&["policy", "test", "--v1", &v1]);
    run.expect_code(0);
    assert_eq!(counts(run.last_line()), (3, 0, 0));
    meshguard(&["policy", "test", &v1]).expect_code(2);
}

#[test]
fn mocks_data_files_and_todo_rules() {
    let run = meshguard(&["policy", "test", &format!("{FIXTURES}/passing")]);
    run.expect_code(0).stdout_has(&[
        "PASS    data.fixture.policy.test_function_mocked_with_with",
        "PASS    data.fixture.policy.test_data_file_loaded_at_its_folder",
        "PASS    data.fixture.policy.test_data_mocked",
        "SKIPPED data.fixture.policy.todo_test_statefulsets",
    ]);
    assert_eq!(run.last_line(), "5 passed, 0 failed, 1 skipped");
}

#[test]
fn failures_and_errors_name_file_and_line() {
    let run = meshguard(&["policy", "test", &format!("{FIXTURES}/failing")]);
    run.expect_code(1).stdout_has(&[
        "PASS    data.fixture.failing.test_passes (cli/tests/fixtures/rego/failing/policy_test.rego:3,",
        "FAIL    data.fixture.failing.test_wrong_answer (cli/tests/fixtures/rego/failing/policy_test.rego:7,",
        "FAIL    data.fixture.failing.test_wrong_items (cli/tests/fixtures/rego/failing/policy_test.rego:13,",
        "ERROR   data.fixture.failing.test_conflict_errors (cli/tests/fixtures/rego/failing/policy_test.rego:17,",
        "rule conflicts with rule",
    ]);
    assert_eq!(run.last_line(), "1 passed, 3 failed");
}

#[test]
fn verbose_shows_the_failing_expression_its_values_and_prints() {
    let run = meshguard(&["policy", "test", "-v", &format!("{FIXTURES}/failing")]);
    run.expect_code(1).stdout_has(&[
        "failed at line 10: got == 42",
        "got = 43",
        "print: cli/tests/fixtures/rego/failing/policy_test.rego:9: computed 43",
        "failed at line 14: count(items) == 3",
        "items = [\"a\",\"b\"]",
    ]);
}

#[test]
fn run_filters_by_full_name() {
    let (failing, passing) = (format!("{FIXTURES}/failing"), format!("{FIXTURES}/passing"));
    let run = meshguard(&[
        "policy",
        "test",
        "--run",
        "failing\\.test_wrong_answer$",
        &failing,
        &passing,
    ]);
    run.expect_code(1);
    assert_eq!(run.last_line(), "0 passed, 1 failed");
    let run = meshguard(&["policy", "test", "--run", "test_passes", &failing, &passing]);
    run.expect_code(0);
    assert_eq!(run.last_line(), "1 passed, 0 failed");
}

#[test]
fn json_format() {
    let run = meshguard(&[
        "policy",
        "test",
        "--format",
        "json",
        &format!("{FIXTURES}/failing"),
    ]);
    run.expect_code(1).stderr_has(&["1 passed, 3 failed"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let tests = doc["tests"].as_array().unwrap();
    let status = |name: &str| {
        tests
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("test_passes").as_deref(), Some("pass"));
    assert_eq!(status("test_wrong_answer").as_deref(), Some("fail"));
    assert_eq!(status("test_conflict_errors").as_deref(), Some("error"));
    let wrong = tests
        .iter()
        .find(|t| t["name"] == "test_wrong_answer")
        .unwrap();
    assert_eq!(wrong["line"], 7);
    assert_eq!(wrong["explanation"]["line"], 10);
    assert_eq!(doc["summary"]["failed"], 3);
}

#[test]
fn junit_format() {
    let run = meshguard(&[
        "policy",
        "test",
        "--format",
        "junit",
        &format!("{FIXTURES}/failing"),
    ]);
    run.expect_code(1).stdout_has(&[
        "<testsuites name=\"meshguard policy test\" tests=\"4\" skipped=\"0\" failures=\"2\" errors=\"1\"",
        "<testsuite name=\"cli/tests/fixtures/rego/failing/policy_test.rego\" tests=\"4\" skipped=\"0\" errors=\"1\" failures=\"2\"",
        "<testcase name=\"test_wrong_answer\" classname=\"data.fixture.failing\"",
        "file=\"cli/tests/fixtures/rego/failing/policy_test.rego\" line=\"7\">",
        "<failure message=\"the test rule is undefined\">failed at line 10: got == 42",
        "<system-out>cli/tests/fixtures/rego/failing/policy_test.rego:9: computed 43</system-out>",
        "</testsuites>",
    ]);
}

#[test]
fn coverage_and_threshold() {
    let dir = format!("{FIXTURES}/coverage");
    let run = meshguard(&["policy", "test", "--coverage", &dir]);
    run.expect_code(0).stdout_has(&[
        "75.00%  cli/tests/fixtures/rego/coverage/policy.rego  (3 of 4 lines)",
        "75.00%  total",
    ]);
    let run = meshguard(&["policy", "test", "--threshold", "90", &dir]);
    run.expect_code(1)
        .stderr_has(&["coverage 75.00% is below the threshold 90%"]);
    meshguard(&["policy", "test", "--threshold", "75", &dir]).expect_code(0);
    let run = meshguard(&["policy", "test", "--coverage", "-v", &dir]);
    run.stdout_has(&["not covered: 7"]);
}

#[test]
fn broken_inputs_are_load_errors() {
    let run = meshguard(&["policy", "test", &format!("{FIXTURES}/broken")]);
    run.expect_code(2)
        .stderr_has(&["cli/tests/fixtures/rego/broken/bad.rego:3:3", "expecting }"]);
    let run = meshguard(&["policy", "test", "gatekeeper/host-paths/samples"]);
    run.expect_code(2)
        .stderr_has(&["no .rego files found under gatekeeper/host-paths/samples"]);
    let run = meshguard(&["policy", "test", "no/such/dir"]);
    run.expect_code(2)
        .stderr_has(&["cannot access no/such/dir"]);
    let run = meshguard(&["policy", "test", "--run", "(", "policies"]);
    run.expect_code(2)
        .stderr_has(&["--run is not a valid regular expression"]);
    meshguard(&["policy", "test", "--format", "xml", "policies"]).expect_code(2);
}
