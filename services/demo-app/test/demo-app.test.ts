// The demo application's routes, through fastify's inject.
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDemoAppConfig } from '../src/config.ts';
import { buildDemoApp } from '../src/demo-app.ts';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildDemoApp({
    logger: createLogger('demo-app', 'silent'),
    metrics: createMetrics('demo-app'),
    health: new Health(),
  });
});
afterAll(async () => {
  await app.close();
});

describe('demo app', () => {
  it.each([
    ['/health', 200, { status: 'ok' }],
    ['/api/v1/products/2', 200, { id: 2, title: 'The Tempest' }],
    ['/api/v1/products/9', 404, { code: 'not_found' }],
    ['/api/v1/products/abc', 400, { code: 'validation_failed' }],
    ['/api/v1/products/1/reviews', 200, { product: { id: 1 } }],
    ['/reviews/1', 200, { id: 1 }],
    ['/nowhere', 404, { code: 'not_found' }],
  ])('GET %s → %i', async (url, status, body) => {
    const res = await app.inject({ url });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject(body);
  });

  it('lists the products and serves the product page, greeting the subject a policy passed on', async () => {
    const list = (await app.inject({ url: '/api/v1/products' })).json() as unknown[];
    expect(list).toHaveLength(3);
    const page = await app.inject({ url: '/productpage', headers: { 'x-portcullis-subject': '<alice>' } });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('The Comedy of Errors');
    expect(page.body).toContain('Signed in as &#60;alice&#62;');
  });

  it.each([
    [{ reviewer: 'carol', stars: 5, text: 'Wonderful.' }, 201],
    [{ reviewer: 'carol', stars: 6, text: 'Too many stars.' }, 400],
    [{ reviewer: 'carol', stars: 3, text: 'x', extra: true }, 400],
    [{ reviewer: '', stars: 3, text: 'x' }, 400],
  ])('POST a review %j → %i', async (payload, status) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/products/3/reviews', payload });
    expect(res.statusCode).toBe(status);
  });

  it('keeps posted reviews', async () => {
    const res = await app.inject({ url: '/reviews' });
    expect((res.json() as { reviewer: string }[]).some((r) => r.reviewer === 'carol')).toBe(true);
  });

  it.each([
    ['application/x-www-form-urlencoded', 'a=1&b=2'],
    ['application/json', '{"a":1}'],
    ['text/plain', 'hello'],
  ])('echoes a %s body as text', async (type, payload) => {
    const res = await app.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': type },
      payload,
    });
    expect(res.json()).toMatchObject({ method: 'POST', body: payload });
  });

  it('echoes what reached it', async () => {
    const res = await app.inject({ url: '/echo?tenant=acme&tag=a&tag=b', headers: { 'x-user': 'alice' } });
    expect(res.json()).toMatchObject({
      method: 'GET',
      url: '/echo?tenant=acme&tag=a&tag=b',
      query: { tenant: 'acme', tag: ['a', 'b'] },
      headers: { 'x-user': 'alice' },
    });
  });

  it.each([
    [{}, { DEMO_APP_PORT: 8000, DEMO_APP_HOST: '127.0.0.1' }],
    [
      { DEMO_APP_PORT: '0', DEMO_APP_HOST: '0.0.0.0' },
      { DEMO_APP_PORT: 0, DEMO_APP_HOST: '0.0.0.0' },
    ],
  ])('config %j', (env, expected) => {
    expect(loadDemoAppConfig(env)).toEqual(expected);
  });

  it('refuses a bad port naming the variable', () => {
    expect(() => loadDemoAppConfig({ DEMO_APP_PORT: 'http' })).toThrow(/DEMO_APP_PORT/);
  });
});
