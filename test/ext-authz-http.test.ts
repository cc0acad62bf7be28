// Envoy's HTTP authorization service mode end to end: client → Envoy stand-in → adapter (a process, policies from a PAP process) → the demo app (a process).
import { createHmac } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnvoyStandIn, startEnvoyStandIn } from './ext-authz-envoy-stand-in.ts';
import {
  type AdapterProcess,
  type DemoAppProcess,
  metricValue,
  type PapProcess,
  startAdapter,
  startDemoApp,
  startPap,
} from './ext-authz-fixture.ts';
import { bookinfoBundle, FEATURES } from './ext-authz-policies.ts';

const ISSUER = 'https://auth.bookinfo.example';
const PREFIX = '/envoy-authz';

/** A JWT as the bookinfo policy reads it (decoded, not verified there: the proxy verifies signatures). */
function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', 'test-only').update(unsigned).digest('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);
const bearer = (sub: string, roles: string[], exp = now() + 3600) => ({
  authorization: `Bearer ${jwt({ iss: ISSUER, sub, roles, exp })}`,
});

/** The header matchers of deploy/envoy/envoy-http.yaml, plus the headers of the test policy (x-case, x-user…). */
const oneOf =
  (...patterns: (string | RegExp)[]) =>
  (name: string): boolean =>
    patterns.some((p) => (typeof p === 'string' ? p === name : p.test(name)));
const ENVOY_HTTP_YAML = {
  allowedHeaders: oneOf(
    'authorization',
    'content-type',
    'cookie',
    'user-agent',
    'traceparent',
    'tracestate',
    'x-request-id',
    /^x-forwarded-/,
    'x-case',
  ),
  allowedUpstreamHeaders: oneOf(
    /^x-portcullis-/,
    /^x-ext-auth-/,
    'x-validated-by',
    'x-user',
    'x-roles',
    'x-firstname',
  ),
  allowedClientHeadersOnSuccess: oneOf('x-foo', 'x-portcullis-policy', 'x-ratelimit-hint'),
  allowedClientHeaders: oneOf('www-authenticate', 'location', 'content-type', 'x-decision-id'),
};

let pap: PapProcess;
let demo: DemoAppProcess;
let bookinfo: AdapterProcess;
let features: AdapterProcess;
let envoy: EnvoyStandIn;
let envoyFeatures: EnvoyStandIn;

beforeAll(async () => {
  [pap, demo] = await Promise.all([startPap(), startDemoApp()]);
  const [b, f] = await Promise.all([
    pap.publish('envoy-authz', bookinfoBundle()),
    pap.publish('features', FEATURES),
  ]);
  await Promise.all([pap.activate('envoy-authz', b), pap.activate('features', f)]);
  [bookinfo, features] = await Promise.all([
    startAdapter(
      { EXT_AUTHZ_BUNDLES: 'envoy-authz', EXT_AUTHZ_DECISION_PATH: 'envoy/authz/result' },
      { pap },
    ),
    startAdapter(
      { EXT_AUTHZ_BUNDLES: 'features', EXT_AUTHZ_DECISION_PATH: 'portcullis/features/decision' },
      { pap },
    ),
  ]);
  const common = {
    pathPrefix: PREFIX,
    upstreamUrl: demo.url,
    maxRequestBytes: 65536,
    timeoutMs: 2000,
    ...ENVOY_HTTP_YAML,
  };
  [envoy, envoyFeatures] = await Promise.all([
    startEnvoyStandIn({ ...common, authzUrl: bookinfo.httpUrl }),
    startEnvoyStandIn({ ...common, authzUrl: features.httpUrl }),
  ]);
}, 300_000);

afterAll(async () => {
  await Promise.all([envoy?.close(), envoyFeatures?.close()]);
  await Promise.all([bookinfo?.stop(), features?.stop(), demo?.stop()]);
  await pap?.stop();
});

describe('the bookinfo walkthrough through Envoy (HTTP mode)', () => {
  it.each<[string, string, string, Record<string, string>, number, RegExp | undefined]>([
    ['anyone sees the product page', 'GET', '/productpage', {}, 200, /<h1>Bookinfo<\/h1>/],
    ['anyone checks health', 'GET', '/health', {}, 200, /"ok"/],
    ['the products API needs a token', 'GET', '/api/v1/products', {}, 401, undefined],
    [
      'a signed-in user lists products',
      'GET',
      '/api/v1/products',
      bearer('alice', []),
      200,
      /Comedy of Errors/,
    ],
    [
      'a signed-in user reads one product',
      'GET',
      '/api/v1/products/2',
      bearer('alice', []),
      200,
      /The Tempest/,
    ],
    [
      'reviews need the reviewer role',
      'GET',
      '/api/v1/products/2/reviews',
      bearer('alice', []),
      403,
      undefined,
    ],
    [
      'a reviewer reads reviews',
      'GET',
      '/api/v1/products/1/reviews',
      bearer('rita', ['reviewer']),
      200,
      /entertaining/,
    ],
    [
      'an expired token is anonymous',
      'GET',
      '/api/v1/products',
      bearer('alice', [], now() - 60),
      401,
      undefined,
    ],
    ['an admin may reach anything', 'GET', '/reviews', bearer('root', ['admin']), 200, /reviewer1/],
    ['a method anonymous may not use', 'DELETE', '/productpage', {}, 401, undefined],
  ])('%s: %s %s → %i', async (_name, method, path, headers, status, body) => {
    const res = await fetch(`${envoy.url}${path}`, { method, headers });
    expect(res.status).toBe(status);
    const text = await res.text();
    if (body) expect(text).toMatch(body);
    // response_headers_to_add reaches the client on allow (allowed_client_headers_on_success).
    if (status === 200) expect(res.headers.get('x-portcullis-policy')).toBe('envoy-authz');
  });

  it('the policy’s upstream header reaches the app: the product page greets the subject', async () => {
    const res = await fetch(`${envoy.url}/productpage`, { headers: bearer('alice', []) });
    expect(await res.text()).toContain('Signed in as alice');
  });

  it('a reviewer posts a review: the body travels to the policy and on to the app', async () => {
    const res = await fetch(`${envoy.url}/api/v1/products/2/reviews`, {
      method: 'POST',
      headers: { ...bearer('rita', ['reviewer']), 'content-type': 'application/json' },
      body: JSON.stringify({ reviewer: 'rita', stars: 4, text: 'Stormy.' }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ productId: 2, reviewer: 'rita' });
  });

  it('every access log line carries the decision id of its check', () => {
    expect(envoy.accessLog.length).toBeGreaterThan(5);
    for (const line of envoy.accessLog) expect(line.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(envoy.accessLog.filter((l) => l.authzError)).toEqual([]);
  });
});

describe('decision fields in HTTP mode', () => {
  const through = (path: string, init: RequestInit = {}) => fetch(`${envoyFeatures.url}${path}`, init);

  it('headers added upstream, request headers removed, response headers added', async () => {
    const res = await through('/echo', {
      headers: { 'x-case': 'headers', authorization: 'Bearer abc', 'x-secret': 's3cret', 'x-keep': 'yes' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-hint')).toBe('10');
    const echoed = (await res.json()) as { headers: Record<string, string> };
    expect(echoed.headers).toMatchObject({ 'x-user': 'alice', 'x-roles': 'admin, ops', 'x-keep': 'yes' });
    expect(echoed.headers.authorization).toBeUndefined();
    expect(echoed.headers['x-secret']).toBeUndefined();
  });

  it.each<[string, number, Record<string, string>, string]>([
    [
      'unauthorized',
      401,
      { 'www-authenticate': 'Bearer realm="bookinfo"', 'content-type': 'application/json' },
      '{"error":"login required"}',
    ],
    ['redirect', 302, { location: 'https://login.example/?next=/' }, ''],
    // A 200 denial cannot be told from an allow in this mode: the adapter sends 403 (and logs why).
    ['deny-as-200', 403, {}, ''],
    // No decision (an evaluation error): fail closed, 403, empty body.
    ['conflict', 403, {}, ''],
  ])('a %s denial reaches the client with its status, headers and body', async (c, status, headers, body) => {
    const res = await through('/echo', { headers: { 'x-case': c }, redirect: 'manual' });
    expect(res.status).toBe(status);
    for (const [name, value] of Object.entries(headers)) expect(res.headers.get(name)).toBe(value);
    expect(await res.text()).toBe(body);
    expect(res.headers.get('x-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each<[string, Record<string, string>, string, number, string | null]>([
    ['a JSON body', { 'content-type': 'application/json' }, '{"firstname":"Charlie"}', 200, 'Charlie'],
    // Form fields are lists, as in OPA-Envoy; a header value may be a list of strings too.
    [
      'a form body',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'firstname=Charlie',
      200,
      'Charlie',
    ],
    [
      'invalid JSON leaves parsed_body out',
      { 'content-type': 'application/json' },
      '{"firstname":',
      403,
      null,
    ],
    [
      'a body over Envoy’s max_request_bytes arrives cut and marked partial',
      { 'content-type': 'application/json' },
      JSON.stringify({ firstname: 'Charlie', pad: 'x'.repeat(70_000) }),
      403,
      null,
    ],
  ])('%s', async (_name, headers, body, status, firstname) => {
    const res = await through('/echo', { method: 'POST', headers: { 'x-case': 'body', ...headers }, body });
    expect(res.status).toBe(status);
    if (firstname)
      expect(((await res.json()) as { headers: Record<string, string> }).headers['x-firstname']).toBe(
        firstname,
      );
    else await res.body?.cancel();
  });
});

/** Sends raw bytes to the adapter's HTTP port and returns the status line (or '' when the connection just closed). */
function rawRequest(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1').split('\r\n')[0] ?? ''));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
  });
}

describe('hostile requests at the adapter’s HTTP port get a decision, never a crash', () => {
  const port = () => Number(new URL(features.httpUrl).port);

  it.each<[string, string, RegExp]>([
    ['%2e%2e', `${PREFIX}/a/%2e%2e/admin`, /^HTTP\/1\.1 403/],
    ['//', `${PREFIX}//admin`, /^HTTP\/1\.1 403/],
    ['a non-UTF-8 escape', `${PREFIX}/%ff%fe`, /^HTTP\/1\.1 403/],
    ['a malformed escape (request_parse_error)', `${PREFIX}/files/%zz`, /^HTTP\/1\.1 400/],
    ['the bare prefix', PREFIX, /^HTTP\/1\.1 403/],
    ['not under the prefix: no check, a 404 Envoy takes as a denial', '/elsewhere', /^HTTP\/1\.1 404/],
  ])('%s', async (_name, target, status) => {
    expect(
      await rawRequest(port(), Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1')),
    ).toMatch(status);
  });

  it.each<[string, Buffer]>([
    [
      'raw non-UTF-8 bytes in the path',
      Buffer.concat([
        Buffer.from(`GET ${PREFIX}/`),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
      ]),
    ],
    [
      'a 200 KiB header',
      Buffer.from(`GET ${PREFIX}/ HTTP/1.1\r\nHost: x\r\nx-big: ${'v'.repeat(200 * 1024)}\r\n\r\n`),
    ],
    [
      '3000 headers',
      Buffer.from(
        `GET ${PREFIX}/ HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `x-h${i}: ${i}\r\n`).join('')}\r\n`,
      ),
    ],
    [
      'a body shorter than its content-length',
      Buffer.from(
        `POST ${PREFIX}/ HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":`,
      ),
    ],
    ['garbage', Buffer.from('\x00\x01\x02 not http at all\r\n\r\n')],
  ])('%s', async (_name, bytes) => {
    // Whatever the answer (a denial, or Node refusing to parse it), the adapter answers the next check.
    await rawRequest(port(), bytes).catch(() => '');
    const next = await fetch(`${features.httpUrl}${PREFIX}/echo`, { headers: { 'x-case': 'allow' } });
    expect(next.status).toBe(200);
  });

  it('counted the checks by outcome and status, and stayed up', async () => {
    expect(features.service.child.exitCode).toBeNull();
    const metrics = await features.metrics();
    expect(
      metricValue(metrics, 'portcullis_ext_authz_checks_total', {
        mode: 'http',
        outcome: 'allowed',
        status: '200',
      }),
    ).toBeGreaterThan(3);
    expect(
      metricValue(metrics, 'portcullis_ext_authz_checks_total', {
        mode: 'http',
        outcome: 'bad_request',
        status: '400',
      }),
    ).toBe(1);
    expect(
      metricValue(metrics, 'portcullis_ext_authz_checks_total', {
        mode: 'http',
        outcome: 'failed_closed',
        status: '403',
      }),
    ).toBeGreaterThanOrEqual(1);
    // The operational routes are served beside the catch-all prefix.
    expect((await fetch(`${features.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${features.httpUrl}/readyz`)).status).toBe(200);
  });
});
