// Envoy's HTTP service mode: the authorization request → the same input as gRPC mode, and decisions → the replies Envoy acts on.
import { describe, expect, it } from 'vitest';
import {
  type AuthzHttpReply,
  type AuthzHttpRequest,
  type CheckFailure,
  createHttpAuthorizer,
  type DecideFn,
  decisionToHttpReply,
  type EnvoyAuthzInput,
  type HttpServiceOptions,
  httpDenyReply,
  httpRequestToInput,
} from '../src/index.ts';

function input(request: AuthzHttpRequest, options?: HttpServiceOptions): EnvoyAuthzInput {
  const result = httpRequestToInput(request, options);
  if (!result.ok) throw result.error;
  return result.input;
}

describe('httpRequestToInput', () => {
  it('rebuilds the gRPC-mode input from what Envoy forwards', () => {
    const result = input(
      {
        method: 'POST',
        path: '/envoy-authz/people?lang=en',
        headers: {
          host: 'shop.local',
          authorization: 'Bearer t',
          'content-type': 'application/json',
          'content-length': '41',
          'x-envoy-auth-partial-body': 'false',
          'X-Forwarded-For': ['10.0.0.1', '10.0.0.2'],
        },
        body: Buffer.from('{"firstname":"Charlie", "lastname":"Opa"}'),
      },
      { pathPrefix: '/envoy-authz' },
    );
    expect(result).toEqual({
      attributes: {
        request: {
          http: {
            method: 'POST',
            path: '/people?lang=en',
            host: 'shop.local',
            headers: {
              host: 'shop.local',
              authorization: 'Bearer t',
              'content-type': 'application/json',
              'content-length': '41',
              'x-envoy-auth-partial-body': 'false',
              'x-forwarded-for': '10.0.0.1,10.0.0.2',
              ':method': 'POST',
              ':path': '/people?lang=en',
              ':authority': 'shop.local',
            },
            body: '{"firstname":"Charlie", "lastname":"Opa"}',
          },
        },
      },
      parsed_path: ['people'],
      parsed_query: { lang: ['en'] },
      parsed_body: { firstname: 'Charlie', lastname: 'Opa' },
      truncated_body: false,
      version: { encoding: 'protojson', ext_authz: 'v3' },
    });
  });

  it.each<[string, string | undefined, string, string[]]>([
    ['/envoy-authz/a/b?x=1', '/envoy-authz', '/a/b?x=1', ['a', 'b']],
    ['/envoy-authz', '/envoy-authz', '/', ['']],
    ['/envoy-authz?x=1', '/envoy-authz', '/?x=1', ['']],
    // Not the prefix followed by a path: left alone.
    ['/envoy-authzfoo/a', '/envoy-authz', '/envoy-authzfoo/a', ['envoy-authzfoo', 'a']],
    ['/other/a', '/envoy-authz', '/other/a', ['other', 'a']],
    ['/a/b', undefined, '/a/b', ['a', 'b']],
    ['/a/b', '', '/a/b', ['a', 'b']],
  ])('path %j with prefix %j', (path, pathPrefix, expectedPath, parsedPath) => {
    const result = input(
      { method: 'GET', path, headers: {} },
      pathPrefix === undefined ? {} : { pathPrefix },
    );
    const http = (result.attributes?.['request'] as { http?: { path?: string } } | undefined)?.http;
    expect(http?.path).toBe(expectedPath);
    expect(result.parsed_path).toEqual(parsedPath);
  });

  it.each<[string, AuthzHttpRequest['body'], Record<string, string>, unknown, boolean]>([
    [
      'a cut body (partial-body true)',
      '{"a":',
      { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
      null,
      true,
    ],
    ['a form', 'a=1&a=2', { 'content-type': 'application/x-www-form-urlencoded' }, { a: ['1', '2'] }, false],
    [
      'no body forwarded',
      undefined,
      { 'content-type': 'application/json', 'content-length': '0' },
      null,
      false,
    ],
    ['an empty buffer', Buffer.alloc(0), { 'content-type': 'application/json' }, null, false],
  ])('%s', (_name, body, headers, parsedBody, truncated) => {
    expect(input({ method: 'POST', path: '/', headers, body })).toMatchObject({
      parsed_body: parsedBody,
      truncated_body: truncated,
    });
  });

  it('keeps a body that is not UTF-8 as rawBody', () => {
    const result = input({
      method: 'PUT',
      path: '/blob',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from([0xff, 0x00]),
    });
    const http = (result.attributes?.['request'] as { http?: Record<string, unknown> } | undefined)?.http;
    expect(http?.['rawBody']).toBe('/wA=');
    expect(http).not.toHaveProperty('body');
  });

  it('refuses what gRPC mode refuses', () => {
    const result = httpRequestToInput({ method: 'GET', path: '/a?b=%zz', headers: {} });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.describe()).toBe('request_parse_error: invalid URL escape "%zz"');
  });
});

describe('decisionToHttpReply', () => {
  it.each<[string, unknown, AuthzHttpReply]>([
    ['true', true, { status: 200, headers: [['x-decision-id', 'd-1']], body: '', warnings: [] }],
    ['false', false, { status: 403, headers: [['x-decision-id', 'd-1']], body: '', warnings: [] }],
    [
      'an allow with upstream and client headers and headers to remove',
      {
        allowed: true,
        headers: { 'x-user': 'alice' },
        response_headers_to_add: { 'x-ratelimit-hint': '10' },
        request_headers_to_remove: ['authorization', 'cookie'],
      },
      {
        status: 200,
        headers: [
          ['x-user', 'alice'],
          ['x-ratelimit-hint', '10'],
          ['x-envoy-auth-headers-to-remove', 'authorization, cookie'],
          ['x-decision-id', 'd-1'],
        ],
        body: '',
        warnings: [],
      },
    ],
    [
      'an allow asking for what HTTP mode cannot do',
      {
        allowed: true,
        query_parameters_to_set: { a: '1' },
        query_parameters_to_remove: ['b'],
        dynamic_metadata: { k: 'v' },
      },
      {
        status: 200,
        headers: [['x-decision-id', 'd-1']],
        body: '',
        warnings: [
          'dynamic_metadata is not sent in HTTP service mode',
          'query_parameters_to_set cannot be applied in HTTP service mode',
          'query_parameters_to_remove cannot be applied in HTTP service mode',
        ],
      },
    ],
    [
      'a deny with status, headers and body',
      { allowed: false, http_status: 401, headers: { 'www-authenticate': 'Bearer' }, body: 'login first' },
      {
        status: 401,
        headers: [
          ['www-authenticate', 'Bearer'],
          ['x-decision-id', 'd-1'],
        ],
        body: 'login first',
        warnings: [],
      },
    ],
    [
      'a deny with 200 (Envoy would allow it)',
      { allowed: false, http_status: 200, body: 'no' },
      {
        status: 403,
        headers: [['x-decision-id', 'd-1']],
        body: 'no',
        warnings: ['http_status 200 would not deny in HTTP service mode; sent 403'],
      },
    ],
    [
      'a deny with 503 (Envoy would apply failure_mode_allow)',
      { allowed: false, http_status: 503 },
      {
        status: 403,
        headers: [['x-decision-id', 'd-1']],
        body: '',
        warnings: ['http_status 503 would not deny in HTTP service mode; sent 403'],
      },
    ],
  ])('%s', (_name, result, expected) => {
    expect(decisionToHttpReply(result, 'd-1')).toEqual(expected);
  });

  it('uses the configured decision id header', () => {
    expect(decisionToHttpReply(true, 'd', { decisionIdHeader: 'x-authz-decision' }).headers).toEqual([
      ['x-authz-decision', 'd'],
    ]);
  });

  it.each([200, 500, 503, 100, 418])('httpDenyReply refuses %s', (status) => {
    expect(() => httpDenyReply(status)).toThrow(RangeError);
  });
});

describe('createHttpAuthorizer', () => {
  const request: AuthzHttpRequest = { method: 'GET', path: '/envoy-authz/admin', headers: { host: 'a' } };
  const ctx = { signal: new AbortController().signal };

  it.each<
    [
      string,
      DecideFn,
      { failOpen?: boolean; denyStatus?: number },
      Partial<AuthzHttpReply>,
      CheckFailure['kind'] | undefined,
    ]
  >([
    [
      'a decision',
      async (i) => ({
        result: i.parsed_path[0] === 'admin' ? { allowed: false, http_status: 404 } : true,
        decisionId: 'd',
      }),
      {},
      { status: 404 },
      undefined,
    ],
    ['decide throws', async () => Promise.reject(new Error('down')), {}, { status: 403, body: '' }, 'decide'],
    [
      'decide throws, failOpen',
      async () => Promise.reject(new Error('down')),
      { failOpen: true },
      { status: 200 },
      'decide',
    ],
    [
      'decide throws, denyStatus 401',
      async () => Promise.reject(new Error('down')),
      { denyStatus: 401 },
      { status: 401 },
      'decide',
    ],
    [
      'an invalid result',
      async () => ({ result: { allowed: 1 }, decisionId: 'd' }),
      {},
      { status: 403, headers: [['x-decision-id', 'd']] },
      'invalid_result',
    ],
  ])('%s', async (_name, decide, options, expected, failureKind) => {
    const failures: CheckFailure[] = [];
    const authorize = createHttpAuthorizer({
      decide,
      onError: (f) => failures.push(f),
      pathPrefix: '/envoy-authz',
      ...options,
    });
    expect(await authorize(request, ctx)).toMatchObject(expected);
    expect(failures.map((f) => f.kind)).toEqual(failureKind ? [failureKind] : []);
  });

  it('answers an unparsable request 400 without deciding', async () => {
    let decided = false;
    const failures: CheckFailure[] = [];
    const authorize = createHttpAuthorizer({
      decide: async () => {
        decided = true;
        return { result: true, decisionId: 'd' };
      },
      onError: (f) => failures.push(f),
    });
    const reply = await authorize({ method: 'GET', path: '/%zz', headers: {} }, ctx);
    expect(reply).toEqual({
      status: 400,
      headers: [['x-decision-id', failures[0]?.decisionId]],
      body: 'request_parse_error: invalid URL escape "%zz"',
      warnings: [],
    });
    expect(decided).toBe(false);
  });

  it.each([200, 500, 503, 418])('refuses denyStatus %s at wiring time', (denyStatus) => {
    expect(() =>
      createHttpAuthorizer({
        decide: async () => ({ result: true, decisionId: 'd' }),
        onError: () => {},
        denyStatus,
      }),
    ).toThrow(TypeError);
  });
});
