//! The thin shell: reads request facts through the [`Host`], applies the decision (route
//! header, pin cookie) and counts it in Envoy stats.
//!
//! Per request, in order: a client-sent copy of the route header is removed (counted as
//! `meshguard.canary.route_header_stripped`), the service is found by `:authority` and `:path`,
//! the version is selected ([`crate::select`]), and the route header is set to its name. Envoy
//! (ABI 0.2.1) clears its route cache when a filter changes request headers, so the router
//! re-selects the route and the route table's header match sends the request to that version's
//! cluster.
//!
//! Stats (Envoy keeps filter stats in its `wasmcustom.` namespace, so `/stats` lists them as
//! `wasmcustom.meshguard.canary...`; requests count inside the module and every root context
//! adds its counts to them each [`STATS_FLUSH_PERIOD`]):
//! - `meshguard.canary.<service>.<version>.requests`: requests sent to each version;
//! - `meshguard.canary.<service>.overrides_used` / `overrides_denied`: tester overrides
//!   honoured / present but not permitted (gate header missing) or naming no version;
//! - `meshguard.canary.<service>.pins_issued`: new pin cookies set on responses;
//! - `meshguard.canary.<service>.unkeyed`: requests with no sticky key and no pin cookie;
//! - `meshguard.canary.unmatched`: requests matching no service (left without route header);
//! - `meshguard.canary.route_header_stripped`: requests that arrived with the route header.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::{
    ConfigError, Decision, HeaderMap, Host, HttpFilter, LogLevel, RootFilter, StreamCallbacks,
};

use crate::config::{Config, parse_config};
use crate::cookie::{cookie_value, set_cookie};
use crate::select::{Facts, Via, find_service, select};

/// Stat name prefix.
pub const STAT_PREFIX: &str = "meshguard.canary";

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
    fn define(host: &mut dyn Host, config: &Config) -> Self {
        let mut counter = |name: String| Counter::define(host, &name);
        let services = config
            .services
            .iter()
            .map(|service| {
                let base = format!("{STAT_PREFIX}.{}", service.name);
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
            unmatched: counter(format!("{STAT_PREFIX}.unmatched")),
            stripped: counter(format!("{STAT_PREFIX}.route_header_stripped")),
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

// === impl CanaryRoot ===

/// The root context: holds the validated configuration.
#[derive(Debug, Default)]
pub struct CanaryRoot {
    shared: Option<Rc<Shared>>,
}

impl RootFilter for CanaryRoot {
    type Http = CanaryHttp;

    fn configure(&mut self, host: &mut dyn Host, config: &[u8]) -> Result<(), ConfigError> {
        let config = parse_config(config)?;
        let metrics = Metrics::define(host, &config);
        host.log(
            LogLevel::Info,
            &format!(
                "meshguard canary: {} service(s), route header `{}`",
                config.services.len(),
                config.route_header
            ),
        );
        self.shared = Some(Rc::new(Shared { config, metrics }));
        Ok(())
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(STATS_FLUSH_PERIOD)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        if let Some(shared) = &self.shared {
            shared.metrics.flush(host);
        }
    }

    fn new_http(&self, _context_id: u32) -> CanaryHttp {
        CanaryHttp {
            shared: self.shared.clone(),
            set_cookie: None,
        }
    }
}

// === impl CanaryHttp ===

/// The per-stream filter.
#[derive(Debug)]
pub struct CanaryHttp {
    shared: Option<Rc<Shared>>,
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

    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        let Some(shared) = &self.shared else {
            return Decision::Continue;
        };
        let (config, metrics) = (&shared.config, &shared.metrics);
        // Only the headers the decision needs are read, one hostcall each: copying the whole
        // map costs more on a typical request (and much more with browser-sized headers).
        let spoofed = host
            .header(HeaderMap::Request, &config.route_header)
            .is_some();
        if spoofed {
            metrics.stripped.bump();
        }
        let authority = if config.needs_authority {
            host.header(HeaderMap::Request, ":authority")
        } else {
            None
        };
        let path = if config.needs_path {
            host.header(HeaderMap::Request, ":path")
        } else {
            None
        };
        let found = find_service(config, authority.as_deref().unwrap_or(""), path.as_deref());
        let Some((index, service)) = found else {
            if spoofed {
                host.set_header(HeaderMap::Request, &config.route_header, None);
            }
            metrics.unmatched.bump();
            return Decision::Continue;
        };
        let selection = select(
            service,
            config.pin_cookie.as_ref(),
            &mut HostFacts {
                host: &mut *host,
                cookies: None,
            },
        );
        // Replacing the header also removes any client-sent copy.
        let version = service.ring.versions().get(selection.version);
        host.set_header(
            HeaderMap::Request,
            &config.route_header,
            version.map(|v| v.name.as_str()),
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

    fn on_response_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        if let Some(cookie) = self.set_cookie.take() {
            host.add_header(HeaderMap::Response, "set-cookie", &cookie);
        }
        Decision::Continue
    }
}

// === impl HostFacts ===

/// [`Facts`] read from the host on demand.
struct HostFacts<'a> {
    host: &'a mut dyn Host,
    /// Every `cookie` header value, fetched on the first cookie lookup.
    cookies: Option<Vec<String>>,
}

impl Facts for HostFacts<'_> {
    fn header(&mut self, name: &str) -> Option<String> {
        self.host.header(HeaderMap::Request, name)
    }

    fn cookie(&mut self, name: &str) -> Option<String> {
        // Cookies are a fallback key, so reading the whole map here costs the common path
        // nothing, and it finds cookies in every `cookie` header (HTTP/1 clients may send
        // several; Envoy joins HTTP/2 crumbs into one).
        let host = &*self.host;
        let cookies = self.cookies.get_or_insert_with(|| {
            host.headers(HeaderMap::Request)
                .into_iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case("cookie"))
                .map(|(_, value)| value)
                .collect()
        });
        cookies
            .iter()
            .find_map(|header| cookie_value(header, name))
            .map(str::to_string)
    }

    fn client_ip(&mut self) -> Option<String> {
        let address = self.host.property(&["source", "address"])?;
        let address = String::from_utf8(address).ok()?;
        Some(client_ip(&address))
    }

    fn random(&mut self) -> u64 {
        self.host.random_u64()
    }
}

/// The IP of a `source.address` property (`10.0.0.1:5555`, `[::1]:5555`, or a bare IP).
pub fn client_ip(address: &str) -> String {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return socket.ip().to_string();
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return ip.to_string();
    }
    address.to_string()
}

#[cfg(test)]
mod tests;
