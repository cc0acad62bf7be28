-- PAP schema: bundles, immutable revisions, activations, the outbox, audit trail and API tokens.

CREATE TABLE bundles (
  name text PRIMARY KEY,
  -- Entrypoints of the latest revision posted; each revision keeps its own.
  entrypoints text[] NOT NULL,
  strict boolean NOT NULL DEFAULT true,
  -- Highest revision number handed out; bumped under the row lock so numbers have no gaps.
  last_revision integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE revisions (
  bundle text NOT NULL REFERENCES bundles (name),
  revision integer NOT NULL,
  -- sha256 of the canonical JSON of {modules, data, entrypoints, strict}: the idempotency key.
  content_hash text NOT NULL,
  sources jsonb NOT NULL,
  data jsonb NOT NULL,
  entrypoints text[] NOT NULL,
  strict boolean NOT NULL,
  policy_wasm bytea NOT NULL,
  -- The OPA bundle exactly as FetchBundle and the download serve it; digest is sha256 hex of it.
  bundle_tar bytea NOT NULL,
  digest text NOT NULL,
  -- The same revision without policy.wasm, for an opa that cannot execute WebAssembly.
  rego_tar bytea NOT NULL,
  rego_digest text NOT NULL,
  manifest jsonb NOT NULL,
  builtins text[] NOT NULL DEFAULT '{}',
  tests_passed integer NOT NULL DEFAULT 0,
  tests_total integer NOT NULL DEFAULT 0,
  author text NOT NULL,
  opa_version text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bundle, revision),
  UNIQUE (bundle, content_hash)
);
CREATE INDEX revisions_digest ON revisions (digest);

CREATE TABLE activations (
  -- The activation sequence number: strictly increasing across all bundles.
  seq bigserial PRIMARY KEY,
  bundle text NOT NULL,
  revision integer NOT NULL,
  digest text NOT NULL,
  actor text NOT NULL,
  activated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (bundle, revision) REFERENCES revisions (bundle, revision)
);
CREATE INDEX activations_bundle ON activations (bundle, seq);

-- The bundle's current activation; its seq is the ETag that If-Match guards.
CREATE TABLE active_revisions (
  bundle text PRIMARY KEY REFERENCES bundles (name),
  seq bigint NOT NULL REFERENCES activations (seq)
);

CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  key text NOT NULL,            -- the bundle name
  payload jsonb NOT NULL,       -- {"bundle","revision","digest","activation_seq","activated_at"}
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE audit (
  id bigserial PRIMARY KEY,
  actor text NOT NULL,
  action text NOT NULL,
  target text NOT NULL,
  -- Set when the target is (in) a bundle, for filtering.
  bundle text,
  digest_before text,
  digest_after text,
  at timestamptz NOT NULL DEFAULT now(),
  request_id text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_bundle ON audit (bundle, id);
CREATE INDEX audit_actor ON audit (actor, id);

CREATE TABLE api_tokens (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  role text NOT NULL CHECK (role IN ('viewer', 'author', 'publisher', 'admin')),
  -- The first 16 hex characters of sha256: an index to find the row; the full hash is then
  -- compared in constant time.
  lookup text NOT NULL,
  sha256 text NOT NULL UNIQUE,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_lookup ON api_tokens (lookup);
