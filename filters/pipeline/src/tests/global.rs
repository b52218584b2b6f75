//! The `rateLimit` stage's global limits in the pipeline: the descriptor comes from the claims
//! the `jwtAuth` stage verified, the request pauses for the service's answer and resumes at the
//! next stage, and a globally refused request is never charged by the local limits.

use std::time::Duration;

use meshguard_filter_core::{CallResponse, Decision, Root, Stream};
use meshguard_rls::{Code, Message, RateLimitRequest, RateLimitResponse};
use serde_json::json;

use super::{Gateway, jwt_section, token};

fn gateway() -> Gateway {
    Gateway::new(&json!({
        "jwtAuth": jwt_section(),
        "rateLimit": {"limits": [
            {"name": "local", "key": [{"claim": "sub"}], "rate": {"requests": 1, "per": "minute"}},
            {"name": "orders", "key": [{"constant": "orders"}, {"claim": "sub"}],
             "global": {"cluster": "ratelimit", "domain": "shop", "timeout": "50ms"}}
        ]}
    }))
}

fn answer(code: Code) -> Option<CallResponse> {
    let response = RateLimitResponse {
        overall_code: code as i32,
        statuses: Vec::new(),
        response_headers_to_add: Vec::new(),
        request_headers_to_add: Vec::new(),
    };
    Some(CallResponse::grpc(0, "", response.encode_to_vec()))
}

/// Sends alice's request; the global call is answered with `code`.
fn send(gateway: &mut Gateway, code: Code) -> Decision {
    let bearer = format!("Bearer {}", token("alice"));
    gateway.host.request_headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), "/orders".into()),
        (":authority".into(), "shop.example".into()),
        ("authorization".into(), bearer),
    ];
    let mut stream = Stream::new(gateway.root.new_http(1));
    match stream.on_request_headers(&mut gateway.host, true) {
        Decision::Pause => {
            let (token, _) = gateway.host.grpc_calls.last().cloned().unwrap();
            stream.on_call_response(&mut gateway.host, token, answer(code))
        }
        other => other,
    }
}

#[test]
fn the_global_limit_keys_on_verified_claims_and_resumes_the_pipeline() {
    let mut gateway = gateway();
    assert_eq!(send(&mut gateway, Code::OverLimit).status(), 429);
    let (_, call) = gateway.host.grpc_calls.last().cloned().unwrap();
    assert_eq!(call.timeout, Duration::from_millis(50));
    let request = RateLimitRequest::decode(call.message.as_slice()).unwrap();
    let entries: Vec<_> = request.descriptors[0]
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(entries, [("generic_key", "orders"), ("claim.sub", "alice")]);
    // The global refusal charged nothing locally: alice's one local request is still there.
    assert_eq!(send(&mut gateway, Code::Ok), Decision::Continue);
    assert_eq!(gateway.metric("meshguard.rate_limit.edge.local.allowed"), 1);
    // Now the local limit refuses before any call is made.
    let calls = gateway.host.grpc_calls.len();
    assert_eq!(send(&mut gateway, Code::Ok).status(), 429);
    assert_eq!(gateway.host.grpc_calls.len(), calls, "local first: no call");
}

trait Status {
    fn status(&self) -> u32;
}

impl Status for Decision {
    fn status(&self) -> u32 {
        match self {
            Decision::Respond(response) => response.status,
            _ => 200,
        }
    }
}
