package envoy.authz_test

import rego.v1

import data.envoy.authz

# An OPA-Envoy input for a request by a caller with these claims (null: no verified token).
request(method, path, jwt) := {
	"attributes": {
		"request": {"http": {"method": method, "path": path}},
		"metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"verified_jwt": jwt}}},
	},
	"parsed_path": split(trim_left(path, "/"), "/"),
} if jwt != null

request(method, path, null) := {
	"attributes": {"request": {"http": {"method": method, "path": path}}, "metadataContext": {}},
	"parsed_path": split(trim_left(path, "/"), "/"),
}

user(sub, roles) := {"sub": sub, "realm_access": {"roles": roles}}

alice := user("alice", ["customer"])

bob := user("bob", ["customer"])

sam := user("sam", ["support"])

root := user("root", ["admin"])

allowed(method, path, jwt) if authz.allow with input as request(method, path, jwt)

test_customer_reads_own_orders if {
	allowed("GET", "/api/users/alice/orders", alice)
	allowed("GET", "/api/users/alice/orders/o-17", alice)
	allowed("HEAD", "/api/users/alice/orders", alice)
}

test_customer_reads_own_cart if {
	allowed("GET", "/api/users/alice/cart", alice)
}

test_customer_cannot_read_another_customers_orders_or_cart if {
	not allowed("GET", "/api/users/bob/orders", alice)
	not allowed("GET", "/api/users/bob/orders/o-9", alice)
	not allowed("GET", "/api/users/bob/cart", alice)
	not allowed("GET", "/api/users/alice/orders", bob)
}

test_customer_writes_nothing if {
	not allowed("POST", "/api/users/alice/orders", alice)
	not allowed("DELETE", "/api/users/alice/orders/o-17", alice)
	not allowed("PUT", "/api/users/alice/cart", alice)
}

test_a_path_that_only_starts_like_an_order_path_is_not_one if {
	not allowed("GET", "/api/users/alice/orders/o-17/items", alice)
	not allowed("GET", "/api/users/alice/ordersx", alice)
	not allowed("GET", "/api/users/alice", alice)
	not allowed("GET", "/api/users/alice/cart/items", alice)
	not allowed("GET", "/api/users/alice/orders/o-17/items", sam)
}

test_support_reads_any_order if {
	allowed("GET", "/api/users/alice/orders", sam)
	allowed("GET", "/api/users/bob/orders/o-9", sam)
}

test_support_writes_no_order_and_reads_no_cart if {
	not allowed("POST", "/api/users/alice/orders", sam)
	not allowed("PATCH", "/api/users/alice/orders/o-17", sam)
	not allowed("DELETE", "/api/users/alice/orders/o-17", sam)
	not allowed("GET", "/api/users/alice/cart", sam)
}

test_only_admin_refunds if {
	allowed("POST", "/api/payments/p-1/refund", root)
	not allowed("POST", "/api/payments/p-1/refund", alice)
	not allowed("POST", "/api/payments/p-1/refund", sam)
	not allowed("GET", "/api/payments/p-1/refund", root)
	not allowed("POST", "/api/payments/p-1", root)
}

test_admin_reads_no_orders if {
	not allowed("GET", "/api/users/alice/orders", root)
}

test_roles_combine if {
	support_customer := user("carol", ["customer", "support"])
	allowed("GET", "/api/users/carol/cart", support_customer)
	allowed("GET", "/api/users/alice/orders", support_customer)
	not allowed("GET", "/api/users/alice/cart", support_customer)
}

test_no_verified_token_is_denied_everywhere if {
	not allowed("GET", "/api/users/alice/orders", null)
	not allowed("POST", "/api/payments/p-1/refund", null)
}

test_everything_else_is_denied if {
	not allowed("GET", "/api/products", alice)
	not allowed("GET", "/", root)
	not allowed("GET", "/api/payments/p-1", root)
}

test_a_token_without_roles_is_denied if {
	not allowed("GET", "/api/users/dave/orders", {"sub": "dave"})
}

test_a_token_whose_sub_is_not_the_path_segment_is_denied if {
	not allowed("GET", "/api/users/42/orders", user(42, ["customer"]))
	not allowed("GET", "/api/users/alice/cart", {"realm_access": {"roles": ["customer"]}})
}
