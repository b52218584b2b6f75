package envoy.edge_test

import rego.v1

import data.envoy.edge

request(method, path, roles) := {
	"attributes": {
		"request": {"http": {"method": method, "path": path}},
		"metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"verified_jwt": {"sub": "alice", "realm_access": {"roles": roles}}}}},
	},
	"parsed_path": split(trim_left(split(path, "?")[0], "/"), "/"),
}

allowed(method, path, roles) if edge.allow with input as request(method, path, roles)

test_the_catalogue_and_search_are_public_and_read_only if {
	allowed("GET", "/api/products", [])
	allowed("GET", "/api/products/p-100", [])
	allowed("HEAD", "/api/search?q=shoes", [])
	not allowed("POST", "/api/products", [])
	not allowed("DELETE", "/api/search", ["admin"])
}

test_health_checks_are_public if {
	allowed("GET", "/healthz", [])
}

test_the_rbac_policy_decides_the_rest if {
	allowed("GET", "/api/users/alice/orders", ["customer"])
	not allowed("GET", "/api/users/bob/orders", ["customer"])
	allowed("POST", "/api/payments/p-1/refund", ["admin"])
	not allowed("POST", "/api/payments/p-1/refund", ["customer"])
	not allowed("GET", "/api/inventory/p-100", ["admin"])
}
