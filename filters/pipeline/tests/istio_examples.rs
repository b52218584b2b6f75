//! The manifests in `istio/meshguard/` must carry a configuration the `meshguard` module
//! accepts, and say what the issue asks of the edge plugin: every stage, authentication
//! first and failing closed, authorization with the policy files of `policies/envoy-authz/`
//! unchanged, limits and canary keyed on the verified claim, and a breaker that judges the
//! clusters the canary stage declares.

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Env, Filter};
use meshguard_pipeline::Pipeline;

#[test]
fn the_edge_plugin_runs_every_stage_and_fails_closed() {
    let documents = meshguard_testkit::istio::documents("meshguard");
    assert!(!documents.is_empty());
    for (name, document) in documents {
        assert_eq!(document["kind"].as_str(), Some("WasmPlugin"), "{name}");
        let spec = &document["spec"];
        assert_eq!(spec["phase"].as_str(), Some("AUTHN"), "{name}");
        assert_eq!(spec["failStrategy"].as_str(), Some("FAIL_CLOSE"), "{name}");
        assert!(
            spec["url"]
                .as_str()
                .is_some_and(|url| url.contains("/meshguard:")),
            "{name}: loads the meshguard module"
        );
        let config = serde_json::to_vec(&spec["pluginConfig"]).unwrap();
        let root = Pipeline::configure(
            &mut MockHost::new(),
            &Env::single("meshguard-edge"),
            &config,
        )
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            root.stage_names(),
            ["jwtAuth", "authz", "rateLimit", "canary", "circuitBreaker"],
            "{name}"
        );
        let policies = meshguard_testkit::paths::workspace_root().join("policies/envoy-authz");
        for file in ["edge.rego", "rbac.rego"] {
            let expected = std::fs::read_to_string(policies.join(file)).unwrap();
            assert_eq!(
                spec["pluginConfig"]["authz"]["modules"][file].as_str(),
                Some(expected.as_str()),
                "{name}: authz carries policies/envoy-authz/{file} unchanged"
            );
        }
        assert_eq!(
            spec["pluginConfig"]["jwtAuth"]["providers"][0]["payloadInMetadata"].as_str(),
            Some("verified_jwt"),
            "{name}: the payload the policy reads"
        );
        let text = serde_json::to_string(&spec["pluginConfig"]).unwrap();
        assert!(
            text.contains(r#"{"claim":"sub"}"#),
            "{name}: keyed on the verified sub"
        );
        assert!(
            text.contains(r#""cluster":"outbound|8080|v2|product"#),
            "{name}"
        );
    }
}
