//! The request model: one HTTP exchange as every filter (and every stage of the pipeline)
//! sees it.
//!
//! Every read from Envoy is a hostcall across the V8 boundary (0.4-5 µs of Envoy CPU each,
//! measured by `cargo xtask bench --calibrate`), and four filters used to read the path, the
//! host and the same headers four times. Here each fact is read from the host **at most once
//! per request** and shared by everything that needs it:
//!
//! - an [`Exchange`] lives as long as the stream and caches request and response headers
//!   (single lookups, or the whole map once something needed it: every later lookup is then
//!   free), the client address and the cluster the route chose;
//! - a [`Ctx`] is made for each callback around the host and the exchange. It implements
//!   [`Host`] itself, so decision code written against the host reads through the caches
//!   unchanged; writes go to the host and into the caches, so a later stage sees the headers
//!   an earlier one wrote (or removed) without asking Envoy again. Within one callback the
//!   clock and properties are read once, too.
//!
//! On top of the raw reads, the model gives each fact **one meaning** for every filter
//! ([`Ctx::path`], [`Ctx::host_name`], [`Ctx::client_address`], [`Ctx::cookie`],
//! [`Ctx::cluster`]) and carries what earlier stages decided: the verified JWT claims
//! ([`Ctx::claim`], [`Ctx::set_identity`]) and the route a stage moved the request to
//! ([`Ctx::reroute`]).
//!
//! Adding a fact: read it through the `Ctx` (so it is cached per callback) or, if it is stable
//! for the stream, keep it in a `OnceCell` of the [`Exchange`] like the client address; give it
//! a typed accessor and a line in the README's request-model section.

mod facts;
mod headers;
mod identity;

use std::cell::{Cell, OnceCell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::SystemTime;

pub use facts::{client_ip, cookie_value, host_of, path_only};
pub use identity::{ClaimPath, Identity, claim_text};

use crate::{
    GrpcCall, HeaderMap, Host, HttpCall, LocalResponse, LogLevel, MetricKind, SharedDataError,
};
use headers::HeaderCache;

/// The property Envoy 1.40 keeps the route's cluster under at request headers.
pub const CLUSTER_PROPERTY: [&str; 2] = ["xds", "cluster_name"];

/// One HTTP exchange: what is known about the request and its response, for the life of the
/// stream. Create one per stream and a [`Ctx`] per callback.
#[derive(Debug, Default)]
pub struct Exchange {
    request: HeaderCache,
    response: HeaderCache,
    client: OnceCell<Option<IpAddr>>,
    cluster_as_arrived: OnceCell<Option<Rc<str>>>,
    route: RefCell<Route>,
    identity: RefCell<Vec<Identity>>,
}

/// Where the request goes, as far as the stages know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Route {
    /// Nothing re-routed it: Envoy's route choice stands.
    #[default]
    AsArrived,
    /// A stage changed routing headers; the cluster it sends to, if that stage knows it.
    Rerouted(Option<Rc<str>>),
}

impl Exchange {
    /// An exchange nothing is known about yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The view of one callback: the host and the stream's [`Exchange`].
///
/// `Ctx` is itself a [`Host`]: header and property reads are answered from the caches, header
/// writes update them, and the clock is read once per callback. Everything else goes straight
/// to the host.
pub struct Ctx<'a> {
    host: &'a mut dyn Host,
    exchange: &'a Exchange,
    now: Cell<Option<SystemTime>>,
    properties: RefCell<Vec<(String, Option<Vec<u8>>)>>,
}

impl<'a> Ctx<'a> {
    /// The view of one callback of the stream `exchange` belongs to.
    pub fn new(host: &'a mut dyn Host, exchange: &'a Exchange) -> Self {
        Self {
            host,
            exchange,
            now: Cell::new(None),
            properties: RefCell::new(Vec::new()),
        }
    }

    /// The stream's exchange.
    pub fn exchange(&self) -> &Exchange {
        self.exchange
    }

    /// The host itself, past every cache: each call is a hostcall. Only for measuring what
    /// hostcalls cost (the benchmark's calibration filter); a filter reading through this
    /// would defeat the request model, and its writes would leave the caches stale.
    pub fn uncached(&mut self) -> &mut dyn Host {
        &mut *self.host
    }

    // === typed request facts ===

    /// A request header's first value (`:path`, `:authority`... included), read at most once.
    pub fn request_header(&self, name: &str) -> Option<Rc<str>> {
        self.exchange
            .request
            .get(&*self.host, HeaderMap::Request, name)
    }

    /// A response header's first value, read at most once.
    pub fn response_header(&self, name: &str) -> Option<Rc<str>> {
        self.exchange
            .response
            .get(&*self.host, HeaderMap::Response, name)
    }

    /// `:path` as Envoy routes on it: with the query string (empty if absent).
    pub fn path(&self) -> Rc<str> {
        self.request_header(":path").unwrap_or_else(|| Rc::from(""))
    }

    /// `:method` (empty if absent).
    pub fn method(&self) -> Rc<str> {
        self.request_header(":method")
            .unwrap_or_else(|| Rc::from(""))
    }

    /// The host the request is for: `:authority` (or `host`) lowercase, without port, userinfo
    /// or trailing dot ([`host_of`]).
    pub fn host_name(&self) -> Option<String> {
        self.request_header(":authority")
            .or_else(|| self.request_header("host"))
            .map(|authority| host_of(&authority))
    }

    /// Cookie `name` across every `cookie` header (HTTP/1 clients may send several; Envoy
    /// joins HTTP/2 crumbs into one). Reads the whole request header map, once.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.exchange
            .request
            .with_all(&*self.host, HeaderMap::Request, |headers| {
                headers
                    .iter()
                    .filter(|(key, _)| key.eq_ignore_ascii_case("cookie"))
                    .find_map(|(_, value)| cookie_value(value, name))
                    .map(str::to_string)
            })
    }

    /// The client's address: Envoy's `source.address` without the port. Envoy and Istio
    /// resolve `X-Forwarded-For` into it (`use_remote_address`, `xff_num_trusted_hops`,
    /// `numTrustedProxies`), so this is the one client address every filter uses.
    pub fn client_address(&self) -> Option<IpAddr> {
        *self.exchange.client.get_or_init(|| {
            let address = self.host.property(&["source", "address"])?;
            client_ip(std::str::from_utf8(&address).ok()?)
        })
    }

    /// The upstream cluster the request goes to: the one a stage re-routed it to
    /// ([`Ctx::reroute`]), or Envoy's choice for the request as it arrived (`xds.cluster_name`;
    /// `cluster_name` in older Envoys). `None` when a stage re-routed the request without
    /// knowing the cluster, or Envoy has no route.
    ///
    /// Envoy 1.40 re-selects the route lazily, when the router runs: after a filter changes
    /// routing headers, `xds.cluster_name` still names the first choice, in the same callback
    /// and in every later filter (`tests/tests/pipeline.rs` pins this). So a stage that
    /// re-routes must say where to.
    pub fn cluster(&self) -> Option<Rc<str>> {
        if let Route::Rerouted(cluster) = &*self.exchange.route.borrow() {
            return cluster.clone();
        }
        self.exchange
            .cluster_as_arrived
            .get_or_init(|| {
                self.host
                    .property(&CLUSTER_PROPERTY)
                    .or_else(|| self.host.property(&["cluster_name"]))
                    .map(|name| Rc::from(String::from_utf8_lossy(&name).as_ref()))
            })
            .clone()
    }

    /// Records that this stage changed routing headers, sending the request to `cluster` (if
    /// the stage knows it): later stages' [`Ctx::cluster`] is that, not Envoy's stale choice.
    pub fn reroute(&self, cluster: Option<&str>) {
        *self.exchange.route.borrow_mut() = Route::Rerouted(cluster.map(Rc::from));
    }

    /// Publishes a verified token's claims to the stages after this one.
    pub fn set_identity(&self, identity: Identity) {
        self.exchange.identity.borrow_mut().push(identity);
    }

    /// The verified tokens published so far, in order.
    pub fn identities(&self) -> Vec<Identity> {
        self.exchange.identity.borrow().clone()
    }

    /// A verified claim as text ([`claim_text`]), from the first published token that has it.
    /// Never a client-sent header: only what a JWT stage verified in this request.
    pub fn claim(&self, path: &ClaimPath) -> Option<String> {
        self.exchange
            .identity
            .borrow()
            .iter()
            .find_map(|identity| identity.claim(path))
    }

    /// The time of this callback, read from the host on first use.
    pub fn time(&self) -> SystemTime {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.host.now();
        self.now.set(Some(now));
        now
    }

    fn cache(&self, map: HeaderMap) -> &HeaderCache {
        match map {
            HeaderMap::Request => &self.exchange.request,
            HeaderMap::Response => &self.exchange.response,
        }
    }
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("exchange", self.exchange)
            .finish_non_exhaustive()
    }
}

/// Reads through the caches; writes go to the host and into them.
impl Host for Ctx<'_> {
    fn now(&self) -> SystemTime {
        self.time()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.cache(map)
            .get(&*self.host, map, name)
            .map(|value| value.to_string())
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, String)> {
        self.cache(map).with_all(&*self.host, map, |headers| {
            headers
                .iter()
                .map(|(name, value)| (name.clone(), value.to_string()))
                .collect()
        })
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: Option<&str>) {
        self.host.set_header(map, name, value);
        self.cache(map).set(name, value);
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.host.add_header(map, name, value);
        self.cache(map).add(name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key = path.join("\0");
        if let Some((_, value)) = self
            .properties
            .borrow()
            .iter()
            .find(|(known, _)| *known == key)
        {
            return value.clone();
        }
        let value = self.host.property(path);
        self.properties.borrow_mut().push((key, value.clone()));
        value
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool {
        let stored = self.host.set_property(path, value);
        if stored {
            // Later reads in this stream see what was written, as the host would answer.
            let key = path.join("\0");
            let mut properties = self.properties.borrow_mut();
            properties.retain(|(known, _)| *known != key);
            properties.push((key, Some(value.to_vec())));
        }
        stored
    }

    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        self.host.request_body(start, max)
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.host.shared_get(key)
    }

    fn shared_set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        self.host.shared_set(key, value, cas)
    }

    fn send_response(&mut self, response: &LocalResponse) {
        self.host.send_response(response);
    }

    fn dispatch(&mut self, call: &HttpCall) -> Option<u32> {
        self.host.dispatch(call)
    }

    fn dispatch_grpc(&mut self, call: &GrpcCall) -> Option<u32> {
        self.host.dispatch_grpc(call)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.host.define_metric(kind, name)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.host.increment_metric(id, delta);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.host.record_metric(id, value);
    }

    fn foreign_call(&mut self, name: &str, argument: &[u8]) -> Option<Vec<u8>> {
        self.host.foreign_call(name, argument)
    }

    fn random_u64(&mut self) -> u64 {
        self.host.random_u64()
    }
}

#[cfg(test)]
mod tests;
