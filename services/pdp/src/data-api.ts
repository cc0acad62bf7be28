// OPA's Data API (`/v1/data`) without a transport: a raw request in, OPA's response (status, JSON text) out.
import { gunzipSync } from 'node:zlib';
import { isEngineError } from '@portcullis/engine';
import type { Decider, DecisionResponse } from './decider.ts';
import { MISSING_INPUT_WARNING, type OpaErrorBody, PARTIAL_TREE_WARNING } from './opa-http.ts';
import type { ServedDocuments } from './served-documents.ts';

export const DATA_PREFIX = '/v1/data';

/** A Data API request as it came off the wire; the transport has already bounded the body. */
export interface DataApiRequest {
  method: 'GET' | 'POST';
  /** Path and query, e.g. `/v1/data/envoy/authz/allow?metrics=true`. */
  url: string;
  /** Only `content-encoding` is read. */
  contentEncoding?: string;
  body?: Buffer;
}

export interface DataApiResponse {
  status: number;
  /** JSON text, newline-terminated as OPA writes it (empty for a redirect). */
  body: string;
  location?: string;
  /** Why the request was refused before evaluation, for the metrics; absent when it was decided. */
  rejected?: 'bad_input' | 'input_too_large';
}

export interface DataApiOptions {
  decider: Decider;
  documents: ServedDocuments;
  /** Largest request body or `?input=` (PDP_MAX_INPUT_BYTES). */
  maxInputBytes: number;
  /** Reported by `?provenance`. */
  version: string;
}

/** OPA's error bodies are indented whether or not `?pretty` was asked for. */
export function opaError(
  status: number,
  body: OpaErrorBody,
  rejected?: DataApiResponse['rejected'],
): DataApiResponse {
  return { status, body: `${JSON.stringify(body, null, 2)}\n`, ...(rejected ? { rejected } : {}) };
}

export function tooLargeMessage(size: number, limit: number): string {
  return `request body too large: ${size} bytes exceeds limit of ${limit} bytes (PDP_MAX_INPUT_BYTES)`;
}

export function tooManyRequests(max: number): DataApiResponse {
  return opaError(429, {
    code: 'too_many_requests',
    message: `more than ${max} decisions in progress (PDP_MAX_CONCURRENCY); retry later`,
  });
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

type Query = URLSearchParams | undefined;

/** OPA's boolean query parameters: present with no value or `true` means on (`?pretty`, `?metrics=true`). */
function flag(query: Query, name: string): boolean {
  if (!query?.has(name)) return false;
  const values = query.getAll(name);
  const last = values[values.length - 1];
  return last === '' || last === 'true';
}

/** `/v1/data/a/b` → `['a', 'b']`; a redirect target when the path is not canonical (as OPA does). */
function dataPath(
  path: string,
  query: string,
): { segments: string[] } | { redirect: string; status: 301 | 307 } {
  const rest = path.slice(DATA_PREFIX.length);
  if (rest === '') return { segments: [] };
  if (rest.includes('//')) {
    const clean = rest.replace(/\/{2,}/g, '/').replace(/\/$/, '');
    return { redirect: `${DATA_PREFIX}${clean}${query}`, status: 307 };
  }
  if (rest.endsWith('/')) return { redirect: `${DATA_PREFIX}${rest.slice(0, -1)}${query}`, status: 301 };
  try {
    return { segments: rest.slice(1).split('/').map(decodeURIComponent) };
  } catch {
    throw new BadRequest(`invalid path encoding: ${path}`);
  }
}

/** The body, inflated when gzip-encoded (bounded: a small gzip must not become a huge input). */
export function inflate(
  body: Buffer | undefined,
  contentEncoding: string | undefined,
  limit: number,
): Buffer | undefined {
  if (body === undefined || body.length === 0) return undefined;
  if (contentEncoding?.toLowerCase() !== 'gzip') return body;
  try {
    return gunzipSync(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new BadRequest(tooLargeMessage(limit + 1, limit), 413);
    }
    throw new BadRequest(`body is not valid gzip: ${(err as Error).message}`);
  }
}

export function parseJson(text: string, where: 'body' | 'parameter'): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`${where} contains malformed input document: ${(err as Error).message}`);
  }
}

interface ParsedInput {
  input?: unknown;
  inputJson?: string;
  missing: boolean;
  parseNs: number;
}

function readInput(req: DataApiRequest, query: Query, limit: number): ParsedInput {
  const t0 = performance.now();
  if (req.method === 'GET') {
    const raw = query?.get('input') ?? undefined;
    if (raw === undefined) return { missing: false, parseNs: 0 };
    const size = Buffer.byteLength(raw);
    if (size > limit) throw new BadRequest(tooLargeMessage(size, limit), 413);
    const input = parseJson(raw, 'parameter');
    return { input, inputJson: raw, missing: false, parseNs: Math.round((performance.now() - t0) * 1e6) };
  }
  const bytes = inflate(req.body, req.contentEncoding, limit);
  if (bytes === undefined) return { missing: true, parseNs: 0 };
  const doc = parseJson(bytes.toString('utf8'), 'body');
  if (doc === null) return { missing: true, parseNs: 0 };
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new BadRequest('body contains malformed input document: the body must be a JSON object');
  }
  const parseNs = Math.round((performance.now() - t0) * 1e6);
  if (!Object.hasOwn(doc, 'input')) return { missing: true, parseNs };
  return { input: (doc as { input: unknown }).input, missing: false, parseNs };
}

/** An evaluation failure in OPA's shape: 500 internal_error with the cause in `errors`. */
export function decisionError(err: unknown): DataApiResponse {
  if (isEngineError(err) && (err.code === 'invalid_input' || err.code === 'invalid_path')) {
    return opaError(400, { code: 'invalid_parameter', message: err.message }, 'bad_input');
  }
  return opaError(500, {
    code: 'internal_error',
    message: 'error(s) occurred while evaluating query',
    errors: [
      {
        code: isEngineError(err) ? err.code : 'internal_error',
        message: err instanceof Error ? err.message : String(err),
      },
    ],
  });
}

/**
 * OPA's DataResponseV1 field order (decision_id, provenance, metrics, result, warning); the result
 * text is spliced in as the engine wrote it unless `?pretty` asks for indentation.
 */
function dataResponse(
  res: DecisionResponse,
  opts: { pretty: boolean; metrics?: Record<string, number>; provenance?: unknown; warning?: unknown },
): string {
  if (opts.pretty) {
    const body: Record<string, unknown> = { decision_id: res.decisionId };
    if (opts.provenance) body.provenance = opts.provenance;
    if (opts.metrics) body.metrics = opts.metrics;
    if (res.resultJson !== undefined) body.result = JSON.parse(res.resultJson);
    if (opts.warning) body.warning = opts.warning;
    return `${JSON.stringify(body, null, 2)}\n`;
  }
  let out = `{"decision_id":"${res.decisionId}"`;
  if (opts.provenance) out += `,"provenance":${JSON.stringify(opts.provenance)}`;
  if (opts.metrics) out += `,"metrics":${JSON.stringify(opts.metrics)}`;
  if (res.resultJson !== undefined) out += `,"result":${res.resultJson}`;
  if (opts.warning) out += `,"warning":${JSON.stringify(opts.warning)}`;
  return `${out}}\n`;
}

/**
 * `GET|POST /v1/data[/{path}]` with OPA's semantics: `{"input": …}` in a POST body (gzip allowed,
 * any content type read as JSON) or `?input=` on a GET; `result` omitted when undefined; OPA's
 * warnings, `?pretty`, `?metrics` (OPA's timer names) and `?provenance`; malformed input → 400
 * `invalid_parameter`; an evaluation error → 500 `internal_error`. Never throws.
 */
export class DataApi {
  constructor(private readonly opts: DataApiOptions) {}

  async handle(req: DataApiRequest): Promise<DataApiResponse> {
    const started = performance.now();
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const query = q < 0 ? undefined : new URLSearchParams(req.url.slice(q + 1));
    let parsed: ParsedInput;
    let segments: string[];
    try {
      const target = dataPath(path, q < 0 ? '' : req.url.slice(q));
      if ('redirect' in target) return { status: target.status, body: '', location: target.redirect };
      segments = target.segments;
      parsed = readInput(req, query, this.opts.maxInputBytes);
    } catch (err) {
      if (!(err instanceof BadRequest)) return decisionError(err);
      return opaError(
        err.status,
        { code: 'invalid_parameter', message: err.message },
        err.status === 413 ? 'input_too_large' : 'bad_input',
      );
    }
    let res: DecisionResponse;
    try {
      res = await this.opts.decider.decide({
        segments,
        ...(parsed.input === undefined && parsed.missing ? {} : { input: parsed.input }),
        ...(parsed.inputJson === undefined ? {} : { inputJson: parsed.inputJson }),
      });
    } catch (err) {
      return decisionError(err);
    }
    if (query === undefined) {
      // The common case: no flags to read.
      return { status: 200, body: dataResponse(res, { pretty: false, ...this.warning(parsed, res, req) }) };
    }
    return {
      status: 200,
      body: dataResponse(res, {
        pretty: flag(query, 'pretty'),
        ...(flag(query, 'metrics')
          ? {
              metrics: {
                timer_rego_input_parse_ns: parsed.parseNs,
                timer_rego_query_eval_ns: res.evalNs,
                timer_server_handler_ns: Math.round((performance.now() - started) * 1e6),
              },
            }
          : {}),
        ...(flag(query, 'provenance') ? { provenance: this.provenance() } : {}),
        ...this.warning(parsed, res, req),
      }),
    };
  }

  private warning(parsed: ParsedInput, res: DecisionResponse, req: DataApiRequest): { warning?: unknown } {
    if (parsed.missing && req.method === 'POST') return { warning: MISSING_INPUT_WARNING };
    if (res.partial) return { warning: PARTIAL_TREE_WARNING };
    return {};
  }

  private provenance(): Record<string, unknown> {
    const bundles: Record<string, { revision: string }> = {};
    for (const b of this.opts.documents.bundles()) bundles[b.bundle] = { revision: String(b.revision) };
    return { version: this.opts.version, build_commit: '', build_timestamp: '', build_hostname: '', bundles };
  }
}
