// A CheckRequest → the input document OPA-Envoy evaluates policies on, so that policies written for that plugin run here unchanged.
import { type CheckRequest, checkRequestType } from './envoy-protos.ts';
import { RequestParseError } from './errors.ts';
import { isJsonObject, type JsonObject, type JsonValue, objectFromMap } from './json-value.ts';
import { parsePathAndQuery } from './path-and-query.ts';
import { protoToInputJson } from './proto-map.ts';
import { type BodyOptions, parseRequestBody } from './request-body.ts';

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export interface InputOptions {
  /** OPA-Envoy's `skip-request-body-parse`: no `parsed_body` nor `truncated_body` at all. */
  skipRequestBodyParse?: boolean;
  /** Default 1 MiB. Larger bodies are not parsed (`parsed_body` null, `truncated_body` true). */
  maxBodyBytes?: number;
  /** Default `reject`, as OPA-Envoy: an unparsable body of a parsed content type fails the request. */
  onInvalidBody?: BodyOptions['onInvalidBody'];
}

/**
 * The document a policy sees as `input`. `attributes` is the CheckRequest's AttributeContext in
 * OPA-Envoy's encoding (see proto-map.ts: lowerCamel keys such as `contextExtensions`,
 * `metadataContext`, `rawBody`; only populated fields), absent when the request carries none.
 */
export interface EnvoyAuthzInput {
  attributes?: JsonObject;
  parsed_path: string[];
  parsed_query: Record<string, string[]>;
  /** null when the body was not parsed (no body, other content type, truncated). */
  parsed_body?: JsonValue;
  truncated_body?: boolean;
  /** `attributes.source.principal` (the peer's SPIFFE ID under mTLS), when not empty. */
  source_principal?: string;
  version: { ext_authz: 'v3'; encoding: 'protojson' };
}

/** Throws TypeError naming the option, for wiring time (a bad value stops the service at start). */
export function assertInputOptions(options: InputOptions): void {
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new TypeError(`maxBodyBytes ${max} must be a non-negative integer`);
  }
  const onInvalid = options.onInvalidBody ?? 'reject';
  if (onInvalid !== 'reject' && onInvalid !== 'ignore') {
    throw new TypeError(`onInvalidBody ${String(onInvalid)} must be reject or ignore`);
  }
}

export type InputResult = { ok: true; input: EnvoyAuthzInput } | { ok: false; error: RequestParseError };

/**
 * Builds the input document, never throwing: whatever the request (missing attributes, wrong
 * types from a peer that is not Envoy, hostile paths and bodies), the result is an input or a
 * RequestParseError that OPA-Envoy would also have refused (bad percent-escapes in the path or
 * query, a `;` in the query, an unparsable body unless `onInvalidBody` is `ignore`).
 *
 * Header names are lower-cased in `attributes.request.http.headers` (Envoy already sends them
 * so; another client's `Content-Type` is then treated like Envoy's `content-type`), names that
 * collide once lower-cased being joined with `,` as Envoy joins repeated headers. Headers sent as
 * `header_map` instead (Envoy's `encode_raw_headers`) appear as `headerMap` and, as in OPA-Envoy,
 * play no part in body parsing.
 */
export function checkRequestToInput(
  request: CheckRequest | unknown,
  options: InputOptions = {},
): InputResult {
  try {
    return { ok: true, input: buildInput(request, options) };
  } catch (err) {
    const error =
      err instanceof RequestParseError
        ? err
        : new RequestParseError(`cannot build input: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
    return { ok: false, error };
  }
}

function buildInput(request: unknown, options: InputOptions): EnvoyAuthzInput {
  const document = protoToInputJson(checkRequestType, request);
  const raw = isJsonObject(request) ? request : {};
  const attributes = isJsonObject(raw.attributes) ? raw.attributes : {};
  const http = field(field(attributes, 'request'), 'http');

  const headers = lowerCaseHeaders(http.headers);
  const attributesJson = isJsonObject(document.attributes) ? (document.attributes as JsonObject) : undefined;
  const httpJson = jsonField(jsonField(attributesJson, 'request'), 'http');
  if (httpJson && isJsonObject(httpJson.headers)) httpJson.headers = objectFromMap(headers);

  const path = typeof http.path === 'string' ? http.path : '';
  const { parsedPath, parsedQuery } = parsePathAndQuery(path);
  const input: EnvoyAuthzInput = {
    ...(attributesJson ? { attributes: attributesJson } : {}),
    parsed_path: parsedPath,
    parsed_query: parsedQuery,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };

  if (!options.skipRequestBodyParse) {
    const body = typeof http.body === 'string' ? http.body : '';
    const rawBody = http.raw_body instanceof Uint8Array ? http.raw_body : undefined;
    const { parsedBody, truncated } = parseRequestBody(headers, body, rawBody, {
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      onInvalidBody: options.onInvalidBody ?? 'reject',
    });
    input.parsed_body = parsedBody;
    input.truncated_body = truncated;
  }

  const principal = field(attributes, 'source').principal;
  if (typeof principal === 'string' && principal !== '') input.source_principal = principal;
  return input;
}

function field(parent: Record<string, unknown>, name: string): Record<string, unknown> {
  const value = parent[name];
  return isJsonObject(value) ? value : {};
}

function jsonField(parent: JsonObject | undefined, name: string): JsonObject | undefined {
  const value = parent?.[name];
  return isJsonObject(value) ? (value as JsonObject) : undefined;
}

function lowerCaseHeaders(headers: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!isJsonObject(headers)) return out;
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') continue;
    const key = name.toLowerCase();
    const existing = out.get(key);
    out.set(key, existing === undefined ? value : `${existing},${value}`);
  }
  return out;
}
