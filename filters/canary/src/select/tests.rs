//! The decision, table by table: service matching, precedence, overrides and their gate, pins.

use std::collections::HashMap;
use std::rc::Rc;

use super::*;
use crate::config::parse_config;

#[derive(Default)]
struct FakeFacts {
    headers: HashMap<String, String>,
    cookies: HashMap<String, String>,
    claims: HashMap<String, String>,
    ip: Option<String>,
    random: Vec<u64>,
    lookups: Vec<String>,
}

impl FakeFacts {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    fn cookie(mut self, name: &str, value: &str) -> Self {
        self.cookies.insert(name.into(), value.into());
        self
    }

    fn claim(mut self, name: &str, value: &str) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Makes `value` the next random draw; without one, drawing panics.
    fn random(mut self, value: u64) -> Self {
        self.random.push(value);
        self
    }
}

impl Facts for FakeFacts {
    fn header(&mut self, name: &str) -> Option<String> {
        self.lookups.push(format!("header:{name}"));
        self.headers.get(name).cloned()
    }

    fn cookie(&mut self, name: &str) -> Option<String> {
        self.lookups.push(format!("cookie:{name}"));
        self.cookies.get(name).cloned()
    }

    fn claim(&mut self, path: &ClaimPath) -> Option<String> {
        self.lookups.push(format!("claim:{path}"));
        self.claims.get(&path.to_string()).cloned()
    }

    fn client_ip(&mut self) -> Option<String> {
        self.lookups.push("ip".into());
        self.ip.clone()
    }

    fn random(&mut self) -> u64 {
        self.random
            .pop()
            .expect("this decision must not draw randomness")
    }
}

const CONFIG: &str = r#"{
  "pinCookie": {"name": "pin"},
  "services": [
    {"name": "product", "match": {"hosts": ["product", "*.shop.example"], "prefix": "/api/products"},
     "versions": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}],
     "stickyKey": [{"header": "x-user-id"}, {"cookie": "session"}, "clientIp"],
     "overrides": {"header": "x-canary", "cookie": "canary",
                   "onlyWithHeader": {"name": "x-internal", "value": "qa"}}},
    {"name": "cart", "match": {"hosts": ["cart"]},
     "versions": [{"name": "v1", "weight": 50}, {"name": "v2", "weight": 50}],
     "stickyKey": [{"header": "x-user-id"}],
     "overrides": {"header": "x-canary"}},
    {"name": "search", "match": {"hosts": ["search"]},
     "versions": [{"name": "v1", "weight": 100}, {"name": "v2", "weight": 0}],
     "overrides": {"cookie": "canary"}},
    {"name": "catchall", "match": {"hosts": ["*"]}, "versions": [{"name": "v1", "weight": 100}]}
  ]
}"#;

fn config() -> Config {
    parse_config(CONFIG.as_bytes()).unwrap()
}

fn service<'c>(config: &'c Config, name: &str) -> &'c Service {
    config.services.iter().find(|s| s.name == name).unwrap()
}

/// A request as the service matcher sees it.
struct Request {
    authority: &'static str,
    path: &'static str,
}

impl RequestFacts for Request {
    fn path(&self) -> Rc<str> {
        Rc::from(self.path)
    }
    fn method(&self) -> Rc<str> {
        Rc::from("GET")
    }
    fn host(&self) -> Option<String> {
        Some(meshguard_filter_core::request::host_of(self.authority))
    }
    fn header(&self, _name: &str) -> Option<Rc<str>> {
        None
    }
    fn cluster(&self) -> Option<Rc<str>> {
        None
    }
}

#[test]
fn services_match_on_host_without_port_and_path_prefix() {
    let config = config();
    for (authority, path, expected) in [
        ("product", "/api/products/p-1", "product"),
        ("product:8080", "/api/products", "product"),
        ("PRODUCT.", "/api/products", "product"),
        ("www.shop.example:443", "/api/products?x", "product"),
        ("shop.example", "/api/products", "catchall"),
        ("product", "/api/orders", "catchall"),
        ("cart:80", "/anything", "cart"),
        ("user@cart", "/", "cart"),
        ("[::1]:9000", "/", "catchall"),
        ("product", "", "catchall"),
    ] {
        let found =
            find_service(&config, &Request { authority, path }).map(|(_, s)| s.name.as_str());
        assert_eq!(found, Some(expected), "{authority}{path}");
    }
}

#[test]
fn a_verified_claim_can_be_the_sticky_key() {
    let config = parse_config(
        br#"{"services":[{"name":"product","versions":[{"name":"v1","weight":50},{"name":"v2","weight":50}],
             "stickyKey":[{"claim":"sub"},{"header":"x-user-id"}]}]}"#,
    )
    .unwrap();
    let service = &config.services[0];
    let mut facts = FakeFacts::default()
        .claim("sub", "alice")
        .header("x-user-id", "bob");
    let chosen = select(service, None, &mut facts);
    assert_eq!(chosen.via, Via::Sticky(0));
    assert_eq!(
        chosen.version,
        service
            .ring
            .version_at(crate::hash::bucket("product", b"alice"))
    );
    assert_eq!(facts.lookups, ["claim:sub"], "the header is never read");
    let mut anonymous = FakeFacts::default().header("x-user-id", "bob");
    assert_eq!(select(service, None, &mut anonymous).via, Via::Sticky(1));
}

#[test]
fn the_sticky_key_decides_and_later_sources_are_not_read() {
    let config = config();
    let product = service(&config, "product");
    let mut facts = FakeFacts::default()
        .header("x-user-id", "alice")
        .cookie("session", "s1");
    let selection = select(product, None, &mut facts);
    let expected = product.ring.version_at(bucket("product", b"alice"));
    assert_eq!(selection.version, expected);
    assert_eq!(selection.via, Via::Sticky(0));
    assert!(!selection.override_denied);
    assert_eq!(
        facts.lookups,
        ["header:x-canary", "cookie:canary", "header:x-user-id"]
    );
}

#[test]
fn sources_fall_back_in_order_and_skip_empty_values() {
    let config = config();
    let product = service(&config, "product");
    for (facts, via, key) in [
        (
            FakeFacts::default()
                .header("x-user-id", "")
                .cookie("session", "s1"),
            Via::Sticky(1),
            "s1",
        ),
        (
            FakeFacts::default().ip("10.1.2.3"),
            Via::Sticky(2),
            "10.1.2.3",
        ),
    ] {
        let mut facts = facts;
        let selection = select(product, None, &mut facts);
        assert_eq!(selection.via, via);
        assert_eq!(
            selection.version,
            product.ring.version_at(bucket("product", key.as_bytes()))
        );
    }
}

#[test]
fn the_same_key_always_gets_the_same_version() {
    let config = config();
    let cart = service(&config, "cart");
    let mut seen = [0u32; 2];
    for user in 0..1_000 {
        let user = format!("user-{user}");
        let first = select(
            cart,
            None,
            &mut FakeFacts::default().header("x-user-id", &user),
        );
        for _ in 0..3 {
            let again = select(
                cart,
                None,
                &mut FakeFacts::default().header("x-user-id", &user),
            );
            assert_eq!(again, first, "{user}");
        }
        seen[first.version] += 1;
    }
    assert!(seen.iter().all(|n| *n > 400), "50/50 split: {seen:?}");
}

/// Overrides: (service, facts, expected version, via override, denied).
#[test]
fn overrides_are_honoured_only_as_configured() {
    let config = config();
    // alice's own version in product and cart, to tell an override from her sticky pick.
    let own = |name: &str| {
        service(&config, name)
            .ring
            .version_at(bucket(name, b"alice"))
    };
    let alice = || FakeFacts::default().header("x-user-id", "alice");
    let cases: Vec<(&str, FakeFacts, usize, bool, bool)> = vec![
        // Gated: the gate header with the right value opens it (header or cookie).
        (
            "product",
            alice().header("x-canary", "v2").header("x-internal", "qa"),
            1,
            true,
            false,
        ),
        (
            "product",
            alice().cookie("canary", "V1").header("x-internal", "qa"),
            0,
            true,
            false,
        ),
        // The header wins over the cookie.
        (
            "product",
            alice()
                .header("x-canary", "v2")
                .cookie("canary", "v1")
                .header("x-internal", "qa"),
            1,
            true,
            false,
        ),
        // Gate missing or wrong value: denied, the sticky key decides.
        (
            "product",
            alice().header("x-canary", "v2"),
            own("product"),
            false,
            true,
        ),
        (
            "product",
            alice()
                .header("x-canary", "v2")
                .header("x-internal", "prod"),
            own("product"),
            false,
            true,
        ),
        // Unknown version: denied.
        (
            "product",
            alice().header("x-canary", "v9").header("x-internal", "qa"),
            own("product"),
            false,
            true,
        ),
        // Ungated service: any client may override.
        ("cart", alice().header("x-canary", " v2 "), 1, true, false),
        ("cart", alice().header("x-canary", "v1"), 0, true, false),
        // The cart service does not read override cookies.
        (
            "cart",
            alice().cookie("canary", "v2"),
            own("cart"),
            false,
            false,
        ),
    ];
    for (name, mut facts, version, via_override, denied) in cases {
        let selection = select(service(&config, name), None, &mut facts);
        assert_eq!(selection.version, version, "{name} {:?}", facts.headers);
        assert_eq!(
            selection.via == Via::Override,
            via_override,
            "{name} {:?}",
            facts.headers
        );
        assert_eq!(
            selection.override_denied, denied,
            "{name} {:?}",
            facts.headers
        );
    }
}

#[test]
fn an_override_reaches_a_version_at_zero_weight() {
    // Testers try the canary before any user is sent there.
    let config = config();
    let search = service(&config, "search");
    let mut facts = FakeFacts::default().cookie("canary", "v2");
    let selection = select(search, None, &mut facts);
    assert_eq!((selection.version, selection.via), (1, Via::Override));
}

#[test]
fn the_gate_is_only_read_when_an_override_is_present() {
    let config = config();
    let mut facts = FakeFacts::default().header("x-user-id", "bob");
    select(service(&config, "product"), None, &mut facts);
    assert!(!facts.lookups.iter().any(|l| l == "header:x-internal"));
}

#[test]
fn without_a_key_a_pin_is_drawn_then_reused() {
    let config = config();
    let product = service(&config, "product");
    let pin = config.pin_cookie.as_ref();
    let mut facts = FakeFacts::default().random(0xabcd);
    let fresh = select(product, pin, &mut facts);
    assert_eq!(fresh.via, Via::NewPin("000000000000abcd".into()));
    assert_eq!(
        fresh.version,
        product
            .ring
            .version_at(bucket("product", b"000000000000abcd"))
    );

    let mut returning = FakeFacts::default().cookie("pin", "000000000000abcd");
    let again = select(product, pin, &mut returning);
    assert_eq!((again.version, again.via), (fresh.version, Via::Pin));

    // A hand-made pin is replaced, not hashed.
    let mut forged = FakeFacts::default().cookie("pin", "v2-please").random(1);
    let replaced = select(product, pin, &mut forged);
    assert_eq!(replaced.via, Via::NewPin("0000000000000001".into()));
}

#[test]
fn pinned_anonymous_users_split_by_weight() {
    let config = config();
    let product = service(&config, "product");
    let mut state = 1u64;
    let mut canary = 0;
    for _ in 0..20_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let selection = select(
            product,
            config.pin_cookie.as_ref(),
            &mut FakeFacts::default().random(state),
        );
        canary += usize::from(selection.version == 1);
    }
    let share = canary as f64 * 100.0 / 20_000.0;
    assert!((share - 10.0).abs() <= 1.0, "{share}");
}

#[test]
fn without_key_or_pin_the_pick_is_weighted_random_or_the_unkeyed_version() {
    let config = config();
    let cart = service(&config, "cart");
    let low = select(cart, None, &mut FakeFacts::default().random(0));
    let high = select(cart, None, &mut FakeFacts::default().random(u64::MAX));
    assert_eq!((low.version, high.version), (0, 1));
    assert_eq!(low.via, Via::Unkeyed);

    let pinned_to_v1 = parse_config(
        br#"{"services":[{"name":"s","match":{"hosts":["*"]},"unkeyedVersion":"v1",
             "versions":[{"name":"v1","weight":0},{"name":"v2","weight":100}]}]}"#,
    )
    .unwrap();
    let selection = select(&pinned_to_v1.services[0], None, &mut FakeFacts::default());
    assert_eq!((selection.version, selection.via), (0, Via::Unkeyed));
}
