// The OpenAPI document: every route of the design's table, bearer security, and every error code documented.
import { ERROR_CODES } from '@portcullis/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPap, type TestPap } from './pap-fixture.ts';

let t: TestPap;
let doc: {
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
};

beforeAll(async () => {
  t = await startTestPap();
  const res = await t.pap.app.inject({ url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  doc = res.json();
});
afterAll(async () => {
  await t?.close();
});

const OPERATIONS = [
  ['post', '/v1/bundles/{bundle}/revisions'],
  ['get', '/v1/bundles'],
  ['get', '/v1/bundles/{bundle}'],
  ['get', '/v1/bundles/{bundle}/revisions'],
  ['get', '/v1/bundles/{bundle}/revisions/{rev}'],
  ['put', '/v1/bundles/{bundle}/active'],
  ['get', '/v1/bundles/{bundle}/bundle.tar.gz'],
  ['post', '/v1/bundles/{bundle}/revisions/{rev}/evaluate'],
  ['get', '/v1/audit'],
  ['post', '/v1/tokens'],
  ['get', '/v1/tokens'],
  ['delete', '/v1/tokens/{id}'],
] as const;

describe('openapi document', () => {
  it.each(OPERATIONS)('documents %s %s with bearer security and 401/403 errors', (method, path) => {
    const op = doc.paths[path]?.[method];
    expect(op, `${method} ${path}`).toBeDefined();
    expect(op!.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['401', '403', '500']));
  });

  it.each(Object.keys(ERROR_CODES))('documents error code %s', (code) => {
    const text = JSON.stringify(doc);
    expect(text).toContain(`"${code}"`);
    const enums = JSON.stringify(doc.paths['/v1/bundles']!.get!.responses['401']);
    expect(enums).toContain(`"${code}"`);
  });

  it('documents both upload forms of a revision', () => {
    const text = JSON.stringify(doc.paths['/v1/bundles/{bundle}/revisions']!.post);
    for (const type of [
      'application/json',
      'application/gzip',
      'application/x-gzip',
      'application/octet-stream',
    ]) {
      expect(text).toContain(type);
    }
  });
});
