//! `proxy_get_property`: Envoy's attribute vocabulary, computed from the stream, with a table
//! of overrides (per request, then per plugin) on top.
//!
//! Values are serialised as Envoy serialises CEL values: strings as their bytes, integers as 8
//! little-endian bytes, booleans as one byte, timestamps as nanoseconds since the epoch (8
//! bytes), maps as proxy-wasm pairs. Request attributes are read from the current request
//! headers, so a filter that rewrites `:path` sees the new `request.path`, as in Envoy.
//! Attributes not listed here (for example `node` or `upstream.*`) can be supplied through the
//! table; unknown ones are `NotFound`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::abi::{Status, encode_pairs};
use crate::options::PluginOptions;
use crate::stream::Stream;

/// What a property lookup can see.
pub(crate) struct Scope<'a> {
    pub options: &'a PluginOptions,
    pub stream: Option<&'a Stream>,
    pub started: SystemTime,
}

/// Resolves a property path (`["source", "address"]`).
pub(crate) fn lookup(scope: &Scope<'_>, path: &[String]) -> Result<Vec<u8>, Status> {
    let dotted = path.join(".");
    if let Some(value) = scope
        .stream
        .and_then(|stream| stream.request.properties.get(&dotted))
    {
        return Ok(value.to_bytes());
    }
    if let Some(value) = scope.options.properties.get(&dotted) {
        return Ok(value.to_bytes());
    }
    if let Some(value) = derived(scope, path) {
        return Ok(value);
    }
    if let Some(value) = scope
        .stream
        .and_then(|stream| stream.filter_state.get(&dotted))
    {
        return Ok(value.clone());
    }
    Err(Status::NotFound)
}

fn text(value: &str) -> Option<Vec<u8>> {
    Some(value.as_bytes().to_vec())
}

fn int(value: i64) -> Option<Vec<u8>> {
    Some(value.to_le_bytes().to_vec())
}

fn derived(scope: &Scope<'_>, path: &[String]) -> Option<Vec<u8>> {
    let options = scope.options;
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["plugin_name"] => return text(&options.name),
        ["plugin_root_id"] => return text(&options.root_id),
        ["plugin_vm_id"] => return text(&options.vm_id),
        _ => {}
    }
    let stream = scope.stream?;
    let headers = &stream.request_headers;
    let header = |name: &str| headers.get(name).unwrap_or("").to_string();
    match parts.as_slice() {
        ["request", "path"] => text(&header(":path")),
        ["request", "url_path"] => text(header(":path").split('?').next().unwrap_or("")),
        ["request", "query"] => text(header(":path").split_once('?').map_or("", |(_, q)| q)),
        ["request", "host"] => text(&header(":authority")),
        ["request", "scheme"] => text(&header(":scheme")),
        ["request", "method"] => text(&header(":method")),
        ["request", "referer"] => text(&header("referer")),
        ["request", "useragent"] => text(&header("user-agent")),
        ["request", "id"] => text(&header("x-request-id")),
        ["request", "protocol"] => text("HTTP/1.1"),
        ["request", "time"] => int(nanos(scope.started)),
        ["request", "size"] | ["request", "total_size"] => int(i64::try_from(
            stream.request.body.iter().map(Vec::len).sum::<usize>(),
        )
        .unwrap_or(i64::MAX)),
        ["request", "headers"] => Some(encode_pairs(&headers.0)),
        ["request", "headers", name] => headers.get(name).and_then(text),
        ["response", "code"] if stream.has_response => int(stream
            .response_headers
            .get(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)),
        ["response", "headers"] if stream.has_response => {
            Some(encode_pairs(&stream.response_headers.0))
        }
        ["response", "headers", name] if stream.has_response => {
            stream.response_headers.get(name).and_then(text)
        }
        ["response", "code_details"] => stream.local_reply.as_ref().map_or_else(
            || stream.has_response.then(|| b"via_upstream".to_vec()),
            |reply| text(&reply.details),
        ),
        ["source", "address"] => text(&stream.request.source),
        ["source", "port"] => int(port(&stream.request.source)),
        ["destination", "address"] => text("127.0.0.1:10000"),
        ["destination", "port"] => int(10000),
        ["connection", "mtls"] => Some(vec![0]),
        ["cluster_name"] | ["xds", "cluster_name"] => options.route_for(&headers.0).and_then(text),
        ["response", "flags"] if stream.has_response => int(response_flags(stream)),
        ["response", "size"] | ["response", "total_size"] if stream.has_response => {
            int(i64::try_from(stream.response_body.len()).unwrap_or(i64::MAX))
        }
        _ => None,
    }
}

/// Envoy's `StreamInfo` response flags for what this host can produce: `NR` (no route) for
/// the router's 404, `UT` (upstream request timeout) for its 504, none otherwise.
fn response_flags(stream: &Stream) -> i64 {
    match stream.local_reply.as_ref().map(|r| r.details.as_str()) {
        Some("route_not_found") => 0x100,
        Some("upstream_response_timeout") => 0x4,
        _ => 0,
    }
}

fn port(address: &str) -> i64 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

fn nanos(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{PropertyValue, Route};
    use crate::request::Request;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(String::from).collect()
    }

    #[test]
    fn request_attributes_follow_the_current_headers() {
        let options = PluginOptions::default()
            .route(Route::prefix("/v2", "canary"))
            .route(Route::prefix("/", "stable"));
        let request = Request::get("/v1/items?x=1").source("10.1.2.3:4567");
        let headers = request.initial_headers(None);
        let mut stream = Stream::new(request, headers);
        let scope = |stream: &Stream| -> Vec<Vec<u8>> {
            let scope = Scope {
                options: &options,
                stream: Some(stream),
                started: UNIX_EPOCH,
            };
            [
                "request.path",
                "request.url_path",
                "cluster_name",
                "source.port",
            ]
            .iter()
            .map(|p| lookup(&scope, &path(p)).unwrap())
            .collect()
        };
        let values = scope(&stream);
        assert_eq!(values[0], b"/v1/items?x=1");
        assert_eq!(values[1], b"/v1/items");
        assert_eq!(values[2], b"stable");
        assert_eq!(values[3], 4567i64.to_le_bytes());
        stream.request_headers.replace(":path", "/v2/items");
        assert_eq!(scope(&stream)[2], b"canary");
    }

    #[test]
    fn table_overrides_and_unknowns() {
        let options = PluginOptions::default()
            .named("rl")
            .property("node.id", "sidecar~10.0.0.1")
            .property("source.address", PropertyValue::from("9.9.9.9:1"));
        let stream = Stream::new(Request::get("/"), vec![]);
        let scope = Scope {
            options: &options,
            stream: Some(&stream),
            started: UNIX_EPOCH,
        };
        assert_eq!(
            lookup(&scope, &path("node.id")).unwrap(),
            b"sidecar~10.0.0.1"
        );
        assert_eq!(
            lookup(&scope, &path("source.address")).unwrap(),
            b"9.9.9.9:1"
        );
        assert_eq!(lookup(&scope, &path("plugin_name")).unwrap(), b"rl");
        assert_eq!(lookup(&scope, &path("no.such")), Err(Status::NotFound));
        let root = Scope {
            options: &options,
            stream: None,
            started: UNIX_EPOCH,
        };
        assert_eq!(lookup(&root, &path("request.path")), Err(Status::NotFound));
    }
}
