//! envoyproxy/ratelimit's README examples as data: each configuration, then requests and the
//! limit (rule, requests per unit) each must get.

use super::*;
use crate::config::Config;

/// (descriptor entries, expected (rule, requests_per_unit) or None).
type Case<'a> = (&'a [(&'a str, &'a str)], Option<(&'a str, u32)>);

fn check(yaml: &str, cases: &[Case<'_>]) {
    let config = Config::from_text("test.yaml", yaml).unwrap();
    let name = config.domain_names()[0].to_string();
    let domain = config.domain(&name).unwrap();
    for (entries, expected) in cases {
        let got = find(domain, entries).map(|a| {
            let per_unit = a.limit.rate.map_or(u32::MAX, |r| r.requests_per_unit);
            (a.rule, per_unit)
        });
        let expected = expected.map(|(rule, n)| (rule.to_string(), n));
        assert_eq!(got, expected, "{entries:?}");
    }
}

#[test]
fn example_1_key_and_value() {
    check(
        "domain: mongo_cps\ndescriptors:\n  - key: database\n    value: users\n    rate_limit:\n      unit: second\n      requests_per_unit: 500\n  - key: database\n    value: default\n    rate_limit:\n      unit: second\n      requests_per_unit: 500\n",
        &[
            (&[("database", "users")], Some(("database_users", 500))),
            (&[("database", "default")], Some(("database_default", 500))),
            (&[("database", "other")], None),
            (&[("db", "users")], None),
        ],
    );
}

#[test]
fn example_2_nested_and_key_only() {
    check(
        "domain: messaging\ndescriptors:\n  - key: message_type\n    value: marketing\n    descriptors:\n      - key: to_number\n        rate_limit:\n          unit: day\n          requests_per_unit: 5\n  - key: to_number\n    rate_limit:\n      unit: day\n      requests_per_unit: 100\n",
        &[
            (
                &[("message_type", "marketing"), ("to_number", "2061111111")],
                Some(("message_type_marketing.to_number", 5)),
            ),
            (&[("to_number", "2061111111")], Some(("to_number", 100))),
            (&[("message_type", "marketing")], None),
            (&[("message_type", "alert"), ("to_number", "1")], None),
        ],
    );
}

#[test]
fn example_3_the_most_specific_value_wins() {
    check(
        "domain: edge_proxy_per_ip\ndescriptors:\n  - key: remote_address\n    rate_limit:\n      unit: second\n      requests_per_unit: 10\n  - key: remote_address\n    value: 50.0.0.5\n    rate_limit:\n      unit: second\n      requests_per_unit: 0\n",
        &[
            (
                &[("remote_address", "50.0.0.1")],
                Some(("remote_address", 10)),
            ),
            (
                &[("remote_address", "50.0.0.5")],
                Some(("remote_address_50.0.0.5", 0)),
            ),
        ],
    );
}

#[test]
fn example_4_depth_must_match() {
    let one_level = "domain: example4\ndescriptors:\n  - key: key\n    value: value\n    rate_limit:\n      requests_per_unit: 300\n      unit: second\n";
    check(
        one_level,
        &[(&[("key", "value"), ("subkey", "subvalue")], None)],
    );
    let two_levels = "domain: example4\ndescriptors:\n  - key: key\n    value: value\n    descriptors:\n      - key: subkey\n        rate_limit:\n          requests_per_unit: 300\n          unit: second\n";
    check(
        two_levels,
        &[
            (
                &[("key", "value"), ("subkey", "subvalue")],
                Some(("key_value.subkey", 300)),
            ),
            (&[("key", "value")], None),
        ],
    );
}

#[test]
fn example_5_unlimited() {
    check(
        "domain: internal\ndescriptors:\n  - key: ldap\n    rate_limit:\n      unlimited: true\n  - key: azure\n    rate_limit:\n      unit: minute\n      requests_per_unit: 100\n",
        &[
            (&[("ldap", "x")], Some(("ldap", u32::MAX))),
            (&[("azure", "x")], Some(("azure", 100))),
        ],
    );
}

#[test]
fn example_6_shadow_mode_is_carried() {
    let config = Config::from_text(
        "t.yaml",
        "domain: example6\ndescriptors:\n  - key: service\n    descriptors:\n      - key: user\n        value: user-a\n        rate_limit:\n          requests_per_unit: 10\n          unit: second\n        shadow_mode: true\n      - key: user\n        value: user-b\n        rate_limit:\n          requests_per_unit: 20\n          unit: second\n",
    )
    .unwrap();
    let domain = config.domain("example6").unwrap();
    let a = find(domain, &[("service", "auth"), ("user", "user-a")]).unwrap();
    assert!(a.limit.shadow);
    let b = find(domain, &[("service", "auth"), ("user", "user-b")]).unwrap();
    assert!(!b.limit.shadow);
}

#[test]
fn example_7_replaces() {
    let config = Config::from_text(
        "t.yaml",
        "domain: example7\ndescriptors:\n  - key: key_1\n    value: value_1\n    descriptors:\n      - key: user\n        value: bkthomps\n        rate_limit:\n          name: specific_limit\n          requests_per_unit: 5\n          unit: second\n  - key: key_2\n    value: value_2\n    descriptors:\n      - key: user\n        value: bkthomps\n        rate_limit:\n          replaces:\n            - name: specific_limit\n          requests_per_unit: 10\n          unit: second\n",
    )
    .unwrap();
    let domain = config.domain("example7").unwrap();
    let first = find(domain, &[("key_1", "value_1"), ("user", "bkthomps")]);
    let second = find(domain, &[("key_2", "value_2"), ("user", "bkthomps")]);
    // Alone, each applies.
    let mut alone = [first.clone()];
    apply_replaces(&mut alone);
    assert!(alone[0].is_some());
    // Together, the replaced one is dropped and the replacing one stays.
    let mut both = [first, second];
    apply_replaces(&mut both);
    assert!(both[0].is_none());
    assert_eq!(
        both[1]
            .as_ref()
            .and_then(|a| a.limit.rate)
            .map(|r| r.requests_per_unit),
        Some(10)
    );
}

#[test]
fn example_8_detailed_metric_names_the_value() {
    check(
        "domain: example8\ndescriptors:\n  - key: key1\n    detailed_metric: true\n    rate_limit:\n      unit: minute\n      requests_per_unit: 10\n  - key: key1\n    value: value1\n    rate_limit:\n      unit: minute\n      requests_per_unit: 20\n",
        &[
            (&[("key1", "unspecified")], Some(("key1_unspecified", 10))),
            (&[("key1", "value1")], Some(("key1_value1", 20))),
        ],
    );
}

#[test]
fn example_9_wildcard_values_match_by_prefix() {
    check(
        "domain: example9\ndescriptors:\n  - key: key1\n    value: value*\n    rate_limit:\n      unit: minute\n      requests_per_unit: 20\n  - key: key1\n    value: value-special*\n    rate_limit:\n      unit: minute\n      requests_per_unit: 5\n  - key: key1\n    value: value-exact\n    rate_limit:\n      unit: minute\n      requests_per_unit: 1\n",
        &[
            (&[("key1", "value_1")], Some(("key1_value*", 20))),
            (
                &[("key1", "value-special-2")],
                Some(("key1_value-special*", 5)),
            ),
            (&[("key1", "value-exact")], Some(("key1_value-exact", 1))),
            (&[("key1", "other")], None),
        ],
    );
}

#[test]
fn nested_wildcards_are_matched_at_their_own_level() {
    check(
        "domain: d\ndescriptors:\n  - key: tenant\n    descriptors:\n      - key: path\n        value: /api/*\n        rate_limit:\n          unit: second\n          requests_per_unit: 3\n",
        &[
            (
                &[("tenant", "a"), ("path", "/api/orders")],
                Some(("tenant.path_/api/*", 3)),
            ),
            (&[("tenant", "a"), ("path", "/web")], None),
        ],
    );
}

#[test]
fn an_allow_listed_value_stops_the_walk() {
    check(
        "domain: d\ndescriptors:\n  - key: client\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n  - key: client\n    value: trusted\n",
        &[
            (&[("client", "trusted")], None),
            (&[("client", "other")], Some(("client", 1))),
        ],
    );
}

#[test]
fn the_istio_task_configuration() {
    // Istio's global rate-limit task, its ConfigMap's config.yaml verbatim.
    let configmap: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../examples/istio-task-configmap.yaml")).unwrap();
    let text = configmap["data"]["config.yaml"].as_str().unwrap();
    check(
        text,
        &[
            (&[("PATH", "/productpage")], Some(("PATH_/productpage", 1))),
            (&[("PATH", "api")], Some(("PATH_api", 2))),
            (&[("PATH", "/reviews/1")], Some(("PATH", 100))),
        ],
    );
}
