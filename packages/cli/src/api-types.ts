// The PAP REST API's response bodies as the CLI reads them (mirrors of the PAP's OpenAPI schemas).

export interface RevisionCreated {
  bundle: string;
  revision: number;
  digest: string;
}

export interface ActiveRef {
  revision: number;
  digest: string;
  activation_seq: number;
  activated_at: string;
  actor: string;
}

export interface BundleView {
  name: string;
  entrypoints: string[];
  strict: boolean;
  latest_revision: number;
  created_at: string;
  active: ActiveRef | null;
  /** The current activation's ETag (`"0"` before the first one); also the ETag header. */
  etag: string;
}

export interface RevisionSummary {
  bundle: string;
  revision: number;
  digest: string;
  rego_digest: string;
  entrypoints: string[];
  strict: boolean;
  author: string;
  created_at: string;
  opa_version: string;
  active: boolean;
}

export interface ActivationView {
  bundle: string;
  revision: number;
  digest: string;
  activation_seq: number;
  activated_at: string;
  etag: string;
}

export interface EvaluateResult {
  /** Absent when the entrypoint is undefined for the input. */
  result?: unknown;
  revision: number;
  eval_ns: number;
}

export interface AuditEntry {
  id: number;
  actor: string;
  action: string;
  target: string;
  bundle: string | null;
  digest_before: string | null;
  digest_after: string | null;
  at: string;
  request_id: string | null;
  details: Record<string, unknown>;
}

export interface AuditPage {
  entries: AuditEntry[];
  next_cursor: string | null;
}
