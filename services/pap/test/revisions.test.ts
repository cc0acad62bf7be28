// Revision lifecycle over REST with the real opa and Postgres: create, read, evaluate, errors, idempotency.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  bearer,
  json,
  POLICY,
  POLICY_TEST,
  postRevision,
  SAMPLE,
  sampleWithAdmins,
  startTestPap,
  type TestPap,
  tarGz,
} from './pap-fixture.ts';

let t: TestPap;
const MAX_BODY = 64 * 1024;

beforeAll(async () => {
  t = await startTestPap({ PAP_MAX_BODY: String(MAX_BODY) });
});
afterAll(async () => {
  await t?.close();
});

describe('revision lifecycle', () => {
  it('creates revision 1 (201), then returns it again for the same content (200)', async () => {
    const first = await postRevision(t.pap, 'life', SAMPLE);
    expect(first.statusCode, first.body).toBe(201);
    const created = json<{ bundle: string; revision: number; digest: string }>(first);
    expect(created).toEqual({ bundle: 'life', revision: 1, digest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(first.headers.location).toBe('/v1/bundles/life/revisions/1');

    // Keys in another order and entrypoints reordered: the same content.
    const again = await postRevision(t.pap, 'life', {
      entrypoints: [...SAMPLE.entrypoints].reverse(),
      data: SAMPLE.data,
      modules: SAMPLE.modules,
    });
    expect(again.statusCode).toBe(200);
    expect(json(again)).toEqual(created);
  });

  it('numbers new content 2, 3 and keeps each revision readable', async () => {
    const r2 = await postRevision(t.pap, 'life', sampleWithAdmins('alice', 'bob'));
    const r3 = await postRevision(t.pap, 'life', { ...SAMPLE, strict: false });
    expect([r2.statusCode, r3.statusCode]).toEqual([201, 201]);
    expect([json(r2).revision, json(r3).revision]).toEqual([2, 3]);

    const list = await t.pap.app.inject({ url: '/v1/bundles/life/revisions', headers: bearer(ADMIN_TOKEN) });
    expect(list.statusCode).toBe(200);
    const revisions = json<{ revisions: { revision: number; author: string; active: boolean }[] }>(
      list,
    ).revisions;
    expect(revisions.map((r) => r.revision)).toEqual([3, 2, 1]);
    expect(revisions.every((r) => r.author === 'admin-env' && !r.active)).toBe(true);

    const one = await t.pap.app.inject({ url: '/v1/bundles/life/revisions/2', headers: bearer(ADMIN_TOKEN) });
    expect(one.statusCode).toBe(200);
    const detail = json<{
      modules: Record<string, string>;
      data: unknown;
      digest: string;
      opa_version: string;
      tests: { passed: number; total: number };
      manifest: { revision: string; wasm: { entrypoint: string }[] };
      strict: boolean;
    }>(one);
    expect(detail.modules['authz/policy.rego']).toBe(POLICY);
    expect(detail.data).toEqual({ admins: ['alice', 'bob'] });
    expect(detail.digest).toBe(json(r2).digest);
    expect(detail.opa_version).toMatch(/1\.22\.3/);
    expect(detail.tests).toEqual({ passed: 3, total: 3 });
    expect(detail.manifest.revision).toBe('2');
    expect(detail.manifest.wasm.map((w) => w.entrypoint).sort()).toEqual(['authz/allow', 'authz/reason']);
    expect(detail.strict).toBe(true);
  });

  it('shows the bundle with its entrypoints and no active revision yet', async () => {
    const res = await t.pap.app.inject({ url: '/v1/bundles/life', headers: bearer(ADMIN_TOKEN) });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"0"');
    expect(json(res)).toMatchObject({
      name: 'life',
      latest_revision: 3,
      active: null,
      etag: '"0"',
      strict: false,
    });
    const all = await t.pap.app.inject({ url: '/v1/bundles', headers: bearer(ADMIN_TOKEN) });
    expect(json<{ bundles: { name: string }[] }>(all).bundles.map((b) => b.name)).toContain('life');
  });

  it.each([
    { input: { user: 'alice' }, entrypoint: 'authz/allow', result: true },
    { input: { user: 'mallory', method: 'POST', path: ['x'] }, entrypoint: 'authz/allow', result: false },
    { input: { method: 'GET', path: ['public', 'a'] }, entrypoint: 'authz/allow', result: true },
    { input: { user: 'alice' }, entrypoint: 'authz/reason', result: 'admin' },
    { input: { user: 'bob' }, entrypoint: 'authz/reason', result: undefined },
  ])('evaluates revision 1 at $entrypoint on $input → $result', async ({ input, entrypoint, result }) => {
    const res = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/bundles/life/revisions/1/evaluate',
      headers: bearer(ADMIN_TOKEN),
      payload: { entrypoint, input },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = json<{ result?: unknown; revision: number; eval_ns: number }>(res);
    expect(body.result).toEqual(result);
    expect('result' in body).toBe(result !== undefined);
    expect(body.revision).toBe(1);
    expect(body.eval_ns).toBeGreaterThanOrEqual(0);
  });

  it('evaluates a revision per its own data (revision 2 has bob as admin)', async () => {
    const res = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/bundles/life/revisions/2/evaluate',
      headers: bearer(ADMIN_TOKEN),
      payload: { entrypoint: 'authz.allow', input: { user: 'bob' } },
    });
    expect(json(res)).toMatchObject({ result: true, revision: 2 });
  });

  it.each([
    {
      name: 'the entrypoints in its manifest',
      query: '',
      manifest: {
        revision: 'ignored',
        roots: ['authz', 'authz_test', 'admins'],
        metadata: { entrypoints: ['authz/allow'] },
      },
    },
    {
      name: 'the entrypoints in the query',
      query: '?entrypoints=authz/allow,authz/reason',
      manifest: undefined,
    },
  ])('accepts an OPA bundle .tar.gz with $name', async ({ query, manifest }) => {
    const body = tarGz([
      ...(manifest ? [{ name: '.manifest', body: JSON.stringify(manifest) }] : []),
      { name: 'authz/policy.rego', body: POLICY },
      { name: 'authz/policy_test.rego', body: POLICY_TEST },
      { name: 'data.json', body: JSON.stringify({ admins: ['carol'] }) },
    ]);
    const bundle = manifest ? 'tarball' : 'tarball-query';
    const res = await t.pap.app.inject({
      method: 'POST',
      url: `/v1/bundles/${bundle}/revisions${query}`,
      headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'application/gzip' },
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(201);
    const evalRes = await t.pap.app.inject({
      method: 'POST',
      url: `/v1/bundles/${bundle}/revisions/1/evaluate`,
      headers: bearer(ADMIN_TOKEN),
      payload: { entrypoint: 'authz/allow', input: { user: 'carol' } },
    });
    expect(json(evalRes)).toMatchObject({ result: true });
  });

  it('gives consecutive numbers to concurrent posts of different content', async () => {
    const posts = await Promise.all(
      ['a', 'b', 'c', 'd'].map((admin) => postRevision(t.pap, 'race', sampleWithAdmins(admin))),
    );
    expect(posts.map((p) => p.statusCode)).toEqual([201, 201, 201, 201]);
    expect(posts.map((p) => json(p).revision).sort()).toEqual([1, 2, 3, 4]);
  });

  it('stores concurrent posts of the same content once', async () => {
    const posts = await Promise.all([1, 2, 3].map(() => postRevision(t.pap, 'same', SAMPLE)));
    const revisions = new Set(posts.map((p) => json(p).revision));
    expect(revisions).toEqual(new Set([1]));
    expect(posts.map((p) => p.statusCode).sort()).toEqual([200, 200, 201]);
  });
});

const BROKEN_SYNTAX = 'package authz\n\nallow if {\n  input.user ==\n}\n';
const FAILING_TEST = `package authz_test\n\nimport data.authz\n\ntest_everyone_allowed if authz.allow with input as {"user": "nobody"}\n`;

interface ErrorCase {
  name: string;
  bundle?: string;
  request: () => { payload: string | Buffer | object; contentType?: string };
  status: number;
  code: string;
  check?: (body: { message: string; details: Record<string, unknown>[] }) => void;
}

const ERROR_CASES: ErrorCase[] = [
  {
    name: 'malformed JSON',
    request: () => ({ payload: '{"modules": {', contentType: 'application/json' }),
    status: 400,
    code: 'bad_request',
  },
  {
    name: 'a field of the wrong type',
    request: () => ({ payload: { ...SAMPLE, entrypoints: 'authz/allow' } }),
    status: 400,
    code: 'validation_failed',
    check: (b) => expect(b.details.map((d) => d.field)).toContain('body.entrypoints'),
  },
  {
    name: 'a bad tarball',
    request: () => ({ payload: Buffer.from('this is not gzip'), contentType: 'application/gzip' }),
    status: 400,
    code: 'invalid_bundle',
  },
  {
    name: 'a tarball path escaping the bundle',
    request: () => ({
      payload: tarGz([{ name: '../evil.rego', body: 'package evil\n' }]),
      contentType: 'application/x-gzip',
    }),
    status: 400,
    code: 'invalid_bundle',
    check: (b) => expect(b.message).toContain('../evil.rego'),
  },
  {
    name: 'a JSON module path escaping the bundle',
    request: () => ({ payload: { ...SAMPLE, modules: { '../evil.rego': POLICY } } }),
    status: 400,
    code: 'invalid_bundle',
    check: (b) => expect(b.details[0]).toMatchObject({ file: '../evil.rego' }),
  },
  {
    name: 'a body over PAP_MAX_BODY',
    request: () => ({ payload: { ...SAMPLE, data: { blob: 'x'.repeat(MAX_BODY + 1) } } }),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'a tarball over PAP_MAX_BODY',
    request: () => ({ payload: Buffer.alloc(MAX_BODY + 1), contentType: 'application/octet-stream' }),
    status: 413,
    code: 'payload_too_large',
  },
  {
    name: 'an unsupported content type',
    request: () => ({ payload: 'package x', contentType: 'text/plain' }),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'a Rego syntax error',
    request: () => ({
      payload: { modules: { 'authz/broken.rego': BROKEN_SYNTAX }, entrypoints: ['authz/allow'] },
    }),
    status: 400,
    code: 'rego_compile_error',
    check: (b) =>
      expect(b.details[0]).toMatchObject({
        file: 'authz/broken.rego',
        row: expect.any(Number),
        col: expect.any(Number),
        message: expect.any(String),
      }),
  },
  {
    name: 'a failing Rego test',
    request: () => ({
      payload: { ...SAMPLE, modules: { 'authz/policy.rego': POLICY, 'authz/fail_test.rego': FAILING_TEST } },
    }),
    status: 422,
    code: 'rego_test_failed',
    check: (b) => expect(JSON.stringify(b.details)).toContain('test_everyone_allowed'),
  },
  {
    name: 'an entrypoint no rule defines',
    request: () => ({ payload: { ...SAMPLE, entrypoints: ['authz/nothing_here'] } }),
    status: 422,
    code: 'entrypoint_undefined',
    check: (b) => expect(JSON.stringify(b)).toContain('authz/nothing_here'),
  },
  {
    name: 'a builtin neither WASM nor the engine can run',
    request: () => ({
      payload: {
        modules: {
          'authz/fetch.rego':
            'package authz\n\nallow if http.send({"method": "GET", "url": input.url}).status_code == 200\n',
        },
        entrypoints: ['authz/allow'],
      },
    }),
    status: 422,
    code: 'unsupported_builtin',
    check: (b) => expect(JSON.stringify(b.details)).toContain('http.send'),
  },
  {
    name: 'data that is not an object',
    request: () => ({ payload: { ...SAMPLE, data: ['a'] } }),
    status: 400,
    code: 'validation_failed',
  },
  {
    name: 'a bad bundle name',
    bundle: 'Bad_Name!',
    request: () => ({ payload: SAMPLE }),
    status: 400,
    code: 'validation_failed',
    check: (b) => expect(b.details.map((d) => d.field)).toContain('params.bundle'),
  },
];

describe('bad input stores nothing', () => {
  it.each(ERROR_CASES)(
    '$name → $status $code',
    async ({ bundle = 'broken', request, status, code, check }) => {
      const { payload, contentType } = request();
      const res = await t.pap.app.inject({
        method: 'POST',
        url: `/v1/bundles/${encodeURIComponent(bundle)}/revisions`,
        headers: { ...bearer(ADMIN_TOKEN), ...(contentType ? { 'content-type': contentType } : {}) },
        payload,
      });
      expect(res.statusCode, res.body).toBe(status);
      const body = json<{ code: string; message: string; details: Record<string, unknown>[] }>(res);
      expect(body.code).toBe(code);
      expect(body.message.length).toBeGreaterThan(0);
      check?.(body);
      const after = await t.pap.app.inject({ url: '/v1/bundles/broken', headers: bearer(ADMIN_TOKEN) });
      expect(after.statusCode).toBe(404);
    },
  );

  it.each([
    { url: '/v1/bundles/nope', status: 404, code: 'not_found' },
    { url: '/v1/bundles/nope/revisions', status: 404, code: 'not_found' },
    { url: '/v1/bundles/life/revisions/99', status: 404, code: 'not_found' },
    { url: '/v1/bundles/life/revisions/zero', status: 400, code: 'validation_failed' },
    { url: '/v1/bundles/life/bundle.tar.gz', status: 404, code: 'not_found' },
  ])('GET $url → $status', async ({ url, status, code }) => {
    const res = await t.pap.app.inject({ url, headers: bearer(ADMIN_TOKEN) });
    expect(res.statusCode).toBe(status);
    expect(json(res).code).toBe(code);
  });

  it.each([
    {
      name: 'an entrypoint the revision lacks',
      payload: { entrypoint: 'authz/other' },
      code: 'validation_failed',
    },
    { name: 'no entrypoint', payload: { input: {} }, code: 'validation_failed' },
  ])('evaluate with $name → 400', async ({ payload, code }) => {
    const res = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/bundles/life/revisions/1/evaluate',
      headers: bearer(ADMIN_TOKEN),
      payload,
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(json(res).code).toBe(code);
  });
});
