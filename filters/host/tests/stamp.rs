//! The trivial stamp filter, built for wasm32-wasip1, in the wasmtime host.

use meshguard_testkit::paths::filter_module;
use meshguard_wasm_host::{HostError, Plugin, PluginOptions, Request, Verdict, WasmModule};

fn module() -> WasmModule {
    let path = filter_module("meshguard_stamp").expect("the stamp module is built");
    WasmModule::from_file(path).expect("the stamp module loads")
}

#[test]
fn stamps_the_upstream_request_replacing_a_client_copy() {
    let mut plugin = Plugin::start(
        &module(),
        PluginOptions::new(r#"{"header":"x-meshguard-stamp","value":"from-wasm"}"#).named("stamp"),
    )
    .unwrap();
    let outcome = plugin
        .send(Request::get("/api/products").header("x-meshguard-stamp", "spoofed"))
        .unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded, "{outcome:#?}");
    assert_eq!(
        outcome.upstream_header("x-meshguard-stamp"),
        Some("from-wasm")
    );
    assert_eq!(outcome.status(), Some(200), "{outcome:#?}");
}

#[test]
fn invalid_config_is_rejected_with_the_filters_message() {
    let err = Plugin::start(&module(), PluginOptions::new(r#"{"header":"Not Valid"}"#))
        .expect_err("bad config must be rejected");
    assert!(matches!(err, HostError::ConfigRejected { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("invalid configuration at `header`"),
        "{err}"
    );
}
