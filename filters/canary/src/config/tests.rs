//! Configuration parsing: what valid documents become, and which field each mistake names.

use super::*;

fn product(extra: &str) -> String {
    format!(
        r#"{{"services":[{{"name":"product","match":{{"hosts":["product"]}},
            "versions":[{{"name":"v1","weight":90}},{{"name":"v2","weight":10}}]{extra}}}]}}"#
    )
}

#[test]
fn a_full_document_becomes_validated_types() {
    let config = parse_config(
        br#"{
          "routeHeader": "X-Mesh-Version",
          "pinCookie": {"name": "mesh-canary", "maxAgeSeconds": 600, "path": "/shop",
                        "domain": "shop.example.com", "secure": true, "httpOnly": false,
                        "sameSite": "Strict"},
          "services": [{
            "name": "product",
            "match": {"hosts": ["Product", "product.commerce.svc.cluster.local.", "*.shop.example.com", "*",
                      "[::1]", "10.0.0.7"],
                      "prefix": "/api/products"},
            "versions": [{"name": "v1", "weight": 99.5},
                         {"name": "v2", "weight": 0.5, "cluster": "outbound|80|v2|product"}],
            "stickyKey": [{"claim": "sub"}, {"header": "X-User-Id"}, {"cookie": "session"}, "clientIp"],
            "unkeyedVersion": "V1",
            "overrides": {"header": "x-canary", "cookie": "canary",
                          "onlyWithHeader": {"name": "X-Internal", "value": "qa"}}
          }]
        }"#,
    )
    .unwrap();
    assert_eq!(config.route_header, "x-mesh-version");
    assert_eq!(
        config.pin_cookie,
        Some(PinCookie {
            name: "mesh-canary".into(),
            max_age_seconds: 600,
            path: "/shop".into(),
            domain: Some("shop.example.com".into()),
            secure: true,
            http_only: false,
            same_site: SameSite::Strict,
        })
    );
    let service = &config.services[0];
    use meshguard_filter_core::route::{HostPattern, PathMatch};
    assert_eq!(
        service.matcher.hosts,
        vec![
            HostPattern::Exact("product".into()),
            HostPattern::Exact("product.commerce.svc.cluster.local".into()),
            HostPattern::Suffix(".shop.example.com".into()),
            HostPattern::Any,
            HostPattern::Exact("[::1]".into()),
            HostPattern::Exact("10.0.0.7".into()),
        ]
    );
    assert!(matches!(&service.matcher.path, Some(PathMatch::Prefix(p)) if p == "/api/products"));
    assert_eq!(
        service.clusters,
        [None, Some("outbound|80|v2|product".to_string())]
    );
    assert!(!config.declares_clusters(), "v1 names no cluster");
    assert_eq!(service.ring.range(0), 0..9950);
    assert_eq!(service.ring.range(1), 9950..10_000);
    assert_eq!(
        service.sticky,
        vec![
            KeySource::Claim(meshguard_filter_core::request::ClaimPath::parse("sub").unwrap()),
            KeySource::Header("x-user-id".into()),
            KeySource::Cookie("session".into()),
            KeySource::ClientIp,
        ]
    );
    assert_eq!(service.unkeyed_version, Some(0));
    assert_eq!(
        service.overrides,
        Some(Overrides {
            header: Some("x-canary".into()),
            cookie: Some("canary".into()),
            only_with_header: Some(Gate {
                name: "x-internal".into(),
                value: Some("qa".into()),
            }),
        })
    );
}

#[test]
fn defaults_are_what_an_operator_expects() {
    let config = parse_config(product("").as_bytes()).unwrap();
    assert_eq!(config.route_header, DEFAULT_ROUTE_HEADER);
    assert_eq!(config.pin_cookie, None);
    let service = &config.services[0];
    assert!(service.sticky.is_empty());
    assert_eq!(service.unkeyed_version, None);
    assert_eq!(service.overrides, None);

    let pin = parse_config(
        br#"{"pinCookie":{"name":"pin"},"services":[{"name":"s","match":{"hosts":["*"]},
             "versions":[{"name":"v1","weight":100}]}]}"#,
    )
    .unwrap()
    .pin_cookie
    .unwrap();
    assert_eq!(pin.max_age_seconds, DEFAULT_PIN_MAX_AGE);
    assert_eq!(pin.path, "/");
    assert!(pin.http_only && !pin.secure);
    assert_eq!(pin.same_site, SameSite::Lax);
}

#[test]
fn the_sticky_key_accepts_the_unit_form_and_the_object_form() {
    for sources in [r#"["clientIp"]"#, r#"[{"clientIp":null}]"#] {
        let config = parse_config(product(&format!(r#","stickyKey":{sources}"#)).as_bytes());
        assert_eq!(
            config.unwrap().services[0].sticky,
            vec![KeySource::ClientIp]
        );
    }
}

/// Each invalid document and the field its error must name.
#[test]
fn every_mistake_names_its_field() {
    let cases: &[(&str, &str, &str)] = &[
        // (configuration, field, part of the message)
        // serde reports a missing field at its parent; the message names it.
        ("{}", ".", "missing field `services`"),
        (r#"{"services":[]}"#, "services", "at least one service"),
        (
            r#"{"routeHeader":"x mesh","services":[]}"#,
            "routeHeader",
            "header name",
        ),
        (r#"{"routeHedaer":"x"}"#, "routeHedaer", "unknown field"),
        (
            &product(r#","stickyKey":[{"header":"x-user"}],"overrides":{}"#),
            "services[0].overrides",
            "`header` and/or a `cookie`",
        ),
        (
            &product(r#","overrides":{"header":"bad header"}"#),
            "services[0].overrides.header",
            "header name",
        ),
        (
            &product(r#","overrides":{"header":"x-c","onlyWithHeader":{"name":""}}"#),
            "services[0].overrides.onlyWithHeader.name",
            "header name",
        ),
        (
            &product(r#","overrides":{"cookie":"a=b"}"#),
            "services[0].overrides.cookie",
            "cookie name",
        ),
        (
            &product(r#","stickyKey":[{"header":"x-user"},{"cookie":"a;b"}]"#),
            "services[0].stickyKey[1].cookie",
            "cookie name",
        ),
        (
            &product(r#","stickyKey":[{"jwtClaim":"sub"}]"#),
            "services[0].stickyKey[0]",
            "unknown variant `jwtClaim`",
        ),
        (
            &product(r#","unkeyedVersion":"v3""#),
            "services[0].unkeyedVersion",
            "no version is called `v3`",
        ),
        (
            &product(r#","pathPrefix":"/api""#),
            "services[0].pathPrefix",
            "unknown field",
        ),
        (
            &product(r#","colour":"blue""#),
            "services[0].colour",
            "unknown field",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":[]},"versions":[{"name":"v1","weight":100}]}]}"#,
            "services[0].match.hosts",
            "at least one host",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["a","product:8080"]},
                "versions":[{"name":"v1","weight":100}]}]}"#,
            "services[0].match.hosts[1]",
            "without a port",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["a b"]},"versions":[{"name":"v1","weight":100}]}]}"#,
            "services[0].match.hosts[0]",
            "not a host name",
        ),
        (
            r#"{"services":[{"name":"p.q","match":{"hosts":["*"]},"versions":[{"name":"v1","weight":100}]}]}"#,
            "services[0].name",
            "letters, digits",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},"versions":[]}]}"#,
            "services[0].versions",
            "at least one version",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":90},{"name":"v2","weight":5}]}]}"#,
            "services[0].versions",
            "add up to 95,",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10.005}]}]}"#,
            "services[0].versions[1].weight",
            "more than two decimals",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":110},{"name":"v2","weight":-10}]}]}"#,
            "services[0].versions[0].weight",
            "between 0 and 100",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":"ten"}]}]}"#,
            "services[0].versions[0].weight",
            "invalid type",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":50},{"name":"V1","weight":50}]}]}"#,
            "services[0].versions[1].name",
            "listed twice",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},"versions":[{"name":"v 2","weight":100}]}]}"#,
            "services[0].versions[0].name",
            "letters, digits",
        ),
        (
            r#"{"services":[{"name":"p","match":{"hosts":["*"]},"versions":[{"name":"v1","weight":100}]},
                           {"name":"P","match":{"hosts":["*"]},"versions":[{"name":"v1","weight":100}]}]}"#,
            "services[1].name",
            "listed twice",
        ),
        (
            r#"{"pinCookie":{"name":"pin","sameSite":"None"},"services":[]}"#,
            "pinCookie.sameSite",
            "secure: true",
        ),
        (
            r#"{"pinCookie":{"name":"pin","sameSite":"Sometimes"},"services":[]}"#,
            "pinCookie.sameSite",
            "unknown variant",
        ),
        (
            r#"{"pinCookie":{"name":"pin","path":"shop"},"services":[]}"#,
            "pinCookie.path",
            "cookie path",
        ),
        (
            r#"{"pinCookie":{"name":"pin","domain":"a;b"},"services":[]}"#,
            "pinCookie.domain",
            "cookie domain",
        ),
        (
            r#"{"pinCookie":{"nam":"pin"},"services":[]}"#,
            "pinCookie.nam",
            "unknown field",
        ),
        (
            r#"{"pinCookie":{"name":"pin","maxAgeSeconds":-1},"services":[]}"#,
            "pinCookie.maxAgeSeconds",
            "invalid value",
        ),
    ];
    for (config, field, message) in cases {
        let err = parse_config(config.as_bytes()).unwrap_err();
        assert_eq!(err.field, *field, "{config}\n=> {err}");
        assert!(err.message.contains(message), "{config}\n=> {err}");
    }
}

#[test]
fn weights_accept_two_decimals_and_fill_the_ring_exactly() {
    for (weights, ranges) in [
        (
            "[33.33, 33.33, 33.34]",
            vec![0..3333, 3333..6666, 6666..10_000],
        ),
        ("[0.01, 99.99]", vec![0..1, 1..10_000]),
        ("[0, 100]", vec![0..0, 0..10_000]),
        ("[100, 0]", vec![0..10_000, 10_000..10_000]),
    ] {
        let weights: Vec<f64> = serde_json::from_str(weights).unwrap();
        let versions: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!(r#"{{"name":"v{i}","weight":{w}}}"#))
            .collect();
        let config = parse_config(
            format!(
                r#"{{"services":[{{"name":"s","match":{{"hosts":["*"]}},"versions":[{}]}}]}}"#,
                versions.join(",")
            )
            .as_bytes(),
        )
        .unwrap();
        let ring = &config.services[0].ring;
        let got: Vec<_> = (0..weights.len()).map(|i| ring.range(i)).collect();
        assert_eq!(got, ranges, "{weights:?}");
    }
}
