package envoy.tutorial.authz_test

import rego.v1

import data.envoy.tutorial.authz

# The tutorial's two users: alice (guest) and bob (admin); sub is the base64url of the name.
alice := {"sub": "YWxpY2U", "role": "guest"}

bob := {"sub": "Ym9i", "role": "admin"}

request(method, path, jwt, body) := {
	"attributes": {
		"request": {"http": {"method": method, "path": path}},
		"metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"verified_jwt": jwt}}},
	},
	"parsed_body": body,
}

allowed(method, path, jwt) if authz.allow with input as request(method, path, jwt, null)

test_guests_and_admins_list_people if {
	allowed("GET", "/people", alice)
	allowed("GET", "/people", bob)
	allowed("GET", "/people?limit=10", alice)
}

test_glob_semantics_are_kept if {
	allowed("GET", "/peoples", alice)
	not allowed("GET", "/people/1", alice)
	not allowed("GET", "/api/people", alice)
}

test_only_admins_create_people if {
	authz.allow with input as request("POST", "/people", bob, {"firstname": "Charlie", "lastname": "Opa"})
	not authz.allow with input as request("POST", "/people", alice, {"firstname": "Charlie", "lastname": "Opa"})
}

test_admins_cannot_create_themselves if {
	not authz.allow with input as request("POST", "/people", bob, {"firstname": "Bob", "lastname": "Rego"})
}

test_creating_needs_the_body if {
	not allowed("POST", "/people", bob)
}

test_other_methods_are_denied if {
	not allowed("DELETE", "/people", bob)
}
