# Unit tests for the bookinfo policy; run with `opa test policies/envoy-authz`.
package envoy.authz_test

import data.envoy.authz

now_s := 1700000000

token(claims) := io.jwt.encode_sign({"alg": "HS256", "typ": "JWT"}, claims, {"kty": "oct", "k": "c2VjcmV0"})

claims(extra) := object.union(
	{"iss": "https://auth.bookinfo.example", "sub": "alice", "exp": now_s + 3600},
	extra,
)

request(method, path, tok) := {
	"attributes": {"request": {"http": {
		"method": method,
		"path": path,
		"headers": {"authorization": concat(" ", ["Bearer", tok])},
	}}},
	"parsed_path": [p | some p in split(trim_prefix(split(path, "?")[0], "/"), "/")],
}

anonymous(method, path) := {
	"attributes": {"request": {"http": {"method": method, "path": path, "headers": {}}}},
	"parsed_path": [p | some p in split(trim_prefix(split(path, "?")[0], "/"), "/")],
}

test_anonymous_product_page if {
	authz.allow with input as anonymous("GET", "/productpage?u=normal")
}

test_anonymous_api_denied if {
	not authz.allow with input as anonymous("GET", "/api/v1/products")
}

test_authenticated_reads_products if {
	authz.allow with input as request("GET", "/api/v1/products/1", token(claims({})))
		with time.now_ns as now_s * 1000000000
}

test_expired_token_is_anonymous if {
	not authz.allow with input as request("GET", "/api/v1/products/1", token(claims({"exp": now_s - 1})))
		with time.now_ns as now_s * 1000000000
}

test_wrong_issuer_is_anonymous if {
	not authz.allow with input as request("GET", "/api/v1/products", token(claims({"iss": "https://evil.example"})))
		with time.now_ns as now_s * 1000000000
}

test_reviewer_posts_review if {
	authz.allow with input as request("POST", "/api/v1/products/1/reviews", token(claims({"roles": ["reviewer"]})))
		with time.now_ns as now_s * 1000000000
}

test_plain_user_cannot_post_review if {
	not authz.allow with input as request("POST", "/api/v1/products/1/reviews", token(claims({})))
		with time.now_ns as now_s * 1000000000
}

test_admin_deletes if {
	authz.allow with input as request("DELETE", "/api/v1/products/1", token(claims({"roles": ["admin"]})))
		with time.now_ns as now_s * 1000000000
}

test_own_profile_only if {
	authz.allow with input as request("PUT", "/api/v1/users/alice/profile", token(claims({})))
		with time.now_ns as now_s * 1000000000
	not authz.allow with input as request("PUT", "/api/v1/users/bob/profile", token(claims({})))
		with time.now_ns as now_s * 1000000000
}

test_result_denies_anonymous_with_401 if {
	r := authz.result with input as anonymous("DELETE", "/api/v1/products/1")
	r.allowed == false
	r.http_status == 401
	r.headers == {}
}

test_result_denies_user_with_403 if {
	r := authz.result with input as request("DELETE", "/api/v1/products/1", token(claims({})))
		with time.now_ns as now_s * 1000000000
	r.http_status == 403
}

test_result_allows_with_subject_header if {
	r := authz.result with input as request("GET", "/api/v1/products", token(claims({})))
		with time.now_ns as now_s * 1000000000
	r.allowed == true
	r.http_status == 200
	r.headers == {"x-portcullis-subject": "alice"}
}
