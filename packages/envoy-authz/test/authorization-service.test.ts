// The Authorization service over real gRPC: a client built from Envoy's protos calls a grpc-js server on 127.0.0.1 running the service with a fake decide.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CheckFailure,
  type CheckRequest,
  createAuthorizationService,
  type DecideContext,
  type DecideFn,
  DecisionResultError,
  type EnvoyAuthzInput,
} from '../src/index.ts';
import { type Harness, type ResponseView, startAuthorizationServer, view } from './grpc-harness.ts';

const request: CheckRequest = {
  attributes: {
    source: {
      address: { socket_address: { address: '10.0.0.7', port_value: 51000 } },
      principal: 'spiffe://cluster.local/ns/shop/sa/web',
    },
    request: {
      http: {
        method: 'POST',
        path: '/api/orders?dry_run=1',
        host: 'shop.local',
        headers: { ':method': 'POST', ':path': '/api/orders?dry_run=1', 'content-type': 'application/json' },
        body: '{"item":"book","qty":2}',
      },
    },
    context_extensions: { listener: 'public' },
  },
};

/** A decide that answers the result stored in the `x-result` header of the request. */
const resultFromHeader: DecideFn = async (input) => {
  const request = input.attributes?.['request'] as
    | { http?: { headers?: Record<string, string> } }
    | undefined;
  return { result: JSON.parse(request?.http?.headers?.['x-result'] ?? 'null'), decisionId: 'dec-42' };
};

function withResult(result: unknown): CheckRequest {
  return {
    attributes: { request: { http: { path: '/', headers: { 'x-result': JSON.stringify(result) } } } },
  };
}

describe('Check over gRPC', () => {
  let harness: Harness;
  const failures: CheckFailure[] = [];

  beforeAll(async () => {
    harness = await startAuthorizationServer({ decide: resultFromHeader, onError: (f) => failures.push(f) });
  });
  afterAll(() => harness.close());

  it.each<[string, unknown, ResponseView]>([
    ['a boolean allow', true, { code: 0, message: '', kind: 'none', metadata: { decision_id: 'dec-42' } }],
    ['a boolean deny', false, { code: 7, message: '', kind: 'none', metadata: { decision_id: 'dec-42' } }],
    [
      'an allow adding and removing headers, setting and removing query parameters',
      {
        allowed: true,
        headers: { 'x-user': 'alice', 'x-roles': ['admin', 'ops'] },
        request_headers_to_remove: ['authorization', 'cookie'],
        response_headers_to_add: [{ 'x-ratelimit-hint': '10' }],
        query_parameters_to_set: { tenant: 'acme', tag: ['a', 'b'] },
        query_parameters_to_remove: ['debug'],
      },
      {
        code: 0,
        message: '',
        kind: 'ok_response',
        ok: {
          headers: [
            ['x-user', 'alice'],
            ['x-roles', 'admin'],
            ['x-roles', 'ops'],
          ],
          headersToRemove: ['authorization', 'cookie'],
          responseHeadersToAdd: [['x-ratelimit-hint', '10']],
          queryParametersToSet: [
            ['tenant', 'acme'],
            ['tag', 'a'],
            ['tag', 'b'],
          ],
          queryParametersToRemove: ['debug'],
        },
        metadata: { decision_id: 'dec-42' },
      },
    ],
    [
      'a deny with a custom status, headers and body',
      {
        allowed: false,
        http_status: 401,
        headers: { 'www-authenticate': 'Bearer realm="shop"' },
        body: '{"error":"login"}',
      },
      {
        code: 7,
        message: '',
        kind: 'denied_response',
        denied: {
          status: 'Unauthorized',
          headers: [['www-authenticate', 'Bearer realm="shop"']],
          body: '{"error":"login"}',
        },
        metadata: { decision_id: 'dec-42' },
      },
    ],
    [
      'a redirecting deny',
      { allowed: false, http_status: 302, headers: { location: 'https://login.local/' } },
      {
        code: 7,
        message: '',
        kind: 'denied_response',
        denied: { status: 'Found', headers: [['location', 'https://login.local/']], body: '' },
        metadata: { decision_id: 'dec-42' },
      },
    ],
    [
      'dynamic metadata',
      {
        allowed: true,
        dynamic_metadata: { tenant: 'acme', score: 0.5, flags: [true, null], nested: { a: { b: 'c' } } },
      },
      {
        code: 0,
        message: '',
        kind: 'ok_response',
        ok: {
          headers: [],
          headersToRemove: [],
          responseHeadersToAdd: [],
          queryParametersToSet: [],
          queryParametersToRemove: [],
        },
        metadata: {
          tenant: 'acme',
          score: 0.5,
          flags: [true, null],
          nested: { a: { b: 'c' } },
          decision_id: 'dec-42',
        },
      },
    ],
  ])('%s', async (_name, result, expected) => {
    expect(view(await harness.check(withResult(result)))).toEqual(expected);
  });

  it.each<[string, unknown, string]>([
    ['no decision', null, 'envoyauth_result_error: illegal value for policy evaluation result: <nil>'],
    ['a string', 'yes', 'envoyauth_result_error: illegal value for policy evaluation result: string'],
    [
      'allowed missing',
      { headers: {} },
      'envoyauth_result_error: unable to determine evaluation result due to missing "allowed" key',
    ],
    [
      'a status Envoy lacks',
      { allowed: false, http_status: 418 },
      'envoyauth_result_error: invalid HTTP status code 418',
    ],
  ])('an invalid result (%s) is denied, fail-closed', async (_name, result, message) => {
    failures.length = 0;
    expect(view(await harness.check(withResult(result)))).toEqual({
      code: 7,
      message,
      kind: 'denied_response',
      denied: { status: 'Forbidden', headers: [], body: '' },
      metadata: { decision_id: 'dec-42' },
    });
    expect(failures).toEqual([
      {
        kind: 'invalid_result',
        error: expect.any(DecisionResultError),
        decisionId: 'dec-42',
        outcome: 'deny',
      },
    ]);
  });

  it('a request whose path cannot be parsed is answered 400 without a decision', async () => {
    failures.length = 0;
    const response = await harness.check({ attributes: { request: { http: { path: '/files/%zz' } } } });
    expect(view(response)).toEqual({
      code: 7,
      message: 'request_parse_error: invalid URL escape "%zz"',
      kind: 'denied_response',
      denied: { status: 'BadRequest', headers: [], body: 'request_parse_error: invalid URL escape "%zz"' },
      metadata: { decision_id: failures[0]?.decisionId },
    });
    expect(failures.map((f) => [f.kind, f.outcome])).toEqual([['request_parse', 'deny']]);
  });
});

describe('what decide is given', () => {
  it('the input document, deadline and trace context of the call', async () => {
    const seen: { input: EnvoyAuthzInput; ctx: DecideContext }[] = [];
    const harness = await startAuthorizationServer({
      decide: async (input, ctx) => {
        seen.push({ input, ctx });
        return { result: true, decisionId: 'd' };
      },
      onError: () => {},
    });
    try {
      const metadata = new grpc.Metadata();
      metadata.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
      const deadline = new Date(Date.now() + 30_000);
      await harness.check(request, { deadline, metadata });
      expect(seen).toHaveLength(1);
      const { input, ctx } = seen[0]!;
      expect(input).toEqual({
        attributes: {
          source: {
            address: { socketAddress: { address: '10.0.0.7', portValue: 51000 } },
            principal: 'spiffe://cluster.local/ns/shop/sa/web',
          },
          request: {
            http: {
              method: 'POST',
              path: '/api/orders?dry_run=1',
              host: 'shop.local',
              headers: {
                ':method': 'POST',
                ':path': '/api/orders?dry_run=1',
                'content-type': 'application/json',
              },
              body: '{"item":"book","qty":2}',
            },
          },
          contextExtensions: { listener: 'public' },
        },
        parsed_path: ['api', 'orders'],
        parsed_query: { dry_run: ['1'] },
        parsed_body: { item: 'book', qty: 2 },
        truncated_body: false,
        source_principal: 'spiffe://cluster.local/ns/shop/sa/web',
        version: { encoding: 'protojson', ext_authz: 'v3' },
      });
      expect(ctx.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
      expect(ctx.signal.aborted).toBe(false);
      // grpc-timeout travels with coarse units; the server's deadline is within a second of ours.
      expect(Math.abs((ctx.deadline?.getTime() ?? 0) - deadline.getTime())).toBeLessThan(1000);
    } finally {
      harness.close();
    }
  });
});

describe('when decide fails', () => {
  const failing: DecideFn = async () => {
    throw new Error('pdp unreachable: connect ECONNREFUSED 10.1.2.3:9181');
  };

  it.each<
    [
      string,
      { failOpen?: boolean; denyStatus?: number },
      Omit<ResponseView, 'metadata'>,
      CheckFailure['outcome'],
    ]
  >([
    [
      'it denies with 403 by default',
      {},
      {
        code: 7,
        message: 'decision unavailable',
        kind: 'denied_response',
        denied: { status: 'Forbidden', headers: [], body: '' },
      },
      'deny',
    ],
    [
      'it denies with the configured status',
      { denyStatus: 503 },
      {
        code: 7,
        message: 'decision unavailable',
        kind: 'denied_response',
        denied: { status: 'ServiceUnavailable', headers: [], body: '' },
      },
      'deny',
    ],
    ['it allows with failOpen', { failOpen: true }, { code: 0, message: '', kind: 'none' }, 'allow'],
  ])('%s', async (_name, options, expected, outcome) => {
    const failures: CheckFailure[] = [];
    const harness = await startAuthorizationServer({
      decide: failing,
      onError: (f) => failures.push(f),
      ...options,
    });
    try {
      const response = view(await harness.check(request));
      expect(response).toMatchObject(expected);
      // The internal error stays in our logs; Envoy gets a fresh decision id to join them on.
      expect(response.message).not.toContain('ECONNREFUSED');
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ kind: 'decide', outcome, error: expect.any(Error) });
      expect(response.metadata).toEqual({ decision_id: failures[0]!.decisionId });
      expect(failures[0]!.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      harness.close();
    }
  });

  it('an invalid result with failOpen is allowed', async () => {
    const harness = await startAuthorizationServer({
      decide: async () => ({ result: { allowed: 'yes' }, decisionId: 'd-9' }),
      onError: () => {},
      failOpen: true,
    });
    try {
      expect(view(await harness.check(request))).toEqual({
        code: 0,
        message: '',
        kind: 'none',
        metadata: { decision_id: 'd-9' },
      });
    } finally {
      harness.close();
    }
  });

  it('an onError that throws changes nothing for Envoy', async () => {
    const warned = new Promise<string>((resolve) => {
      const onWarning = (w: Error): void => {
        if (!w.message.startsWith('envoy-authz')) return;
        process.off('warning', onWarning);
        resolve(w.message);
      };
      process.on('warning', onWarning);
    });
    const harness = await startAuthorizationServer({
      decide: failing,
      onError: () => {
        throw new Error('logger down');
      },
    });
    try {
      expect(view(await harness.check(request))).toMatchObject({ code: 7, kind: 'denied_response' });
      expect(await warned).toBe('envoy-authz onError threw: logger down');
    } finally {
      harness.close();
    }
  });
});

describe('deadlines', () => {
  it('a decide slower than the deadline: the caller gets DEADLINE_EXCEEDED, decide is aborted, the late decision is reported', async () => {
    let aborted!: () => void;
    const abortedSeen = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    let reported!: (f: CheckFailure) => void;
    const cancelledReport = new Promise<CheckFailure>((resolve) => {
      reported = resolve;
    });
    const harness = await startAuthorizationServer({
      // Waits for nothing but its signal: the deadline is the only way out.
      decide: (_input, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted();
            resolve({ result: true, decisionId: 'too-late' });
          });
        }),
      onError: (f) => reported(f),
    });
    try {
      const error = await harness.check(request, { deadline: new Date(Date.now() + 1000) }).then(
        () => undefined,
        (err: grpc.ServiceError) => err,
      );
      expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      await abortedSeen;
      expect(await cancelledReport).toMatchObject({
        kind: 'cancelled',
        decisionId: 'too-late',
        outcome: 'none',
      });
    } finally {
      harness.close();
    }
  });

  it('registers with a plain grpc-js server as `{ Check }`', () => {
    const service = createAuthorizationService({ decide: resultFromHeader, onError: () => {} });
    expect(Object.keys(service)).toEqual(['Check']);
    expect(typeof service.Check).toBe('function');
  });

  it.each<[string, object]>([
    ['a denyStatus Envoy cannot send', { denyStatus: 418 }],
    ['a negative maxBodyBytes', { maxBodyBytes: -1 }],
    ['an unknown onInvalidBody', { onInvalidBody: 'drop' }],
    ['a missing onError', { onError: undefined }],
  ])('refuses %s at wiring time', (_name, bad) => {
    expect(() => createAuthorizationService({ decide: resultFromHeader, onError: () => {}, ...bad })).toThrow(
      TypeError,
    );
  });
});
