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

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

# The caller's realm roles (an array: `in` tests membership).
roles := claims.realm_access.roles

method := input.attributes.request.http.method

reads if method in {"GET", "HEAD"}

# /api/users/{user}/orders and /api/users/{user}/orders/{order}
order_owner := user if {
	["api", "users", user, "orders"] = array.slice(input.parsed_path, 0, 4); count(input.parsed_path) <= 5
}

# A customer's own data is named by a path with their user id (`sub`) in it: each rule below
# compares the whole path with the caller's own, one comparison per rule, which is also what
# the proxy evaluates fastest on every request.

# Customers read their own orders.
allow if {
	reads
	"customer" in roles
	input.parsed_path == ["api", "users", claims.sub, "orders"]
}

# ... and each of their orders.
allow if {
	reads
	"customer" in roles
	["api", "users", claims.sub, "orders", _] = input.parsed_path
}

# Customers read their own cart.
allow if {
	reads
	"customer" in roles
	input.parsed_path == ["api", "users", claims.sub, "cart"]
}

# Support reads anyone's orders.
allow if {
	reads
	"support" in roles
	order_owner
}

# Only admins refund: POST /api/payments/{payment}/refund.
allow if {
	method == "POST"
	"admin" in roles
	["api", "payments", _, "refund"] = input.parsed_path
}
