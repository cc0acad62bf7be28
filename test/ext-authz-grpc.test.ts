// The ext-authz adapter over gRPC, end to end: a PAP process holds the policies, adapter processes load them, and a client built from Envoy's protos sends CheckRequests as Envoy does.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { CheckRequest, CheckResponse } from '@portcullis/envoy-authz';
import { type Bus, type BusMessage, createBus, createLogger, grpc, TOPICS } from '@portcullis/runtime';
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdapterProcess,
  type CheckView,
  httpCheck,
  metricValue,
  type PapProcess,
  startAdapter,
  startPap,
  untilServing,
  view,
} from './ext-authz-fixture.ts';
import {
  ALICE_TOKEN,
  BASIC_ALICE,
  BASIC_BOB,
  BOB_TOKEN,
  FEATURES,
  PRIMER_CONTROLS,
  PRIMER_GUEST_TOKEN,
  PRIMER_PARSED,
  TUTORIAL_ISTIO,
  TUTORIAL_STANDALONE,
} from './ext-authz-policies.ts';

/** A stand-in OTLP/HTTP trace receiver: the adapter's exporter posts JSON here. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

function startOtlpReceiver(): Promise<{ server: Server; url: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: { scopeSpans?: { spans?: OtlpSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      } catch {
        // Not JSON (another encoding): nothing to record.
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({ server, url: `http://127.0.0.1:${port}`, spans });
    });
  });
}

let pap: PapProcess;
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
/** One adapter per decision path, each following the bundle that serves it. */
const adapters: Record<'tutorial' | 'primer' | 'istio' | 'features' | 'parsed', AdapterProcess> = {} as never;
let parsedRevisions: Record<keyof typeof PRIMER_PARSED, number>;

beforeAll(async () => {
  [pap, otlp] = await Promise.all([startPap(), startOtlpReceiver()]);
  const [tutorial, primer, istio, features, parsedPath, parsedQuery, parsedBody] = await Promise.all([
    pap.publish('tutorial', TUTORIAL_STANDALONE),
    pap.publish('primer', PRIMER_CONTROLS),
    pap.publish('istio', TUTORIAL_ISTIO),
    pap.publish('features', FEATURES),
    pap.publish('primer-parsed', PRIMER_PARSED.parsed_path),
    pap.publish('primer-parsed', PRIMER_PARSED.parsed_query),
    pap.publish('primer-parsed', PRIMER_PARSED.parsed_body),
  ]);
  parsedRevisions = { parsed_path: parsedPath, parsed_query: parsedQuery, parsed_body: parsedBody };
  await Promise.all([
    pap.activate('tutorial', tutorial),
    pap.activate('primer', primer),
    pap.activate('istio', istio),
    pap.activate('features', features),
    pap.activate('primer-parsed', parsedPath),
  ]);
  const follow = (bundle: string, path: string, env: Record<string, string> = {}) =>
    startAdapter({ EXT_AUTHZ_BUNDLES: bundle, EXT_AUTHZ_DECISION_PATH: path, ...env }, { pap });
  [adapters.tutorial, adapters.primer, adapters.istio, adapters.features, adapters.parsed] =
    await Promise.all([
      follow('tutorial', 'envoy/authz/allow'),
      follow('primer', 'envoy/authz/result'),
      follow('istio', 'istio/authz/allow'),
      follow('features', 'portcullis/features/decision', {
        EXT_AUTHZ_MAX_BODY_BYTES: '64KiB',
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_BSP_SCHEDULE_DELAY: '50',
      }),
      follow('primer-parsed', 'envoy/authz/allow'),
    ]);
}, 300_000);

afterAll(async () => {
  await Promise.all(Object.values(adapters).map((a) => a?.stop()));
  await pap?.stop();
  otlp?.server.close();
});

const json = { 'content-type': 'application/json' };

describe('OPA tutorial "Standalone Envoy": the documented results', () => {
  it.each<[string, CheckRequest, boolean]>([
    ['Alice lists people', httpCheck('GET', '/people', { authorization: `Bearer ${ALICE_TOKEN}` }), true],
    ['Bob lists people', httpCheck('GET', '/people', { authorization: `Bearer ${BOB_TOKEN}` }), true],
    [
      'Alice (guest) may not create people',
      httpCheck(
        'POST',
        '/people',
        { authorization: `Bearer ${ALICE_TOKEN}`, ...json },
        '{"firstname":"Foo", "lastname":"Bar"}',
      ),
      false,
    ],
    [
      'Bob (admin) creates Foo Bar',
      httpCheck(
        'POST',
        '/people',
        { authorization: `Bearer ${BOB_TOKEN}`, ...json },
        '{"firstname":"Foo", "lastname":"Bar"}',
      ),
      true,
    ],
    [
      'Bob may not create someone named Bob',
      httpCheck(
        'POST',
        '/people',
        { authorization: `Bearer ${BOB_TOKEN}`, ...json },
        '{"firstname":"Bob", "lastname":"Bar"}',
      ),
      false,
    ],
    ['no token', httpCheck('GET', '/people'), false],
  ])('%s', async (_name, request, allowed) => {
    const v = view(await adapters.tutorial.client.check(request));
    expect(v.allowed).toBe(allowed);
    // A boolean decision: Envoy's defaults (pass on, or 403 with an empty body), and the decision id.
    expect(v.status).toBe(allowed ? 200 : 403);
    expect(v.body).toBe('');
    expect(v.metadata).toEqual({ decision_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });
});

describe('OPA primer "Example Policy with Additional Controls" and its output document', () => {
  const guest = { authorization: `Bearer ${PRIMER_GUEST_TOKEN}` };
  const controls = {
    headers: [
      ['x-ext-auth-allow', 'yes'],
      ['x-validated-by', 'security-checkpoint'],
    ],
  };

  it('allows a guest reading a person, with every mutation the policy asks for', async () => {
    const v = view(await adapters.primer.client.check(httpCheck('GET', '/people/1', guest)));
    expect(v).toMatchObject({
      allowed: true,
      ...controls,
      headersToRemove: ['one-auth-header', 'another-auth-header'],
      responseHeadersToAdd: [['x-foo', 'bar']],
      queryParametersToSet: [
        ['tags', 'main-flow'],
        ['tags', 'auth-enabled'],
        ['user-role', 'guest'],
      ],
      metadata: { foo: 'bar', decision_id: expect.any(String) },
    });
  });

  it.each<[string, Record<string, string>, number, string]>([
    ['a guest listing people (the sample input)', guest, 403, 'Unauthorized Request'],
    ['no token', {}, 401, 'Authentication Failed'],
    [
      'a token signed with another secret',
      { authorization: `Bearer ${PRIMER_GUEST_TOKEN.slice(0, -4)}AAAA` },
      401,
      'Authentication Failed',
    ],
  ])('denies %s with the policy’s status, body and headers', async (_name, headers, status, body) => {
    const v = view(await adapters.primer.client.check(httpCheck('GET', '/people', headers)));
    expect(v).toMatchObject({ allowed: false, status, body, ...controls, metadata: { foo: 'bar' } });
  });
});

describe('OPA tutorial "Istio": the documented results', () => {
  it.each<[string, string, string, boolean]>([
    ['alice', BASIC_ALICE, '/productpage', true],
    ['alice', BASIC_ALICE, '/api/v1/products', false],
    ['bob', BASIC_BOB, '/productpage', true],
    ['bob', BASIC_BOB, '/api/v1/products', true],
  ])('%s GET %s → allowed %s', async (_user, authorization, path, allowed) => {
    const v = view(await adapters.istio.client.check(httpCheck('GET', path, { authorization })));
    expect(v.allowed).toBe(allowed);
  });
});

describe('OPA primer input examples (parsed_path, parsed_query, parsed_body), each activated in turn', () => {
  const charlie = '{"firstname":"Charlie", "lastname":"Opa"}';
  const cases: [keyof typeof PRIMER_PARSED, [string, CheckRequest, boolean][]][] = [
    [
      'parsed_path',
      [
        ['GET /people', httpCheck('GET', '/people'), true],
        ['GET /people/ (a trailing slash is one more segment)', httpCheck('GET', '/people/'), false],
        ['GET /people/1', httpCheck('GET', '/people/1'), false],
      ],
    ],
    [
      'parsed_query',
      [
        ['GET /people?lang=en&id=1&id=2', httpCheck('GET', '/people?lang=en&id=1&id=2'), true],
        [
          'GET /people?id=1&lang=en&id=2 (order of keys does not matter)',
          httpCheck('GET', '/people?id=1&lang=en&id=2'),
          true,
        ],
        ['GET /people?lang=en', httpCheck('GET', '/people?lang=en'), false],
      ],
    ],
    [
      'parsed_body',
      [
        ["the primer's example v3 input", httpCheck('POST', '/people?lang=en', json, charlie), true],
        [
          'a form body is parsed too, into lists',
          httpCheck(
            'POST',
            '/people',
            { 'content-type': 'application/x-www-form-urlencoded' },
            'firstname=Charlie&lastname=Opa',
          ),
          false,
        ],
        ['another name', httpCheck('POST', '/people', json, '{"firstname":"Bob","lastname":"Opa"}'), false],
        ['no content type: not parsed', httpCheck('POST', '/people', {}, charlie), false],
      ],
    ],
  ];

  it.each(cases)('%s', async (name, table) => {
    await pap.activate('primer-parsed', parsedRevisions[name]);
    await untilServing(adapters.parsed, 'primer-parsed', parsedRevisions[name]);
    for (const [label, request, allowed] of table) {
      expect(view(await adapters.parsed.client.check(request)).allowed, label).toBe(allowed);
    }
  });
});

const withCase = (c: string, extra: Record<string, string> = {}): CheckRequest =>
  httpCheck('GET', '/api/v1/products', { 'x-case': c, ...extra });

describe('decision mapping: every field of an OPA-Envoy decision', () => {
  it.each<[string, Partial<CheckView>]>([
    ['allow-boolean', { allowed: true, status: 200, headers: [] }],
    ['(none): the default, false', { allowed: false, status: 403, body: '' }],
    ['allow', { allowed: true, headers: [], headersToRemove: [] }],
    [
      'headers',
      {
        allowed: true,
        headers: [
          ['x-roles', 'admin'],
          ['x-roles', 'ops'],
          ['x-user', 'alice'],
        ],
        headersToRemove: ['authorization', 'x-secret'],
        responseHeadersToAdd: [['x-ratelimit-hint', '10']],
      },
    ],
    [
      'query',
      {
        allowed: true,
        queryParametersToSet: [
          ['tag', 'a'],
          ['tag', 'b'],
          ['tenant', 'acme'],
        ],
        queryParametersToRemove: ['debug'],
      },
    ],
    [
      'unauthorized',
      {
        allowed: false,
        status: 401,
        headers: [
          ['content-type', 'application/json'],
          ['www-authenticate', 'Bearer realm="bookinfo"'],
        ],
        body: '{"error":"login required"}',
      },
    ],
    ['redirect', { allowed: false, status: 302, headers: [['location', 'https://login.example/?next=/']] }],
    // As OPA-Envoy: a denial may carry any status Envoy knows, 200 included (Envoy answers it, the upstream never sees the request).
    ['deny-as-200', { allowed: false, status: 200 }],
  ])('%s', async (c, expected) => {
    const v = view(await adapters.features.client.check(withCase(c.startsWith('(') ? '' : c)));
    expect(v).toMatchObject({ ...expected, metadata: { decision_id: expect.any(String) } });
  });

  it('dynamic metadata, with the decision id added', async () => {
    const v = view(await adapters.features.client.check(withCase('metadata')));
    expect(v.metadata).toEqual({
      tenant: 'acme',
      score: 0.5,
      nested: { list: [1, true, null] },
      decision_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });

  it.each<[string, string]>([
    ['bad-status', 'envoyauth_result_error: invalid HTTP status code 999'],
    [
      'bad-allowed',
      "envoyauth_result_error: type assertion error, expected allowed to be of type 'boolean' but got 'string'",
    ],
    ['conflict', 'decision unavailable'],
  ])('a result that is no decision (%s) is denied, fail-closed', async (c, message) => {
    const v = view(await adapters.features.client.check(withCase(c)));
    expect(v).toMatchObject({ allowed: false, status: 403, body: '', message });
    expect(v.metadata.decision_id).toEqual(expect.any(String));
  });
});

/** What the policy saw, as the `echo` case returns it. */
async function echo(request: CheckRequest): Promise<Record<string, unknown>> {
  const http = request.attributes?.request?.http;
  if (http) http.headers = { ...http.headers, 'x-case': 'echo' };
  const v = view(await adapters.features.client.check(request));
  expect(v.allowed).toBe(true);
  return v.metadata;
}

describe('hostile and malformed requests get a decision, never a crash', () => {
  it.each<[string, CheckRequest]>([
    ['no attributes at all', {}],
    ['empty attributes', { attributes: {} }],
    ['a request without http', { attributes: { request: {} } }],
    ['http without headers, method or path', { attributes: { request: { http: {} } } }],
  ])('%s → the policy’s default (deny)', async (_name, request) => {
    expect(view(await adapters.features.client.check(request))).toMatchObject({
      allowed: false,
      status: 403,
    });
  });

  it.each<[string, string, string[]]>([
    ['%2e%2e is a literal .. segment, not resolved', '/a/%2e%2e/admin', ['a', '..', 'admin']],
    ['leading // are trimmed', '//admin', ['admin']],
    ['inner // keep an empty segment', '/a//b', ['a', '', 'b']],
    ['%2F splits like /', '/a%2Fb', ['a', 'b']],
    ['non-UTF-8 escapes become U+FFFD', '/%ff%fe', ['\ufffd\ufffd']],
    ['a NUL escape', '/a%00b', ['a\u0000b']],
  ])('%s', async (_name, path, parsedPath) => {
    expect(await echo(httpCheck('GET', path))).toMatchObject({ path, parsed_path: parsedPath });
  });

  it.each<[string, string]>([
    ['a malformed escape', '/files/%zz'],
    ['a truncated escape', '/files/%4'],
    ['a ; in the query', '/files?a=1;b=2'],
  ])('%s is refused 400 as OPA-Envoy does (request_parse_error)', async (_name, path) => {
    const v = view(await adapters.features.client.check(httpCheck('GET', path, { 'x-case': 'allow' })));
    expect(v).toMatchObject({
      allowed: false,
      status: 400,
      body: expect.stringMatching(/^request_parse_error: /),
    });
  });

  it.each<[string, Record<string, string>, string, Record<string, unknown>]>([
    ['invalid JSON', json, '{"firstname": ', { parsed_body: null, truncated_body: false }],
    ['JSON nested past Go’s depth limit', json, '['.repeat(20_000), { parsed_body: null }],
    [
      'a body cut short (content-length larger)',
      { ...json, 'content-length': '9999' },
      '{"a":1}',
      { truncated_body: true },
    ],
    [
      'Envoy’s partial-body marker',
      { ...json, 'x-envoy-auth-partial-body': 'true' },
      '{"a":1}',
      { truncated_body: true },
    ],
    [
      'a body over EXT_AUTHZ_MAX_BODY_BYTES',
      json,
      JSON.stringify({ big: 'x'.repeat(100_000) }),
      { parsed_body: null, truncated_body: true },
    ],
    [
      'keys named like Object.prototype members stay data',
      json,
      '{"constructor":{"prototype":1},"toString":"x"}',
      { parsed_body: { constructor: { prototype: 1 }, toString: 'x' } },
    ],
    [
      'a form body',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'a=1&a=2&b=%ff',
      { parsed_body: { a: ['1', '2'], b: ['\ufffd'] } },
    ],
  ])('%s', async (_name, headers, body, expected) => {
    const request = httpCheck('POST', '/upload', headers, body);
    if (headers['content-length'])
      request.attributes!.request!.http!.headers!['content-length'] = headers['content-length'];
    expect(await echo(request)).toMatchObject(expected);
  });

  it('a raw (non-UTF-8) body of a JSON content type leaves parsed_body out', async () => {
    const request = httpCheck('POST', '/upload', json);
    request.attributes!.request!.http!.raw_body = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    expect(await echo(request)).toMatchObject({ parsed_body: null });
  });

  it.each<[string, () => Record<string, string>, number]>([
    ['a 1 MiB header', () => ({ 'x-big': 'v'.repeat(1024 * 1024) }), 1],
    [
      '10 000 headers',
      () => Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`x-h-${i}`, String(i)])),
      10_000,
    ],
  ])('%s', async (_name, make, extra) => {
    const meta = await echo(httpCheck('GET', '/', make()));
    expect(meta.header_count).toBeGreaterThanOrEqual(extra);
  });

  it('bytes that are no CheckRequest get a gRPC error, and the adapter keeps serving', async () => {
    const raw = new grpc.Client(adapters.features.grpcAddress, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
        raw.makeUnaryRequest(
          '/envoy.service.auth.v3.Authorization/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          // Field 1 (attributes) announcing 100 bytes and giving 3: not a protobuf message.
          Buffer.from([0x0a, 0x64, 0x01, 0x02, 0x03]),
          (err) => resolve(err ?? undefined),
        );
      });
      expect(error?.code).toBe(grpc.status.INTERNAL);
    } finally {
      raw.close();
    }
    expect(view(await adapters.features.client.check(withCase('allow'))).allowed).toBe(true);
  });

  it('a deadline too short to meet ends the call, and the adapter keeps serving', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () => adapters.features.client.check(withCase('allow'), { deadlineMs: 1 })),
    );
    for (const o of outcomes) {
      if (o.status === 'rejected')
        expect((o.reason as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    }
    expect(view(await adapters.features.client.check(withCase('allow'))).allowed).toBe(true);
  });

  it('the adapter is still up, and counted every outcome', async () => {
    expect(adapters.features.service.child.exitCode).toBeNull();
    const metrics = await adapters.features.metrics();
    const count = (name: string, labels: Record<string, string>) => metricValue(metrics, name, labels);
    expect(
      count('portcullis_ext_authz_checks_total', { mode: 'grpc', outcome: 'allowed', status: '200' }),
    ).toBeGreaterThan(10);
    expect(
      count('portcullis_ext_authz_checks_total', { mode: 'grpc', outcome: 'denied', status: '401' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      count('portcullis_ext_authz_checks_total', { mode: 'grpc', outcome: 'bad_request', status: '400' }),
    ).toBe(3);
    expect(
      count('portcullis_ext_authz_checks_total', { mode: 'grpc', outcome: 'failed_closed', status: '403' }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      count('portcullis_ext_authz_check_failures_total', { mode: 'grpc', reason: 'evaluation_error' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      count('portcullis_ext_authz_check_failures_total', { mode: 'grpc', reason: 'invalid_result' }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      count('portcullis_ext_authz_check_duration_seconds_count', { mode: 'grpc', outcome: 'allowed' }),
    ).toBeGreaterThan(10);
    expect(count('portcullis_bundle_loaded_info', { bundle: 'features', revision: '1' })).toBe(1);
  });
});

describe('decision logs and traces', () => {
  let bus: Bus;
  const logged: BusMessage[] = [];

  beforeAll(async () => {
    bus = createBus(
      { transport: 'postgres', url: pap.databaseUrl, retentionMs: 3_600_000 },
      createLogger('test', 'silent'),
    );
    await bus.subscribe(TOPICS.decisionLogs, (m) => {
      logged.push(m);
    });
  });
  afterAll(async () => {
    await bus?.close();
  });

  it('each decision is logged to the bus under the id Envoy gets, credentials redacted', async () => {
    const request = withCase('headers', { authorization: 'Bearer secret-token', cookie: 'session=1' });
    const id = view(await adapters.features.client.check(request)).metadata.decision_id as string;
    await waitFor(() => logged.some((m) => m.key === id), {
      timeoutMs: 15_000,
      message: `decision ${id} on the bus`,
    });
    const entry = JSON.parse(logged.find((m) => m.key === id)!.value) as Record<string, unknown>;
    expect(entry).toMatchObject({
      decision_id: id,
      path: 'portcullis/features/decision',
      bundle: 'features',
      revision: 1,
      result: { allowed: true },
      labels: { service: 'ext-authz' },
      erased: [
        '/input/attributes/request/http/headers/authorization',
        '/input/attributes/request/http/headers/cookie',
      ],
    });
    const headers = (
      entry as { input: { attributes: { request: { http: { headers: Record<string, string> } } } } }
    ).input.attributes.request.http.headers;
    expect(headers['x-case']).toBe('headers');
    expect(headers.authorization).toBeUndefined();
    expect(JSON.stringify(entry)).not.toContain('secret-token');
  });

  it.each<[string, (traceparent: string) => { headers: Record<string, string>; metadata?: grpc.Metadata }]>([
    ['the request’s traceparent header', (tp) => ({ headers: { traceparent: tp } })],
    [
      'Envoy’s own trace context on the call',
      (tp) => {
        const metadata = new grpc.Metadata();
        metadata.set('traceparent', tp);
        return { headers: {}, metadata };
      },
    ],
  ])('one span per check continues the trace from %s', async (_name, carry) => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const { headers, metadata } = carry(`00-${traceId}-${parentId}-01`);
    const response: CheckResponse = await adapters.features.client.check(
      withCase('allow', headers),
      metadata ? { metadata } : {},
    );
    const decisionId = view(response).metadata.decision_id;
    await waitFor(() => otlp.spans.some((s) => s.traceId === traceId && s.name === 'ext_authz.check'), {
      timeoutMs: 15_000,
      message: 'the check span at the OTLP receiver',
    });
    const spans = otlp.spans.filter((s) => s.traceId === traceId && s.name === 'ext_authz.check');
    expect(spans).toHaveLength(1);
    expect(spans[0]!.parentSpanId).toBe(parentId);
    const attrs = Object.fromEntries(
      (spans[0]!.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]),
    );
    expect(attrs).toMatchObject({
      'portcullis.decision_id': decisionId,
      'portcullis.ext_authz.outcome': 'allowed',
      'portcullis.bundle': 'features',
    });
  });

  it('in HTTP mode too, from the traceparent header Envoy forwards', async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const res = await fetch(`${adapters.features.httpUrl}/envoy-authz/productpage`, {
      headers: { 'x-case': 'allow', traceparent: `00-${traceId}-${parentId}-01` },
    });
    expect(res.status).toBe(200);
    await waitFor(() => otlp.spans.some((s) => s.traceId === traceId && s.name === 'ext_authz.check'), {
      timeoutMs: 15_000,
      message: 'the HTTP-mode check span at the OTLP receiver',
    });
    const span = otlp.spans.find((s) => s.traceId === traceId && s.name === 'ext_authz.check')!;
    expect(span.parentSpanId).toBe(parentId);
    const attrs = Object.fromEntries((span.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
    expect(attrs).toMatchObject({
      'portcullis.ext_authz.mode': 'http',
      'portcullis.decision_id': res.headers.get('x-decision-id'),
    });
  });
});
