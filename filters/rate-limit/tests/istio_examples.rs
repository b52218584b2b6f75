//! The manifests in `istio/rate-limit/` must carry configurations this filter accepts: every
//! WasmPlugin's `pluginConfig` and every EnvoyFilter's configuration string goes through the
//! filter's own parser, so an example cannot drift into something Envoy would refuse at
//! configure time. The examples must also cover what the issue asks of them.

use meshguard_rate_limit::config::{Config, KeyPart, parse_config};
use serde_yaml::Value;

fn documents() -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents("rate-limit")
}

/// Every filter configuration in the manifests: where it is, and the parsed config.
fn configurations() -> Vec<(String, Config)> {
    let mut found = Vec::new();
    for (name, document) in documents() {
        let raw: Vec<(String, Vec<u8>)> = match document["kind"].as_str() {
            Some("WasmPlugin") => {
                assert_eq!(
                    document["apiVersion"].as_str(),
                    Some("extensions.istio.io/v1alpha1")
                );
                assert_eq!(
                    document["spec"]["phase"].as_str(),
                    Some("AUTHZ"),
                    "{name}: after the JWT filter (AUTHN)"
                );
                assert!(
                    document["spec"]["url"]
                        .as_str()
                        .is_some_and(|url| url.contains("rate-limit")),
                    "{name}: loads the rate-limit module"
                );
                let config = &document["spec"]["pluginConfig"];
                assert!(!config.is_null(), "{name}: no pluginConfig");
                vec![(
                    format!("{name}: pluginConfig"),
                    serde_json::to_vec(config).unwrap(),
                )]
            }
            Some("EnvoyFilter") => meshguard_testkit::istio::envoy_filter_configurations(
                &name,
                &document,
                "meshguard-rate-limit",
            ),
            other => panic!("{name}: unexpected kind {other:?}"),
        };
        for (place, bytes) in raw {
            let config = parse_config(&bytes).unwrap_or_else(|err| panic!("{place}: {err}"));
            found.push((place, config));
        }
    }
    found
}

#[test]
fn every_example_configuration_is_accepted() {
    let configs = configurations();
    assert!(configs.len() >= 3, "{} configurations", configs.len());
}

#[test]
fn the_examples_cover_the_commerce_limits() {
    let configs = configurations();
    let limits: Vec<_> = configs
        .iter()
        .flat_map(|(place, config)| config.limits.iter().map(move |l| (place, l)))
        .collect();
    let has = |what: &str, pred: &dyn Fn(&meshguard_rate_limit::config::Limit) -> bool| {
        assert!(
            limits.iter().any(|(_, limit)| pred(limit)),
            "no {what} example"
        );
    };
    has("per-user limit on /api/orders", &|l| {
        format!("{:?}", l.matcher.path).contains("/api/orders")
            && l.key == [KeyPart::Header("x-jwt-sub".into())]
    });
    has("per-IP limit on login", &|l| {
        format!("{:?}", l.matcher.path).contains("login")
            && matches!(l.key.as_slice(), [KeyPart::ClientIp])
    });
    has("global limit on flash-sale endpoints", &|l| {
        format!("{:?}", l.matcher.path).contains("flash-sale")
            && matches!(l.key.as_slice(), [KeyPart::Constant(_)])
    });
    // The EnvoyFilter says the same as the gateway WasmPlugin.
    let by_place = |file: &str| {
        configs
            .iter()
            .find(|(place, _)| place.starts_with(file))
            .map(|(_, config)| {
                config
                    .limits
                    .iter()
                    .map(|l| (l.name.clone(), l.requests, l.per, l.burst, l.key.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap()
    };
    assert_eq!(
        by_place("gateway-envoyfilter.yaml"),
        by_place("gateway-wasmplugin.yaml")
    );
}

#[test]
fn the_global_example_asks_the_rate_limit_service_after_the_local_limits() {
    let configs = configurations();
    let globals: Vec<_> = configs
        .iter()
        .flat_map(|(place, config)| config.globals.iter().map(move |l| (place, l)))
        .collect();
    assert!(globals.len() >= 3, "{} global limits", globals.len());
    for (place, limit) in &globals {
        assert!(
            place.starts_with("gateway-global-wasmplugin.yaml"),
            "{place}: global limits live in their own plugin"
        );
        // The cluster of istio/rate-limit-service/gateway-cluster-envoyfilter.yaml and the
        // domain of its ConfigMap.
        assert_eq!(
            limit.global.cluster, "meshguard_rate_limit",
            "{}",
            limit.name
        );
        assert_eq!(limit.global.domain, "commerce-edge", "{}", limit.name);
        assert!(limit.global.timeout <= std::time::Duration::from_millis(50));
    }
    // Local first: the global plugin runs after the local one (lower priority runs later).
    let priority = |file: &str| {
        documents()
            .into_iter()
            .find(|(name, _)| name.starts_with(file))
            .map(|(_, doc)| doc["spec"]["priority"].as_i64().unwrap())
            .unwrap()
    };
    assert!(priority("gateway-global-wasmplugin.yaml") < priority("gateway-wasmplugin.yaml"));
}
