package meshguardwasmpluginsource

params := {"registries": ["registry.example.com"]}

sha := "0f3a64a7c2b5e8d9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"

plugin(spec) = {"review": {"object": {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "jwt-auth", "namespace": "istio-system"}, "spec": spec}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_oci_with_sha256_is_allowed {
  results := violation with input as plugin({"url": "oci://registry.example.com/meshguard/jwt-auth:1.2.0", "sha256": sha})
  count(results) == 0
}

test_oci_with_digest_is_allowed {
  results := violation with input as plugin({"url": concat("", ["oci://registry.example.com/meshguard/jwt-auth@sha256:", sha])})
  count(results) == 0
}

test_schemeless_reference_is_oci {
  results := violation with input as plugin({"url": "registry.example.com/meshguard/jwt-auth:1.2.0", "sha256": sha})
  count(results) == 0
}

test_https_source_is_denied {
  results := violation with input as plugin({"url": "https://registry.example.com/meshguard/jwt-auth.wasm", "sha256": sha})
  messages(results) == {"WasmPlugin <jwt-auth> loads <https://registry.example.com/meshguard/jwt-auth.wasm>; modules may only come from the OCI registries [\"registry.example.com\"]"}
}

test_other_registry_is_denied {
  results := violation with input as plugin({"url": "oci://ghcr.io/someone/filter:1.0", "sha256": sha})
  count(results) == 1
}

test_file_source_is_denied {
  results := violation with input as plugin({"url": "file:///opt/filters/jwt.wasm", "sha256": sha})
  count(results) == 1
}

test_unpinned_module_is_denied {
  results := violation with input as plugin({"url": "oci://registry.example.com/meshguard/jwt-auth:1.2.0"})
  messages(results) == {"WasmPlugin <jwt-auth> does not pin its module: set spec.sha256 or reference the module by @sha256: digest"}
}

test_malformed_sha256 {
  results := violation with input as plugin({"url": "oci://registry.example.com/meshguard/jwt-auth:1.2.0", "sha256": "abc123"})
  messages(results) == {
    "WasmPlugin <jwt-auth> does not pin its module: set spec.sha256 or reference the module by @sha256: digest",
    "WasmPlugin <jwt-auth> spec.sha256 <abc123> is not a sha256 digest (64 lowercase hex characters)",
  }
}

test_sha256_and_digest_must_agree {
  other := "1111111111111111111111111111111111111111111111111111111111111111"
  results := violation with input as plugin({"url": concat("", ["oci://registry.example.com/meshguard/jwt-auth@sha256:", other]), "sha256": sha})
  messages(results) == {sprintf("WasmPlugin <jwt-auth> spec.sha256 <%v> does not match the url digest <%v>", [sha, other])}
}

test_missing_url {
  results := violation with input as plugin({"sha256": sha})
  messages(results) == {"WasmPlugin <jwt-auth> loads <>; modules may only come from the OCI registries [\"registry.example.com\"]"}
}
