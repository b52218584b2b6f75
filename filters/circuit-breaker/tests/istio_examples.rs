//! The Istio manifests in `istio/circuit-breaker/` carry configurations this filter must
//! accept: every WasmPlugin's `pluginConfig` and every EnvoyFilter's configuration string is run
//! through the filter's own parser, so an example can never drift into something Envoy would
//! refuse at configure time.

use meshguard_circuit_breaker::config::{Config, parse_config};
use serde_yaml::Value;

/// Every document of every manifest: (file name, document).
fn documents() -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents("circuit-breaker")
}

/// The filter configurations in a document, each with where it was found.
fn configurations(name: &str, document: &Value) -> Vec<(String, Vec<u8>)> {
    match document["kind"].as_str() {
        Some("WasmPlugin") => {
            assert_eq!(
                document["apiVersion"].as_str(),
                Some("extensions.istio.io/v1alpha1"),
                "{name}"
            );
            assert!(
                document["spec"]["url"]
                    .as_str()
                    .is_some_and(|url| url.contains("circuit-breaker")),
                "{name}: the WasmPlugin must load the circuit-breaker module"
            );
            let config = &document["spec"]["pluginConfig"];
            assert!(!config.is_null(), "{name}: no pluginConfig");
            vec![(
                format!("{name}: pluginConfig"),
                serde_json::to_vec(config).unwrap(),
            )]
        }
        Some("EnvoyFilter") => meshguard_testkit::istio::envoy_filter_configurations(
            name,
            document,
            "meshguard-circuit-breaker",
        ),
        other => panic!("{name}: unexpected kind {other:?}"),
    }
}

fn all_configurations() -> Vec<(String, Config)> {
    documents()
        .iter()
        .flat_map(|(name, document)| configurations(name, document))
        .map(|(place, bytes)| {
            let config =
                parse_config(&bytes).unwrap_or_else(|err| panic!("{place} is rejected: {err}"));
            (place, config)
        })
        .collect()
}

#[test]
fn every_example_configuration_is_accepted() {
    let configs = all_configurations();
    let places: Vec<&str> = configs.iter().map(|(place, _)| place.as_str()).collect();
    for expected in [
        "payment-wasmplugin.yaml: pluginConfig",
        "payment-envoyfilter.yaml: configPatches[0]",
        "product-wasmplugin.yaml: pluginConfig",
        "product-envoyfilter.yaml: configPatches[0]",
    ] {
        assert!(places.contains(&expected), "{expected} missing: {places:?}");
    }
}

#[test]
fn fallback_bodies_declared_as_json_are_json() {
    for (place, config) in all_configurations() {
        for breaker in &config.breakers {
            let json = breaker
                .fallback
                .headers
                .iter()
                .any(|(name, value)| name == "content-type" && value == "application/json");
            if json {
                serde_json::from_slice::<serde_json::Value>(&breaker.fallback.body)
                    .unwrap_or_else(|err| panic!("{place} `{}`: {err}", breaker.name));
            }
        }
    }
}

#[test]
fn product_examples_answer_with_a_degraded_product_detail() {
    let configs = all_configurations();
    let details: Vec<_> = configs
        .iter()
        .filter(|(place, _)| place.starts_with("product-"))
        .flat_map(|(_, config)| &config.breakers)
        .filter(|breaker| breaker.name == "product-detail")
        .collect();
    assert_eq!(details.len(), 2, "the WasmPlugin and the EnvoyFilter");
    for breaker in details {
        assert_eq!(breaker.fallback.status, 200);
        assert!(
            breaker
                .fallback
                .headers
                .contains(&("x-meshguard-degraded".into(), "true".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&breaker.fallback.body).unwrap();
        assert_eq!(body["degraded"], true);
        assert!(body["product"]["name"].is_string(), "{body}");
        // By host and path: behind the canary plugin, the cluster a later plugin sees is the
        // route Envoy chose before the canary set its header.
        assert_eq!(breaker.matcher.cluster, None);
        assert_eq!(
            breaker.matcher.hosts,
            [meshguard_filter_core::route::HostPattern::Exact(
                "shop.example.com".into()
            )]
        );
    }
}

#[test]
fn payment_examples_guard_the_payment_service() {
    let configs = all_configurations();
    let payment: Vec<_> = configs
        .iter()
        .filter(|(place, _)| place.starts_with("payment-"))
        .flat_map(|(_, config)| &config.breakers)
        .collect();
    assert!(payment.len() >= 2);
    for breaker in payment {
        assert_eq!(breaker.matcher.cluster, None, "{}", breaker.name);
        let call = |method: &str, authority: &str| meshguard_filter_core::route::FixedRequest {
            authority: Some(authority.into()),
            ..meshguard_filter_core::route::FixedRequest::new(method, "/api/payments/p-1")
        };
        let to_payment = ["POST", "GET"].iter().any(|method| {
            breaker
                .matcher
                .matches(&call(method, "payment.commerce.svc.cluster.local:8080"))
        });
        assert!(to_payment, "{} guards calls to payment", breaker.name);
        let to_other = ["POST", "GET"].iter().any(|method| {
            breaker
                .matcher
                .matches(&call(method, "order.commerce.svc.cluster.local:8080"))
        });
        assert!(!to_other, "{} guards only payment", breaker.name);
    }
}
