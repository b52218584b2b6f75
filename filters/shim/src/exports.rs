//! Which of the proxy-wasm SDK's exports a filter module never needs, written into the module.
//!
//! The SDK exports every callback of ABI 0.2.1, and Envoy calls each exported stream callback
//! on every request, even when the SDK's default answers it without doing anything. Envoy
//! calls nothing for a callback the module does not export (proxy-wasm-cpp-host checks each
//! export before it calls), so every export removed is one call into V8 saved per request:
//! about 2 µs of Envoy CPU per request for the floor filter here (`cargo xtask bench`).
//!
//! The shim knows which callbacks it routes to a filter, and the filter says which optional
//! ones it implements ([`HttpFilter::CALLBACKS`]). [`export_filter!`](crate::export_filter)
//! writes the names of all the others into the custom section [`SECTION`], and
//! `cargo xtask build-filters` removes those exports and the section. A module built without
//! that step still works: it only keeps the calls.

use meshguard_filter_core::{Filter, HttpFilter, Root};

pub use meshguard_filter_core::StreamCallbacks;

/// The custom section holding the unused export names, one per line. `export_filter!` spells
/// it as a literal (attributes take no constants); a test keeps the two equal.
pub const SECTION: &str = "meshguard.unused_exports";

/// Exports the shim never routes to a filter, so the SDK's do-nothing defaults answer them:
/// response bodies and trailers (no filter reads them), `on_done` (the SDK's default says done; Envoy
/// treats a missing export the same), queues and foreign-function callbacks (never
/// registered), the network-filter callbacks, and gRPC streams' metadata callbacks (a unary
/// gRPC call, the only kind the shim makes, is answered by `proxy_on_grpc_receive` or
/// `proxy_on_grpc_close`, which stay: they cost nothing on requests that make no call).
const NEVER_ROUTED: &[&str] = &[
    "proxy_on_request_trailers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_done",
    "proxy_on_queue_ready",
    "proxy_on_foreign_function",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive_trailing_metadata",
];

const RESPONSE_HEADERS: &str = "proxy_on_response_headers";
const LOG: &str = "proxy_on_log";
const REQUEST_BODY: &str = "proxy_on_request_body";

/// The optional callbacks of filter `F`'s streams.
pub const fn callbacks_of<F: Filter>() -> StreamCallbacks {
    <<F::Root as Root>::Http as HttpFilter>::CALLBACKS
}

/// The export names a filter with `callbacks` does not need.
const fn unused(callbacks: StreamCallbacks, index: usize) -> Option<&'static str> {
    if index < NEVER_ROUTED.len() {
        // In bounds: checked on the line above (and this only runs at compile time).
        #[allow(clippy::indexing_slicing)]
        return Some(NEVER_ROUTED[index]);
    }
    let mut rest = index - NEVER_ROUTED.len();
    if !callbacks.response_headers {
        if rest == 0 {
            return Some(RESPONSE_HEADERS);
        }
        rest -= 1;
    }
    if !callbacks.log {
        if rest == 0 {
            return Some(LOG);
        }
        rest -= 1;
    }
    if !callbacks.request_body && rest == 0 {
        return Some(REQUEST_BODY);
    }
    None
}

/// The length of [`unused_names`]' section for `callbacks`.
pub const fn unused_len(callbacks: StreamCallbacks) -> usize {
    let mut len = 0;
    let mut index = 0;
    while let Some(name) = unused(callbacks, index) {
        len += name.len() + 1;
        index += 1;
    }
    len
}

/// The section's bytes: each unused export name followed by a newline. `N` must be
/// [`unused_len`]; `export_filter!` evaluates this in a static, so a mismatch fails the build.
// Every index is below N or the const evaluation fails the build: no runtime panic is possible.
#[allow(clippy::indexing_slicing)]
pub const fn unused_names<const N: usize>(callbacks: StreamCallbacks) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut index = 0;
    while let Some(name) = unused(callbacks, index) {
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            out[at] = bytes[i];
            at += 1;
            i += 1;
        }
        out[at] = b'\n';
        at += 1;
        index += 1;
    }
    assert!(at == N, "unused_names: N must be unused_len(callbacks)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(callbacks: StreamCallbacks) -> Vec<String> {
        // The same evaluation the macro makes, at run time.
        let mut index = 0;
        let mut names = Vec::new();
        while let Some(name) = unused(callbacks, index) {
            names.push(name.to_string());
            index += 1;
        }
        assert_eq!(
            unused_len(callbacks),
            names.iter().map(|n| n.len() + 1).sum::<usize>()
        );
        names
    }

    #[test]
    fn every_filter_keeps_the_callbacks_the_shim_routes() {
        for callbacks in [
            StreamCallbacks::ALL,
            StreamCallbacks::REQUEST_ONLY,
            StreamCallbacks {
                response_headers: true,
                log: false,
                request_body: false,
            },
            StreamCallbacks {
                response_headers: true,
                log: false,
                request_body: true,
            },
        ] {
            let unused = names(callbacks);
            for kept in [
                "proxy_on_request_headers",
                "proxy_on_context_create",
                "proxy_on_delete",
                "proxy_on_configure",
                "proxy_on_vm_start",
                "proxy_on_tick",
                "proxy_on_http_call_response",
                "proxy_on_grpc_receive",
                "proxy_on_grpc_close",
                "proxy_on_memory_allocate",
            ] {
                assert!(
                    !unused.iter().any(|n| n == kept),
                    "{kept} must stay exported"
                );
            }
            assert_eq!(
                unused.iter().any(|n| n == RESPONSE_HEADERS),
                !callbacks.response_headers
            );
            assert_eq!(unused.iter().any(|n| n == LOG), !callbacks.log);
            assert_eq!(
                unused.iter().any(|n| n == REQUEST_BODY),
                !callbacks.request_body
            );
        }
    }

    #[test]
    fn the_section_lists_the_names_one_per_line() {
        const CALLBACKS: StreamCallbacks = StreamCallbacks {
            response_headers: false,
            log: true,
            request_body: true,
        };
        const BYTES: [u8; unused_len(CALLBACKS)] = unused_names(CALLBACKS);
        let text = std::str::from_utf8(&BYTES).unwrap();
        assert!(text.ends_with("proxy_on_response_headers\n"));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            names(CALLBACKS)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_macro_spells_the_section_name() {
        let source = include_str!("lib.rs");
        assert!(source.contains(&format!("link_section = \"{SECTION}\"")));
    }
}
