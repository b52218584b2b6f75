//! One snapshot of the request headers, read with a single host call, from which every lookup
//! (path, method, CORS headers, token locations, cookies, the spoofable headers present) is
//! answered. Each host call crosses the V8 boundary (and a value comes back through an
//! allocation inside the module), so reading the map once is the cheapest way to look at it.

use meshguard_filter_core::{HeaderMap, Host};

/// The request headers as they arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    headers: Vec<(String, String)>,
}

impl Request {
    /// Reads the request headers from the host.
    pub fn read(host: &dyn Host) -> Self {
        Self {
            headers: host.headers(HeaderMap::Request),
        }
    }

    /// A request with these headers (for tests).
    pub fn from_headers(headers: Vec<(String, String)>) -> Self {
        Self { headers }
    }

    /// The first value of header `name` (names compare ignoring ASCII case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether header `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// `:path` (empty if absent).
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or_default()
    }

    /// `:method` (empty if absent).
    pub fn method(&self) -> &str {
        self.header(":method").unwrap_or_default()
    }

    /// Envoy's realm: the request URL without its query.
    pub fn url(&self) -> String {
        let scheme = self.header(":scheme").unwrap_or("http");
        let authority = self.header(":authority").unwrap_or_default();
        let path = self.path();
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        format!("{scheme}://{authority}{path}")
    }
}
