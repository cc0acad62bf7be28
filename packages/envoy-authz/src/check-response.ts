// A policy decision (boolean or object, as OPA-Envoy policies return) → the CheckResponse Envoy enforces; and the fixed responses for requests that get no decision.
import {
  type CheckResponse,
  ENVOY_HTTP_STATUS_CODES,
  type HeaderValueOption,
  type QueryParameter,
  RPC_CODE_OK,
  RPC_CODE_PERMISSION_DENIED,
  type Struct,
} from './envoy-protos.ts';
import { DecisionResultError, type RequestParseError } from './errors.ts';
import { isJsonObject, type JsonObject } from './json-value.ts';
import { jsonToStruct } from './proto-map.ts';

export type HeaderPair = readonly [name: string, value: string];

/** A decision whose fields have been checked, holding only what its verdict uses. */
export type InterpretedDecision =
  | { allowed: true; kind: 'boolean' }
  | { allowed: false; kind: 'boolean' }
  | {
      allowed: true;
      kind: 'object';
      /** `headers`: added to the request sent upstream. */
      headers: HeaderPair[];
      requestHeadersToRemove: string[];
      /** `response_headers_to_add`: added to the response sent to the client. */
      responseHeadersToAdd: HeaderPair[];
      queryParametersToSet: HeaderPair[];
      queryParametersToRemove: string[];
      dynamicMetadata: JsonObject | undefined;
    }
  | {
      allowed: false;
      kind: 'object';
      /** `headers`: sent to the client with the denial. */
      headers: HeaderPair[];
      httpStatus: number;
      body: string;
      dynamicMetadata: JsonObject | undefined;
    };

/**
 * Checks a decision the way OPA-Envoy (envoyauth/response.go, internal.go) does, throwing
 * DecisionResultError where it errors:
 * - a boolean is the verdict itself; an object needs a boolean `allowed`; anything else
 *   (undefined, null, a number, an array) is invalid;
 * - `headers` and `response_headers_to_add`: an object of name → string or array of strings, or an
 *   array of such objects; each value becomes its own header entry, in order;
 * - `request_headers_to_remove`, `query_parameters_to_remove`: arrays of strings;
 * - `query_parameters_to_set`: an object of name → string or array of strings;
 * - `http_status`: an integer that is both a Go net/http status and in Envoy's StatusCode enum;
 *   `body`: a string; `dynamic_metadata`: an object;
 * - only what the verdict uses is checked: on allow `http_status` and `body` are ignored, on deny
 *   the request mutations (`request_headers_to_remove`, `response_headers_to_add`,
 *   `query_parameters_*`) are, as in the plugin. Unknown keys are ignored.
 */
export function interpretDecision(result: unknown): InterpretedDecision {
  if (typeof result === 'boolean')
    return result ? { allowed: true, kind: 'boolean' } : { allowed: false, kind: 'boolean' };
  if (!isJsonObject(result)) {
    throw new DecisionResultError(`illegal value for policy evaluation result: ${goTypeName(result)}`);
  }
  if (!Object.hasOwn(result, 'allowed')) {
    throw new DecisionResultError(
      'unable to determine evaluation result due to missing "allowed" key',
      'allowed',
    );
  }
  if (typeof result.allowed !== 'boolean') {
    throw new DecisionResultError(
      `type assertion error, expected allowed to be of type 'boolean' but got '${goTypeName(result.allowed)}'`,
      'allowed',
    );
  }
  const headers = headerList(result, 'headers');
  const dynamicMetadata = metadataObject(result);
  if (result.allowed) {
    return {
      allowed: true,
      kind: 'object',
      headers,
      requestHeadersToRemove: stringList(result, 'request_headers_to_remove'),
      responseHeadersToAdd: headerList(result, 'response_headers_to_add'),
      queryParametersToRemove: stringList(result, 'query_parameters_to_remove'),
      queryParametersToSet: queryParameters(result),
      dynamicMetadata,
    };
  }
  return {
    allowed: false,
    kind: 'object',
    headers,
    body: bodyString(result),
    httpStatus: httpStatus(result),
    dynamicMetadata,
  };
}

/**
 * The CheckResponse for a decision. Boolean decisions carry no http_response (Envoy's defaults
 * apply: pass the request on, or 403); object decisions carry ok_response or denied_response.
 * `decision_id` is always set in dynamic_metadata (overriding a policy's own `decision_id`), so
 * access logs (`%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%`) join decision logs.
 *
 * Header entries carry only `header`: no `append`, no `append_action`, exactly as OPA-Envoy
 * sends them, so any Envoy treats them as it treats that plugin's. (Which differs by release:
 * older ones overwrite a request header of the same name for `headers`, so of an array only the
 * last value survives, and add `response_headers_to_add`; the newest read the unset
 * `append_action` as its default, APPEND_IF_EXISTS_OR_ADD, for both.) Throws DecisionResultError.
 */
export function decisionToCheckResponse(result: unknown, decisionId: string): CheckResponse {
  const decision = interpretDecision(result);
  const metadata = decisionMetadata(
    decision.kind === 'object' ? decision.dynamicMetadata : undefined,
    decisionId,
  );
  const status = { code: decision.allowed ? RPC_CODE_OK : RPC_CODE_PERMISSION_DENIED, message: '' };
  if (decision.kind === 'boolean') return { status, dynamic_metadata: metadata };
  if (decision.allowed) {
    return {
      status,
      http_response: 'ok_response',
      ok_response: {
        headers: decision.headers.map(headerOption),
        headers_to_remove: decision.requestHeadersToRemove,
        response_headers_to_add: decision.responseHeadersToAdd.map(headerOption),
        query_parameters_to_set: decision.queryParametersToSet.map(
          ([key, value]): QueryParameter => ({ key, value }),
        ),
        query_parameters_to_remove: decision.queryParametersToRemove,
      },
      dynamic_metadata: metadata,
    };
  }
  return {
    status,
    http_response: 'denied_response',
    denied_response: {
      status: { code: statusCodeName(decision.httpStatus) },
      headers: decision.headers.map(headerOption),
      body: decision.body,
    },
    dynamic_metadata: metadata,
  };
}

/**
 * A denial for a request that got no valid decision (the PDP failed, the result was invalid):
 * PERMISSION_DENIED with `reason` as the gRPC status message (Envoy logs it, the client never
 * sees it), an empty body, `httpStatus` to the client. Throws RangeError for a status Envoy's
 * StatusCode enum does not have.
 */
export function denyResponse(
  httpStatus: number,
  reason: string,
  options: { decisionId?: string; body?: string } = {},
): CheckResponse {
  if (!isEnvoyHttpStatus(httpStatus))
    throw new RangeError(`HTTP status ${httpStatus} is not one Envoy can send`);
  return {
    status: { code: RPC_CODE_PERMISSION_DENIED, message: reason },
    http_response: 'denied_response',
    denied_response: { status: { code: statusCodeName(httpStatus) }, headers: [], body: options.body ?? '' },
    dynamic_metadata:
      options.decisionId === undefined ? null : decisionMetadata(undefined, options.decisionId),
  };
}

/** An allow for a listener configured to fail open: no mutations, the decision id for the logs. */
export function failOpenResponse(decisionId: string): CheckResponse {
  return {
    status: { code: RPC_CODE_OK, message: '' },
    dynamic_metadata: decisionMetadata(undefined, decisionId),
  };
}

/**
 * OPA-Envoy's answer to a request it cannot make into an input: 400 to the client with
 * `request_parse_error: <message>` as both body and status message. OPA-Envoy sends no dynamic
 * metadata with it; we add the `decision_id` our error report carries, when given.
 */
export function requestParseErrorResponse(error: RequestParseError, decisionId?: string): CheckResponse {
  return denyResponse(400, error.describe(), {
    body: error.describe(),
    ...(decisionId === undefined ? {} : { decisionId }),
  });
}

/** Whether Envoy can put this status in a DeniedHttpResponse (its StatusCode enum, Empty excluded). */
export function isEnvoyHttpStatus(status: number): boolean {
  return Number.isInteger(status) && status !== 0 && ENVOY_HTTP_STATUS_CODES.has(status);
}

function statusCodeName(status: number): string {
  return ENVOY_HTTP_STATUS_CODES.get(status) ?? 'Forbidden';
}

function headerOption([key, value]: HeaderPair): HeaderValueOption {
  return { header: { key, value } };
}

function decisionMetadata(metadata: JsonObject | undefined, decisionId: string): Struct {
  try {
    return jsonToStruct({ ...metadata, decision_id: decisionId });
  } catch (err) {
    // Only reachable for metadata that did not come from JSON; metadataObject screens the rest.
    throw new DecisionResultError(`dynamic_metadata: ${(err as Error).message}`, 'dynamic_metadata');
  }
}

/** Go's name for the JSON value's type, as OPA-Envoy's messages print it with %T. */
function goTypeName(value: unknown): string {
  if (value === undefined || value === null) return '<nil>';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return 'json.Number';
  if (typeof value === 'string') return 'string';
  if (Array.isArray(value)) return '[]interface {}';
  if (isJsonObject(value)) return 'map[string]interface {}';
  return typeof value;
}

function headerList(result: Record<string, unknown>, name: string): HeaderPair[] {
  if (!Object.hasOwn(result, name)) return [];
  const value = result[name];
  const out: HeaderPair[] = [];
  const objects = Array.isArray(value) ? value : [value];
  for (const object of objects) {
    if (!isJsonObject(object)) {
      throw new DecisionResultError(
        `type assertion error, expected ${name} to be of type 'object' but got '${goTypeName(object)}'`,
        name,
      );
    }
    for (const [key, v] of Object.entries(object)) {
      if (typeof v === 'string') out.push([key, v]);
      else if (Array.isArray(v)) {
        for (const item of v) {
          if (typeof item !== 'string') {
            throw new DecisionResultError(`invalid value type ${goTypeName(item)} for header '${key}'`, name);
          }
          out.push([key, item]);
        }
      } else throw new DecisionResultError(`type assertion error for header '${key}'`, name);
    }
  }
  return out;
}

function stringList(result: Record<string, unknown>, name: string): string[] {
  if (!Object.hasOwn(result, name)) return [];
  const value = result[name];
  if (!Array.isArray(value)) {
    throw new DecisionResultError(
      `type assertion error, expected ${name} to be of type '[]string' but got '${goTypeName(value)}'`,
      name,
    );
  }
  for (const item of value) {
    if (typeof item !== 'string') {
      throw new DecisionResultError(
        `type assertion error, expected ${name} value to be of type 'string' but got '${goTypeName(item)}'`,
        name,
      );
    }
  }
  return value as string[];
}

function queryParameters(result: Record<string, unknown>): HeaderPair[] {
  const name = 'query_parameters_to_set';
  if (!Object.hasOwn(result, name)) return [];
  const value = result[name];
  if (!isJsonObject(value)) {
    throw new DecisionResultError(
      `type assertion error, expected ${name} to be a map but got '${goTypeName(value)}'`,
      name,
    );
  }
  const out: HeaderPair[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'string') out.push([key, v]);
    else if (Array.isArray(v)) {
      for (const item of v) {
        if (typeof item !== 'string') {
          throw new DecisionResultError(
            `type assertion error: expected array element to be string but got '${goTypeName(item)}'`,
            name,
          );
        }
        out.push([key, item]);
      }
    } else {
      throw new DecisionResultError(
        `type assertion error, expected value to be string or array but got '${goTypeName(v)}'`,
        name,
      );
    }
  }
  return out;
}

function bodyString(result: Record<string, unknown>): string {
  if (!Object.hasOwn(result, 'body')) return '';
  const body = result.body;
  if (typeof body !== 'string') {
    throw new DecisionResultError(
      `type assertion error, expected body to be of type 'string' but got '${goTypeName(body)}'`,
      'body',
    );
  }
  return body;
}

function httpStatus(result: Record<string, unknown>): number {
  if (!Object.hasOwn(result, 'http_status')) return 403;
  const status = result.http_status;
  if (typeof status !== 'number') {
    throw new DecisionResultError(
      `type assertion error, expected http_status to be of type 'number' but got '${goTypeName(status)}'`,
      'http_status',
    );
  }
  if (!Number.isInteger(status)) {
    throw new DecisionResultError(`error converting JSON number to int: ${status}`, 'http_status');
  }
  if (!isEnvoyHttpStatus(status))
    throw new DecisionResultError(`invalid HTTP status code ${status}`, 'http_status');
  return status;
}

function metadataObject(result: Record<string, unknown>): JsonObject | undefined {
  if (!Object.hasOwn(result, 'dynamic_metadata')) return undefined;
  const value = result.dynamic_metadata;
  if (!isJsonObject(value)) {
    throw new DecisionResultError(
      `type assertion error, expected dynamic_metadata to be of type 'object' but got '${goTypeName(value)}'`,
      'dynamic_metadata',
    );
  }
  try {
    jsonToStruct(value);
  } catch (err) {
    throw new DecisionResultError(`dynamic_metadata: ${(err as Error).message}`, 'dynamic_metadata');
  }
  return value as JsonObject;
}
