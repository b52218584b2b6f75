//! Every filter's configuration parser and request path, on the mock host.
//!
//! A configuration is written by an operator but reaches the filter as bytes: it must parse to
//! `Ok` or to a [`ConfigError`] that names a field, never panic (`on_configure` would kill the
//! VM). A request is written by anyone on the internet: headers (paths, hosts, cookies,
//! `X-Forwarded-For`, tokens) arrive as [`crate::lines`] scenarios, several exchanges in a row on
//! one configured root so that state (windows, buckets, caches, pins) carries over.
//!
//! Each target is the generic driver below over one filter's root type and the configurations
//! the repository ships ([`crate::seeds::filter_configs`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::{
    CallResponse, ConfigError, Decision, Env, Filter, HttpFilter, Root, Stream, StreamCallbacks,
};

use crate::lines::{self, Exchange};
use crate::seeds;

/// The promise every configuration parser makes.
///
/// # Panics
/// When the parser refused the configuration without naming the field or the problem.
pub fn check_config<T>(result: Result<T, ConfigError>) {
    if let Err(err) = result {
        assert!(
            !err.field.is_empty(),
            "a ConfigError without a field: {err}"
        );
        assert!(
            !err.message.is_empty(),
            "a ConfigError without a message: {err}"
        );
    }
}

/// Target `stamp_config`.
pub fn stamp_config(data: &[u8]) {
    check_config(meshguard_stamp::parse_config(data));
}

/// Target `canary_config`.
pub fn canary_config(data: &[u8]) {
    check_config(meshguard_canary::parse_config(data));
}

/// Target `circuit_breaker_config`.
pub fn circuit_breaker_config(data: &[u8]) {
    check_config(meshguard_circuit_breaker::parse_config(data));
}

/// Target `rate_limit_config`.
pub fn rate_limit_config(data: &[u8]) {
    check_config(meshguard_rate_limit::parse_config(data));
}

/// Target `jwt_auth_config`.
pub fn jwt_auth_config(data: &[u8]) {
    check_config(meshguard_jwt_auth::parse_config(data));
}

/// Target `authz_config`: the whole of configuring, because for authz that is where most of
/// the parsing is: the JSON, then every Rego module compiled, the decision path resolved, the
/// refused builtins and the read set found.
pub fn authz_config(data: &[u8]) {
    check_config(configure_fresh::<meshguard_authz::Authz>(data));
}

/// Target `pipeline_config`: the `meshguard` module's configuration, every stage's section
/// parsed and configured by that stage (the plain module, which refuses an `authz` section).
pub fn pipeline_config(data: &[u8]) {
    check_config(configure_fresh::<meshguard_pipeline::Pipeline>(data));
}

fn configure_fresh<F: Filter>(config: &[u8]) -> Result<F::Root, ConfigError> {
    F::configure(
        &mut MockHost::new().with_property("plugin_name", b"fuzz"),
        &env(),
        config,
    )
}

/// Target `stamp_request`.
pub fn stamp_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| accepted::<meshguard_stamp::Stamp>("stamp"));
    exchanges::<meshguard_stamp::Stamp>(configs, data);
}

/// Target `canary_request`.
pub fn canary_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| accepted::<meshguard_canary::Canary>("canary"));
    exchanges::<meshguard_canary::Canary>(configs, data);
}

/// Target `circuit_breaker_request`.
pub fn circuit_breaker_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS
        .get_or_init(|| accepted::<meshguard_circuit_breaker::CircuitBreaker>("circuit-breaker"));
    exchanges::<meshguard_circuit_breaker::CircuitBreaker>(configs, data);
}

/// Target `rate_limit_request`.
pub fn rate_limit_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| accepted::<meshguard_rate_limit::RateLimit>("rate-limit"));
    exchanges::<meshguard_rate_limit::RateLimit>(configs, data);
}

/// Target `jwt_auth_request`.
pub fn jwt_auth_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| accepted::<meshguard_jwt_auth::JwtAuth>("jwt-auth"));
    exchanges::<meshguard_jwt_auth::JwtAuth>(configs, data);
}

/// Target `authz_request`: requests (paths, queries, headers, verified-claims filter state,
/// JSON bodies) through the authz filter on the RBAC and the repository's other policies.
///
/// Each input still gets a fresh root (its own VM, decision cache, claims memo and counters),
/// but from a configuration compiled once per process ([`meshguard_authz::prepare`]: parsing,
/// the rewrites and regorus' compiler were more than half of an input's time, and the
/// configurations are fixed, not fuzzed; `authz_config` fuzzes that path).
pub fn authz_request(data: &[u8]) {
    use meshguard_authz::{AuthzRoot, ClaimsFrom, Prepared};
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    thread_local! {
        static PREPARED: RefCell<HashMap<usize, Rc<Prepared>>> = RefCell::new(HashMap::new());
    }
    let configs = CONFIGS.get_or_init(|| {
        let mut configs = accepted::<meshguard_authz::Authz>("authz");
        configs.extend(crate::seeds::authz_extra_configs());
        configs
    });
    exchanges_with::<meshguard_authz::Authz>(configs, data, |host, index, config| {
        let prepared = PREPARED.with_borrow_mut(|prepared| {
            if let Some(done) = prepared.get(&index) {
                return Ok(Rc::clone(done));
            }
            let done = meshguard_authz::prepare(config)?;
            prepared.insert(index, Rc::clone(&done));
            Ok(done)
        })?;
        AuthzRoot::with_prepared(host, &env(), prepared, ClaimsFrom::FilterState)
    });
}

/// Target `pipeline_request`: requests through the `meshguard` module's stages in one pass.
pub fn pipeline_request(data: &[u8]) {
    static CONFIGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| accepted::<meshguard_pipeline::Pipeline>("meshguard"));
    exchanges::<meshguard_pipeline::Pipeline>(configs, data);
}

/// The repository's configurations of a filter ([`seeds::filter_configs`]) that its root
/// accepts.
///
/// # Panics
/// When the filter accepts none of them (the request target would test nothing).
pub fn accepted<F: Filter>(dir: &str) -> Vec<Vec<u8>> {
    let configs: Vec<Vec<u8>> = seeds::filter_configs(dir)
        .into_iter()
        .filter(|config| F::configure(&mut MockHost::new(), &env(), config).is_ok())
        .collect();
    assert!(!configs.is_empty(), "no configuration of {dir} is accepted");
    configs
}

/// Runs a scenario through a freshly configured root of `R`: each exchange is one stream
/// (request headers, then the body in two chunks when the exchange has one and the filter reads
/// bodies, then, unless the filter answered or paused it, the upstream's response headers, then
/// the log callback); the clock moves as the scenario says and the root ticks
/// after every move. A dispatched call fails (the host answers `None`), as when the upstream is
/// down.
///
/// # Panics
/// When a configuration the repository ships is refused, or when the filter panics.
pub fn exchanges<F: Filter>(configs: &[Vec<u8>], data: &[u8]) {
    exchanges_with::<F>(configs, data, |host, _, config| {
        F::configure(host, &env(), config)
    });
}

/// [`exchanges`] with the root made by `configure` from the host, the index of the chosen
/// configuration in `configs` and its bytes (a target that prepares a configuration once).
///
/// # Panics
/// As [`exchanges`].
pub fn exchanges_with<F: Filter>(
    configs: &[Vec<u8>],
    data: &[u8],
    configure: impl FnOnce(&mut MockHost, usize, &[u8]) -> Result<F::Root, ConfigError>,
) {
    let scenario = lines::parse(data);
    let index = scenario.config % configs.len().max(1);
    let Some(config) = configs.get(index) else {
        return;
    };
    let mut host = MockHost::new()
        .with_property("plugin_name", b"fuzz")
        .with_shared(shared_after_configure::<F>(config));
    let mut root = match configure(&mut host, index, config) {
        Ok(root) => root,
        Err(err) => panic!("a shipped configuration is refused: {err}"),
    };
    let callbacks = <<F::Root as Root>::Http as HttpFilter>::CALLBACKS;
    for (index, exchange) in scenario.exchanges.iter().enumerate() {
        if exchange.advance_ms > 0 {
            host.advance(Duration::from_millis(exchange.advance_ms));
            root.on_tick(&mut host);
            answer_calls(&mut host, |host, token| {
                root.on_call_response(host, token, None);
            });
        }
        let context = u32::try_from(index).unwrap_or(0) + 2;
        stream(
            &mut Stream::new(root.new_http(context)),
            &mut host,
            exchange,
            callbacks,
        );
        // Keep one input's memory flat: nothing below is read back.
        host.responses.clear();
        host.logs.get_mut().clear();
    }
    root.on_tick(&mut host);
}

/// The shared data a first root leaves after configuring with `config`, made once per
/// configuration and rolled back to that state before every input: each input's root finds it
/// in place, as a root does on a worker whose filter was configured before. Creating it is the
/// costly part of configuring (the rate limiter's table is tens of thousands of cells), and so
/// is copying it; a rollback costs only what the previous input wrote.
fn shared_after_configure<F: Filter>(config: &[u8]) -> SharedHandle {
    thread_local! {
        static STORES: RefCell<HashMap<Vec<u8>, SharedHandle>> = RefCell::new(HashMap::new());
    }
    STORES.with_borrow_mut(|stores| {
        let store = stores.entry(config.to_vec()).or_insert_with(|| {
            let mut host = MockHost::new().with_property("plugin_name", b"fuzz");
            let _ = F::configure(&mut host, &env(), config);
            host.shared.borrow_mut().checkpoint();
            host.shared
        });
        store.borrow_mut().rollback();
        Rc::clone(store)
    })
}

fn stream<H: HttpFilter>(
    http: &mut Stream<H>,
    host: &mut MockHost,
    exchange: &Exchange,
    callbacks: StreamCallbacks,
) {
    host.request_headers = exchange.request.clone();
    host.response_headers = exchange.response.clone();
    host.request_body.clear();
    host.properties.retain(|path, _| path == "plugin_name");
    for (path, value) in &exchange.properties {
        host.properties.insert(path.clone(), value.clone());
    }
    let with_body = callbacks.request_body && !exchange.body.is_empty();
    let mut decision = http.on_request_headers(host, !with_body);
    decision = resume(http, host, decision);
    if with_body {
        // Two chunks, as a body that arrives in parts: Envoy calls with what it holds so far.
        let half = exchange.body.len() / 2;
        for (held, end_of_stream) in [(half, false), (exchange.body.len(), true)] {
            if matches!(decision, Decision::Respond(_)) || (held == 0 && !end_of_stream) {
                continue;
            }
            host.request_body = exchange.body.get(..held).unwrap_or_default().to_vec();
            let on_body = http.on_request_body(host, held, end_of_stream);
            decision = resume(http, host, on_body);
        }
    }
    // A local reply passes through the filter's own response callback, as in Envoy.
    if let Decision::Respond(reply) = &decision {
        host.response_headers = vec![(":status".to_string(), reply.status.to_string())];
        host.response_headers.extend(reply.headers.iter().cloned());
    }
    if decision != Decision::Pause && callbacks.response_headers {
        http.on_response_headers(host, true);
    }
    if callbacks.log {
        http.on_log(host);
    }
}

/// A paused stream resumed by failed answers to the calls it dispatched (it stays paused when
/// it dispatched none: it is waiting for its body).
fn resume<H: HttpFilter>(
    http: &mut Stream<H>,
    host: &mut MockHost,
    decision: Decision,
) -> Decision {
    if decision != Decision::Pause {
        return decision;
    }
    let mut resumed = Decision::Pause;
    answer_calls(host, |host, token| {
        resumed = http.on_call_response(host, token, None);
    });
    resumed
}

/// What a single-purpose module gives its filter, for the plugin `fuzz`.
pub fn env() -> Env {
    Env::single("fuzz")
}

/// Answers (with failure) every call the filter dispatched, in order.
fn answer_calls(host: &mut MockHost, mut answer: impl FnMut(&mut MockHost, u32)) {
    let calls: Vec<u32> = host.calls.drain(..).map(|(token, _)| token).collect();
    for token in calls {
        answer(host, token);
    }
}

/// A call answer built from fuzz bytes: `:status` from the first two bytes, the rest the body.
pub fn call_response(status: u16, content_type: &str, body: &[u8]) -> CallResponse {
    CallResponse {
        headers: vec![
            (":status".to_string(), status.to_string()),
            ("content-type".to_string(), content_type.to_string()),
        ],
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::Exchange;

    /// What one exchange through the authz target's first configuration (the object-decision
    /// policy that reads the query, the JSON body and the claims) decides.
    fn authz_decides(amount: &str, claims: &str) -> (Decision, Vec<(String, String)>) {
        let config = crate::seeds::authz_extra_configs().swap_remove(0);
        let mut host = MockHost::new().with_property("plugin_name", b"fuzz");
        let root = match meshguard_authz::Authz::configure(&mut host, &env(), &config) {
            Ok(root) => root,
            Err(err) => panic!("the harness's own configuration is refused: {err}"),
        };
        let exchange = Exchange {
            request: vec![
                (":method".into(), "POST".into()),
                (":path".into(), "/api/orders?user=alice".into()),
                ("content-type".into(), "application/json".into()),
            ],
            properties: vec![
                ("meshguard.jwt_authn".into(), claims.as_bytes().to_vec()),
                ("source.address".into(), b"10.1.2.3:45678".to_vec()),
            ],
            body: format!("{{\"amount\": {amount}}}\n").into_bytes(),
            ..Exchange::default()
        };
        let mut http = Stream::new(root.new_http(2));
        let callbacks = <<meshguard_authz::Authz as Filter>::Root as Root>::Http::CALLBACKS;
        assert!(callbacks.request_body, "authz reads bodies");
        let with_body = true;
        host.request_headers = exchange.request.clone();
        for (path, value) in &exchange.properties {
            host.properties.insert(path.clone(), value.clone());
        }
        let mut decision = http.on_request_headers(&mut host, !with_body);
        let half = exchange.body.len() / 2;
        for (held, end) in [(half, false), (exchange.body.len(), true)] {
            host.request_body = exchange.body.get(..held).unwrap_or_default().to_vec();
            decision = http.on_request_body(&mut host, held, end);
        }
        (decision, host.request_headers.clone())
    }

    #[test]
    fn the_authz_targets_bodies_and_claims_reach_the_policy() {
        let fine = r#"{"verified_jwt": {"sub": "alice"}}"#;
        let (decision, headers) = authz_decides("12", fine);
        assert_eq!(decision, Decision::Continue);
        assert!(
            headers.contains(&("x-user".to_string(), "alice".to_string())),
            "the object decision's header is applied: {headers:?}"
        );
        assert!(
            matches!(authz_decides("1000", fine).0, Decision::Respond(ref r) if r.status == 401),
            "the body's amount decides"
        );
        let banned = r#"{"verified_jwt": {"sub": "alice", "banned": true}}"#;
        assert!(
            matches!(authz_decides("12", banned).0, Decision::Respond(ref r) if r.status == 401),
            "the claims decide"
        );
    }
}
