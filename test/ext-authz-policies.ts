// Test policies for the ext-authz adapter: OPA's own Envoy examples (docs and tutorials, kept as published) and one of ours covering every decision field.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BundleSource {
  modules: Record<string, string>;
  data?: unknown;
  entrypoints: string[];
}

/*
 * From OPA's docs, docs/envoy/tutorial-standalone-envoy.md ("Creating & Serving our Policy Bundle"),
 * unchanged; decision path envoy/authz/allow. The tokens are the tutorial's ALICE_TOKEN (role guest,
 * sub base64url("alice")) and BOB_TOKEN (role admin, sub base64url("bob")), HS256 with "secret".
 */
export const TUTORIAL_STANDALONE: BundleSource = {
  entrypoints: ['envoy/authz/allow'],
  modules: {
    'policy.rego': `package envoy.authz

import input.attributes.request.http as http_request

default allow := false

allow if {
  is_token_valid
  action_allowed
}

is_token_valid if {
  token.valid
  now := time.now_ns() / 1000000000
  token.payload.nbf <= now
  now < token.payload.exp
}

action_allowed if {
  http_request.method == "GET"
  token.payload.role == "guest"
  glob.match("/people", ["/"], http_request.path)
}

action_allowed if {
  http_request.method == "GET"
  token.payload.role == "admin"
  glob.match("/people", ["/"], http_request.path)
}

action_allowed if {
  http_request.method == "POST"
  token.payload.role == "admin"
  glob.match("/people", ["/"], http_request.path)
  lower(input.parsed_body.firstname) != base64url.decode(token.payload.sub)
}

token := {"valid": valid, "payload": payload} if {
  [_, encoded] := split(http_request.headers.authorization, " ")
  [valid, _, payload] := io.jwt.decode_verify(encoded, {"secret": "secret"})
}
`,
  },
};

export const ALICE_TOKEN =
  'eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJleHAiOiAyMjQxMDgxNTM5LCAibmJmIjogMTUxNDg1MTEzOSwgInJvbGUiOiAiZ3Vlc3QiLCAic3ViIjogIllXeHBZMlU9In0.Uk5hgUqMuUfDLvBLnlXMD0-X53aM_Hlziqg3vhOsCc8';
export const BOB_TOKEN =
  'eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJleHAiOiAyMjQxMDgxNTM5LCAibmJmIjogMTUxNDg1MTEzOSwgInJvbGUiOiAiYWRtaW4iLCAic3ViIjogIlltOWkifQ.5qsm7rRTvqFHAgiB6evX0a_hWnGbWquZC0HImVQPQo8';

/*
 * From OPA's docs, docs/envoy/primer.md: "Example Policy with Additional Controls" and, below it, the
 * "Output Document" snippet that builds `result`; decision path envoy/authz/result. One line of the
 * snippet is left out: it reads `query_parameters_to_remove`, which the example policy never
 * defines, so with it the module does not compile (rego_unsafe_var_error).
 */
export const PRIMER_CONTROLS: BundleSource = {
  entrypoints: ['envoy/authz/result'],
  modules: {
    'policy.rego': `package envoy.authz

import input.attributes.request.http

default allow := false

allow if {
  is_token_valid
  action_allowed
}

headers["x-ext-auth-allow"] := "yes"
headers["x-validated-by"] := "security-checkpoint"

request_headers_to_remove := ["one-auth-header", "another-auth-header"]

response_headers_to_add["x-foo"] := "bar"

query_parameters_to_set = {
    "user-role": token.payload.role,
    "tags": ["main-flow", "auth-enabled"]
}

status_code := 200 if {
  allow
} else := 401 if {
  not is_token_valid
} else := 403

body := "Authentication Failed" if status_code == 401
body := "Unauthorized Request"  if status_code == 403

dynamic_metadata := {"foo": "bar"}

is_token_valid if {
  token.valid
  now := time.now_ns() / 1000000000
  token.payload.nbf <= now
  now < token.payload.exp
}

action_allowed if {
  http.method == "GET"
  token.payload.role == "guest"
  glob.match("/people/*", ["/"], http.path)
}

action_allowed if {
  http.method == "GET"
  token.payload.role == "admin"
  glob.match("/people/*", ["/"], http.path)
}

action_allowed if {
  http.method == "POST"
  token.payload.role == "admin"
  glob.match("/people", ["/"], http.path)
  lower(input.parsed_body.firstname) != base64url.decode(token.payload.sub)
}

token := {"valid": valid, "payload": payload} if {
  [_, encoded] := split(http.headers.authorization, " ")
  [valid, _, payload] := io.jwt.decode_verify(encoded, {"secret": "secret"})
}

result["allowed"] := allow
result["headers"] := headers
result["response_headers_to_add"] := response_headers_to_add
result["request_headers_to_remove"] := request_headers_to_remove
result["body"] := body
result["http_status"] := status_code
result["dynamic_metadata"] := dynamic_metadata
result["query_parameters_to_set"] = query_parameters_to_set
`,
  },
};

/** The primer's sample input token (role guest, sub base64("alice"), exp 2035), HS256 with "secret". */
export const PRIMER_GUEST_TOKEN =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiZ3Vlc3QiLCJzdWIiOiJZV3hwWTJVPSIsIm5iZiI6MTUxNDg1MTEzOSwiZXhwIjoyMDYyODQwNjEwfQ.vIX2U9Mp9L5c6DS4JkqtSUrUkhxrI9zMFOr0Xs1cWPo';

/** From OPA's docs, docs/envoy/tutorial-istio.md (authz.rego), unchanged; decision path istio/authz/allow. */
export const TUTORIAL_ISTIO: BundleSource = {
  entrypoints: ['istio/authz/allow'],
  modules: {
    'authz.rego': `package istio.authz

default allow := false

allow if {
  input.parsed_path[0] == "health"
  input.attributes.request.method == "GET"
}

allow if {
  some user_role in _user_roles[_user_name]
  some permission in _role_permissions[user_role]

  permission.method == input.attributes.request.http.method
  permission.path == input.attributes.request.http.path
}

# Underscore prefix used only to signal that rules and functions are
# intended to be referenced only within the same policy, i.e. "private".
# It has no special meaning to OPA.

_user_name := parsed if {
  [_, encoded] := split(input.attributes.request.http.headers.authorization, " ")
  [parsed, _] := split(base64url.decode(encoded), ":")
}

_user_roles := {
  "alice": ["guest"],
  "bob": ["admin"],
}

_role_permissions := {
  "guest": [{"method": "GET", "path": "/productpage"}],
  "admin": [
    {"method": "GET", "path": "/productpage"},
    {"method": "GET", "path": "/api/v1/products"},
  ],
}
`,
  },
};

/** `curl --user alice:password` and `bob:password`, as the Istio tutorial sends them. */
export const BASIC_ALICE = `Basic ${Buffer.from('alice:password').toString('base64')}`;
export const BASIC_BOB = `Basic ${Buffer.from('bob:password').toString('base64')}`;

/** From OPA's docs, docs/envoy/primer.md (Input Document): the parsed_path, parsed_query and parsed_body examples, unchanged. */
export const PRIMER_PARSED: Record<'parsed_path' | 'parsed_query' | 'parsed_body', BundleSource> = {
  parsed_path: {
    entrypoints: ['envoy/authz/allow'],
    modules: {
      'policy.rego': `package envoy.authz

default allow := false

allow if input.parsed_path == ["people"]
`,
    },
  },
  parsed_query: {
    entrypoints: ['envoy/authz/allow'],
    modules: {
      'policy.rego': `package envoy.authz

default allow := false

allow if {
  input.parsed_path == ["people"]
  input.parsed_query.lang == ["en"]
  input.parsed_query.id == ["1", "2"]
}
`,
    },
  },
  parsed_body: {
    entrypoints: ['envoy/authz/allow'],
    modules: {
      'policy.rego': `package envoy.authz

default allow := false

allow if {
  input.parsed_body.firstname == "Charlie"
  input.parsed_body.lastname == "Opa"
}
`,
    },
  },
};

/**
 * Ours: one decision per `x-case` header value, so a single policy exercises every field of an
 * OPA-Envoy decision, the failure paths (a conflict is an evaluation error, a bad status an invalid
 * result) and, with `echo`, shows the input it saw as dynamic metadata. Decision path
 * portcullis/features/decision; no `x-case` → false.
 */
export const FEATURES: BundleSource = {
  entrypoints: ['portcullis/features/decision'],
  data: { tenant: 'acme' },
  modules: {
    'features.rego': `package portcullis.features

import input.attributes.request.http

default decision := false

case := http.headers["x-case"]

decision := true if case == "allow-boolean"

decision := {"allowed": true} if case == "allow"

decision := {
  "allowed": true,
  "headers": {"x-user": "alice", "x-roles": ["admin", "ops"]},
  "request_headers_to_remove": ["authorization", "x-secret"],
  "response_headers_to_add": {"x-ratelimit-hint": "10"},
} if case == "headers"

decision := {
  "allowed": true,
  "query_parameters_to_set": {"tenant": data.tenant, "tag": ["a", "b"]},
  "query_parameters_to_remove": ["debug"],
} if case == "query"

decision := {
  "allowed": true,
  "dynamic_metadata": {"tenant": data.tenant, "score": 0.5, "nested": {"list": [1, true, null]}},
} if case == "metadata"

decision := {
  "allowed": false,
  "http_status": 401,
  "headers": {"www-authenticate": "Bearer realm=\\"bookinfo\\"", "content-type": "application/json"},
  "body": "{\\"error\\":\\"login required\\"}",
} if case == "unauthorized"

decision := {
  "allowed": false,
  "http_status": 302,
  "headers": {"location": "https://login.example/?next=/"},
} if case == "redirect"

# The body reached the policy: its firstname travels upstream.
decision := {"allowed": true, "headers": {"x-firstname": input.parsed_body.firstname}} if case == "body"

decision := {"allowed": false, "http_status": 200} if case == "deny-as-200"

decision := {"allowed": false, "http_status": 999} if case == "bad-status"

decision := {"allowed": "yes"} if case == "bad-allowed"

# Two complete definitions that disagree: an evaluation error (eval_conflict_error).
decision := {"allowed": true} if case == "conflict"

decision := {"allowed": false} if case == "conflict"

decision := {
  "allowed": true,
  "dynamic_metadata": {
    "method": object.get(http, "method", ""),
    "path": object.get(http, "path", ""),
    "parsed_path": input.parsed_path,
    "parsed_query": input.parsed_query,
    "parsed_body": object.get(input, "parsed_body", null),
    "truncated_body": object.get(input, "truncated_body", null),
    "header_count": count(object.get(http, "headers", {})),
    "has_attributes": "attributes" in object.keys(input),
  },
} if case == "echo"
`,
  },
};

const POLICIES = fileURLToPath(new URL('../policies/envoy-authz/', import.meta.url));

/** The repository's bookinfo example (policies/envoy-authz): JWT claims via io.jwt.decode, roles from data. */
export function bookinfoBundle(): BundleSource {
  return {
    modules: {
      'policy.rego': readFileSync(`${POLICIES}policy.rego`, 'utf8'),
      'policy_test.rego': readFileSync(`${POLICIES}policy_test.rego`, 'utf8'),
    },
    data: JSON.parse(readFileSync(`${POLICIES}data.json`, 'utf8')),
    entrypoints: ['envoy/authz/allow', 'envoy/authz/result'],
  };
}
