# Who may call what on the commerce APIs, decided at the proxy (meshguard's authz filter, or
# OPA-Envoy behind Envoy's ext_authz: the input and the decision are the same).
#
# The caller is who the JWT filter verified: the token's payload arrives as
# input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt
# (the JWT provider's `payloadInMetadata: verified_jwt`), with Keycloak's realm roles in
# realm_access.roles. Nothing here reads a header, so a client cannot claim to be anyone.
#
# - customers read only their own orders and cart (the user id in the path is the token's sub);
# - only admins refund a payment;
# - support reads any order but writes none;
# - everything else is denied.
#
# Tested by rbac_test.rego (`meshguard policy test policies/`); loaded by the filter through
# istio/authz/wasmplugin.yaml, which must carry this file unchanged (a test compares them).
package envoy.authz

import rego.v1

# Where the JWT filter puts the verified payload (an import is only a shorter name for it).
import input.attributes.metadataContext.filterMetadata as metadata

default allow := false

# The proxy evaluates this policy on every request, so each rule reads what it needs straight
# from the input, the payload bound to a local `jwt` where a rule uses it twice, rather than
# through helper rules (`claims := ...`, `roles := ...`, `reads if ...`): every rule a decision
# calls is a call in regorus' VM, which costs more than the comparisons in it (the README's
# authz section has the figures). A customer's own data is named by a path with their user id
# (`sub`) in it: each rule compares the whole path with the caller's own, one comparison each.

# Customers read their own orders.
allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	jwt := metadata["envoy.filters.http.jwt_authn"].verified_jwt
	"customer" in jwt.realm_access.roles
	input.parsed_path == ["api", "users", jwt.sub, "orders"]
}

# ... and each of their orders.
allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	jwt := metadata["envoy.filters.http.jwt_authn"].verified_jwt
	"customer" in jwt.realm_access.roles
	["api", "users", jwt.sub, "orders", _] = input.parsed_path
}

# Customers read their own cart.
allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	jwt := metadata["envoy.filters.http.jwt_authn"].verified_jwt
	"customer" in jwt.realm_access.roles
	input.parsed_path == ["api", "users", jwt.sub, "cart"]
}

# Support reads anyone's orders: /api/users/{user}/orders and /api/users/{user}/orders/{order}.
allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	"support" in metadata["envoy.filters.http.jwt_authn"].verified_jwt.realm_access.roles
	["api", "users", _, "orders"] = input.parsed_path
}

allow if {
	input.attributes.request.http.method in {"GET", "HEAD"}
	"support" in metadata["envoy.filters.http.jwt_authn"].verified_jwt.realm_access.roles
	["api", "users", _, "orders", _] = input.parsed_path
}

# Only admins refund: POST /api/payments/{payment}/refund.
allow if {
	input.attributes.request.http.method == "POST"
	"admin" in metadata["envoy.filters.http.jwt_authn"].verified_jwt.realm_access.roles
	["api", "payments", _, "refund"] = input.parsed_path
}
