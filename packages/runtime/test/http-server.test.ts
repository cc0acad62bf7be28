import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { PortcullisError } from '../src/errors.ts';
import { createHttpApp } from '../src/http-server.ts';
import { Health } from '../src/lifecycle.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';

let app: FastifyInstance;
let state: 'OK' | 'NOT_READY' = 'NOT_READY';

async function build(): Promise<FastifyInstance> {
  const health = new Health();
  health.register('loader', () => ({ state }));
  const a = await createHttpApp({
    logger: createLogger('test', 'silent'),
    metrics: createMetrics('test'),
    health,
    bodyLimit: 1024,
    openapi: { title: 'test', version: '1' },
  });
  a.post(
    '/things',
    { schema: { body: Type.Object({ name: Type.String({ minLength: 1 }), n: Type.Integer() }) } },
    async () => ({ ok: true }),
  );
  a.get('/conflict', async () => {
    throw new PortcullisError('precondition_failed', 'stale etag', { details: [{ field: 'If-Match' }] });
  });
  a.get('/crash', async () => {
    throw new Error('secret internals');
  });
  return a;
}

afterEach(async () => {
  await app?.close();
});

describe('createHttpApp', () => {
  it('answers health, readiness from components, and metrics', async () => {
    app = await build();
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    state = 'NOT_READY';
    const notReady = await app.inject('/readyz');
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ ready: false, components: { loader: { state: 'NOT_READY' } } });
    state = 'OK';
    expect((await app.inject('/readyz')).statusCode).toBe(200);
    await app.inject('/conflict');
    const metrics = await app.inject('/metrics');
    expect(metrics.body).toContain(
      'portcullis_http_requests_total{method="GET",route="/conflict",status="412"',
    );
    expect(metrics.body).toContain('process_cpu_seconds_total');
  });

  it.each([
    ['invalid JSON', '{"name":', 'application/json', 400, 'bad_request'],
    ['a schema violation', '{"name":"","n":"x"}', 'application/json', 400, 'validation_failed'],
    [
      'a body over the limit',
      JSON.stringify({ name: 'x'.repeat(2000), n: 1 }),
      'application/json',
      413,
      'payload_too_large',
    ],
    ['an unsupported type', 'a=b', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
  ])('maps %s to %d %s', async (_what, payload, type, statusCode, code) => {
    app = await build();
    const res = await app.inject({
      method: 'POST',
      url: '/things',
      payload,
      headers: { 'content-type': type },
    });
    expect(res.statusCode).toBe(statusCode);
    expect(res.json().code).toBe(code);
  });

  it('names each failing field', async () => {
    app = await build();
    const res = await app.inject({ method: 'POST', url: '/things', payload: { name: '', n: 1.5 } });
    const fields = res
      .json()
      .details.map((d: { field: string }) => d.field)
      .sort();
    expect(fields).toEqual(['body.n', 'body.name']);
  });

  it('answers PortcullisErrors with their code, hides internals of others, and echoes request ids', async () => {
    app = await build();
    const res = await app.inject({ url: '/conflict', headers: { 'x-request-id': 'req-42' } });
    expect(res.statusCode).toBe(412);
    expect(res.headers['x-request-id']).toBe('req-42');
    expect(res.json()).toEqual({
      code: 'precondition_failed',
      message: 'stale etag',
      details: [{ field: 'If-Match' }],
    });
    const crash = await app.inject('/crash');
    expect(crash.statusCode).toBe(500);
    expect(crash.body).not.toContain('secret internals');
    const missing = await app.inject('/nope');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('not_found');
  });

  it('serves an OpenAPI document without the operational routes', async () => {
    app = await build();
    const doc = (await app.inject('/openapi.json')).json();
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(['/things', '/conflict', '/crash']);
  });
});
