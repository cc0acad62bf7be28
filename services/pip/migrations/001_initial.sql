-- PIP schema: RequestAuthentication resources, subject/resource attributes, per-kind JSON schemas, and the outbox.

CREATE TABLE request_authentications (
  namespace text NOT NULL,
  name text NOT NULL,
  -- The resource as accepted (normalised JSON of the submitted document); re-validated on load.
  document jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, name)
);

CREATE TABLE attributes (
  kind text NOT NULL,
  id text NOT NULL,
  attributes jsonb NOT NULL,
  -- Bumped by every change; the ETag. Conditional writes compare it.
  version bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, id)
);

CREATE TABLE attribute_schemas (
  kind text PRIMARY KEY,
  schema jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Named apart from the PAP's `outbox`: the two services may share one database in a one-machine stack.
CREATE TABLE pip_outbox (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  key text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX pip_outbox_unpublished ON pip_outbox (id) WHERE published_at IS NULL;
