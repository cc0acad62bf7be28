// Decision → CheckResponse rules, as OPA-Envoy's response.go applies them, without the transport.
import { describe, expect, it } from 'vitest';
import {
  DecisionResultError,
  decisionToCheckResponse,
  denyResponse,
  failOpenResponse,
  interpretDecision,
  RequestParseError,
  requestParseErrorResponse,
} from '../src/index.ts';
import { view } from './grpc-harness.ts';

describe('interpretDecision', () => {
  it.each<[string, unknown, string, string | undefined]>([
    ['undefined (no decision)', undefined, 'illegal value for policy evaluation result: <nil>', undefined],
    ['null', null, 'illegal value for policy evaluation result: <nil>', undefined],
    ['a string', 'allow', 'illegal value for policy evaluation result: string', undefined],
    ['a number', 1, 'illegal value for policy evaluation result: json.Number', undefined],
    ['an array', [true], 'illegal value for policy evaluation result: []interface {}', undefined],
    [
      'an object without allowed',
      {},
      'unable to determine evaluation result due to missing "allowed" key',
      'allowed',
    ],
    [
      'allowed as a string',
      { allowed: 'true' },
      "type assertion error, expected allowed to be of type 'boolean' but got 'string'",
      'allowed',
    ],
    [
      'headers as a string',
      { allowed: true, headers: 'x-a: 1' },
      "type assertion error, expected headers to be of type 'object' but got 'string'",
      'headers',
    ],
    [
      'headers null',
      { allowed: false, headers: null },
      "type assertion error, expected headers to be of type 'object' but got '<nil>'",
      'headers',
    ],
    [
      'a header value of a number',
      { allowed: true, headers: { a: 1 } },
      "type assertion error for header 'a'",
      'headers',
    ],
    [
      'a header array with a number',
      { allowed: true, headers: { a: ['1', 2] } },
      "invalid value type json.Number for header 'a'",
      'headers',
    ],
    [
      'a header list with a string',
      { allowed: true, headers: [{ a: '1' }, 'b'] },
      "type assertion error, expected headers to be of type 'object' but got 'string'",
      'headers',
    ],
    [
      'dynamic_metadata as an array',
      { allowed: true, dynamic_metadata: [] },
      "type assertion error, expected dynamic_metadata to be of type 'object' but got '[]interface {}'",
      'dynamic_metadata',
    ],
    [
      'dynamic_metadata on a deny, null',
      { allowed: false, dynamic_metadata: null },
      "type assertion error, expected dynamic_metadata to be of type 'object' but got '<nil>'",
      'dynamic_metadata',
    ],
    [
      'request_headers_to_remove as a string',
      { allowed: true, request_headers_to_remove: 'authorization' },
      "type assertion error, expected request_headers_to_remove to be of type '[]string' but got 'string'",
      'request_headers_to_remove',
    ],
    [
      'query_parameters_to_remove with a number',
      { allowed: true, query_parameters_to_remove: ['a', 1] },
      "type assertion error, expected query_parameters_to_remove value to be of type 'string' but got 'json.Number'",
      'query_parameters_to_remove',
    ],
    [
      'response_headers_to_add as a number',
      { allowed: true, response_headers_to_add: 5 },
      "type assertion error, expected response_headers_to_add to be of type 'object' but got 'json.Number'",
      'response_headers_to_add',
    ],
    [
      'query_parameters_to_set as an array',
      { allowed: true, query_parameters_to_set: [] },
      "type assertion error, expected query_parameters_to_set to be a map but got '[]interface {}'",
      'query_parameters_to_set',
    ],
    [
      'a query parameter of a number',
      { allowed: true, query_parameters_to_set: { a: 1 } },
      "type assertion error, expected value to be string or array but got 'json.Number'",
      'query_parameters_to_set',
    ],
    [
      'http_status as a string',
      { allowed: false, http_status: '401' },
      "type assertion error, expected http_status to be of type 'number' but got 'string'",
      'http_status',
    ],
    [
      'http_status not an integer',
      { allowed: false, http_status: 401.5 },
      'error converting JSON number to int: 401.5',
      'http_status',
    ],
    [
      'http_status unknown to Envoy (418)',
      { allowed: false, http_status: 418 },
      'invalid HTTP status code 418',
      'http_status',
    ],
    ['http_status 0', { allowed: false, http_status: 0 }, 'invalid HTTP status code 0', 'http_status'],
    [
      'body as an object',
      { allowed: false, body: { error: 'no' } },
      "type assertion error, expected body to be of type 'string' but got 'map[string]interface {}'",
      'body',
    ],
  ])('refuses %s', (_name, result, message, field) => {
    let caught: unknown;
    try {
      interpretDecision(result);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DecisionResultError);
    const error = caught as DecisionResultError;
    expect(error.message).toBe(message);
    expect(error.field).toBe(field);
    expect(error.describe()).toBe(`envoyauth_result_error: ${message}`);
    expect(error.code).toBe('evaluation_error');
  });

  it.each<[string, unknown]>([
    // OPA-Envoy checks only what the verdict uses.
    [
      'a deny with malformed request mutations',
      {
        allowed: false,
        request_headers_to_remove: 1,
        query_parameters_to_set: 'x',
        response_headers_to_add: 2,
      },
    ],
    ['an allow with a malformed status and body', { allowed: true, http_status: 'teapot', body: 42 }],
    ['unknown keys', { allowed: true, reason: { why: 'because' }, decision_id: 7 }],
    ['an empty header list', { allowed: true, headers: [] }],
    ['a header with no values', { allowed: true, headers: { a: [] } }],
  ])('accepts %s', (_name, result) => {
    expect(() => interpretDecision(result)).not.toThrow();
  });
});

describe('decisionToCheckResponse', () => {
  it.each<[string, unknown, ReturnType<typeof view>]>([
    ['true', true, { code: 0, message: '', kind: 'none', metadata: { decision_id: 'd-1' } }],
    ['false', false, { code: 7, message: '', kind: 'none', metadata: { decision_id: 'd-1' } }],
    [
      'the primer example (allowed)',
      {
        allowed: true,
        headers: { 'x-ext-auth-allow': 'yes', 'x-validated-by': 'security-checkpoint' },
        request_headers_to_remove: ['one-auth-header', 'another-auth-header'],
        response_headers_to_add: { 'x-foo': 'bar' },
        query_parameters_to_set: { 'user-role': 'guest', tags: ['main-flow', 'auth-enabled'] },
        query_parameters_to_remove: ['debug'],
        dynamic_metadata: { foo: 'bar' },
      },
      {
        code: 0,
        message: '',
        kind: 'ok_response',
        ok: {
          headers: [
            ['x-ext-auth-allow', 'yes'],
            ['x-validated-by', 'security-checkpoint'],
          ],
          headersToRemove: ['one-auth-header', 'another-auth-header'],
          responseHeadersToAdd: [['x-foo', 'bar']],
          queryParametersToSet: [
            ['user-role', 'guest'],
            ['tags', 'main-flow'],
            ['tags', 'auth-enabled'],
          ],
          queryParametersToRemove: ['debug'],
        },
        metadata: { foo: 'bar', decision_id: 'd-1' },
      },
    ],
    [
      'the primer example (denied, 401)',
      {
        allowed: false,
        http_status: 401,
        body: 'Authentication Failed',
        headers: { 'x-ext-auth-allow': 'no' },
      },
      {
        code: 7,
        message: '',
        kind: 'denied_response',
        denied: {
          status: 'Unauthorized',
          headers: [['x-ext-auth-allow', 'no']],
          body: 'Authentication Failed',
        },
        metadata: { decision_id: 'd-1' },
      },
    ],
    [
      'a deny with defaults',
      { allowed: false },
      {
        code: 7,
        message: '',
        kind: 'denied_response',
        denied: { status: 'Forbidden', headers: [], body: '' },
        metadata: { decision_id: 'd-1' },
      },
    ],
    [
      'headers as a list of objects with arrays, and a policy decision_id overridden',
      {
        allowed: true,
        headers: [{ a: '1' }, { a: ['2', '3'], b: '4' }],
        dynamic_metadata: { decision_id: 'mine', n: [1, { x: null }] },
      },
      {
        code: 0,
        message: '',
        kind: 'ok_response',
        ok: {
          headers: [
            ['a', '1'],
            ['a', '2'],
            ['a', '3'],
            ['b', '4'],
          ],
          headersToRemove: [],
          responseHeadersToAdd: [],
          queryParametersToSet: [],
          queryParametersToRemove: [],
        },
        metadata: { decision_id: 'd-1', n: [1, { x: null }] },
      },
    ],
  ])('%s', (_name, result, expected) => {
    expect(view(decisionToCheckResponse(result, 'd-1'))).toEqual(expected);
  });

  it('keeps a `__proto__` header name as data', () => {
    const result = JSON.parse('{"allowed": true, "headers": {"__proto__": "x"}}');
    expect(view(decisionToCheckResponse(result, 'd')).ok?.headers).toEqual([['__proto__', 'x']]);
  });
});

describe('responses without a decision', () => {
  it('denyResponse carries the reason to Envoy only', () => {
    expect(view(denyResponse(503, 'decision unavailable', { decisionId: 'd-2' }))).toEqual({
      code: 7,
      message: 'decision unavailable',
      kind: 'denied_response',
      denied: { status: 'ServiceUnavailable', headers: [], body: '' },
      metadata: { decision_id: 'd-2' },
    });
  });

  it.each([0, 418, 99, 403.5, 1000])('denyResponse refuses status %s', (status) => {
    expect(() => denyResponse(status, 'x')).toThrow(RangeError);
  });

  it('failOpenResponse allows without mutations', () => {
    expect(view(failOpenResponse('d-3'))).toEqual({
      code: 0,
      message: '',
      kind: 'none',
      metadata: { decision_id: 'd-3' },
    });
  });

  it('requestParseErrorResponse answers 400 as OPA-Envoy', () => {
    const error = new RequestParseError('invalid URL escape "%zz"');
    expect(view(requestParseErrorResponse(error))).toEqual({
      code: 7,
      message: 'request_parse_error: invalid URL escape "%zz"',
      kind: 'denied_response',
      denied: { status: 'BadRequest', headers: [], body: 'request_parse_error: invalid URL escape "%zz"' },
      metadata: null,
    });
  });
});
