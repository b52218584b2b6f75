//! The manifests in `istio/meshguard/` must carry a configuration the module they load accepts,
//! and say what the issue asks of the edge plugins: authentication first and failing closed,
//! limits and canary keyed on the verified claim, and a breaker that judges the clusters the
//! canary stage declares. The plugin with an `authz` section loads `meshguard-with-authz` (the
//! build with the Rego engine) and carries the policy files of `policies/envoy-authz/`
//! unchanged; the plain one loads `meshguard`, which refuses an `authz` section.

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Env, Filter};
use meshguard_pipeline::Pipeline;

#[test]
fn the_edge_plugins_run_their_stages_and_fail_closed() {
    let documents = meshguard_testkit::istio::documents("meshguard");
    let mut images = Vec::new();
    for (name, document) in documents {
        assert_eq!(document["kind"].as_str(), Some("WasmPlugin"), "{name}");
        let spec = &document["spec"];
        assert_eq!(spec["phase"].as_str(), Some("AUTHN"), "{name}");
        assert_eq!(spec["failStrategy"].as_str(), Some("FAIL_CLOSE"), "{name}");
        let url = spec["url"].as_str().unwrap_or_default();
        let with_authz = url.contains("/meshguard-with-authz:");
        assert!(
            with_authz || url.contains("/meshguard:"),
            "{name}: loads a meshguard pipeline module: {url}"
        );
        assert_eq!(
            spec["pluginConfig"].get("authz").is_some(),
            with_authz,
            "{name}: an authz section needs the module with the Rego engine, and only it"
        );
        images.push(with_authz);
        let text = serde_json::to_string(&spec["pluginConfig"]).unwrap();
        assert!(
            text.contains(r#"{"claim":"sub"}"#),
            "{name}: keyed on the verified sub"
        );
        assert!(
            text.contains(r#""cluster":"outbound|8080|v2|product"#),
            "{name}"
        );
        if with_authz && !cfg!(feature = "authz") {
            // This build is meshguard.wasm's: it must refuse the section, naming it.
            let err = configure(&spec["pluginConfig"]).expect_err("no Rego engine in this build");
            assert_eq!(err.field, "authz", "{name}: {err}");
            continue;
        }
        let root = configure(&spec["pluginConfig"]).unwrap_or_else(|err| panic!("{name}: {err}"));
        let expected: &[&str] = if with_authz {
            &["jwtAuth", "authz", "rateLimit", "canary", "circuitBreaker"]
        } else {
            &["jwtAuth", "rateLimit", "canary", "circuitBreaker"]
        };
        assert_eq!(root.stage_names(), expected, "{name}");
        if with_authz {
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
        }
    }
    images.sort();
    assert_eq!(
        images,
        [false, true],
        "one plain edge plugin, one with authz"
    );
}

fn configure(
    config: &serde_yaml::Value,
) -> Result<meshguard_pipeline::PipelineRoot, meshguard_filter_core::ConfigError> {
    let config = serde_json::to_vec(config).unwrap();
    Pipeline::configure(
        &mut MockHost::new(),
        &Env::single("meshguard-edge"),
        &config,
    )
}
