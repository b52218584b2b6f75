//! The pipeline's configuration: sections, their order, and errors that name the path from the
//! document's top.

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Env, Filter};
use serde_json::{Value, json};

use super::{PLUGIN, jwt_section};
use crate::Pipeline;

fn error(config: &Value) -> meshguard_filter_core::ConfigError {
    Pipeline::configure(
        &mut MockHost::new(),
        &Env::single(PLUGIN),
        config.to_string().as_bytes(),
    )
    .expect_err("the configuration must be refused")
}

fn stages(config: &Value) -> Vec<&'static str> {
    Pipeline::configure(
        &mut MockHost::new(),
        &Env::single(PLUGIN),
        config.to_string().as_bytes(),
    )
    .unwrap_or_else(|err| panic!("{err}"))
    .stage_names()
}

const LIMIT: &str = r#"{"limits":[{"name":"all","key":[{"constant":"all"}],"rate":{"requests":5,"per":"second"}}]}"#;

fn limit() -> Value {
    serde_json::from_str(LIMIT).unwrap()
}

#[test]
fn sections_run_in_stage_order_whatever_their_order_in_the_document() {
    let config = json!({
        "circuitBreaker": {"breakers": [{"name": "all"}]},
        "rateLimit": limit(),
        "jwtAuth": jwt_section(),
    });
    assert_eq!(stages(&config), ["jwtAuth", "rateLimit", "circuitBreaker"]);
    assert_eq!(stages(&json!({"rateLimit": limit()})), ["rateLimit"]);
}

#[test]
fn at_least_one_known_section() {
    let err = error(&json!({}));
    assert_eq!(err.field, ".");
    assert!(err.message.contains("at least one stage"), "{err}");
    let err = Pipeline::configure(&mut MockHost::new(), &Env::single(PLUGIN), b"").unwrap_err();
    assert_eq!(err.field, ".");
    let err = error(&json!({"rateLimit": limit(), "waf": {}}));
    assert_eq!(err.field, "waf");
    assert!(err.message.contains("`jwtAuth`"), "{err}");
    let err = error(&json!({"rateLimit": [1]}));
    assert_eq!(err.field, "rateLimit");
    // The empty key still names a field (found by the pipeline_config fuzz target).
    let err = error(&json!({"": {}}));
    assert_eq!(err.field, r#""""#);
    assert!(err.message.starts_with(r#"`""` is not a stage"#), "{err}");
}

#[test]
fn errors_name_the_path_inside_the_section() {
    let mut config = json!({"rateLimit": limit()});
    config["rateLimit"]["limits"][0]["rate"]["requests"] = json!(0);
    let err = error(&config);
    assert_eq!(err.field, "rateLimit.limits[0].rate.requests");
    config["rateLimit"]["limits"][0]["rate"]["requests"] = json!("many");
    let err = error(&config);
    assert_eq!(err.field, "rateLimit.limits[0].rate.requests");
    assert!(
        !err.message.contains(" at line "),
        "positions point into the section: {err}"
    );
    let err = error(
        &json!({"canary": {"services": [{"name": "p", "versions": [],
                                                      "match": {"prefix": "/"}}]}}),
    );
    assert_eq!(err.field, "canary.services[0].versions");
    let err = error(&json!({"jwtAuth": {"rules": [{"match": {"prefix": "x"}}]}}));
    assert_eq!(err.field, "jwtAuth.rules[0].match.prefix");
}

#[test]
fn claim_keys_need_the_jwt_stage() {
    let claim_limit = json!({"limits": [{"name": "u", "key": [{"claim": "sub"}],
                                         "rate": {"requests": 1, "per": "second"}}]});
    let err = error(&json!({"rateLimit": claim_limit}));
    assert_eq!(err.field, "rateLimit.limits[0].key[0].claim");
    assert_eq!(
        stages(&json!({"rateLimit": claim_limit, "jwtAuth": jwt_section()})),
        ["jwtAuth", "rateLimit"]
    );
    let claim_canary = json!({"services": [{"name": "p", "versions": [{"name": "v1", "weight": 100}],
                                            "stickyKey": [{"claim": "sub"}]}]});
    let err = error(&json!({"canary": claim_canary}));
    assert_eq!(err.field, "canary.services[0].stickyKey[0].claim");
}

#[test]
fn a_cluster_matched_breaker_behind_a_canary_needs_every_versions_cluster() {
    let canary = |clusters: bool| {
        let version = |name: &str, weight: u32| {
            let mut v = json!({"name": name, "weight": weight});
            if clusters {
                v["cluster"] = json!(format!("product-{name}"));
            }
            v
        };
        json!({"services": [{"name": "product", "versions": [version("v1", 90), version("v2", 10)]}]})
    };
    let breakers = json!({"breakers": [{"name": "v2", "match": {"cluster": "product-v2"}}]});
    let err = error(&json!({"canary": canary(false), "circuitBreaker": breakers}));
    assert_eq!(err.field, "circuitBreaker.breakers[0].match.cluster");
    assert!(err.message.contains("cluster"), "{err}");
    assert_eq!(
        stages(&json!({"canary": canary(true), "circuitBreaker": breakers})),
        ["canary", "circuitBreaker"]
    );
    // Without a canary, Envoy's route is the request's.
    assert_eq!(
        stages(&json!({"circuitBreaker": breakers})),
        ["circuitBreaker"]
    );
}

/// Without the `authz` feature (`meshguard.wasm`) an `authz` section is refused with what to use
/// instead, not as an unknown key; with it (`meshguard_with_authz.wasm`) it is a stage.
#[test]
fn an_authz_section_needs_the_build_with_the_rego_engine() {
    let config = json!({
        "jwtAuth": jwt_section(),
        "authz": {"modules": {"p.rego": "package envoy.authz\nimport rego.v1\ndefault allow := true\n"}},
        "rateLimit": limit(),
    });
    if cfg!(feature = "authz") {
        assert_eq!(stages(&config), ["jwtAuth", "authz", "rateLimit"]);
    } else {
        let err = error(&config);
        assert_eq!(err.field, "authz", "{err}");
        assert!(
            err.message.contains("no Rego engine")
                && err.message.contains("meshguard_with_authz.wasm"),
            "{err}"
        );
    }
}
