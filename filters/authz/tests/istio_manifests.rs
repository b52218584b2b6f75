//! The manifests in `istio/authz/` must carry configurations this filter accepts, load the
//! policy files of `policies/envoy-authz/` unchanged, sit behind a JWT filter that hands on the
//! claims the policy reads, and differ from Istio's own AuthorizationPolicy exactly where the
//! manifest's comments say.

use meshguard_authz::input::{Claims, RequestFacts, VerifiedClaims};
use meshguard_authz::{Action, Authorizer, prepare};
use meshguard_testkit::paths::workspace_root;
use serde_json::{Value, json};

fn documents(dir: &str) -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents(dir)
        .into_iter()
        .map(|(name, document)| (name, serde_json::to_value(document).unwrap()))
        .collect()
}

fn kind<'a>(documents: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    documents
        .iter()
        .filter(|(_, document)| document["kind"] == kind)
        .map(|(_, document)| document)
        .collect()
}

fn wasm_plugin() -> Value {
    let documents = documents("authz");
    let plugins = kind(&documents, "WasmPlugin");
    assert_eq!(plugins.len(), 1, "one authz WasmPlugin");
    plugins[0].clone()
}

#[test]
fn the_wasm_plugin_loads_the_policy_files_unchanged_and_fails_closed() {
    let plugin = wasm_plugin();
    let spec = &plugin["spec"];
    assert_eq!(plugin["apiVersion"], "extensions.istio.io/v1alpha1");
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert!(spec["url"].as_str().unwrap().contains("authz"));
    let config = &spec["pluginConfig"];
    prepare(config.to_string().as_bytes()).unwrap_or_else(|err| panic!("pluginConfig: {err}"));
    assert_eq!(config["onError"], "deny");
    let modules = config["modules"].as_object().unwrap();
    assert_eq!(modules.len(), 2);
    for (name, source) in modules {
        let file = workspace_root().join("policies/envoy-authz").join(name);
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        assert_eq!(
            source.as_str().unwrap(),
            text,
            "istio/authz/wasmplugin.yaml's {name} differs from {}: paste the file into the manifest",
            file.display()
        );
    }
}

#[test]
fn the_jwt_filter_before_it_hands_on_the_claims_the_policy_reads() {
    let authz = wasm_plugin();
    let documents = documents("jwt-auth");
    let jwt = kind(&documents, "WasmPlugin")[0];
    assert_eq!(
        jwt["spec"]["selector"], authz["spec"]["selector"],
        "the same gateway"
    );
    assert_eq!(jwt["spec"]["phase"], "AUTHN", "authentication runs first");
    let names: Vec<&str> = jwt["spec"]["pluginConfig"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|provider| provider["payloadInMetadata"].as_str())
        .collect();
    assert_eq!(names, ["verified_jwt"]);
    let rbac =
        std::fs::read_to_string(workspace_root().join("policies/envoy-authz/rbac.rego")).unwrap();
    assert!(rbac.contains(r#"filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt"#));
}

// === the comparison with Istio's AuthorizationPolicy ===

struct Request {
    method: &'static str,
    path: &'static str,
    user: Option<(&'static str, &'static [&'static str])>,
}

impl RequestFacts for Request {
    fn header(&mut self, name: &str) -> Option<String> {
        match name {
            ":method" => Some(self.method.to_string()),
            ":path" => Some(self.path.to_string()),
            _ => None,
        }
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        vec![
            (":method".into(), self.method.into()),
            (":path".into(), self.path.into()),
        ]
    }

    fn property(&mut self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

impl VerifiedClaims for Request {
    fn payloads(&mut self) -> Option<Claims> {
        let (sub, roles) = self.user?;
        let payload = json!({"verified_jwt": {"sub": sub, "realm_access": {"roles": roles}}});
        Some(Claims::Json(payload.to_string().into_bytes()))
    }
}

/// Istio's path match: exact, `prefix*`, `*suffix`, `*`, or a template with `{*}` segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    if pattern == "*" {
        return true;
    }
    if pattern.contains("{*}") {
        let want: Vec<&str> = pattern.split('/').collect();
        let got: Vec<&str> = path.split('/').collect();
        return want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| *w == *g || (*w == "{*}" && !g.is_empty()));
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return path.ends_with(suffix);
    }
    pattern == path
}

/// The ALLOW policy's answer: some rule whose operations and conditions all match.
fn istio_allows(policy: &Value, request: &Request) -> bool {
    policy["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|rule| {
            let to = rule["to"].as_array().unwrap().iter().any(|to| {
                let operation = &to["operation"];
                let methods_ok = operation["methods"]
                    .as_array()
                    .is_none_or(|methods| methods.iter().any(|m| m == request.method));
                let paths_ok = operation["paths"].as_array().is_none_or(|paths| {
                    paths
                        .iter()
                        .any(|p| path_matches(p.as_str().unwrap(), request.path))
                });
                methods_ok && paths_ok
            });
            let when = rule["when"].as_array().is_none_or(|conditions| {
                conditions.iter().all(|condition| {
                    assert_eq!(condition["key"], "request.auth.claims[realm_access][roles]");
                    request.user.is_some_and(|(_, roles)| {
                        condition["values"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|v| roles.iter().any(|r| v == r))
                    })
                })
            });
            to && when
        })
}

#[test]
fn istios_authorization_policy_differs_only_where_documented() {
    let documents = documents("authz");
    let policy = kind(&documents, "AuthorizationPolicy")[0];
    assert_eq!(policy["spec"]["action"], "ALLOW");
    assert_eq!(
        policy["spec"]["selector"],
        wasm_plugin()["spec"]["selector"]
    );
    let mut authz = Authorizer::new(
        prepare(wasm_plugin()["spec"]["pluginConfig"].to_string().as_bytes()).unwrap(),
    );
    const CUSTOMER: &[&str] = &["customer"];
    const SUPPORT: &[&str] = &["support"];
    const ADMIN: &[&str] = &["admin"];
    let alice = Some(("alice", CUSTOMER));
    let sam = Some(("sam", SUPPORT));
    let root = Some(("root", ADMIN));
    let table = [
        ("GET", "/healthz", None),
        ("GET", "/api/products", None),
        ("GET", "/api/products/p-100?color=red", None),
        ("HEAD", "/api/search", None),
        ("POST", "/api/products", alice),
        ("GET", "/api/users/alice/orders", alice),
        ("GET", "/api/users/alice/orders/o-17", alice),
        ("GET", "/api/users/alice/cart", alice),
        ("GET", "/api/users/alice/orders", None),
        ("POST", "/api/users/alice/orders", alice),
        ("GET", "/api/users/bob/orders", alice),
        ("GET", "/api/users/bob/orders/o-9", alice),
        ("GET", "/api/users/bob/cart", alice),
        ("GET", "/api/users/alice/orders/o-17/items", alice),
        ("GET", "/api/users/bob/orders", sam),
        ("GET", "/api/users/bob/orders/o-9", sam),
        ("DELETE", "/api/users/bob/orders/o-9", sam),
        ("GET", "/api/users/bob/cart", sam),
        ("POST", "/api/payments/p-1/refund", root),
        ("POST", "/api/payments/p-1/refund", alice),
        ("POST", "/api/payments/p-1/refund", sam),
        ("GET", "/api/payments/p-1/refund", root),
        ("GET", "/api/users/alice/orders", root),
        ("GET", "/api/inventory/p-100", root),
    ];
    // Difference 1: Istio cannot tie the path's user id to the token's sub.
    let documented = [
        ("GET", "/api/users/bob/orders"),
        ("GET", "/api/users/bob/orders/o-9"),
        ("GET", "/api/users/bob/cart"),
    ];
    let mut differences = Vec::new();
    for (method, path, user) in table {
        let mut request = Request { method, path, user };
        let rego = {
            let mut claims = Request { method, path, user };
            matches!(
                authz.decide(&mut request, &mut claims, None).action,
                Action::Allow(_)
            )
        };
        let istio = istio_allows(policy, &request);
        if rego != istio {
            assert!(!rego && istio, "{method} {path}: only Istio may allow more");
            assert!(user == alice, "{method} {path}: only customers gain");
            differences.push((method, path));
        }
    }
    assert_eq!(differences, documented);
}
