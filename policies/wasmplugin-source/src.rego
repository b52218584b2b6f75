package meshguardwasmpluginsource

# Istio WasmPlugins load their module only from the approved OCI registry and pin it by sha256,
# so what runs in every Envoy is exactly the reviewed build. Istio reads a url without a scheme
# as OCI; http(s):// and file:// sources are refused. A module is pinned by `spec.sha256` or by an
# `@sha256:` digest in the url; when both are given they must agree.
#
# regorus notes: `not approved(url)` and `not pinned(spec, url)` get bound arguments only.

name = n {
  n := object.get(input.review.object, ["metadata", "name"], object.get(input.review, "name", ""))
}

registries = r {
  r := input.parameters.registries
}

registries = [] {
  not input.parameters.registries
}

sha256_pattern := "^[a-f0-9]{64}$"

oci_reference(url) = ref {
  startswith(url, "oci://")
  ref := trim_prefix(url, "oci://")
}

oci_reference(url) = url {
  not contains(url, "://")
}

approved(url) {
  ref := oci_reference(url)
  registry := trim_suffix(registries[_], "/")
  startswith(ref, concat("", [registry, "/"]))
}

url_digest(url) = digest {
  parts := split(url, "@sha256:")
  count(parts) == 2
  digest := parts[1]
  regex.match(sha256_pattern, digest)
}

pinned(spec, url) {
  regex.match(sha256_pattern, spec.sha256)
}

pinned(spec, url) {
  url_digest(url)
}

violation[{"msg": msg, "details": {"url": url}}] {
  input.review.object.kind == "WasmPlugin"
  url := object.get(input.review.object, ["spec", "url"], "")
  not approved(url)
  msg := sprintf("WasmPlugin <%v> loads <%v>; modules may only come from the OCI registries %v", [name, url, registries])
}

violation[{"msg": msg, "details": {"url": url}}] {
  input.review.object.kind == "WasmPlugin"
  spec := object.get(input.review.object, "spec", {})
  url := object.get(spec, "url", "")
  not pinned(spec, url)
  msg := sprintf("WasmPlugin <%v> does not pin its module: set spec.sha256 or reference the module by @sha256: digest", [name])
}

violation[{"msg": msg, "details": {"sha256": sha}}] {
  input.review.object.kind == "WasmPlugin"
  sha := input.review.object.spec.sha256
  not regex.match(sha256_pattern, sha)
  msg := sprintf("WasmPlugin <%v> spec.sha256 <%v> is not a sha256 digest (64 lowercase hex characters)", [name, sha])
}

violation[{"msg": msg, "details": {"sha256": sha, "digest": digest}}] {
  input.review.object.kind == "WasmPlugin"
  sha := input.review.object.spec.sha256
  digest := url_digest(input.review.object.spec.url)
  sha != digest
  msg := sprintf("WasmPlugin <%v> spec.sha256 <%v> does not match the url digest <%v>", [name, sha, digest])
}
