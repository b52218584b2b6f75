//! `meshguard filter run / test / validate` as an operator runs them: the binary, real module
//! files built by `cargo xtask build-filters`, the example files, exit codes 0 / 1 / 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use meshguard_testkit::paths::{filter_module, target_dir, workspace_root};

fn meshguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshguard"))
        .args(args)
        .output()
        .expect("the meshguard binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example(name: &str) -> String {
    workspace_root()
        .join("filters/host/examples")
        .join(name)
        .display()
        .to_string()
}

fn module(crate_name: &str) -> String {
    filter_module(crate_name).unwrap().display().to_string()
}

/// A scratch file under target/tmp.
fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = target_dir().join("tmp/cli-filter-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

#[test]
fn run_shows_the_header_the_filter_rewrote() {
    let out = meshguard(&[
        "filter",
        "run",
        &module("meshguard_stamp"),
        "--config",
        &example("stamp.config.json"),
        "--request",
        &example("stamp.request.yaml"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("continued: forwarded to cluster `backend`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ x-meshguard-stamp: spoofed -> from-wasm"),
        "{stdout}"
    );
}

#[test]
fn run_as_json_with_workers_and_time_steps() {
    let out = meshguard(&[
        "filter",
        "run",
        &module("meshguard_rate_limit"),
        "--config",
        &example("rate-limit.config.json"),
        "--request",
        &example("rate-limit.request.yaml"),
        "--workers",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests = doc["requests"].as_array().unwrap();
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["response"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 200], "{doc:#}");
    let vms: Vec<u64> = requests.iter().map(|r| r["vm"].as_u64().unwrap()).collect();
    assert!(
        vms.contains(&1) && vms.contains(&2),
        "both workers served: {vms:?}"
    );
    assert_eq!(requests[3]["verdict"], "local_reply");
    assert_eq!(requests[3]["local_reply"]["sent_in"], "on_request_headers");
}

#[test]
fn run_answers_callouts_from_the_request_file_script() {
    let config = scratch(
        "remote-jwks.json",
        r#"{"providers":[{"name":"shop","issuer":"https://id.shop.example","audiences":["api"],
            "remoteJwks":{"cluster":"idp","uri":"http://idp/realms/shop/certs"}}],
            "rules":[{"match":{"prefix":"/api/"},"requires":{"provider":"shop"}}]}"#,
    );
    let request = scratch(
        "remote-jwks.request.yaml",
        "env:\n  name: jwt\n  callouts:\n    - {cluster: idp, path: /realms/shop/certs, status: 503, delay: 100ms}\n\
         steps:\n  - advance: 2s\n  - request: {path: /api/orders}\n",
    );
    let args = |format: &str| {
        meshguard(&[
            "filter",
            "run",
            &module("meshguard_jwt_auth"),
            "--config",
            config.to_str().unwrap(),
            "--request",
            request.to_str().unwrap(),
            "--format",
            format,
        ])
    };
    let out = args("json");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let callouts = doc["callouts"].as_array().unwrap();
    assert!(!callouts.is_empty(), "{doc:#}");
    for call in callouts {
        assert_eq!(call["cluster"], "idp", "{call:#}");
        assert!(
            call["headers"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!([":path", "/realms/shop/certs"])),
            "{call:#}"
        );
        assert_eq!(call["state"]["answered"]["status"], 503, "{call:#}");
    }
    let pretty = args("pretty");
    let stdout = text(&pretty.stdout);
    assert_eq!(code(&pretty), 0, "{stdout}{}", text(&pretty.stderr));
    assert!(stdout.contains("callouts from root contexts:"), "{stdout}");
    assert!(stdout.contains("idp GET /realms/shop/certs"), "{stdout}");
}

#[test]
fn example_suites_pass_with_the_summary_line() {
    let out = meshguard(&[
        "filter",
        "test",
        &example("rate-limit.suite.yaml"),
        &example("circuit-breaker.suite.yaml"),
        &example("meshguard.suite.yaml"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().last(),
        Some("12 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_failing_expectation_exits_1_and_says_what_differed() {
    let suite = format!(
        r#"module: {module}
config: {{"header": "x-stamp", "value": "v1"}}
tests:
  - name: stamps
    steps:
      - request: {{path: /}}
        expect: {{status: 200, upstreamHeaders: {{x-stamp: v1}}}}
  - name: wrong on purpose
    steps:
      - request: {{path: /}}
        expect: {{status: 201, upstreamHeaders: {{x-stamp: v2, x-absent: null}}}}
"#,
        module = module("meshguard_stamp")
    );
    let path = scratch("failing.suite.yaml", &suite);
    let out = meshguard(&["filter", "test", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("FAIL  wrong on purpose"), "{stdout}");
    assert!(
        stdout.contains("step 1 (GET /): status 200, expected 201"),
        "{stdout}"
    );
    assert!(
        stdout.contains("upstream header x-stamp: v1, expected v2"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn validate_prints_the_filters_own_rejection() {
    let bad = scratch(
        "bad-limits.json",
        r#"{"limits":[{"name":"x","key":[{"header":"u"}],"rate":{"requests":0,"per":"second"}}]}"#,
    );
    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard_rate_limit"),
        "--config",
        bad.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}");
    assert!(stdout.starts_with("rejected: "), "{stdout}");
    assert!(
        stdout.contains("invalid configuration at `limits[0].rate.requests`"),
        "{stdout}"
    );

    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard_rate_limit"),
        "--config",
        &example("rate-limit.config.json"),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("ok: meshguard_rate_limit.wasm accepts"));

    // The meshguard module like any other: its sections, and errors with their path.
    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard"),
        "--config",
        &example("meshguard.config.json"),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    let wrapped = scratch(
        "bad-pipeline.json",
        r#"{"rateLimit":{"limits":[{"name":"x","key":[{"header":"u"}],"rate":{"requests":0,"per":"second"}}]}}"#,
    );
    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard"),
        "--config",
        wrapped.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}");
    assert!(
        stdout.contains("invalid configuration at `rateLimit.limits[0].rate.requests`"),
        "{stdout}"
    );

    // An `authz` section needs the build with the Rego engine: `meshguard` says which to use.
    let with_authz = scratch(
        "pipeline-authz.json",
        r#"{"authz":{"modules":{"p.rego":"package envoy.authz\nimport rego.v1\ndefault allow := true\n"}}}"#,
    );
    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard"),
        "--config",
        with_authz.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}");
    assert!(
        stdout.contains("invalid configuration at `authz`")
            && stdout.contains("no Rego engine")
            && stdout.contains("meshguard_with_authz.wasm"),
        "{stdout}"
    );
    let out = meshguard(&[
        "filter",
        "validate",
        &module("meshguard_with_authz"),
        "--config",
        with_authz.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
}

#[test]
fn load_and_usage_errors_exit_2_and_say_what_to_do() {
    let missing = meshguard(&[
        "filter",
        "validate",
        "/nonexistent/filter.wasm",
        "--config",
        &example("stamp.config.json"),
    ]);
    assert_eq!(code(&missing), 2);
    assert!(
        text(&missing.stderr).contains("cargo xtask build-filters"),
        "{}",
        text(&missing.stderr)
    );

    let not_wasm = meshguard(&[
        "filter",
        "validate",
        &example("stamp.config.json"),
        "--config",
        &example("stamp.config.json"),
    ]);
    assert_eq!(code(&not_wasm), 2);
    assert!(
        text(&not_wasm.stderr).contains("is not a WebAssembly binary"),
        "{}",
        text(&not_wasm.stderr)
    );

    let typo = scratch(
        "typo.request.yaml",
        "request:\n  path: /\n  heders: {a: b}\n",
    );
    let out = meshguard(&[
        "filter",
        "run",
        &module("meshguard_stamp"),
        "--config",
        &example("stamp.config.json"),
        "--request",
        typo.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 2, "{stderr}");
    assert!(
        stderr.contains("unknown field `heders`") && stderr.contains("line"),
        "{stderr}"
    );

    let rejected = meshguard(&[
        "filter",
        "run",
        &module("meshguard_stamp"),
        "--config",
        scratch("bad-stamp.json", r#"{"header":"Bad Name"}"#)
            .to_str()
            .unwrap(),
        "--request",
        &example("stamp.request.yaml"),
    ]);
    assert_eq!(code(&rejected), 2);
    assert!(
        text(&rejected.stderr).contains("meshguard filter validate"),
        "{}",
        text(&rejected.stderr)
    );

    let usage = meshguard(&["filter", "run", &module("meshguard_stamp")]);
    assert_eq!(code(&usage), 2);
    assert!(text(&usage.stderr).contains("--request"));
}

#[test]
fn example_files_exist_for_every_documented_command() {
    for name in [
        "stamp.request.yaml",
        "rate-limit.request.yaml",
        "canary.request.yaml",
        "rate-limit.suite.yaml",
        "circuit-breaker.suite.yaml",
        "meshguard.suite.yaml",
        "meshguard.config.json",
        "authz.request.yaml",
        "authz.suite.yaml",
    ] {
        assert!(Path::new(&example(name)).is_file(), "{name}");
    }
}

#[test]
fn run_shows_which_rule_of_the_rbac_policy_decided() {
    // The example configuration carries the RBAC policy unchanged.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("authz.config.json")).unwrap())
            .unwrap();
    let rbac =
        std::fs::read_to_string(workspace_root().join("policies/envoy-authz/rbac.rego")).unwrap();
    assert_eq!(config["modules"]["rbac.rego"], rbac.as_str());

    let out = meshguard(&[
        "filter",
        "run",
        &module("meshguard_authz"),
        "--config",
        &example("authz.config.json"),
        "--request",
        &example("authz.request.yaml"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    // Allowed by the customers-read-their-orders rule, denied by the default, refunded by the
    // admin rule: each named by module and line.
    assert!(stdout.contains("rbac.rego:41"), "{stdout}");
    assert!(stdout.contains("rbac.rego:20"), "{stdout}");
    assert!(stdout.contains("rbac.rego:69"), "{stdout}");

    let suite = meshguard(&["filter", "test", &example("authz.suite.yaml")]);
    let stdout = text(&suite.stdout);
    assert_eq!(code(&suite), 0, "{stdout}{}", text(&suite.stderr));
    assert_eq!(
        stdout.lines().last(),
        Some("6 passed, 0 failed"),
        "{stdout}"
    );
}
