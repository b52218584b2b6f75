//! `meshguard policy eval`: a query over Rego, data and input, printed as JSON.

mod support;

use support::meshguard;

#[test]
fn evaluates_a_template_violation_for_an_input() {
    let dir = support::scratch("eval");
    std::fs::write(
        dir.join("input.yaml"),
        "review:\n  object:\n    kind: HorizontalPodAutoscaler\n    metadata: {name: search}\n    spec: {maxReplicas: 99}\nparameters:\n  maxReplicas: 20\n",
    )
    .unwrap();
    let input = dir.join("input.yaml");
    let run = meshguard(&[
        "policy",
        "eval",
        "--data",
        "policies/hpa-replicas/src.rego",
        "--input",
        input.to_str().unwrap(),
        "data.meshguardhpareplicas.violation",
    ]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let value = &doc["result"][0]["expressions"][0]["value"];
    assert_eq!(
        value[0]["msg"],
        "HorizontalPodAutoscaler <search> maxReplicas <99> is above the limit <20>"
    );
    assert_eq!(
        doc["result"][0]["expressions"][0]["text"],
        "data.meshguardhpareplicas.violation"
    );
}

#[test]
fn data_documents_bindings_and_fail() {
    let dir = support::scratch("eval-data");
    std::fs::write(dir.join("data.json"), r#"{"limits": {"max": 3}}"#).unwrap();
    let data = dir.join("data.json");
    let run = meshguard(&[
        "policy",
        "eval",
        "-d",
        data.to_str().unwrap(),
        "x := data.limits.max + 1",
    ]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["result"][0]["bindings"]["x"], 4);
    let run = meshguard(&[
        "policy",
        "eval",
        "--fail",
        "-d",
        data.to_str().unwrap(),
        "data.limits.min",
    ]);
    run.expect_code(1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap(),
        serde_json::json!({"result": []})
    );
}

#[test]
fn broken_inputs_are_load_errors() {
    meshguard(&[
        "policy",
        "eval",
        "-d",
        "cli/tests/fixtures/rego/broken/bad.rego",
        "data",
    ])
    .expect_code(2)
    .stderr_has(&["bad.rego:3:3"]);
    meshguard(&[
        "policy",
        "eval",
        "--input",
        "cli/tests/fixtures/check/broken.yaml",
        "input",
    ])
    .expect_code(2)
    .stderr_has(&["broken.yaml:11:1: document 2"]);
    meshguard(&["policy", "eval", "1 +"])
        .expect_code(2)
        .stderr_has(&["evaluating `1 +`"]);
}
