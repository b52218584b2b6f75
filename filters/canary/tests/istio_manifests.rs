//! The Istio manifests in `istio/canary/` agree with the filter: every WasmPlugin's
//! `pluginConfig` is accepted by the filter's own parser, and for every version the filter can
//! set, the VirtualServices route a request carrying that route header to the DestinationRule
//! subset of the same name (and a request without it to the stable subset).

use meshguard_canary::parse_config;
use serde_yaml::Value;

fn manifests() -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents("canary")
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .map(|(_, doc)| doc)
        .filter(|doc| doc["kind"] == kind)
        .collect()
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn seq(value: &Value) -> &[Value] {
    value.as_sequence().map_or(&[], |s| s.as_slice())
}

/// Istio's first-match HTTP routing: the destination (host, subset) for a path and headers.
fn route<'a>(vs: &'a Value, path: &str, headers: &[(&str, &str)]) -> Option<(&'a str, &'a str)> {
    let matches = |m: &Value| {
        let uri_ok = m["uri"]["prefix"]
            .as_str()
            .is_none_or(|prefix| path.starts_with(prefix));
        let headers_ok = m["headers"].as_mapping().is_none_or(|wanted| {
            wanted.iter().all(|(name, rule)| {
                headers
                    .iter()
                    .any(|(k, v)| *k == str_of(name) && Some(*v) == rule["exact"].as_str())
            })
        });
        uri_ok && headers_ok
    };
    seq(&vs["spec"]["http"])
        .iter()
        .find(|http| {
            let conditions = seq(&http["match"]);
            conditions.is_empty() || conditions.iter().any(matches)
        })
        .map(|http| {
            let destination = &seq(&http["route"])[0]["destination"];
            (str_of(&destination["host"]), str_of(&destination["subset"]))
        })
}

#[test]
fn every_plugin_config_is_accepted_by_the_filter() {
    let docs = manifests();
    let plugins = kind(&docs, "WasmPlugin");
    assert_eq!(plugins.len(), 2, "the sidecar and the edge plugin");
    for plugin in plugins {
        let name = str_of(&plugin["metadata"]["name"]);
        // Istio hands `pluginConfig` to the filter as JSON.
        let json = serde_json::to_vec(&plugin["spec"]["pluginConfig"]).unwrap();
        let config = parse_config(&json).unwrap_or_else(|err| panic!("{name}: {err}"));
        let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "user",
                "product",
                "cart",
                "order",
                "payment",
                "inventory",
                "search"
            ],
            "{name} covers every commerce service"
        );
    }
}

#[test]
fn every_version_the_filter_sets_reaches_its_subset() {
    let docs = manifests();
    let rules = kind(&docs, "DestinationRule");
    let services = kind(&docs, "VirtualService");
    for plugin in kind(&docs, "WasmPlugin") {
        let plugin_name = str_of(&plugin["metadata"]["name"]);
        let json = serde_json::to_vec(&plugin["spec"]["pluginConfig"]).unwrap();
        let config = parse_config(&json).unwrap();
        let edge = plugin["spec"]["selector"]["matchLabels"]["istio"] == "ingressgateway";
        for service in &config.services {
            let host = format!("{}.commerce.svc.cluster.local", service.name);
            let rule = rules
                .iter()
                .find(|r| str_of(&r["spec"]["host"]) == host)
                .unwrap_or_else(|| panic!("no DestinationRule for {host}"));
            let vs = if edge {
                services
                    .iter()
                    .find(|vs| str_of(&vs["metadata"]["name"]) == "commerce-edge")
                    .expect("the edge VirtualService")
            } else {
                services
                    .iter()
                    .find(|vs| str_of(&vs["spec"]["hosts"][0]) == host)
                    .unwrap_or_else(|| panic!("no VirtualService for {host}"))
            };
            let path = match &service.matcher.path {
                Some(meshguard_filter_core::route::PathMatch::Prefix(prefix)) => prefix.clone(),
                _ => "/".into(),
            };
            for version in service.ring.versions() {
                let subset = seq(&rule["spec"]["subsets"])
                    .iter()
                    .find(|s| str_of(&s["name"]) == version.name)
                    .unwrap_or_else(|| panic!("{host} has no subset {}", version.name));
                assert_eq!(str_of(&subset["labels"]["version"]), version.name);
                let header = [(config.route_header.as_str(), version.name.as_str())];
                assert_eq!(
                    route(vs, &format!("{path}/x"), &header),
                    Some((host.as_str(), version.name.as_str())),
                    "{plugin_name}: {} {} with {header:?}",
                    service.name,
                    path
                );
            }
            let stable = &service.ring.versions()[0].name;
            assert_eq!(
                route(vs, &format!("{path}/x"), &[]),
                Some((host.as_str(), stable.as_str())),
                "{plugin_name}: {} without the route header goes to the stable subset",
                service.name
            );
        }
    }
}

#[test]
fn the_edge_strips_the_internal_override_gate() {
    let docs = manifests();
    let edge = kind(&docs, "VirtualService")
        .into_iter()
        .find(|vs| str_of(&vs["metadata"]["name"]) == "commerce-edge")
        .unwrap();
    for http in seq(&edge["spec"]["http"]) {
        let removed: Vec<&str> = seq(&http["headers"]["request"]["remove"])
            .iter()
            .map(str_of)
            .collect();
        assert!(
            removed.contains(&"x-meshguard-internal"),
            "{}",
            str_of(&http["name"])
        );
    }
}
