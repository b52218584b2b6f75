//! The matcher against the examples in Envoy's and Istio's documentation
//! (`config.route.v3.RouteMatch`, `config.route.v3.HeaderMatcher`, Istio's `VirtualService`
//! hosts), plus the corners the differential Envoy test (`tests/tests/route_match.rs`) also
//! sends through a real Envoy route table.

use std::rc::Rc;

use super::*;
use crate::config::parse_json;

#[derive(Default)]
struct Request {
    path: &'static str,
    method: &'static str,
    authority: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    cluster: Option<&'static str>,
}

impl RequestFacts for Request {
    fn path(&self) -> Rc<str> {
        Rc::from(self.path)
    }
    fn method(&self) -> Rc<str> {
        Rc::from(self.method)
    }
    fn host(&self) -> Option<String> {
        self.authority.map(crate::request::host_of)
    }
    fn header(&self, name: &str) -> Option<Rc<str>> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| Rc::from(*value))
    }
    fn cluster(&self) -> Option<Rc<str>> {
        self.cluster.map(Rc::from)
    }
}

fn route(json: &str) -> RouteMatch {
    RouteMatch::try_from(parse_json::<RawRouteMatch>(json.as_bytes()).unwrap()).unwrap()
}

fn error(json: &str) -> ConfigError {
    match parse_json::<RawRouteMatch>(json.as_bytes()).and_then(RouteMatch::try_from) {
        Ok(_) => panic!("{json} must be refused"),
        Err(err) => err,
    }
}

fn path(path: &'static str) -> Request {
    Request {
        path,
        method: "GET",
        ..Request::default()
    }
}

/// `(route, path, matches)` rows.
fn check_paths(rows: &[(&str, &'static str, bool)]) {
    for (json, request_path, expected) in rows {
        assert_eq!(
            route(json).matches(&path(request_path)),
            *expected,
            "{json} on {request_path}"
        );
    }
}

#[test]
fn envoy_safe_regex_examples() {
    // RouteMatch.safe_regex: "The regex /b[io]t matches the path /bit; matches /bot; does not
    // match /bite; does not match /bit/bot." The query string is removed first.
    check_paths(&[
        (r#"{"regex":"/b[io]t"}"#, "/bit", true),
        (r#"{"regex":"/b[io]t"}"#, "/bot", true),
        (r#"{"regex":"/b[io]t"}"#, "/bite", false),
        (r#"{"regex":"/b[io]t"}"#, "/bit/bot", false),
        (r#"{"regex":"/b[io]t"}"#, "/bit?x=/bot", true),
        (r#"{"regex":"/b[io]t"}"#, "/xbit", false),
        // RE2's classes are ASCII: `\d` is [0-9].
        (r#"{"regex":"/v\\d+/.*"}"#, "/v2/items", true),
        (r#"{"regex":"/v\\d+/.*"}"#, "/v\u{0663}/items", false),
    ]);
}

#[test]
fn envoy_path_is_exact_without_the_query_string() {
    // RouteMatch.path: "the path must exactly match the :path header once the query string is
    // removed."
    check_paths(&[
        (r#"{"path":"/login"}"#, "/login", true),
        (r#"{"path":"/login"}"#, "/login?next=/home", true),
        (r#"{"path":"/login"}"#, "/login/", false),
        (r#"{"path":"/login"}"#, "/Login", false),
        (r#"{"path":"/login"}"#, "/login2", false),
        (r#"{"path":"/a%20b"}"#, "/a%20b", true),
        (r#"{"path":"/a%20b"}"#, "/a b", false),
    ]);
}

#[test]
fn envoy_prefix_matches_the_start_of_the_path_without_its_query() {
    // RouteMatch.prefix: "the prefix must match the beginning of the :path header". Envoy 1.40
    // compares it with the path without its query string (its PathMatcher removes query and
    // fragment first), as the differential test against a real route table shows.
    check_paths(&[
        (r#"{"prefix":"/api/orders"}"#, "/api/orders", true),
        (r#"{"prefix":"/api/orders"}"#, "/api/orders/17", true),
        (r#"{"prefix":"/api/orders"}"#, "/api/ordersearch", true),
        (r#"{"prefix":"/api/orders"}"#, "/api/orders?id=1", true),
        (r#"{"prefix":"/api/orders/"}"#, "/api/orders", false),
        (r#"{"prefix":"/api/orders/"}"#, "/api/orders?next=/", false),
        (r#"{"prefix":"/api/orders"}"#, "/API/orders", false),
        (r#"{"prefix":"/"}"#, "/anything", true),
    ]);
}

#[test]
fn envoy_header_matcher_examples() {
    let header = |json: &str, value: Option<&'static str>| {
        let request = Request {
            headers: value.map(|v| vec![("x-h", v)]).unwrap_or_default(),
            ..path("/")
        };
        route(&format!(r#"{{"headers":[{json}]}}"#)).matches(&request)
    };
    // invert_match: "The regex \d{3} does not match the value 1234, so it will match when
    // inverted."
    assert!(!header(r#"{"name":"x-h","regex":"\\d{3}"}"#, Some("1234")));
    assert!(header(
        r#"{"name":"x-h","regex":"\\d{3}","invert":true}"#,
        Some("1234")
    ));
    assert!(header(r#"{"name":"x-h","regex":"\\d{3}"}"#, Some("123")));
    // prefix_match: "The prefix abcd matches the value abcdxyz, but not for abcxyz."
    assert!(header(r#"{"name":"x-h","prefix":"abcd"}"#, Some("abcdxyz")));
    assert!(!header(r#"{"name":"x-h","prefix":"abcd"}"#, Some("abcxyz")));
    // exact_match: the whole value, case-sensitive.
    assert!(header(r#"{"name":"x-h","exact":"v2"}"#, Some("v2")));
    assert!(!header(r#"{"name":"x-h","exact":"v2"}"#, Some("V2")));
    assert!(!header(r#"{"name":"x-h","exact":"v2"}"#, Some("v2 ")));
    // present_match: true requires the header, false its absence.
    assert!(header(r#"{"name":"x-h","present":true}"#, Some("")));
    assert!(!header(r#"{"name":"x-h","present":true}"#, None));
    assert!(header(r#"{"name":"x-h","present":false}"#, None));
    assert!(header(
        r#"{"name":"x-h","present":true,"invert":true}"#,
        None
    ));
    // An absent header fails every value condition, inverted or not.
    assert!(!header(r#"{"name":"x-h","exact":"v2"}"#, None));
    assert!(!header(
        r#"{"name":"x-h","exact":"v2","invert":true}"#,
        None
    ));
    assert!(!header(
        r#"{"name":"x-h","regex":".*","invert":true}"#,
        None
    ));
}

#[test]
fn regexes_match_bytes_as_envoy_does() {
    let header = |regex: &str, value: &'static str| {
        let request = Request {
            headers: vec![("x-h", value)],
            ..path("/")
        };
        let json = serde_json::json!({"headers": [{"name": "x-h", "regex": regex}]});
        route(&json.to_string()).matches(&request)
    };
    // `é` is two bytes: one `.` does not match it, two do (Envoy 1.40, tests/route_match.rs).
    assert!(header("caf.", "cafe"));
    assert!(!header("caf.", "café"));
    assert!(header("caf..", "café"));
    assert!(!header("caf..", "cafés"));
    // A literal non-ASCII character matches its bytes; `\x` escapes name bytes.
    assert!(header("café", "café"));
    assert!(!header("café", "cafe"));
    assert!(header(r"caf\xC3\xA9", "café"));
    assert!(!header(r"caf\xE9", "café"));
    // Classes stay ASCII: `\w` is no letter outside ASCII.
    assert!(!header(r"\w+", "café"));
    assert!(header(r"\w+\W+", "café"));
}

#[test]
fn istio_host_forms_with_the_port_stripped() {
    let on = |host: &'static str| Request {
        authority: Some(host),
        ..path("/")
    };
    let hosts = route(r#"{"hosts":["shop.example.com","*.search.example.com"]}"#);
    for (authority, expected) in [
        ("shop.example.com", true),
        ("Shop.Example.Com:8443", true),
        ("eu.search.example.com", true),
        ("a.b.search.example.com", true),
        ("search.example.com", false),
        ("www.shop.example.com", false),
        ("example.com", false),
    ] {
        assert_eq!(hosts.matches(&on(authority)), expected, "{authority}");
    }
    assert!(route(r#"{"hosts":["*"]}"#).matches(&path("/")));
    assert!(!hosts.matches(&path("/")), "no :authority, no host match");
}

#[test]
fn methods_and_cluster() {
    let both = route(r#"{"methods":["get","HEAD"],"cluster":"outbound|80|v2|product"}"#);
    let request = |method, cluster| Request {
        method,
        cluster,
        ..path("/")
    };
    assert!(both.matches(&request("GET", Some("outbound|80|v2|product"))));
    assert!(both.matches(&request("HEAD", Some("outbound|80|v2|product"))));
    assert!(!both.matches(&request("POST", Some("outbound|80|v2|product"))));
    assert!(!both.matches(&request("GET", Some("outbound|80|v1|product"))));
    assert!(!both.matches(&request("GET", None)));
    assert!(!both.matches(&request("get", Some("outbound|80|v2|product"))));
}

#[test]
fn every_condition_must_hold_and_empty_matches_all() {
    assert!(route("{}").matches(&Request::default()));
    let all = route(
        r#"{"prefix":"/api","methods":["POST"],"hosts":["*.shop"],
            "headers":[{"name":"x-a","present":true}]}"#,
    );
    let good = Request {
        path: "/api/x",
        method: "POST",
        authority: Some("eu.shop"),
        headers: vec![("x-a", "1")],
        cluster: None,
    };
    assert!(all.matches(&good));
    for broken in [
        Request {
            path: "/other",
            ..good_clone(&good)
        },
        Request {
            method: "GET",
            ..good_clone(&good)
        },
        Request {
            authority: Some("shop"),
            ..good_clone(&good)
        },
        Request {
            headers: vec![],
            ..good_clone(&good)
        },
    ] {
        assert!(!all.matches(&broken));
    }
}

fn good_clone(request: &Request) -> Request {
    Request {
        path: request.path,
        method: request.method,
        authority: request.authority,
        headers: request.headers.clone(),
        cluster: request.cluster,
    }
}

#[test]
fn configuration_errors_name_the_field() {
    for (json, field) in [
        (r#"{"path":"/a","prefix":"/b"}"#, "."),
        (r#"{"prefix":"api"}"#, "prefix"),
        (r#"{"path":"a"}"#, "path"),
        (r#"{"prefix":"/search?q="}"#, "prefix"),
        (r#"{"path":"/a#b"}"#, "path"),
        (r#"{"regex":"("}"#, "regex"),
        (r#"{"methods":[]}"#, "methods"),
        (r#"{"methods":["GET","G T"]}"#, "methods[1]"),
        (r#"{"hosts":[]}"#, "hosts"),
        (r#"{"hosts":["shop:8080"]}"#, "hosts[0]"),
        (r#"{"hosts":["a","*x.shop"]}"#, "hosts[1]"),
        (
            r#"{"headers":[{"name":"X-Upper","present":true}]}"#,
            "headers[0].name",
        ),
        (
            r#"{"headers":[{"name":"x","exact":"a","prefix":"b"}]}"#,
            "headers[0]",
        ),
        (r#"{"headers":[{"name":"x"}]}"#, "headers[0]"),
        (
            r#"{"headers":[{"name":"x","regex":"["}]}"#,
            "headers[0].regex",
        ),
        (r#"{"cluster":""}"#, "cluster"),
        (r#"{"regex":"/\\p{L}+"}"#, "regex"),
        (r#"{"pathPrefix":"/a"}"#, "pathPrefix"),
        (
            r#"{"headers":[{"name":"x","equals":"a"}]}"#,
            "headers[0].equals",
        ),
    ] {
        assert_eq!(error(json).field, field, "{json}: {}", error(json));
    }
}
