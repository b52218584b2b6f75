//! The built filter modules export exactly the proxy-wasm callbacks their filters use.
//!
//! Envoy calls every exported stream callback on every request, so `cargo xtask
//! build-filters` removes the ones a filter never needs (the shim's `exports` module). These
//! lists are what each filter's `HttpFilter::CALLBACKS` says: a change to either shows here.

use meshguard_testkit::paths::filter_module;

/// Exported by every module: the VM, root and stream lifecycle, request headers and callouts (HTTP and unary gRPC).
const ALWAYS: &[&str] = &[
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_delete",
    "proxy_on_grpc_close",
    "proxy_on_grpc_receive",
    "proxy_on_http_call_response",
    "proxy_on_memory_allocate",
    "proxy_on_request_headers",
    "proxy_on_tick",
    "proxy_on_vm_start",
];

fn proxy_exports(crate_name: &str) -> (Vec<String>, Vec<u8>) {
    let path = filter_module(crate_name).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let module = wasmtime::Module::new(&wasmtime::Engine::default(), &bytes).unwrap();
    let mut names: Vec<String> = module
        .exports()
        .map(|export| export.name().to_string())
        .filter(|name| name.starts_with("proxy_on_"))
        .collect();
    names.sort();
    (names, bytes)
}

#[test]
fn each_module_exports_only_the_callbacks_its_filter_uses() {
    for (crate_name, extra) in [
        ("meshguard_stamp", &[][..]),
        ("meshguard_jwt_auth", &[][..]),
        ("meshguard_canary", &["proxy_on_response_headers"][..]),
        ("meshguard_rate_limit", &["proxy_on_response_headers"][..]),
        (
            "meshguard_circuit_breaker",
            &["proxy_on_log", "proxy_on_response_headers"][..],
        ),
        // The pipeline: one response-headers and one log callback for every stage; built with
        // the authz stage, one body callback too (authz's `withRequestBody`; requests without
        // a body never call it). Without it no stage reads bodies: Envoy calls nothing per chunk.
        (
            "meshguard",
            &["proxy_on_log", "proxy_on_response_headers"][..],
        ),
        (
            "meshguard_with_authz",
            &[
                "proxy_on_log",
                "proxy_on_request_body",
                "proxy_on_response_headers",
            ][..],
        ),
        (
            "meshguard_authz",
            &["proxy_on_request_body", "proxy_on_response_headers"][..],
        ),
    ] {
        let (names, bytes) = proxy_exports(crate_name);
        let mut expected: Vec<&str> = ALWAYS.iter().chain(extra).copied().collect();
        expected.sort();
        assert_eq!(names, expected, "{crate_name}");
        // The list the build step worked from does not ship.
        assert!(
            !bytes
                .windows(b"meshguard.unused_exports".len())
                .any(|w| w == b"meshguard.unused_exports"),
            "{crate_name} still carries its unused-exports section"
        );
    }
}
