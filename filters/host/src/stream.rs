//! One HTTP stream inside a VM: its header maps, bodies and trailers, which of them the module
//! may touch right now, and where the stream is in its life.
//!
//! Envoy's wasm `Context` only holds a pointer to a header map while the corresponding callback
//! runs or while the filter has stopped iteration on it; once the filter continues, the pointer
//! is cleared. Reads of a cleared map then return `BadArgument` (and an empty list for
//! `proxy_get_header_map_pairs`), writes return `BadArgument`. In `proxy_on_log` every map is
//! readable again. The `open` flags below model those pointers, so a module that reads request
//! headers in `on_response_headers` fails here as it would in Envoy.

use std::collections::HashMap;

use crate::abi::{MapType, Status};
use crate::request::{LocalReply, Request};

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    RequestHeaders,
    RequestBody(usize),
    RequestTrailers,
    Upstream,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    Log,
    Done,
}

impl Phase {
    pub(crate) fn callback(self) -> &'static str {
        match self {
            Self::RequestHeaders => "on_request_headers",
            Self::RequestBody(_) => "on_request_body",
            Self::RequestTrailers => "on_request_trailers",
            Self::Upstream => "upstream",
            Self::ResponseHeaders => "on_response_headers",
            Self::ResponseBody => "on_response_body",
            Self::ResponseTrailers => "on_response_trailers",
            Self::Log => "on_log",
            Self::Done => "done",
        }
    }

    pub(crate) fn is_request(self) -> bool {
        matches!(
            self,
            Self::RequestHeaders | Self::RequestBody(_) | Self::RequestTrailers
        )
    }
}

/// A header map with Envoy's ordering rules (pseudo-headers first) and case folding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn add(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        if name.starts_with(':') {
            let at = self
                .0
                .iter()
                .take_while(|(k, _)| k.starts_with(':'))
                .count();
            self.0.insert(at, (name, value.to_string()));
        } else {
            self.0.push((name, value.to_string()));
        }
    }

    /// Replaces the first value and drops the others (Envoy's `setCopy`), or adds.
    pub(crate) fn replace(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.0.iter().position(|(k, _)| *k == name) {
            Some(first) => {
                if let Some(entry) = self.0.get_mut(first) {
                    entry.1 = value.to_string();
                }
                let mut index = 0;
                self.0.retain(|(k, _)| {
                    let keep = index <= first || *k != name;
                    index += 1;
                    keep
                });
            }
            None => self.add(&name, value),
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.0.retain(|(k, _)| *k != name);
    }

    pub(crate) fn set_all(&mut self, pairs: Vec<(String, String)>) {
        self.0.clear();
        for (k, v) in pairs {
            self.add(&k, &v);
        }
    }
}

/// An HTTP context's state, owned by its VM.
#[derive(Debug)]
pub(crate) struct Stream {
    pub request: Request,
    pub phase: Phase,
    pub paused: bool,
    pub request_headers: Headers,
    pub request_headers_open: bool,
    pub request_body: Vec<u8>,
    pub request_body_open: bool,
    pub request_body_forwarded: Vec<u8>,
    pub request_trailers: Option<Headers>,
    pub request_trailers_open: bool,
    pub response_headers: Headers,
    pub response_headers_open: bool,
    pub response_body: Vec<u8>,
    pub response_body_open: bool,
    pub response_trailers: Option<Headers>,
    pub response_trailers_open: bool,
    /// `proxy_on_log`: every map readable, none writable.
    pub log_phase: bool,
    pub end_of_stream: bool,
    /// Set by `proxy_set_property`.
    pub filter_state: HashMap<String, Vec<u8>>,
    /// Deferred actions requested during the current callback.
    pub resume_request: bool,
    pub resume_response: bool,
    pub reset: bool,
    pub pending_reply: Option<LocalReply>,
    /// A local reply that is travelling through the encoder path.
    pub local_reply: Option<LocalReply>,
    pub cluster: Option<String>,
    pub has_response: bool,
}

impl Stream {
    pub(crate) fn new(request: Request, headers: Vec<(String, String)>) -> Self {
        let mut request_headers = Headers::default();
        request_headers.set_all(headers);
        let request_trailers = (!request.trailers.is_empty()).then(|| {
            let mut t = Headers::default();
            t.set_all(request.trailers.clone());
            t
        });
        Self {
            request,
            phase: Phase::RequestHeaders,
            paused: false,
            request_headers,
            request_headers_open: false,
            request_body: Vec::new(),
            request_body_open: false,
            request_body_forwarded: Vec::new(),
            request_trailers,
            request_trailers_open: false,
            response_headers: Headers::default(),
            response_headers_open: false,
            response_body: Vec::new(),
            response_body_open: false,
            response_trailers: None,
            response_trailers_open: false,
            log_phase: false,
            end_of_stream: false,
            filter_state: HashMap::new(),
            resume_request: false,
            resume_response: false,
            reset: false,
            pending_reply: None,
            local_reply: None,
            cluster: None,
            has_response: false,
        }
    }

    /// The map for reading, or `None` when Envoy would hold no pointer to it now.
    pub(crate) fn readable(&self, map: MapType) -> Option<&Headers> {
        let log = self.log_phase;
        match map {
            MapType::RequestHeaders if log || self.request_headers_open => {
                Some(&self.request_headers)
            }
            MapType::RequestTrailers if !log && self.request_trailers_open => {
                self.request_trailers.as_ref()
            }
            MapType::ResponseHeaders
                if (log && self.has_response) || self.response_headers_open =>
            {
                Some(&self.response_headers)
            }
            MapType::ResponseTrailers if log || self.response_trailers_open => {
                self.response_trailers.as_ref()
            }
            _ => None,
        }
    }

    /// The map for writing, or `BadArgument`.
    pub(crate) fn writable(&mut self, map: MapType) -> Result<&mut Headers, Status> {
        if self.log_phase {
            return Err(Status::BadArgument);
        }
        match map {
            MapType::RequestHeaders if self.request_headers_open => Ok(&mut self.request_headers),
            MapType::RequestTrailers if self.request_trailers_open => {
                Ok(self.request_trailers.get_or_insert_with(Headers::default))
            }
            // Envoy adds trailers on demand in the last body callback.
            MapType::RequestTrailers if self.request_body_open && self.end_of_stream => {
                Ok(self.request_trailers.get_or_insert_with(Headers::default))
            }
            MapType::ResponseHeaders if self.response_headers_open => {
                Ok(&mut self.response_headers)
            }
            MapType::ResponseTrailers if self.response_trailers_open => {
                Ok(self.response_trailers.get_or_insert_with(Headers::default))
            }
            MapType::ResponseTrailers if self.response_body_open && self.end_of_stream => {
                Ok(self.response_trailers.get_or_insert_with(Headers::default))
            }
            _ => Err(Status::BadArgument),
        }
    }

    /// Closes every request-direction pointer (Envoy's `continueStream` does this).
    pub(crate) fn close_request_maps(&mut self) {
        self.request_headers_open = false;
        self.request_body_open = false;
        self.request_trailers_open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_stay_first_and_names_fold() {
        let mut headers = Headers::default();
        headers.add("X-A", "1");
        headers.add(":path", "/");
        assert_eq!(headers.0[0].0, ":path");
        assert_eq!(headers.get("x-a"), Some("1"));
    }

    #[test]
    fn replace_keeps_the_first_position_and_drops_duplicates() {
        let mut headers = Headers::default();
        headers.set_all(vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into()),
        ]);
        headers.replace("A", "9");
        assert_eq!(
            headers.0,
            vec![("a".into(), "9".into()), ("b".into(), "2".into())]
        );
        headers.remove("b");
        headers.replace("c", "4");
        assert_eq!(headers.0.len(), 2);
    }

    #[test]
    fn maps_close_like_envoys_pointers() {
        let mut stream = Stream::new(Request::get("/"), vec![]);
        assert!(stream.readable(MapType::RequestHeaders).is_none());
        stream.request_headers_open = true;
        assert!(stream.writable(MapType::RequestHeaders).is_ok());
        assert_eq!(
            stream.writable(MapType::ResponseHeaders).err(),
            Some(Status::BadArgument)
        );
        stream.close_request_maps();
        stream.log_phase = true;
        assert!(stream.readable(MapType::RequestHeaders).is_some());
        assert!(stream.writable(MapType::RequestHeaders).is_err());
    }
}
