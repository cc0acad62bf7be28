// TypeBox schemas of the PAP REST API: they validate requests, shape responses and make /openapi.json.
import { ERROR_CODES, type ErrorCode } from '@portcullis/runtime';
import { type Static, type TSchema, Type } from '@sinclair/typebox';

/** Bundle names are URL path segments, Kafka keys and OPA bundle names: keep them plain. */
export const BUNDLE_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$';
const REVISION_PATTERN = '^[1-9][0-9]{0,8}$';

export const ROLES = ['viewer', 'author', 'publisher', 'admin'] as const;

/** A string enum as OpenAPI 3.0 writes it (TypeBox unions of literals become anyOf/const). */
function stringEnum<const T extends string>(values: readonly T[], description: string) {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], description });
}
export type Role = (typeof ROLES)[number];

const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as ErrorCode[];

/** The one error body of every API call; `code` lists every stable code (a test checks it). */
export const ErrorBody = Type.Object(
  {
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: ERROR_CODE_NAMES,
      description: ERROR_CODE_NAMES.map(
        (c) => `\`${c}\` (${ERROR_CODES[c].http}): ${ERROR_CODES[c].description}`,
      ).join('\n'),
    }),
    message: Type.String(),
    details: Type.Array(Type.Record(Type.String(), Type.Unknown()), {
      description: 'Per-field or per-location detail: `field`, or `file`, `row`, `col`, `message` for Rego.',
    }),
  },
  { description: 'An error.' },
);

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed request, failed validation, invalid bundle or Rego compile errors.',
  401: 'No bearer token, or one that is not valid.',
  403: 'The token’s role may not make this call.',
  404: 'No such bundle, revision or token.',
  409: 'Conflict with the current state.',
  412: 'If-Match does not name the current activation.',
  413: 'The body is over PAP_MAX_BODY.',
  415: 'The content type is not accepted here.',
  422: 'Rego tests failed, an unsupported builtin, or an undefined entrypoint.',
  428: 'The call needs an If-Match header.',
  500: 'Internal or evaluation error.',
  503: 'The database is not available.',
  504: 'A deadline passed (e.g. the compile timeout).',
};

/** Error responses for a route; 401, 403 and 500 apply to every authenticated route. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of [...new Set([...statuses, 401, 403, 500, 503])].sort((a, b) => a - b)) {
    out[s] = { ...ErrorBody, description: ERROR_DESCRIPTIONS[s] ?? 'Error.' };
  }
  return out;
}

export const BundleName = Type.String({
  pattern: BUNDLE_NAME_PATTERN,
  description: 'Bundle name: lowercase letters, digits, `.`, `_`, `-`; at most 63 characters.',
});

export const BundleParams = Type.Object({ bundle: BundleName });
export type BundleParams = Static<typeof BundleParams>;

export const RevisionParams = Type.Object({
  bundle: BundleName,
  rev: Type.String({ pattern: REVISION_PATTERN, description: 'Revision number (1, 2, …).' }),
});
export type RevisionParams = Static<typeof RevisionParams>;

const Entrypoints = Type.Array(Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_./-]+$' }), {
  minItems: 1,
  maxItems: 64,
  description: 'Rule paths compiled to WASM entrypoints, e.g. `envoy/authz/allow`.',
});

export const CreateRevisionJson = Type.Object(
  {
    modules: Type.Record(Type.String(), Type.String(), {
      description: 'Rego sources by path inside the bundle (`policy.rego`, `authz/authz_test.rego`).',
    }),
    data: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'The bundle’s data.json.' }),
    ),
    entrypoints: Entrypoints,
    strict: Type.Optional(
      Type.Boolean({
        description: 'opa check --strict; defaults to the bundle’s setting (true for a new one).',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateRevisionJson = Static<typeof CreateRevisionJson>;

/** Tarball uploads take the per-bundle strict flag, and optionally the entrypoints, from the query string. */
export const CreateRevisionQuery = Type.Object({
  strict: Type.Optional(stringEnum(['true', 'false'], 'Tarball uploads: opa check --strict.')),
  entrypoints: Type.Optional(
    Type.String({
      maxLength: 4096,
      description:
        'Tarball uploads: comma-separated entrypoints; by default those of the manifest’s `wasm` entries ' +
        'or `metadata.entrypoints`.',
    }),
  ),
});
export type CreateRevisionQuery = Static<typeof CreateRevisionQuery>;

/** An OPA bundle upload (the route's parser hands it on as a latin1 string). */
export const BundleUpload = Type.Unsafe<string>({
  type: 'string',
  format: 'binary',
  description:
    'An OPA bundle (.tar.gz): Rego and data files, and an optional `.manifest` whose `wasm` entries or ' +
    '`metadata.entrypoints` name the entrypoints (or pass `?entrypoints=`).',
});

export const RevisionCreated = Type.Object({
  bundle: Type.String(),
  revision: Type.Integer(),
  digest: Type.String({ description: 'sha256 hex of the bundle .tar.gz.' }),
});
export type RevisionCreated = Static<typeof RevisionCreated>;

const ActiveRef = Type.Object({
  revision: Type.Integer(),
  digest: Type.String(),
  activation_seq: Type.Integer(),
  activated_at: Type.String({ format: 'date-time' }),
  actor: Type.String(),
});

export const BundleView = Type.Object({
  name: Type.String(),
  entrypoints: Type.Array(Type.String()),
  strict: Type.Boolean(),
  latest_revision: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  active: Type.Union([ActiveRef, Type.Null()]),
  etag: Type.String({ description: 'The current activation’s ETag, also sent as the ETag header.' }),
});
export type BundleView = Static<typeof BundleView>;

export const BundleList = Type.Object({ bundles: Type.Array(BundleView) });

export const RevisionSummary = Type.Object({
  bundle: Type.String(),
  revision: Type.Integer(),
  digest: Type.String(),
  rego_digest: Type.String({ description: 'sha256 hex of the `?target=rego` archive.' }),
  entrypoints: Type.Array(Type.String()),
  strict: Type.Boolean(),
  author: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  opa_version: Type.String(),
  active: Type.Boolean(),
});
export type RevisionSummary = Static<typeof RevisionSummary>;

export const RevisionList = Type.Object({ revisions: Type.Array(RevisionSummary) });

export const RevisionDetail = Type.Composite([
  RevisionSummary,
  Type.Object({
    modules: Type.Record(Type.String(), Type.String()),
    data: Type.Unknown(),
    manifest: Type.Unknown(),
    builtins: Type.Array(Type.String()),
    tests: Type.Object({ passed: Type.Integer(), total: Type.Integer() }),
  }),
]);
export type RevisionDetail = Static<typeof RevisionDetail>;

export const ActivateBody = Type.Object(
  {
    revision: Type.Integer({
      minimum: 1,
      description: 'The revision to activate (an older one rolls back).',
    }),
  },
  { additionalProperties: false },
);
export type ActivateBody = Static<typeof ActivateBody>;

export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({ description: 'The bundle’s current ETag, from GET /v1/bundles/{bundle}.' }),
  ),
});

export const ActivationView = Type.Object({
  bundle: Type.String(),
  revision: Type.Integer(),
  digest: Type.String(),
  activation_seq: Type.Integer(),
  activated_at: Type.String({ format: 'date-time' }),
  etag: Type.String(),
});
export type ActivationView = Static<typeof ActivationView>;

export const DownloadQuery = Type.Object({
  target: Type.Optional(
    stringEnum(
      ['wasm', 'rego'],
      '`wasm` (default): with policy.wasm; `rego`: sources only, for an opa that cannot run WASM.',
    ),
  ),
});

export const EvaluateBody = Type.Object(
  {
    entrypoint: Type.String({ minLength: 1, description: 'One of the revision’s entrypoints.' }),
    input: Type.Optional(Type.Unknown({ description: 'The input document.' })),
  },
  { additionalProperties: false },
);
export type EvaluateBody = Static<typeof EvaluateBody>;

export const EvaluateResult = Type.Object({
  result: Type.Optional(
    Type.Unknown({ description: 'The entrypoint’s value; absent when it is undefined for this input.' }),
  ),
  revision: Type.Integer(),
  eval_ns: Type.Integer({ description: 'Evaluation time in nanoseconds (excluding loading).' }),
});

export const AuditQuery = Type.Object({
  bundle: Type.Optional(BundleName),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  limit: Type.Optional(
    Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: '1–500 entries; default 50.' }),
  ),
  cursor: Type.Optional(
    Type.String({ pattern: '^[0-9]{1,19}$', description: '`next_cursor` of the previous page.' }),
  ),
});
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditEntryView = Type.Object({
  id: Type.Integer(),
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  bundle: Type.Union([Type.String(), Type.Null()]),
  digest_before: Type.Union([Type.String(), Type.Null()]),
  digest_after: Type.Union([Type.String(), Type.Null()]),
  at: Type.String({ format: 'date-time' }),
  request_id: Type.Union([Type.String(), Type.Null()]),
  details: Type.Record(Type.String(), Type.Unknown()),
});
export type AuditEntryView = Static<typeof AuditEntryView>;

export const AuditPage = Type.Object({
  entries: Type.Array(AuditEntryView, { description: 'Newest first.' }),
  next_cursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for older entries.',
  }),
});

export const RoleSchema = stringEnum(
  ROLES,
  'viewer: read and evaluate; author: + create revisions; publisher: + activate; admin: + tokens.',
);

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$',
      description: 'Unique; recorded as the actor.',
    }),
    role: RoleSchema,
  },
  { additionalProperties: false },
);
export type CreateTokenBody = Static<typeof CreateTokenBody>;

export const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  created_by: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
});
export type TokenView = Static<typeof TokenView>;

export const CreatedToken = Type.Composite([
  TokenView,
  Type.Object({ token: Type.String({ description: 'The bearer token; shown only in this response.' }) }),
]);

export const TokenList = Type.Object({ tokens: Type.Array(TokenView) });

export const TokenParams = Type.Object({ id: Type.String({ pattern: '^tok_[a-f0-9]{16}$' }) });
export type TokenParams = Static<typeof TokenParams>;

/** Route-level security: every /v1 call takes a bearer token. */
export const BEARER = [{ bearer: [] }];
