//! The proxy-wasm ABI 0.2.1 as numbers and bytes: status codes, enum values, and the
//! serialisation of header maps and property paths.
//!
//! Values follow proxy-wasm's `proxy_wasm_common.h` (and the Rust SDK's `types.rs`), which is
//! what Envoy and the modules agree on; they are kept here in one place so that the hostcalls
//! read like Envoy's `context.cc`.

/// A proxy-wasm `WasmResult` returned by every hostcall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The key, context or queue does not exist.
    NotFound = 1,
    /// An argument was invalid (or the requested map is not available in this phase).
    BadArgument = 2,
    /// A value could not be serialised.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A guest pointer was out of bounds.
    InvalidMemoryAccess = 6,
    /// The queue is empty.
    Empty = 7,
    /// Compare-and-swap mismatch on shared data.
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// The hostcall exists in the ABI but this host does not implement it.
    Unimplemented = 12,
}

impl Status {
    /// The status as the `i32` a hostcall returns.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `proxy_on_request_headers` and friends return 0 (continue) or 1 (stop iteration).
pub const ACTION_CONTINUE: i32 = 0;
/// `proxy_action_t::StopIteration` (`Action::Pause` in the Rust SDK).
pub const ACTION_STOP_ITERATION: i32 = 1;

/// Which header map a hostcall addresses (`MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    /// Downstream request headers.
    RequestHeaders,
    /// Downstream request trailers.
    RequestTrailers,
    /// Response headers (upstream or local reply).
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
    /// gRPC initial metadata (not supported by this host).
    GrpcInitialMetadata,
    /// gRPC trailing metadata (not supported by this host).
    GrpcTrailingMetadata,
    /// Headers of the HTTP call response being delivered.
    CallResponseHeaders,
    /// Trailers of the HTTP call response being delivered.
    CallResponseTrailers,
}

impl MapType {
    /// Decodes the ABI value.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcInitialMetadata,
            5 => Self::GrpcTrailingMetadata,
            6 => Self::CallResponseHeaders,
            7 => Self::CallResponseTrailers,
            _ => return None,
        })
    }
}

/// Which buffer a hostcall addresses (`BufferType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferType {
    /// Downstream request body.
    RequestBody,
    /// Response body.
    ResponseBody,
    /// TCP downstream data (not supported: HTTP filters only).
    DownstreamData,
    /// TCP upstream data (not supported: HTTP filters only).
    UpstreamData,
    /// Body of the HTTP call response being delivered.
    CallResponseBody,
    /// gRPC message (not supported).
    GrpcReceive,
    /// The VM configuration (`proxy_on_vm_start`).
    VmConfiguration,
    /// The plugin configuration (`proxy_on_configure`).
    PluginConfiguration,
    /// Foreign-function call data (`proxy_on_foreign_function`).
    CallData,
}

impl BufferType {
    /// Decodes the ABI value.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::CallResponseBody,
            5 => Self::GrpcReceive,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Which stream `proxy_continue_stream` / `proxy_close_stream` address (`StreamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// The HTTP request direction.
    Request,
    /// The HTTP response direction.
    Response,
    /// TCP downstream.
    Downstream,
    /// TCP upstream.
    Upstream,
}

impl StreamType {
    /// Decodes the ABI value.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Request,
            1 => Self::Response,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// Metric kinds, in the low two bits of a metric id (as Envoy encodes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of recorded values.
    Histogram,
}

impl MetricType {
    /// Decodes the ABI value.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }

    /// The ABI value (also the low bits of the metric ids of this kind).
    pub fn raw(self) -> u32 {
        match self {
            Self::Counter => 0,
            Self::Gauge => 1,
            Self::Histogram => 2,
        }
    }
}

/// Serialises pairs as proxy-wasm does: count, then (key length, value length) per pair, then
/// each key and value followed by a NUL byte. All integers are little-endian u32.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.as_ref().len() + v.as_ref().len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&len_u32(key.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(value.as_ref().len()).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_ref());
        out.push(0);
        out.extend_from_slice(value.as_ref());
        out.push(0);
    }
    out
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Parses serialised pairs; `None` when the bytes are malformed (the hostcall then answers
/// `BadArgument` instead of trusting the guest).
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = read_u32(0)?;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for index in 0..count {
        let key_len = read_u32(4 + index * 8)?;
        let value_len = read_u32(8 + index * 8)?;
        let key = bytes.get(data..data.checked_add(key_len)?)?.to_vec();
        data += key_len + 1;
        let value = bytes.get(data..data.checked_add(value_len)?)?.to_vec();
        data += value_len + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// Splits a serialised property path (`source\0address`) into its parts.
pub fn decode_path(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_in_the_sdk_layout() {
        let pairs = [(":method", "GET"), (":path", "/bytes/1")];
        let bytes = encode_pairs(&pairs);
        assert_eq!(&bytes[..4], &[2, 0, 0, 0]);
        assert_eq!(&bytes[4..12], &[7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&bytes[20..28], b":method\0");
        let decoded = decode_pairs(&bytes).unwrap();
        assert_eq!(decoded[1], (b":path".to_vec(), b"/bytes/1".to_vec()));
    }

    #[test]
    fn malformed_pairs_are_rejected_not_trusted() {
        assert!(decode_pairs(&[5, 0, 0, 0]).is_none());
        assert!(decode_pairs(&[1, 0, 0, 0, 200, 0, 0, 0, 1, 0, 0, 0, b'a', 0]).is_none());
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(decode_pairs(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn property_paths_split_on_nul() {
        assert_eq!(decode_path(b"source\0address"), vec!["source", "address"]);
        assert_eq!(decode_path(b"plugin_name"), vec!["plugin_name"]);
        assert!(decode_path(b"").is_empty());
    }
}
