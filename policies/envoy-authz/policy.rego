# Bookinfo-style authorization for Envoy's ext_authz, written the way OPA's Envoy plugin policies are.
#
# Entrypoints: envoy/authz/allow (boolean) and envoy/authz/result (the plugin's object form).
# The bearer token is decoded here, not verified: in the mesh, the proxy (or Envoy's jwt_authn filter)
# rejects requests with a bad signature before they reach this policy. Issuer and expiry are checked here.
package envoy.authz

import input.attributes.request.http

default allow := false

# Anyone, with or without a token.
allow if {
	some role in roles
	some permission in data.role_permissions[role]
	permits(permission)
}

# Users may update their own profile: /api/v1/users/<sub>/profile.
allow if {
	http.method == "PUT"
	input.parsed_path == ["api", "v1", "users", claims.sub, "profile"]
}

permits(permission) if {
	method_matches(permission.method)
	path_matches(permission.path)
}

# Paths are exact, end in "/**" (any suffix), or use "*" for one segment. Matched segment-wise rather than
# with glob.match, which compiles its pattern to a regular expression on every call (~10 µs in WASM).
path_matches(pattern) if pattern == request_path

path_matches(pattern) if {
	endswith(pattern, "/**")
	startswith(request_path, trim_suffix(pattern, "**"))
}

path_matches(pattern) if {
	contains(pattern, "*")
	not endswith(pattern, "/**")
	parts := split(pattern, "/")
	count(parts) == count(request_segments)
	every i, part in parts {
		segment_matches(part, request_segments[i])
	}
}

segment_matches("*", _)

segment_matches(part, segment) if part == segment

method_matches("*")

method_matches(method) if method == http.method

# The OPA Envoy plugin supplies parsed_path (no query string); fall back to the raw path without its query.
request_path := concat("/", array.concat([""], input.parsed_path)) if {
	count(input.parsed_path) > 0
} else := split(http.path, "?")[0]

request_segments := split(request_path, "/")

bearer := substring(header, count("Bearer "), -1) if {
	header := http.headers.authorization
	startswith(header, "Bearer ")
}

claims := payload if {
	[_, payload, _] := io.jwt.decode(bearer)
	payload.iss == data.jwt.issuer
	not expired(payload)
}

expired(payload) if payload.exp <= time.now_ns() / 1000000000

roles contains "anonymous"

roles contains "authenticated" if claims

roles contains role if {
	some role in claims.roles
	is_string(role)
}

# The object form Envoy's plugin understands: deny unauthenticated requests with 401, others with 403.
result := {
	"allowed": allow,
	"http_status": status,
	"headers": upstream_headers,
	"response_headers_to_add": {"x-portcullis-policy": "envoy-authz"},
}

status := 200 if allow

else := 401 if not claims

else := 403

upstream_headers := {"x-portcullis-subject": claims.sub} if allow

else := {}
