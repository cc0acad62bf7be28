// Envoy's ext_authz *HTTP* service mode without the HTTP server: the authorization request Envoy sends → the same input document as gRPC mode, and a decision → the reply Envoy acts on.
import { randomUUID } from 'node:crypto';
import type { Tracer } from '@portcullis/runtime';
import {
  type CheckFailure,
  type CheckFailureKind,
  type DecideContext,
  type DecideFn,
  type Decision,
  safeReporter,
} from './authorization-service.ts';
import { type CheckOutcome, type CheckReporter, safeCheckReporter, secondsSince } from './check-report.ts';
import {
  assertInputOptions,
  checkRequestToInput,
  type InputOptions,
  type InputResult,
} from './check-request-input.ts';
import { type HeaderPair, interpretDecision, isEnvoyHttpStatus } from './check-response.ts';
import { inCheckSpan, traceCarrier } from './check-span.ts';
import type { HttpRequest } from './envoy-protos.ts';
import { isValidUtf8 } from './utf8-decoding.ts';

/*
 * How Envoy talks to an HTTP authorization server, and the Envoy configuration this expects:
 *
 *   http_filters:
 *   - name: envoy.filters.http.ext_authz
 *     typed_config:
 *       "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
 *       transport_api_version: V3
 *       failure_mode_allow: false
 *       with_request_body: { max_request_bytes: 65536, allow_partial_message: true }
 *       # HTTP mode forwards only Host, Method, Path, Content-Length and Authorization unless told
 *       # more; policies usually want the rest (content-type decides body parsing).
 *       allowed_headers: { patterns: [{ safe_regex: { regex: ".*" } }] }
 *       http_service:
 *         server_uri: { uri: "http://ext-authz:8191", cluster: ext_authz_http, timeout: 0.25s }
 *         path_prefix: /envoy-authz          # = our `pathPrefix`
 *         authorization_response:
 *           # allow: which of our 200's headers go onto the upstream request (policy `headers`)
 *           allowed_upstream_headers: { patterns: [{ prefix: "x-" }] }
 *           # allow: which go to the client's response (policy `response_headers_to_add`)
 *           allowed_client_headers_on_success: { patterns: [{ exact: x-ratelimit-hint }] }
 *           # so access logs can join decision logs, as `decision_id` does in gRPC mode
 *           dynamic_metadata_from_headers: { patterns: [{ exact: x-decision-id }] }
 *
 * - Envoy sends the client's method, `path_prefix` + the client's path and query, the allowed
 *   headers, and the buffered body (Content-Length set to its length; `x-envoy-auth-partial-body`
 *   marks a cut one). We strip the prefix and rebuild `attributes.request.http` from that
 *   (`method`, `path`, `host`, `headers` with `:method`, `:path`, `:authority` added as gRPC mode
 *   has them, `body`, or `rawBody` when the body is not UTF-8); fields gRPC mode has and HTTP
 *   mode cannot know (source and destination peers, `id`, `protocol`, `size`, metadata) are absent.
 * - Envoy allows exactly when we answer 200; `x-envoy-auth-headers-to-remove: a, b` removes
 *   request headers. Any other status is a denial sent to the client with our headers and body,
 *   except 5xx, which Envoy takes as the *server failing* and answers per `failure_mode_allow`
 *   (with it on, the request would pass). So a denial never goes out as 200 or 5xx (or 1xx): such
 *   an `http_status` becomes 403, with a warning.
 * - Mutations HTTP mode cannot express (`query_parameters_to_set` / `_remove`,
 *   `dynamic_metadata`) are dropped with a warning; a policy that needs them needs gRPC mode.
 * - A header the policy sets both upstream and for the client travels once in our reply; the two
 *   matchers above decide where it lands, so keep their patterns disjoint.
 */

export interface AuthzHttpRequest {
  method: string;
  /** The request-target Envoy sent: `path_prefix` + the client's path and query. */
  path: string;
  /** Node's IncomingHttpHeaders fit: names in any case, repeated values as arrays. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  body?: Uint8Array | string;
}

export interface HttpServiceOptions extends InputOptions {
  /** Envoy's `http_service.path_prefix`, stripped from the path before it reaches the input. */
  pathPrefix?: string;
  /** The reply header carrying the decision id. Default `x-decision-id`. */
  decisionIdHeader?: string;
}

export interface AuthzHttpReply {
  status: number;
  /** In order; a name may repeat. */
  headers: HeaderPair[];
  body: string;
  /** What the decision asked for that this mode could not do, for the adapter to log. */
  warnings: string[];
}

const DEFAULT_DECISION_ID_HEADER = 'x-decision-id';
const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';

/** The same input document gRPC mode builds, from the HTTP authorization request. Never throws. */
export function httpRequestToInput(request: AuthzHttpRequest, options: HttpServiceOptions = {}): InputResult {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (value === undefined) continue;
    const joined = typeof value === 'string' ? value : value.join(',');
    const key = name.toLowerCase();
    const existing = headers.get(key);
    headers.set(key, existing === undefined ? joined : `${existing},${joined}`);
  }
  const path = stripPrefix(String(request.path ?? ''), options.pathPrefix);
  const method = String(request.method ?? '');
  const host = headers.get('host') ?? headers.get(':authority') ?? '';
  if (!headers.has(':method')) headers.set(':method', method);
  if (!headers.has(':path')) headers.set(':path', path);
  if (!headers.has(':authority') && host !== '') headers.set(':authority', host);

  const http: HttpRequest = { method, path, host, headers: Object.fromEntries(headers) };
  const body = request.body;
  if (typeof body === 'string') http.body = body;
  else if (body instanceof Uint8Array && body.length > 0) {
    // gRPC mode carries a UTF-8 body as `body`; bytes that are not UTF-8 only fit `raw_body`.
    if (isValidUtf8(body))
      http.body = Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8');
    else http.raw_body = body;
  }
  return checkRequestToInput({ attributes: { request: { http } } }, options);
}

/** Only a prefix followed by the client's own path (`/…`, or nothing) is stripped. */
function stripPrefix(path: string, prefix: string | undefined): string {
  if (!prefix || !path.startsWith(prefix)) return path;
  const rest = path.slice(prefix.length);
  if (rest === '') return '/';
  if (rest.startsWith('?')) return `/${rest}`;
  return rest.startsWith('/') ? rest : path;
}

/** The reply for a decision. Throws DecisionResultError, as decisionToCheckResponse. */
export function decisionToHttpReply(
  result: unknown,
  decisionId: string,
  options: Pick<HttpServiceOptions, 'decisionIdHeader'> = {},
): AuthzHttpReply {
  const decision = interpretDecision(result);
  const idHeader: HeaderPair = [options.decisionIdHeader ?? DEFAULT_DECISION_ID_HEADER, decisionId];
  if (decision.kind === 'boolean') {
    return { status: decision.allowed ? 200 : 403, headers: [idHeader], body: '', warnings: [] };
  }
  const warnings: string[] = [];
  if (decision.dynamicMetadata !== undefined) {
    warnings.push('dynamic_metadata is not sent in HTTP service mode');
  }
  if (decision.allowed) {
    if (decision.queryParametersToSet.length > 0) {
      warnings.push('query_parameters_to_set cannot be applied in HTTP service mode');
    }
    if (decision.queryParametersToRemove.length > 0) {
      warnings.push('query_parameters_to_remove cannot be applied in HTTP service mode');
    }
    const headers: HeaderPair[] = [...decision.headers, ...decision.responseHeadersToAdd];
    if (decision.requestHeadersToRemove.length > 0) {
      headers.push([HEADERS_TO_REMOVE, decision.requestHeadersToRemove.join(', ')]);
    }
    headers.push(idHeader);
    return { status: 200, headers, body: '', warnings };
  }
  let status = decision.httpStatus;
  if (!isHttpDenialStatus(status)) {
    warnings.push(`http_status ${status} would not deny in HTTP service mode; sent 403`);
    status = 403;
  }
  return { status, headers: [...decision.headers, idHeader], body: decision.body, warnings };
}

/** A status Envoy's HTTP client takes as a denial: not 200 (allow), not 5xx (server error), not 1xx. */
export function isHttpDenialStatus(status: number): boolean {
  return isEnvoyHttpStatus(status) && status >= 201 && status < 500;
}

/** A denial without a decision (fail-closed, or a request that could not be parsed). */
export function httpDenyReply(
  status: number,
  options: { decisionId?: string; body?: string; decisionIdHeader?: string } = {},
): AuthzHttpReply {
  if (!isHttpDenialStatus(status))
    throw new RangeError(`HTTP status ${status} does not deny in HTTP service mode`);
  const headers: HeaderPair[] =
    options.decisionId === undefined
      ? []
      : [[options.decisionIdHeader ?? DEFAULT_DECISION_ID_HEADER, options.decisionId]];
  return { status, headers, body: options.body ?? '', warnings: [] };
}

export interface HttpAuthorizerOptions extends HttpServiceOptions {
  decide: DecideFn;
  /** As for the gRPC service; must not throw. */
  onError: (failure: CheckFailure) => void;
  /** Allow (200) when `decide` fails or its result is invalid. Default false. */
  failOpen?: boolean;
  /** Status of a fail-closed denial. Default 403; must deny in HTTP mode (not 200, 1xx or 5xx). */
  denyStatus?: number;
  /** Told of every check once it is answered (for metrics). Must not throw. */
  onCheck?: CheckReporter;
  /** When given, each check runs in its own span (`ext_authz.check`), continuing the request's trace. */
  tracer?: Tracer;
}

export type HttpAuthorizer = (request: AuthzHttpRequest, ctx: DecideContext) => Promise<AuthzHttpReply>;

/**
 * The HTTP mode's whole check, never rejecting: an unparsable request gets 400 with
 * `request_parse_error: …` (as gRPC mode, as OPA-Envoy), a failing `decide` or invalid result
 * gets `denyStatus` (or 200 with `failOpen`). The HTTP server calling this passes a signal that
 * aborts when Envoy's request goes away (Envoy's `timeout` passed).
 */
export function createHttpAuthorizer(options: HttpAuthorizerOptions): HttpAuthorizer {
  const { decide, onError } = options;
  const failOpen = options.failOpen ?? false;
  const denyStatus = options.denyStatus ?? 403;
  const idHeader = options.decisionIdHeader ?? DEFAULT_DECISION_ID_HEADER;
  if (typeof decide !== 'function') throw new TypeError('decide must be a function');
  if (typeof onError !== 'function') throw new TypeError('onError must be a function');
  if (!isHttpDenialStatus(denyStatus))
    throw new TypeError(`denyStatus ${denyStatus} does not deny in HTTP service mode`);
  assertInputOptions(options);
  const report = safeReporter(onError);
  const reportCheck = safeCheckReporter(options.onCheck);
  type Answer = { reply: AuthzHttpReply; outcome: Exclude<CheckOutcome, 'cancelled'>; decisionId: string };
  const failure = (kind: CheckFailureKind, error: unknown, decisionId: string): Answer => {
    report({ kind, error, decisionId, outcome: failOpen ? 'allow' : 'deny' });
    if (failOpen) {
      const reply = { status: 200, headers: [[idHeader, decisionId] as const], body: '', warnings: [] };
      return { reply, outcome: 'failed_open', decisionId };
    }
    const reply = httpDenyReply(denyStatus, { decisionId, decisionIdHeader: idHeader });
    return { reply, outcome: 'failed_closed', decisionId };
  };

  const check = async (request: AuthzHttpRequest, ctx: DecideContext): Promise<Answer> => {
    const built = httpRequestToInput(request, options);
    if (!built.ok) {
      const decisionId = randomUUID();
      report({ kind: 'request_parse', error: built.error, decisionId, outcome: 'deny' });
      const reply = httpDenyReply(400, {
        body: built.error.describe(),
        decisionId,
        decisionIdHeader: idHeader,
      });
      return { reply, outcome: 'bad_request', decisionId };
    }
    let decision: Decision;
    try {
      decision = await decide(built.input, ctx);
    } catch (error) {
      return failure('decide', error, randomUUID());
    }
    try {
      const reply = decisionToHttpReply(decision.result, decision.decisionId, { decisionIdHeader: idHeader });
      return { reply, outcome: reply.status === 200 ? 'allowed' : 'denied', decisionId: decision.decisionId };
    } catch (error) {
      return failure('invalid_result', error, decision.decisionId);
    }
  };

  return async (request, ctx) => {
    const started = performance.now();
    const carrier = traceCarrier(ctx.traceparent, traceHeaders(request.headers));
    const answered = await inCheckSpan(options.tracer, 'http', carrier, async () => {
      const { reply, outcome, decisionId } = await check(request, ctx);
      const durationSeconds = secondsSince(started);
      if (!ctx.signal.aborted) {
        return { reply, report: { outcome, httpStatus: reply.status, decisionId, durationSeconds } };
      }
      report({ kind: 'cancelled', error: ctx.signal.reason, decisionId, outcome: 'none' });
      return { reply, report: { outcome: 'cancelled' as const, httpStatus: 0, decisionId, durationSeconds } };
    });
    reportCheck(answered.report);
    return answered.reply;
  };
}

/** The trace context headers, whatever the case of their names (Node's are lower case already). */
function traceHeaders(headers: AuthzHttpRequest['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const key = name.toLowerCase();
    if ((key === 'traceparent' || key === 'tracestate') && typeof value === 'string') out[key] = value;
  }
  return out;
}
