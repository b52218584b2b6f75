# The commerce edge gateway's decision: the public surface, then the RBAC policy (rbac.rego)
# for everything a shopper, support agent or admin does. The authz WasmPlugin at the ingress
# gateway (istio/authz/wasmplugin.yaml) loads this file and rbac.rego unchanged, with
# decisionPath envoy/edge/allow.
#
# The public routes are the ones the JWT filter at the same gateway lets through without a
# token (istio/jwt-auth/wasmplugin.yaml): health checks, the catalogue and search, read-only.
package envoy.edge

import rego.v1

import data.envoy.authz

default allow := false

public if input.attributes.request.http.path == "/healthz"

public if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	input.parsed_path[0] == "api"
	input.parsed_path[1] in {"products", "search"}
}

allow if public

allow if authz.allow
