// `parsed_body` and `truncated_body`: the request body as OPA-Envoy parses it (JSON, URL-encoded and multipart forms), within our size limit.
import { RequestParseError } from './errors.ts';
import { type JsonValue, parseJson } from './json-value.ts';
import { parseMediaType } from './media-type.ts';
import { parseMultipartForm } from './multipart-form.ts';
import { parseQuery } from './path-and-query.ts';
import { decodeUtf8 } from './utf8-decoding.ts';

export interface BodyOptions {
  /** Bodies longer than this (bytes) are not parsed: `parsed_body` null, `truncated_body` true. */
  maxBodyBytes: number;
  /**
   * A body of a parsed content type that does not parse (bad JSON, bad escapes, broken
   * multipart, a non-numeric Content-Length): `reject` fails the request with a 400 as OPA-Envoy
   * does; `ignore` evaluates the policy with `parsed_body` null and `truncated_body` false.
   */
  onInvalidBody: 'reject' | 'ignore';
}

export interface ParsedBody {
  parsedBody: JsonValue;
  truncated: boolean;
}

const NOT_PARSED: ParsedBody = { parsedBody: null, truncated: false };
const TRUNCATED: ParsedBody = { parsedBody: null, truncated: true };

/**
 * The rules of OPA-Envoy's getParsedBody, in its order:
 * 1. `x-envoy-auth-partial-body: true` (Envoy cut the body at max_request_bytes) → truncated.
 * 2. The content type is matched by substring and case-sensitively, as the plugin does:
 *    `application/json` (so `application/json-patch+json` too, but not `application/vnd.api+json`),
 *    `application/grpc` (never parsed here: we load no service descriptors, as OPA-Envoy without
 *    its proto-descriptor option), `application/x-www-form-urlencoded` (→ `{name: [values]}`),
 *    `multipart/form-data` (→ `{name: [values]}`, JSON parts parsed). Anything else, or no
 *    Content-Type, is not parsed.
 * 3. The payload is `body`, or `raw_body` when `body` is empty; neither → not parsed.
 * 4. A Content-Length larger than the payload (bytes) → truncated.
 * 5. Ours: a payload over `maxBodyBytes` → truncated (the whole body was not looked at).
 * `headers` must have lower-case names. Throws RequestParseError when `onInvalidBody` is `reject`.
 */
export function parseRequestBody(
  headers: ReadonlyMap<string, string>,
  body: string,
  rawBody: Uint8Array | undefined,
  options: BodyOptions,
): ParsedBody {
  if (headers.get('x-envoy-auth-partial-body') === 'true') return TRUNCATED;
  const contentType = headers.get('content-type');
  if (contentType === undefined) return NOT_PARSED;
  let kind: 'json' | 'form' | 'multipart';
  if (contentType.includes('application/json')) kind = 'json';
  else if (contentType.includes('application/grpc')) return NOT_PARSED;
  else if (contentType.includes('application/x-www-form-urlencoded')) kind = 'form';
  else if (contentType.includes('multipart/form-data')) kind = 'multipart';
  else return NOT_PARSED;

  const payload: string | Uint8Array | undefined = body !== '' ? body : rawBody?.length ? rawBody : undefined;
  if (payload === undefined) return NOT_PARSED;
  const length = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;

  try {
    const contentLength = headers.get('content-length');
    if (contentLength !== undefined) {
      const declared = parseGoInt64(contentLength);
      if (declared !== -1n && declared > BigInt(length)) return TRUNCATED;
    }
    if (length > options.maxBodyBytes) return TRUNCATED;
    const text = (): string => (typeof payload === 'string' ? payload : decodeUtf8(payload));
    switch (kind) {
      case 'json':
        return { parsedBody: parseJson(text()), truncated: false };
      case 'form':
        return { parsedBody: parseQuery(text()), truncated: false };
      case 'multipart': {
        const boundary = parseMediaType(contentType).params.get('boundary');
        if (boundary === undefined) return NOT_PARSED;
        const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
        return { parsedBody: parseMultipartForm(bytes, boundary), truncated: false };
      }
    }
  } catch (err) {
    if (options.onInvalidBody === 'ignore') return NOT_PARSED;
    const message = err instanceof Error ? err.message : String(err);
    throw new RequestParseError(`${kind} body: ${message}`, { cause: err });
  }
}

/** strconv.ParseInt(s, 10, 64): optional sign, decimal digits only, within int64. */
function parseGoInt64(s: string): bigint {
  if (!/^[+-]?\d+$/.test(s))
    throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  const n = BigInt(s);
  if (n > 0x7fffffffffffffffn || n < -0x8000000000000000n) {
    throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  }
  return n;
}
