// OPA compatibility: our Data API answers as a real `opa run --server` loaded with the same bundles, and OPA's own client works against it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  createTestDatabase,
  freePorts,
  opaBin,
  type Service,
  spawnService,
  type TestDatabase,
  waitFor,
} from '@portcullis/testkit';
import { OPAClient } from '@styra/opa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = 'opa-compat-test-admin-token-0123456789';
const START_MS = 90_000;
const BUNDLES = {
  'envoy-authz': { dir: 'policies/envoy-authz', entrypoints: ['envoy/authz/allow', 'envoy/authz/result'] },
  rbac: { dir: 'policies/rbac', entrypoints: ['rbac/allow', 'rbac/decision'] },
} as const;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A JWT as the envoy policy reads it: decoded, not verified (the signature is the proxy's job). */
function jwt(claims: Record<string, unknown>): string {
  return `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}.c2lnbmF0dXJl`;
}

const FUTURE = 4_102_444_800; // 2100-01-01
const ISSUER = 'https://auth.bookinfo.example';

function envoyInput(method: string, path: string, token?: string) {
  const clean = path.split('?')[0]!;
  return {
    attributes: {
      request: { http: { method, path, headers: token ? { authorization: `Bearer ${token}` } : {} } },
    },
    parsed_path: clean.split('/').filter((s) => s !== ''),
  };
}

/** Paths and inputs asked of both servers: entrypoints, results' insides, data, packages, undefined paths. */
const QUERIES: { name: string; path: string; input?: unknown }[] = [
  { name: 'anonymous product page', path: 'envoy/authz/allow', input: envoyInput('GET', '/productpage?u=x') },
  { name: 'anonymous API call', path: 'envoy/authz/allow', input: envoyInput('GET', '/api/v1/products') },
  {
    name: 'authenticated read',
    path: 'envoy/authz/result',
    input: envoyInput('GET', '/api/v1/products/7', jwt({ iss: ISSUER, sub: 'alice', exp: FUTURE })),
  },
  {
    name: 'reviewer posts a review',
    path: 'envoy/authz/result',
    input: envoyInput(
      'POST',
      '/api/v1/products/7/reviews',
      jwt({ iss: ISSUER, sub: 'rita', exp: FUTURE, roles: ['reviewer'] }),
    ),
  },
  {
    name: 'expired token',
    path: 'envoy/authz/result',
    input: envoyInput('GET', '/api/v1/products', jwt({ iss: ISSUER, sub: 'alice', exp: 1 })),
  },
  {
    name: 'wrong issuer',
    path: 'envoy/authz/result',
    input: envoyInput(
      'GET',
      '/api/v1/products',
      jwt({ iss: 'https://evil.example', sub: 'eve', exp: FUTURE }),
    ),
  },
  {
    name: 'own profile',
    path: 'envoy/authz/allow',
    input: envoyInput('PUT', '/api/v1/users/alice/profile', jwt({ iss: ISSUER, sub: 'alice', exp: FUTURE })),
  },
  {
    name: 'admin deletes',
    path: 'envoy/authz/result/allowed',
    input: envoyInput(
      'DELETE',
      '/api/v1/products/1',
      jwt({ iss: ISSUER, sub: 'root', exp: FUTURE, roles: ['admin'] }),
    ),
  },
  {
    name: 'inside a result',
    path: 'envoy/authz/result/http_status',
    input: envoyInput('GET', '/api/v1/products'),
  },
  { name: 'a malformed input document', path: 'envoy/authz/allow', input: { attributes: 'not an object' } },
  {
    name: 'rbac viewer reads',
    path: 'rbac/allow',
    input: { subject: 'alice', action: 'read', resource: 'orders/1' },
  },
  {
    name: 'rbac viewer writes',
    path: 'rbac/allow',
    input: { subject: 'alice', action: 'write', resource: 'orders/1' },
  },
  {
    name: 'rbac decision',
    path: 'rbac/decision',
    input: { subject: 'carol', action: 'delete', resource: 'a/b/c' },
  },
  {
    name: 'rbac unbound subject',
    path: 'rbac/decision',
    input: { subject: 'nobody', action: 'read', resource: 'orders/1' },
  },
  { name: 'data', path: 'jwt/issuer' },
  { name: 'data object', path: 'roles/viewer' },
  { name: 'data array element', path: 'role_permissions/reviewer/1/method' },
  { name: 'an undefined path', path: 'envoy/authz/nothing', input: {} },
  { name: 'an undefined data path', path: 'roles/ghost', input: {} },
  { name: 'a dotted segment', path: 'envoy.authz/allow', input: {} },
];

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function ask(base: string, method: 'GET' | 'POST', path: string, body?: string): Promise<Answer> {
  const res = await fetch(`${base}/v1/data/${path}`, { method, ...(body === undefined ? {} : { body }) });
  const parsed = (await res.json()) as Record<string, unknown>;
  // OPA names decisions only when decision logging is on; ours always does. The rest must be equal.
  delete parsed.decision_id;
  return { status: res.status, body: parsed };
}

describe('OPA compatibility of the Data API', () => {
  let db: TestDatabase;
  let tmp: string;
  const services: Service[] = [];
  let pdpUrl: string;
  let opaUrl: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), 'opa-compat-'));
    db = await createTestDatabase();
    const [papHttp, papGrpc, pdpHttp, pdpGrpc, opaPort] = await freePorts(5);
    const papUrl = `http://127.0.0.1:${papHttp}`;
    const node = [process.execPath, '--import', 'tsx'] as const;
    services.push(
      await spawnService(
        node[0],
        [node[1], node[2], 'services/pap/src/main.ts'],
        {
          DATABASE_URL: db.url,
          PAP_HTTP_PORT: String(papHttp),
          PAP_GRPC_PORT: String(papGrpc),
          PAP_ADMIN_TOKEN: ADMIN_TOKEN,
          OPA_BIN: opaBin(),
          BUS: 'postgres',
          LOG_LEVEL: 'warn',
        },
        { cwd: ROOT, readyUrl: `${papUrl}/readyz`, readyTimeoutMs: START_MS },
      ),
    );
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const regoArchives: string[] = [];
    for (const [bundle, { dir, entrypoints }] of Object.entries(BUNDLES)) {
      const modules = { 'policy.rego': await readFile(join(ROOT, dir, 'policy.rego'), 'utf8') };
      const data = JSON.parse(await readFile(join(ROOT, dir, 'data.json'), 'utf8')) as unknown;
      const posted = await fetch(`${papUrl}/v1/bundles/${bundle}/revisions`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ modules, data, entrypoints }),
      });
      expect(posted.status, await posted.clone().text()).toBe(201);
      const { revision } = (await posted.json()) as { revision: number };
      const current = await fetch(`${papUrl}/v1/bundles/${bundle}`, { headers: auth });
      const activated = await fetch(`${papUrl}/v1/bundles/${bundle}/active`, {
        method: 'PUT',
        headers: {
          ...auth,
          'content-type': 'application/json',
          'if-match': current.headers.get('etag') ?? '',
        },
        body: JSON.stringify({ revision }),
      });
      expect(activated.status).toBe(200);
      // The rego target: the same revision without policy.wasm, which this opa cannot execute.
      const download = await fetch(`${papUrl}/v1/bundles/${bundle}/bundle.tar.gz?target=rego`, {
        headers: auth,
      });
      expect(download.status).toBe(200);
      const file = join(tmp, `${bundle}.tar.gz`);
      await writeFile(file, Buffer.from(await download.arrayBuffer()));
      regoArchives.push(file);
    }

    pdpUrl = `http://127.0.0.1:${pdpHttp}`;
    services.push(
      await spawnService(
        node[0],
        [node[1], node[2], 'services/pdp/src/main.ts'],
        {
          DATABASE_URL: db.url,
          BUS: 'postgres',
          PAP_GRPC_ADDR: `127.0.0.1:${papGrpc}`,
          PDP_HTTP_PORT: String(pdpHttp),
          PDP_GRPC_PORT: String(pdpGrpc),
          PDP_CACHE_DIR: 'off',
          LOG_LEVEL: 'warn',
        },
        { cwd: ROOT, readyUrl: `${pdpUrl}/health?bundles`, readyTimeoutMs: START_MS },
      ),
    );
    await waitFor(async () => (await ask(pdpUrl, 'GET', 'rbac/allow')).body.result !== undefined, {
      message: 'both bundles to serve on the PDP',
    });

    opaUrl = `http://127.0.0.1:${opaPort}`;
    services.push(
      await spawnService(
        opaBin(),
        [
          'run',
          '--server',
          '--addr',
          `127.0.0.1:${opaPort}`,
          '--log-level',
          'error',
          '--bundle',
          ...regoArchives,
        ],
        {},
        { readyUrl: `${opaUrl}/health?bundles`, readyTimeoutMs: START_MS },
      ),
    );
  }, 300_000);

  afterAll(async () => {
    for (const s of services.reverse()) await s.stop();
    await db?.drop();
    await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  it.each(QUERIES)('POST $path: $name', async ({ path, input }) => {
    const body = JSON.stringify(input === undefined ? {} : { input });
    const [ours, theirs] = await Promise.all([
      ask(pdpUrl, 'POST', path, body),
      ask(opaUrl, 'POST', path, body),
    ]);
    expect(ours).toEqual(theirs);
  });

  it.each(QUERIES.filter((q) => q.input !== undefined).slice(0, 6))(
    'GET $path?input=: $name',
    async ({ path, input }) => {
      const query = `${path}?input=${encodeURIComponent(JSON.stringify(input))}`;
      const [ours, theirs] = await Promise.all([ask(pdpUrl, 'GET', query), ask(opaUrl, 'GET', query)]);
      expect(ours).toEqual(theirs);
    },
  );

  it.each([
    { name: 'malformed JSON', body: '{"input": ' },
    { name: 'a body that is not an object', body: '[1, 2]' },
    { name: 'no input key', body: '{"inputs": {}}' },
  ])('answers $name with OPA’s status, code and warning', async ({ body }) => {
    const [ours, theirs] = await Promise.all([
      ask(pdpUrl, 'POST', 'envoy/authz/allow', body),
      ask(opaUrl, 'POST', 'envoy/authz/allow', body),
    ]);
    expect(ours.status).toBe(theirs.status);
    expect(ours.body.code).toBe(theirs.body.code);
    expect(ours.body.warning).toEqual(theirs.body.warning);
    expect(ours.body.result).toEqual(theirs.body.result);
    if (theirs.status !== 200) {
      // OPA's message carries Go's JSON error text; the prefix is the contract.
      expect(String(ours.body.message)).toMatch(/^body contains malformed input document/);
    }
  });

  it('answers ?metrics=true with OPA’s metric names', async () => {
    const body = JSON.stringify({ input: envoyInput('GET', '/productpage') });
    const [ours, theirs] = await Promise.all([
      ask(pdpUrl, 'POST', 'envoy/authz/allow?metrics=true', body),
      ask(opaUrl, 'POST', 'envoy/authz/allow?metrics=true', body),
    ]);
    expect(ours.body.result).toBe(theirs.body.result);
    for (const name of ['timer_rego_query_eval_ns', 'timer_rego_input_parse_ns', 'timer_server_handler_ns']) {
      expect(Object.keys(theirs.body.metrics as object)).toContain(name);
      expect((ours.body.metrics as Record<string, unknown>)[name]).toEqual(expect.any(Number));
    }
  });

  it('answers /health like OPA', async () => {
    for (const path of ['/health', '/health?bundles', '/health?plugins']) {
      const [ours, theirs] = await Promise.all([fetch(`${pdpUrl}${path}`), fetch(`${opaUrl}${path}`)]);
      expect({ path, status: ours.status, body: await ours.json() }).toEqual({
        path,
        status: theirs.status,
        body: await theirs.json(),
      });
    }
  });

  describe('the @styra/opa client, unchanged', () => {
    it.each(['pdp', 'opa'])('evaluates decisions against the %s', async (which) => {
      const client = new OPAClient(which === 'pdp' ? pdpUrl : opaUrl);
      expect(await client.evaluate('envoy/authz/allow', envoyInput('GET', '/productpage'))).toBe(true);
      expect(
        await client.evaluate(
          'envoy/authz/result',
          envoyInput('GET', '/api/v1/products', jwt({ iss: ISSUER, sub: 'a', exp: FUTURE })),
        ),
      ).toEqual({
        allowed: true,
        http_status: 200,
        headers: { 'x-portcullis-subject': 'a' },
        response_headers_to_add: { 'x-portcullis-policy': 'envoy-authz' },
      });
      expect(
        await client.evaluate('rbac/allow', { subject: 'bob', action: 'write', resource: 'orders/9' }),
      ).toBe(true);
      expect(await client.evaluate('roles/viewer/grants/0/action')).toBe('read');
      expect(await client.evaluate('envoy/authz/nothing', {})).toBeUndefined();
      // Transforming results, as applications do.
      const allowed = await client.evaluate<Record<string, unknown>, boolean>(
        'rbac/decision',
        { subject: 'alice', action: 'read', resource: 'orders/3' },
        { fromResult: (r) => (r as { allow: boolean }).allow },
      );
      expect(allowed).toBe(true);
    });

    it.each(['pdp', 'opa'])('falls back to single decisions for a batch against the %s', async (which) => {
      const client = new OPAClient(which === 'pdp' ? pdpUrl : opaUrl);
      const results = await client.evaluateBatch(
        'rbac/allow',
        {
          a: { subject: 'alice', action: 'read', resource: 'orders/1' },
          b: { subject: 'alice', action: 'write', resource: 'orders/1' },
        },
        { fallback: true },
      );
      expect(results).toEqual({ a: true, b: false });
    });
  });
});
