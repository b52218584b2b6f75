//! Test support: a host that lets "another worker" act between a read and the write that
//! follows it, to provoke real CAS conflicts deterministically (the circuit breaker's and the
//! rate limiter's race tests share it).

use std::cell::Cell;
use std::time::SystemTime;

use crate::mock::MockHost;
use crate::{
    GrpcCall, HeaderMap, Host, HttpCall, LocalResponse, LogLevel, MetricKind, SharedDataError,
};

/// A [`MockHost`] that runs an interference callback before every shared-data write.
pub struct RacingHost {
    /// The host proper.
    pub inner: MockHost,
    interference: Box<dyn FnMut(&str)>,
    gets: Cell<u32>,
    sets: u32,
}

impl RacingHost {
    /// Wraps `inner` with no interference.
    pub fn new(inner: MockHost) -> Self {
        Self {
            inner,
            interference: Box::new(|_| {}),
            gets: Cell::new(0),
            sets: 0,
        }
    }

    /// Runs `interference` with the key before each write (it decides itself when to act and
    /// when to stop).
    pub fn interfere(mut self, interference: impl FnMut(&str) + 'static) -> Self {
        self.interference = Box::new(interference);
        self
    }

    /// Reads so far.
    pub fn gets(&self) -> u32 {
        self.gets.get()
    }

    /// Writes attempted so far.
    pub fn sets(&self) -> u32 {
        self.sets
    }
}

impl Host for RacingHost {
    fn now(&self) -> SystemTime {
        self.inner.now()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message);
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.inner.header(map, name)
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, String)> {
        self.inner.headers(map)
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: Option<&str>) {
        self.inner.set_header(map, name, value);
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.inner.add_header(map, name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.inner.property(path)
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool {
        self.inner.set_property(path, value)
    }

    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        self.inner.request_body(start, max)
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.gets.set(self.gets.get() + 1);
        self.inner.shared_get(key)
    }

    fn shared_set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        self.sets += 1;
        (self.interference)(key);
        self.inner.shared_set(key, value, cas)
    }

    fn send_response(&mut self, response: &LocalResponse) {
        self.inner.send_response(response);
    }

    fn dispatch(&mut self, call: &HttpCall) -> Option<u32> {
        self.inner.dispatch(call)
    }

    fn dispatch_grpc(&mut self, call: &GrpcCall) -> Option<u32> {
        self.inner.dispatch_grpc(call)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.inner.define_metric(kind, name)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.inner.increment_metric(id, delta);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.inner.record_metric(id, value);
    }

    fn foreign_call(&mut self, name: &str, argument: &[u8]) -> Option<Vec<u8>> {
        self.inner.foreign_call(name, argument)
    }

    fn random_u64(&mut self) -> u64 {
        self.inner.random_u64()
    }
}
