# OPA's Envoy tutorial policy (openpolicyagent.org, "Envoy" tutorial), ported to verified
# claims so it runs in meshguard's authz filter, where there are no io.jwt.* builtins.
#
# The tutorial decodes and verifies the bearer token itself with io.jwt.decode_verify and a
# shared secret, then checks nbf and exp against time.now_ns(). Here the JWT filter in front
# has already verified the signature, issuer, audience, exp and nbf (and refused the request
# otherwise), and hands the payload on as
# input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt.
# The rules keep their meaning; what changes:
#
# - `token.valid` and the nbf/exp checks are gone: an unverified token never gets here, and
#   the policy reads no clock, so its decisions can be cached.
# - `glob.match("/people*", ["/"], path)` becomes a regular expression with the same meaning
#   (`*` does not cross a `/`), because the module is built without regorus' glob builtins.
# - The tutorial's package is envoy.authz; this copy lives in envoy.tutorial.authz so that it
#   can be tested next to the commerce RBAC policy (decisionPath: envoy/tutorial/authz/allow).
#
# The POST rule reads the request body: the filter must buffer it (withRequestBody) for that
# rule to ever allow.
package envoy.tutorial.authz

import rego.v1

import input.attributes.request.http as http_request

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

allow if action_allowed

action_allowed if {
	http_request.method == "GET"
	claims.role == "guest"
	regex.match(`^/people[^/]*$`, http_request.path)
}

action_allowed if {
	http_request.method == "GET"
	claims.role == "admin"
	regex.match(`^/people[^/]*$`, http_request.path)
}

action_allowed if {
	http_request.method == "POST"
	claims.role == "admin"
	http_request.path == "/people"
	lower(input.parsed_body.firstname) != base64url.decode(claims.sub)
}
