-- The CA's state: one authority (roots, signing CA, keys encrypted), issuance records and an audit trail.

-- One row: every replica signs with the same authority. `version` grows with each change, so a
-- replica can tell cheaply whether another one rotated the root.
CREATE TABLE ca_authority (
  id smallint PRIMARY KEY CHECK (id = 1),
  state jsonb NOT NULL,
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every certificate issued, written before it is returned to the caller.
CREATE TABLE ca_issuances (
  serial text PRIMARY KEY,
  spiffe_id text NOT NULL,
  not_before timestamptz NOT NULL,
  not_after timestamptz NOT NULL,
  -- Who asked: `token:<ns>/<sa>` or `mtls:<spiffe id>`.
  caller text NOT NULL,
  auth_method text NOT NULL CHECK (auth_method IN ('token', 'mtls')),
  key_type text NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ca_issuances_spiffe_id ON ca_issuances (spiffe_id, issued_at DESC);

-- Refused requests (with the reason) and changes to the authority (creation, rotation, pruning).
CREATE TABLE ca_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  action text NOT NULL,
  actor text,
  spiffe_id text,
  reason text,
  message text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX ca_audit_action_at ON ca_audit (action, at DESC);
