//! The manifests in `istio/jwt-auth/` must carry configurations this filter accepts: the
//! WasmPlugin's `pluginConfig` and the EnvoyFilter's configuration string go through the filter's
//! own parser, so an example cannot drift into something Envoy would refuse at configure time.
//! The examples must also keep the promises their comments make.

use meshguard_jwt_auth::config::{Config, KeySource, Requirement, parse_config};
use serde_yaml::Value;

fn documents() -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents("jwt-auth")
}

fn parse(name: &str, bytes: &[u8]) -> Config {
    parse_config(bytes).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn remote_clusters(config: &Config) -> Vec<String> {
    config
        .providers
        .iter()
        .filter_map(|provider| match &provider.keys {
            KeySource::Remote(remote) => Some(remote.cluster.clone()),
            KeySource::Inline(_) => None,
        })
        .collect()
}

#[test]
fn wasm_plugin_is_valid_authn_and_fails_closed() {
    let mut seen = 0;
    for (name, document) in documents() {
        if document["kind"].as_str() != Some("WasmPlugin") {
            continue;
        }
        seen += 1;
        let spec = &document["spec"];
        assert_eq!(
            document["apiVersion"].as_str(),
            Some("extensions.istio.io/v1alpha1")
        );
        assert_eq!(spec["phase"].as_str(), Some("AUTHN"), "{name}");
        assert_eq!(spec["failStrategy"].as_str(), Some("FAIL_CLOSE"), "{name}");
        assert!(
            spec["url"]
                .as_str()
                .is_some_and(|url| url.contains("jwt-auth"))
        );
        let config = parse(&name, &serde_json::to_vec(&spec["pluginConfig"]).unwrap());
        assert_eq!(config.default_requirement, Requirement::Deny, "{name}");
        // Istio names a service's outbound cluster `outbound|PORT||HOST`.
        for cluster in remote_clusters(&config) {
            assert!(
                cluster.starts_with("outbound|") && cluster.contains("||"),
                "{name}: {cluster}"
            );
        }
        // The rate limiter (AUTHZ) keys on x-jwt-sub: it must be written and stripped here.
        assert!(
            config.protected_headers.iter().any(|h| h == "x-jwt-sub"),
            "{name}"
        );
        // Signed-in APIs require the provider; the catalogue does not.
        let needs = |method: &str, path: &str| {
            config
                .rules
                .iter()
                .find(|rule| {
                    rule.matches(&meshguard_filter_core::route::FixedRequest::new(
                        method, path,
                    ))
                })
                .map_or(&config.default_requirement, |rule| &rule.requirement)
                .clone()
        };
        for path in [
            "/api/orders",
            "/api/orders/17",
            "/api/cart",
            "/api/payments/p-1",
            "/api/users/me",
        ] {
            assert_eq!(
                needs("POST", path),
                Requirement::Provider(0),
                "{name}: {path}"
            );
        }
        assert_eq!(
            needs("GET", "/api/products/p-100"),
            Requirement::AllowMissing
        );
        assert_eq!(needs("DELETE", "/api/products/p-100"), Requirement::Deny);
        assert_eq!(needs("GET", "/api/ordersx"), Requirement::Deny);
        assert_eq!(needs("GET", "/healthz"), Requirement::None);
    }
    assert_eq!(seen, 1);
}

#[test]
fn envoy_filter_has_its_jwks_cluster_and_a_valid_configuration() {
    let mut seen = 0;
    for (name, document) in documents() {
        if document["kind"].as_str() != Some("EnvoyFilter") {
            continue;
        }
        seen += 1;
        assert_eq!(
            document["apiVersion"].as_str(),
            Some("networking.istio.io/v1alpha3")
        );
        let patches = document["spec"]["configPatches"].as_sequence().unwrap();
        let clusters: Vec<&str> = patches
            .iter()
            .filter(|patch| patch["applyTo"].as_str() == Some("CLUSTER"))
            .filter_map(|patch| patch["patch"]["value"]["name"].as_str())
            .collect();
        let filters: Vec<&Value> = patches
            .iter()
            .filter(|patch| patch["applyTo"].as_str() == Some("HTTP_FILTER"))
            .collect();
        assert_eq!(filters.len(), 1, "{name}");
        let filter = filters[0];
        assert_eq!(
            filter["patch"]["operation"].as_str(),
            Some("INSERT_FIRST"),
            "{name}: authentication runs first"
        );
        let wasm = &filter["patch"]["value"]["typed_config"]["config"];
        assert_eq!(
            wasm["vm_id"]
                .as_str()
                .or(wasm["vm_config"]["vm_id"].as_str()),
            Some("meshguard-jwt-auth")
        );
        assert_eq!(
            wasm["fail_open"].as_bool(),
            Some(false),
            "{name}: fails closed"
        );
        let value = wasm["configuration"]["value"].as_str().unwrap();
        let config = parse(&name, value.as_bytes());
        for cluster in remote_clusters(&config) {
            assert!(
                clusters.contains(&cluster.as_str()),
                "{name}: cluster {cluster} is defined by the EnvoyFilter"
            );
        }
        assert!(!remote_clusters(&config).is_empty());
    }
    assert_eq!(seen, 1);
}
