//! An in-memory [`Host`] for unit tests of filter cores.
//!
//! Built with `with_*` methods; time and randomness are set by the test. Several mocks can share
//! one [`SharedStore`] to model Envoy workers racing on shared data.
//!
//! Every [`Host`] method call is tallied by name ([`MockHost::hostcall_counts`]): in Envoy each
//! one is at least one proxy-wasm hostcall crossing into V8 (a microsecond or more), so filters
//! pin how many their common path makes and a regression fails a unit test instead of hiding in
//! benchmark noise.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::{
    CallResponse, GrpcCall, HeaderMap, Host, HttpCall, LocalResponse, LogLevel, MetricKind,
    SharedDataError,
};

/// Shared data as Envoy keeps it: value plus a CAS token that changes on every write.
#[derive(Debug, Default, Clone)]
pub struct SharedStore {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// What [`SharedStore::rollback`] restores, when a checkpoint is set.
    journal: Option<Journal>,
}

/// The state at a checkpoint: the CAS counter, and the earlier value (or absence) of every key
/// written since. Rolling back costs what was written, not what is stored.
#[derive(Debug, Default, Clone)]
struct Journal {
    next_cas: u32,
    prior: HashMap<String, Option<(Vec<u8>, u32)>>,
}

impl SharedStore {
    /// Number of keys stored (lets a test check that a filter's shared memory stays bounded).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values stored.
    pub fn bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(key, (value, _))| key.len() + value.len())
            .sum()
    }

    /// Remembers the store as it is now, so that [`SharedStore::rollback`] can restore it
    /// (fuzz targets reuse one large store across inputs instead of cloning it per input).
    pub fn checkpoint(&mut self) {
        self.journal = Some(Journal {
            next_cas: self.next_cas,
            prior: HashMap::new(),
        });
    }

    /// Restores the store, CAS tokens included, to the last [`SharedStore::checkpoint`] (which
    /// stays set); without one, does nothing.
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        for (key, prior) in journal.prior.drain() {
            match prior {
                Some(entry) => self.entries.insert(key, entry),
                None => self.entries.remove(&key),
            };
        }
        self.next_cas = journal.next_cas;
    }

    /// Stores `value` under `key` with a fresh CAS token and returns the token.
    fn write(&mut self, key: &str, value: &[u8]) -> u32 {
        if let Some(journal) = self.journal.as_mut()
            && !journal.prior.contains_key(key)
        {
            journal
                .prior
                .insert(key.to_string(), self.entries.get(key).cloned());
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        let token = self.next_cas;
        self.entries
            .insert(key.to_string(), (value.to_vec(), token));
        token
    }
}

/// A foreign function offered by the mock host.
pub type ForeignFn = fn(&[u8]) -> Option<Vec<u8>>;

/// A handle to a [`SharedStore`] that several mocks can hold.
pub type SharedHandle = Rc<RefCell<SharedStore>>;

/// A scriptable host.
#[derive(Debug)]
pub struct MockHost {
    /// Current time.
    pub now: SystemTime,
    /// Request headers (ordered).
    pub request_headers: Vec<(String, String)>,
    /// Response headers (ordered).
    pub response_headers: Vec<(String, String)>,
    /// Properties by dotted path (`source.address`); [`Host::set_property`] writes here too.
    pub properties: HashMap<String, Vec<u8>>,
    /// The request body buffered so far (what [`Host::request_body`] reads).
    pub request_body: Vec<u8>,
    /// Shared data (possibly shared with other mocks).
    pub shared: SharedHandle,
    /// Local responses sent.
    pub responses: Vec<LocalResponse>,
    /// HTTP calls dispatched, with their tokens.
    pub calls: Vec<(u32, HttpCall)>,
    /// gRPC calls dispatched, with their tokens.
    pub grpc_calls: Vec<(u32, GrpcCall)>,
    /// Refuse every gRPC call, as Envoy does for an unknown cluster.
    pub refuse_grpc: bool,
    /// Scripted answers to gRPC calls, in order ([`MockHost::next_grpc_answer`]).
    pub grpc_answers: VecDeque<CallResponse>,
    /// Log lines.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Metrics by name: kind and value.
    pub metrics: BTreeMap<String, (MetricKind, i64)>,
    /// Foreign functions the host offers.
    pub foreign: HashMap<String, ForeignFn>,
    /// [`Host`] calls made so far, by method name.
    hostcalls: RefCell<BTreeMap<&'static str, u32>>,
    metric_names: Vec<String>,
    rng: u64,
    next_token: u32,
}

impl Default for MockHost {
    fn default() -> Self {
        Self {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            properties: HashMap::new(),
            request_body: Vec::new(),
            shared: SharedHandle::default(),
            responses: Vec::new(),
            calls: Vec::new(),
            grpc_calls: Vec::new(),
            refuse_grpc: false,
            grpc_answers: VecDeque::new(),
            logs: RefCell::new(Vec::new()),
            metrics: BTreeMap::new(),
            foreign: HashMap::new(),
            hostcalls: RefCell::new(BTreeMap::new()),
            metric_names: Vec::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            next_token: 1,
        }
    }
}

impl MockHost {
    /// A host with the default clock (2023-11-14) and nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts the answer to a later gRPC call (answers are handed out in order).
    pub fn with_grpc_answer(mut self, answer: CallResponse) -> Self {
        self.grpc_answers.push_back(answer);
        self
    }

    /// The token of the latest gRPC call and the next scripted answer, for the test to
    /// deliver (`Stream::on_call_response`); `None` without a call or an answer.
    pub fn next_grpc_answer(&mut self) -> Option<(u32, CallResponse)> {
        let token = self.grpc_calls.last()?.0;
        Some((token, self.grpc_answers.pop_front()?))
    }

    /// Adds a request header.
    pub fn with_request_header(mut self, name: &str, value: &str) -> Self {
        self.request_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a response header.
    pub fn with_response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a property by dotted path.
    pub fn with_property(mut self, path: &str, value: &[u8]) -> Self {
        self.properties.insert(path.to_string(), value.to_vec());
        self
    }

    /// Sets the buffered request body.
    pub fn with_request_body(mut self, body: &[u8]) -> Self {
        self.request_body = body.to_vec();
        self
    }

    /// Sets the clock.
    pub fn with_now(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// Shares a store with other mocks (to model workers).
    pub fn with_shared(mut self, shared: SharedHandle) -> Self {
        self.shared = shared;
        self
    }

    /// Seeds the random source.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = seed | 1;
        self
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The value of a metric by name (0 if never touched).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics.get(name).map_or(0, |(_, value)| *value)
    }

    /// [`Host`] calls made since creation (or the last [`MockHost::reset_hostcalls`]), by method
    /// name (`header`, `shared_get`, `increment_metric`...). `random_u64` counts as one: the
    /// proxy-wasm shim draws it from a clock read.
    pub fn hostcall_counts(&self) -> BTreeMap<&'static str, u32> {
        self.hostcalls.borrow().clone()
    }

    /// Total [`Host`] calls made since creation (or the last reset).
    pub fn hostcalls(&self) -> u32 {
        self.hostcalls.borrow().values().sum()
    }

    /// Forgets the calls counted so far (for example those of `configure`).
    pub fn reset_hostcalls(&mut self) {
        self.hostcalls.get_mut().clear();
    }

    fn tally(&self, name: &'static str) {
        *self.hostcalls.borrow_mut().entry(name).or_insert(0) += 1;
    }

    fn map(&self, map: HeaderMap) -> &Vec<(String, String)> {
        match map {
            HeaderMap::Request => &self.request_headers,
            HeaderMap::Response => &self.response_headers,
        }
    }

    fn map_mut(&mut self, map: HeaderMap) -> &mut Vec<(String, String)> {
        match map {
            HeaderMap::Request => &mut self.request_headers,
            HeaderMap::Response => &mut self.response_headers,
        }
    }
}

impl Host for MockHost {
    fn now(&self) -> SystemTime {
        self.tally("now");
        self.now
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.tally("log");
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.tally("header");
        self.map(map)
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, String)> {
        self.tally("headers");
        self.map(map).clone()
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: Option<&str>) {
        self.tally("set_header");
        let headers = self.map_mut(map);
        headers.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            headers.push((name.to_string(), value.to_string()));
        }
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.tally("add_header");
        self.map_mut(map)
            .push((name.to_string(), value.to_string()));
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.tally("property");
        self.properties.get(&path.join(".")).cloned()
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool {
        self.tally("set_property");
        self.properties.insert(path.join("."), value.to_vec());
        true
    }

    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        self.tally("request_body");
        let end = start.saturating_add(max).min(self.request_body.len());
        self.request_body.get(start..end).map(<[u8]>::to_vec)
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.tally("shared_get");
        self.shared.borrow().entries.get(key).cloned()
    }

    fn shared_set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        self.tally("shared_set");
        let mut store = self.shared.borrow_mut();
        if let Some(expected) = cas {
            let current = store.entries.get(key).map(|(_, token)| *token);
            // Envoy treats CAS 0 as "no check"; a missing key accepts any token.
            if expected != 0 && current.is_some_and(|token| token != expected) {
                return Err(SharedDataError::CasMismatch);
            }
        }
        store.write(key, value);
        Ok(())
    }

    fn send_response(&mut self, response: &LocalResponse) {
        self.tally("send_response");
        self.responses.push(response.clone());
    }

    fn dispatch(&mut self, call: &HttpCall) -> Option<u32> {
        self.tally("dispatch");
        let token = self.next_token;
        self.next_token += 1;
        self.calls.push((token, call.clone()));
        Some(token)
    }

    fn dispatch_grpc(&mut self, call: &GrpcCall) -> Option<u32> {
        self.tally("dispatch_grpc");
        if self.refuse_grpc {
            return None;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.grpc_calls.push((token, call.clone()));
        Some(token)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.tally("define_metric");
        self.metrics.entry(name.to_string()).or_insert((kind, 0));
        let id = match self.metric_names.iter().position(|known| known == name) {
            Some(index) => index,
            None => {
                self.metric_names.push(name.to_string());
                self.metric_names.len() - 1
            }
        };
        u32::try_from(id).ok()
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.tally("increment_metric");
        if let Some(name) = self.metric_names.get(id as usize)
            && let Some((_, value)) = self.metrics.get_mut(name)
        {
            *value += delta;
        }
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.tally("record_metric");
        if let Some(name) = self.metric_names.get(id as usize)
            && let Some((_, current)) = self.metrics.get_mut(name)
        {
            *current = i64::try_from(value).unwrap_or(i64::MAX);
        }
    }

    fn foreign_call(&mut self, name: &str, argument: &[u8]) -> Option<Vec<u8>> {
        self.tally("foreign_call");
        self.foreign
            .get(name)
            .and_then(|function| function(argument))
    }

    fn random_u64(&mut self) -> u64 {
        self.tally("random_u64");
        // xorshift64*: deterministic per seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_detects_concurrent_writers() {
        let shared = SharedHandle::default();
        let mut a = MockHost::new().with_shared(shared.clone());
        let mut b = MockHost::new().with_shared(shared);
        a.shared_set("k", b"1", None).unwrap();
        let (_, token) = a.shared_get("k").unwrap();
        b.shared_set("k", b"2", Some(token)).unwrap();
        assert_eq!(
            a.shared_set("k", b"3", Some(token)),
            Err(SharedDataError::CasMismatch)
        );
        assert_eq!(a.shared_get("k").unwrap().0, b"2");
    }

    #[test]
    fn rollback_restores_values_tokens_and_absence() {
        let shared = SharedHandle::default();
        let mut host = MockHost::new().with_shared(shared.clone());
        host.shared_set("kept", b"1", None).unwrap();
        let before = host.shared_get("kept").unwrap();
        shared.borrow_mut().checkpoint();
        for _ in 0..2 {
            host.shared_set("kept", b"2", None).unwrap();
            host.shared_set("added", b"3", None).unwrap();
            shared.borrow_mut().rollback();
            assert_eq!(host.shared_get("kept"), Some(before.clone()));
            assert_eq!(host.shared_get("added"), None);
            assert_eq!(shared.borrow().len(), 1);
            // The next write gets the token it would have got at the checkpoint.
            host.shared_set("probe", b"", None).unwrap();
            assert_eq!(host.shared_get("probe").unwrap().1, before.1 + 1);
            shared.borrow_mut().rollback();
        }
    }

    #[test]
    fn headers_are_case_insensitive_and_replaceable() {
        let mut host = MockHost::new().with_request_header("X-A", "1");
        assert_eq!(host.header(HeaderMap::Request, "x-a").as_deref(), Some("1"));
        host.set_header(HeaderMap::Request, "x-a", Some("2"));
        assert_eq!(
            host.headers(HeaderMap::Request),
            vec![("x-a".into(), "2".into())]
        );
        host.set_header(HeaderMap::Request, "x-a", None);
        assert!(host.headers(HeaderMap::Request).is_empty());
    }

    #[test]
    fn every_host_call_is_counted_by_name() {
        let mut host = MockHost::new().with_request_header(":path", "/");
        let _ = host.header(HeaderMap::Request, ":path");
        let _ = host.header(HeaderMap::Request, "missing");
        let _ = host.now();
        host.set_header(HeaderMap::Request, "x", Some("1"));
        let _ = host.shared_set("k", b"v", None);
        assert_eq!(host.hostcalls(), 5);
        assert_eq!(
            host.hostcall_counts(),
            BTreeMap::from([
                ("header", 2),
                ("now", 1),
                ("set_header", 1),
                ("shared_set", 1)
            ])
        );
        host.reset_hostcalls();
        assert_eq!(host.hostcalls(), 0);
        assert!(host.hostcall_counts().is_empty());
    }

    #[test]
    fn metrics_accumulate_by_name() {
        let mut host = MockHost::new();
        let id = host.define_metric(MetricKind::Counter, "c").unwrap();
        assert_eq!(host.define_metric(MetricKind::Counter, "c"), Some(id));
        host.increment_metric(id, 2);
        host.increment_metric(id, 3);
        assert_eq!(host.metric("c"), 5);
    }
}
