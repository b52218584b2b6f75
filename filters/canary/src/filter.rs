//! The thin shell: reads request facts through the request model, applies the decision
//! (route header, pin cookie) and counts it in Envoy stats.
//!
//! Per request, in order: a client-sent copy of the route header is removed (counted as
//! `route_header_stripped`), the service is found by its route match, the version is selected
//! ([`crate::select`]), and the route header is set to its name. Envoy (ABI 0.2.1) clears its
//! route cache when a filter changes request headers, so the router re-selects the route and
//! the route table's header match sends the request to that version's cluster. The filter
//! also tells the stages after it in the same module where the request now goes
//! ([`Ctx::reroute`], with the version's `cluster` when configured): Envoy itself reports the
//! old route until the router runs.
//!
//! Stats, `meshguard.canary.<plugin>.` followed by (Envoy shows them under `wasmcustom.`;
//! requests count inside the module and every root context adds its counts each
//! [`STATS_FLUSH_PERIOD`]):
//! - `<service>.<version>.requests`: requests sent to each version;
//! - `<service>.overrides_used` / `overrides_denied`: tester overrides honoured / present but
//!   not permitted (gate header missing) or naming no version;
//! - `<service>.pins_issued`: new pin cookies set on responses;
//! - `<service>.unkeyed`: requests with no sticky key and no pin cookie;
//! - `unmatched`: requests matching no service (left without route header);
//! - `route_header_stripped`: requests that arrived with the route header.

use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::request::ClaimPath;
use meshguard_filter_core::{
    ConfigError, Ctx, Decision, Env, Filter, HeaderMap, Host, HttpFilter, LogLevel, Provides, Root,
    Stats, StreamCallbacks,
};

use crate::config::{Config, parse_config};
use crate::cookie::set_cookie;
use crate::select::{Facts, Via, find_service, select};

/// How often every root context adds its streams' counts to Envoy's stats.
pub const STATS_FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// Counters of one service.
#[derive(Debug, Default)]
struct ServiceMetrics {
    requests: Vec<Counter>,
    overrides_used: Counter,
    overrides_denied: Counter,
    pins_issued: Counter,
    unkeyed: Counter,
}

/// Counters, defined once per root context; requests bump them and the root's tick adds them
/// to Envoy's stats ([`meshguard_filter_core::counters`]).
#[derive(Debug, Default)]
struct Metrics {
    services: Vec<ServiceMetrics>,
    unmatched: Counter,
    stripped: Counter,
}

impl Metrics {
    fn define(host: &mut dyn Host, stats: &Stats, config: &Config) -> Self {
        let mut counter = |name: String| stats.counter(host, &name);
        let services = config
            .services
            .iter()
            .map(|service| {
                let base = service.name.clone();
                ServiceMetrics {
                    requests: service
                        .ring
                        .versions()
                        .iter()
                        .map(|version| counter(format!("{base}.{}.requests", version.name)))
                        .collect(),
                    overrides_used: counter(format!("{base}.overrides_used")),
                    overrides_denied: counter(format!("{base}.overrides_denied")),
                    pins_issued: counter(format!("{base}.pins_issued")),
                    unkeyed: counter(format!("{base}.unkeyed")),
                }
            })
            .collect();
        Self {
            services,
            unmatched: counter("unmatched".to_string()),
            stripped: counter("route_header_stripped".to_string()),
        }
    }

    fn flush(&self, host: &mut dyn Host) {
        for service in &self.services {
            for counter in service.requests.iter().chain([
                &service.overrides_used,
                &service.overrides_denied,
                &service.pins_issued,
                &service.unkeyed,
            ]) {
                counter.flush(host);
            }
        }
        self.unmatched.flush(host);
        self.stripped.flush(host);
    }
}

/// Configuration and metric ids, shared by every stream of one root context.
#[derive(Debug)]
struct Shared {
    config: Config,
    metrics: Metrics,
}

// === impl Canary ===

/// The canary filter.
#[derive(Debug)]
pub struct Canary;

impl Filter for Canary {
    type Root = CanaryRoot;
    const NAME: &'static str = "canary";

    fn configure(host: &mut dyn Host, env: &Env, config: &[u8]) -> Result<CanaryRoot, ConfigError> {
        let config = parse_config(config)?;
        config.check_env(env)?;
        let metrics = Metrics::define(host, &Stats::new(Self::NAME, &env.plugin), &config);
        host.log(
            LogLevel::Info,
            &format!(
                "meshguard canary: {} service(s), route header `{}`",
                config.services.len(),
                config.route_header
            ),
        );
        Ok(CanaryRoot {
            shared: Rc::new(Shared { config, metrics }),
        })
    }
}

// === impl CanaryRoot ===

/// The root context: holds the validated configuration.
#[derive(Debug)]
pub struct CanaryRoot {
    shared: Rc<Shared>,
}

impl Root for CanaryRoot {
    type Http = CanaryHttp;

    fn tick_period(&self) -> Option<Duration> {
        Some(STATS_FLUSH_PERIOD)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        self.shared.metrics.flush(host);
    }

    /// Requests are re-routed; the stages after this one know the cluster only if every
    /// version names it.
    fn provides(&self) -> Provides {
        Provides {
            claims: false,
            reroutes: Some(self.shared.config.declares_clusters()),
        }
    }

    fn new_http(&self, _context_id: u32) -> CanaryHttp {
        CanaryHttp {
            shared: Rc::clone(&self.shared),
            set_cookie: None,
        }
    }
}

// === impl CanaryHttp ===

/// The per-stream filter.
#[derive(Debug)]
pub struct CanaryHttp {
    shared: Rc<Shared>,
    /// A `Set-Cookie` value to add to the response (a freshly drawn pin).
    set_cookie: Option<String>,
}

impl HttpFilter for CanaryHttp {
    /// Response headers carry a new pin cookie; nothing happens at stream end.
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: false,
        request_body: false,
    };

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        let shared = Rc::clone(&self.shared);
        let (config, metrics) = (&shared.config, &shared.metrics);
        // Only the facts the decision needs are read, each at most once (the request model).
        let spoofed = ctx.request_header(&config.route_header).is_some();
        if spoofed {
            metrics.stripped.bump();
        }
        let Some((index, service)) = find_service(config, &*ctx) else {
            if spoofed {
                ctx.set_header(HeaderMap::Request, &config.route_header, None);
                // The route Envoy chose used the client's header; where it goes now is unknown.
                ctx.reroute(None);
            }
            metrics.unmatched.bump();
            return Decision::Continue;
        };
        let selection = select(
            service,
            config.pin_cookie.as_ref(),
            &mut CtxFacts { ctx: &mut *ctx },
        );
        // Replacing the header also removes any client-sent copy.
        let version = service.ring.versions().get(selection.version);
        ctx.set_header(
            HeaderMap::Request,
            &config.route_header,
            version.map(|v| v.name.as_str()),
        );
        ctx.reroute(
            service
                .clusters
                .get(selection.version)
                .and_then(Option::as_deref),
        );
        let Some(counters) = metrics.services.get(index) else {
            return Decision::Continue;
        };
        if let Some(requests) = counters.requests.get(selection.version) {
            requests.bump();
        }
        if selection.override_denied {
            counters.overrides_denied.bump();
        }
        match selection.via {
            Via::Override => counters.overrides_used.bump(),
            Via::Unkeyed => counters.unkeyed.bump(),
            Via::NewPin(value) => {
                counters.pins_issued.bump();
                self.set_cookie = config
                    .pin_cookie
                    .as_ref()
                    .map(|pin| set_cookie(pin, &value));
            }
            Via::Sticky(_) | Via::Pin => {}
        }
        Decision::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        if let Some(cookie) = self.set_cookie.take() {
            ctx.add_header(HeaderMap::Response, "set-cookie", &cookie);
        }
        Decision::Continue
    }
}

// === impl CtxFacts ===

/// [`Facts`] from the request model, on demand.
struct CtxFacts<'c, 'h> {
    ctx: &'c mut Ctx<'h>,
}

impl Facts for CtxFacts<'_, '_> {
    fn header(&mut self, name: &str) -> Option<String> {
        self.ctx.request_header(name).map(|value| value.to_string())
    }

    fn cookie(&mut self, name: &str) -> Option<String> {
        // Cookies are a fallback key, so reading the whole map for them costs the common path
        // nothing (and once read, the map answers every later lookup).
        self.ctx.cookie(name)
    }

    fn claim(&mut self, path: &ClaimPath) -> Option<String> {
        self.ctx.claim(path)
    }

    fn client_ip(&mut self) -> Option<String> {
        self.ctx.client_address().map(|ip| ip.to_string())
    }

    fn random(&mut self) -> u64 {
        self.ctx.random_u64()
    }
}

#[cfg(test)]
mod tests;
