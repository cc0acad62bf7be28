// The OPA Data API of the PDP through fastify's inject, with both evaluators: results, undefined, errors, flags.
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileArchive, startTestPdp, type TestPdp } from './fixtures.ts';

let archive: Buffer;

beforeAll(async () => {
  archive = await compileArchive(1);
});

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  status: number;
  /** Expected JSON body, without decision_id (checked separately). */
  json?: unknown;
  /** A substring of the body. */
  contains?: string;
}

const CASES: Case[] = [
  {
    name: 'a defined result',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '{"input":{"user":"alice"}}',
    status: 200,
    json: { result: true },
  },
  {
    name: 'a false result',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '{"input":{"user":"eve"}}',
    status: 200,
    json: { result: false },
  },
  {
    name: 'an object result',
    method: 'POST',
    url: '/v1/data/authz/profile',
    body: '{"input":{"user":"alice"}}',
    status: 200,
    json: { result: { user: 'alice', admin: true, tags: ['a', 'b'] } },
  },
  {
    name: 'an undefined rule has no result key',
    method: 'POST',
    url: '/v1/data/authz/profile',
    body: '{"input":{}}',
    status: 200,
    json: {},
  },
  {
    name: 'an unknown path is undefined',
    method: 'POST',
    url: '/v1/data/nothing/here',
    body: '{"input":{}}',
    status: 200,
    json: {},
  },
  {
    name: 'inside a rule result',
    method: 'POST',
    url: '/v1/data/authz/profile/tags/1',
    body: '{"input":{"user":"bob"}}',
    status: 200,
    json: { result: 'b' },
  },
  {
    name: 'outside a rule result',
    method: 'POST',
    url: '/v1/data/authz/profile/nope',
    body: '{"input":{"user":"bob"}}',
    status: 200,
    json: {},
  },
  {
    name: 'bundle data',
    method: 'GET',
    url: '/v1/data/settings/limits/1',
    status: 200,
    json: { result: 20 },
  },
  {
    name: 'a dotted segment is one key, as in OPA',
    method: 'GET',
    url: '/v1/data/authz.allow',
    status: 200,
    json: {},
  },
  {
    name: 'a package: its entrypoints, flagged partial',
    method: 'POST',
    url: '/v1/data/system',
    body: '{"input":{"user":"alice"}}',
    status: 200,
    json: {
      result: { main: { allowed: true } },
      warning: { code: 'api_usage_warning', message: expect.stringContaining('partial document') },
    },
  },
  {
    name: 'GET with ?input=',
    method: 'GET',
    url: `/v1/data/authz/allow?input=${encodeURIComponent('{"user":"bob"}')}`,
    status: 200,
    json: { result: true },
  },
  {
    name: 'GET without input',
    method: 'GET',
    url: '/v1/data/authz/version',
    status: 200,
    json: { result: 1 },
  },
  {
    name: 'POST without input warns like OPA',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '{}',
    status: 200,
    json: {
      result: false,
      warning: { code: 'api_usage_warning', message: "'input' key missing from the request" },
    },
  },
  {
    name: 'POST with no body at all',
    method: 'POST',
    url: '/v1/data/authz/version',
    status: 200,
    json: {
      result: 1,
      warning: { code: 'api_usage_warning', message: "'input' key missing from the request" },
    },
  },
  {
    name: 'a gzip body',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: gzipSync('{"input":{"user":"alice"}}'),
    headers: { 'content-encoding': 'gzip' },
    status: 200,
    json: { result: true },
  },
  {
    name: 'any content type is read as JSON',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '{"input":{"user":"alice"}}',
    headers: { 'content-type': 'text/plain' },
    status: 200,
    json: { result: true },
  },
  {
    name: 'malformed JSON body',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '{bad',
    status: 400,
    json: {
      code: 'invalid_parameter',
      message: expect.stringMatching(/^body contains malformed input document: /),
    },
  },
  {
    name: 'a body that is not an object',
    method: 'POST',
    url: '/v1/data/authz/allow',
    body: '[1]',
    status: 400,
    json: {
      code: 'invalid_parameter',
      message: expect.stringMatching(/^body contains malformed input document/),
    },
  },
  {
    name: 'malformed ?input=',
    method: 'GET',
    url: '/v1/data/authz/allow?input=%7Bbad',
    status: 400,
    json: {
      code: 'invalid_parameter',
      message: expect.stringMatching(/^parameter contains malformed input document: /),
    },
  },
  {
    name: 'an evaluation error',
    method: 'POST',
    url: '/v1/data/authz/conflict',
    body: '{"input":{"a":true,"b":true}}',
    status: 500,
    json: {
      code: 'internal_error',
      message: 'error(s) occurred while evaluating query',
      errors: [expect.objectContaining({ code: expect.any(String) })],
    },
  },
  {
    name: 'writes are refused',
    method: 'PUT',
    url: '/v1/data/authz/allow',
    body: '{}',
    status: 405,
    json: { code: 'invalid_operation', message: expect.stringContaining('read-only') },
  },
  {
    name: 'a trailing slash redirects, as in OPA',
    method: 'POST',
    url: '/v1/data/authz/allow/',
    body: '{}',
    status: 301,
  },
  {
    name: 'a double slash redirects, as in OPA',
    method: 'POST',
    url: '/v1/data//authz/allow',
    body: '{}',
    status: 307,
  },
  {
    name: 'the default decision answers the bare document',
    method: 'POST',
    url: '/',
    body: '{"user":"alice"}',
    status: 200,
    json: { allowed: true },
  },
];

describe.each(['in-thread', 'worker-pool'])('Data API (%s)', (evaluator) => {
  let t: TestPdp;

  beforeAll(async () => {
    t = await startTestPdp(archive, {
      PDP_EVALUATOR: evaluator,
      PDP_WORKERS: '2',
      PDP_MAX_INPUT_BYTES: '4096',
    });
  });

  afterAll(async () => {
    await t?.close();
  });

  it.each(CASES)('$name', async (c) => {
    const res = await t.pdp.app.inject({
      method: c.method,
      url: c.url,
      ...(c.body === undefined ? {} : { payload: c.body }),
      headers: { 'content-type': 'application/json', ...c.headers },
    });
    expect(res.statusCode, res.body).toBe(c.status);
    if (c.status === 301 || c.status === 307) {
      expect(res.headers.location).toBe('/v1/data/authz/allow');
      return;
    }
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json() as Record<string, unknown>;
    if (c.status === 200 && c.url.startsWith('/v1/data')) {
      expect(body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
      delete body.decision_id;
    }
    if (c.json !== undefined) expect(body).toEqual(c.json);
  });

  it.each([
    {
      name: 'an oversized body',
      url: '/v1/data/authz/allow',
      body: JSON.stringify({ input: { pad: 'x'.repeat(5000) } }),
    },
    {
      name: 'an oversized gzip body',
      url: '/v1/data/authz/allow',
      body: gzipSync(JSON.stringify({ input: { pad: 'x'.repeat(50_000) } })),
      gzip: true,
    },
    {
      name: 'an oversized ?input=',
      url: `/v1/data/authz/allow?input=${encodeURIComponent(JSON.stringify({ pad: 'x'.repeat(5000) }))}`,
    },
  ])('refuses $name with 413 in OPA’s error shape', async ({ url, body, gzip }) => {
    const res = await t.pdp.app.inject({
      method: body === undefined ? 'GET' : 'POST',
      url,
      ...(body === undefined ? {} : { payload: body }),
      headers: gzip ? { 'content-encoding': 'gzip' } : {},
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      code: 'invalid_parameter',
      message: expect.stringMatching(/^request body too large: \d+ bytes exceeds limit of 4096 bytes/),
    });
  });

  it('reports OPA’s metrics, provenance and pretty output when asked', async () => {
    const res = await t.pdp.app.inject({
      method: 'POST',
      url: '/v1/data/authz/allow?metrics=true&provenance&pretty',
      payload: '{"input":{"user":"alice"}}',
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^\{\n {2}"decision_id": /);
    const body = res.json() as Record<string, unknown>;
    expect(body).toMatchObject({
      result: true,
      metrics: {
        timer_rego_input_parse_ns: expect.any(Number),
        timer_rego_query_eval_ns: expect.any(Number),
        timer_server_handler_ns: expect.any(Number),
      },
      provenance: { bundles: { authz: { revision: '1' } } },
    });
  });

  it('answers the root document with the data and the entrypoints', async () => {
    const res = await t.pdp.app.inject({
      method: 'POST',
      url: '/v1/data',
      payload: '{"input":{"user":"bob"}}',
    });
    expect(res.json()).toMatchObject({
      result: {
        users: ['alice', 'bob'],
        settings: { region: 'eu' },
        authz: { allow: true, version: 1, profile: { user: 'bob', admin: false } },
        system: { main: { allowed: true } },
      },
    });
  });

  it('counts decisions by entrypoint and outcome', async () => {
    await t.pdp.app.inject({
      method: 'POST',
      url: '/v1/data/authz/allow',
      payload: '{"input":{"user":"alice"}}',
    });
    const metrics = await t.pdp.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(
      /portcullis_decisions_total\{path="authz\/allow",outcome="true",service="pdp-test"\} \d+/,
    );
    expect(metrics.body).toMatch(
      /portcullis_decisions_total\{path="none",outcome="undefined",service="pdp-test"\} \d+/,
    );
    expect(metrics.body).toContain('portcullis_decision_duration_seconds_bucket');
    expect(metrics.body).toMatch(
      /portcullis_bundle_loaded_info\{bundle="authz",revision="1",digest="[0-9a-f]{64}",service="pdp-test"\} 1/,
    );
  });
});

describe('health', () => {
  it.each([
    { url: '/health', before: 200, after: 200 },
    { url: '/health?bundles', before: 500, after: 200 },
    { url: '/health?bundles=true', before: 500, after: 200 },
    { url: '/health?plugins', before: 500, after: 200 },
    { url: '/readyz', before: 503, after: 200 },
  ])('$url is $before before a bundle loads and $after after', async ({ url, before, after }) => {
    const t = await startTestPdp(undefined, { PDP_RECONCILE_INTERVAL: '100ms' });
    try {
      const first = await t.pdp.app.inject({ method: 'GET', url });
      expect(first.statusCode).toBe(before);
      if (before === 500) expect(first.json()).toEqual({ error: expect.stringMatching(/^not all /) });
      t.distribution.activate(archive, { bundle: 'authz', revision: 1 });
      await waitFor(async () => (await t.pdp.app.inject({ method: 'GET', url })).statusCode === after, {
        message: `${url} to answer ${after}`,
      });
    } finally {
      await t.close();
    }
  });
});

describe('concurrency limit', () => {
  it('refuses decisions over PDP_MAX_CONCURRENCY with 429 and admits again once one finishes', async () => {
    const t = await startTestPdp(archive, { PDP_MAX_CONCURRENCY: '1' }, { listen: true });
    try {
      const port = Number(new URL(t.httpUrl).port);
      // A request whose body has not finished arriving holds the only slot.
      const held = httpRequest({
        port,
        method: 'POST',
        path: '/v1/data/authz/allow',
        headers: { 'content-length': '26' },
      });
      const heldResponse = new Promise<number>((resolve) =>
        held.on('response', (r) => resolve(r.statusCode ?? 0)),
      );
      held.write('{"input":{"user":');
      await waitFor(async () => {
        const m = await t.pdp.app.inject({ method: 'GET', url: '/metrics' });
        return /portcullis_decisions_in_flight\{[^}]*\} 1/.test(m.body);
      });
      const refused = await fetch(`http://127.0.0.1:${port}/v1/data/authz/allow`, {
        method: 'POST',
        body: '{"input":{}}',
      });
      expect(refused.status).toBe(429);
      expect(await refused.json()).toEqual({
        code: 'too_many_requests',
        message: expect.stringContaining('PDP_MAX_CONCURRENCY'),
      });
      held.end('"alice"}}');
      expect(await heldResponse).toBe(200);
      const admitted = await fetch(`http://127.0.0.1:${port}/v1/data/authz/allow`, {
        method: 'POST',
        body: '{"input":{}}',
      });
      expect(admitted.status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('the HTTP fast path (a real server)', () => {
  let t: TestPdp;

  beforeAll(async () => {
    t = await startTestPdp(archive, { PDP_MAX_INPUT_BYTES: '4096' }, { listen: true });
  });

  afterAll(async () => {
    await t?.close();
  });

  it.each([
    {
      name: 'a decision',
      method: 'POST',
      path: '/v1/data/authz/allow',
      body: '{"input":{"user":"alice"}}',
      status: 200,
      json: { result: true },
    },
    {
      name: 'a GET with ?input=',
      method: 'GET',
      path: `/v1/data/authz/allow?input=${encodeURIComponent('{"user":"eve"}')}`,
      status: 200,
      json: { result: false },
    },
    {
      name: 'the root',
      method: 'GET',
      path: '/v1/data?pretty',
      status: 200,
      json: { result: expect.objectContaining({ users: ['alice', 'bob'] }) },
    },
    {
      name: 'malformed JSON',
      method: 'POST',
      path: '/v1/data/authz/allow',
      body: '{',
      status: 400,
      json: { code: 'invalid_parameter', message: expect.any(String) },
    },
    {
      name: 'an oversized body',
      method: 'POST',
      path: '/v1/data/authz/allow',
      body: JSON.stringify({ input: 'x'.repeat(5000) }),
      status: 413,
      json: { code: 'invalid_parameter', message: expect.stringContaining('exceeds limit of 4096 bytes') },
    },
    { name: 'a trailing slash', method: 'POST', path: '/v1/data/authz/allow/', body: '{}', status: 301 },
    { name: 'not the Data API', method: 'GET', path: '/v1/database', status: 404 },
  ])('serves $name', async ({ method, path, body, status, json }) => {
    const res = await fetch(`${t.httpUrl}${path}`, {
      method,
      redirect: 'manual',
      headers: { 'x-request-id': 'req-1' },
      ...(body === undefined ? {} : { body }),
    });
    expect(res.status).toBe(status);
    expect(res.headers.get('x-request-id')).toBe('req-1');
    if (json) expect(await res.json()).toMatchObject(json);
  });

  it('counts its requests in the runtime’s HTTP metrics', async () => {
    await fetch(`${t.httpUrl}/v1/data/authz/allow`, { method: 'POST', body: '{"input":{}}' });
    const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /portcullis_http_requests_total\{method="POST",route="\/v1\/data\/\*",status="200",service="pdp-test"\} \d+/,
    );
  });
});
