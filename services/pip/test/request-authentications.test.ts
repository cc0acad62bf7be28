// RequestAuthentication resources through the REST API: JSON and YAML bodies, validation, roles, ETags, and the policy set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  AUTHOR_TOKEN,
  bearer,
  requestAuthentication,
  startTestPip,
  type TestPip,
  VIEWER_TOKEN,
} from './pip-fixture.ts';

let t: TestPip;

beforeAll(async () => {
  t = await startTestPip();
});
afterAll(() => t?.close());

// Port 9 (discard) refuses connections: key prefetches fail at once and never leave the machine.
const JWKS_URI = 'http://127.0.0.1:9/jwks';
const RULES = [{ issuer: 'https://issuer.example', jwksUri: JWKS_URI }];

const YAML = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: from-yaml
spec:
  selector:
    matchLabels:
      app: web
  jwtRules:
  - issuer: https://issuer.example
    audiences: [api]
    jwksUri: http://127.0.0.1:9/jwks
`;

describe('RequestAuthentication CRUD', () => {
  it.each([
    ['application/json', JSON.stringify(requestAuthentication('shop', 'from-json', RULES)), 'from-json'],
    ['application/yaml', YAML.replace('from-yaml', 'from-yaml-a'), 'from-yaml-a'],
    ['application/x-yaml', YAML.replace('from-yaml', 'from-yaml-b'), 'from-yaml-b'],
    ['text/yaml', YAML.replace('from-yaml', 'from-yaml-c'), 'from-yaml-c'],
  ])('accepts %s, stores it, and loads it into the policy set', async (type, body, name) => {
    const put = await t.pip.app.inject({
      method: 'PUT',
      url: `/v1/request-authentications/shop/${name}`,
      headers: { ...bearer(AUTHOR_TOKEN), 'content-type': type },
      payload: body,
    });
    expect(put.statusCode, put.body).toBe(201);
    expect(put.headers.etag).toBe('"1"');
    expect(put.json()).toMatchObject({ namespace: 'shop', name, version: 1, updated_by: 'author-env' });
    const get = await t.pip.app.inject({
      url: `/v1/request-authentications/shop/${name}`,
      headers: bearer(VIEWER_TOKEN),
    });
    expect(get.statusCode).toBe(200);
    expect(get.json().document.metadata).toEqual({ name, namespace: 'shop' });
    expect(t.pip.services.policies.get('shop', name)).toBeDefined();
  });

  it('replaces with a new version and lists by namespace', async () => {
    const doc = requestAuthentication('shop', 'from-json', [{ ...RULES[0], audiences: ['x'] }]);
    const put = await t.pip.app.inject({
      method: 'PUT',
      url: '/v1/request-authentications/shop/from-json',
      headers: { ...bearer(), 'if-match': '"1"' },
      payload: doc,
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json().version).toBe(2);
    expect(t.pip.services.policies.get('shop', 'from-json')?.jwtRules[0]?.audiences).toEqual(['x']);
    const stale = await t.pip.app.inject({
      method: 'PUT',
      url: '/v1/request-authentications/shop/from-json',
      headers: { ...bearer(), 'if-match': '"1"' },
      payload: doc,
    });
    expect(stale.statusCode).toBe(412);
    expect(stale.json().code).toBe('precondition_failed');
    const list = await t.pip.app.inject({
      url: '/v1/request-authentications?namespace=shop',
      headers: bearer(VIEWER_TOKEN),
    });
    expect(list.json().items.map((i: { name: string }) => i.name)).toEqual([
      'from-json',
      'from-yaml-a',
      'from-yaml-b',
      'from-yaml-c',
    ]);
  });

  it('deletes, then answers 404', async () => {
    const del = await t.pip.app.inject({
      method: 'DELETE',
      url: '/v1/request-authentications/shop/from-yaml-c',
      headers: bearer(AUTHOR_TOKEN),
    });
    expect(del.statusCode).toBe(204);
    expect(t.pip.services.policies.get('shop', 'from-yaml-c')).toBeUndefined();
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await t.pip.app.inject({
        method,
        url: '/v1/request-authentications/shop/from-yaml-c',
        headers: bearer(),
      });
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('not_found');
    }
  });

  it.each([
    [
      'a rule without issuer',
      requestAuthentication('shop', 'bad', [{ jwksUri: JWKS_URI }]),
      'spec.jwtRules[0].issuer',
    ],
    ['an unknown field', { ...requestAuthentication('shop', 'bad', RULES), extra: 1 }, 'extra'],
    ['a name other than the path', requestAuthentication('shop', 'other', RULES), 'metadata.name'],
    ['a namespace other than the path', requestAuthentication('prod', 'bad', RULES), 'metadata.namespace'],
    [
      'jwks and jwksUri together',
      requestAuthentication('shop', 'bad', [{ ...RULES[0], jwks: '{"keys":[]}' }]),
      'spec.jwtRules[0].jwks',
    ],
    ['YAML that does not parse', 'apiVersion: [unclosed', ''],
  ])('refuses %s with invalid_resource naming the field', async (_what, body, path) => {
    const res = await t.pip.app.inject({
      method: 'PUT',
      url: '/v1/request-authentications/shop/bad',
      headers: {
        ...bearer(),
        'content-type': typeof body === 'string' ? 'application/yaml' : 'application/json',
      },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().code).toBe('invalid_resource');
    expect(res.json().details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it.each([
    ['no token', {}, 'PUT', 401, 'unauthenticated'],
    ['an unknown token', bearer('not-a-token-of-this-pip'), 'GET', 401, 'unauthenticated'],
    ['a viewer writing', bearer(VIEWER_TOKEN), 'PUT', 403, 'forbidden'],
    ['a viewer deleting', bearer(VIEWER_TOKEN), 'DELETE', 403, 'forbidden'],
  ] as const)('refuses %s', async (_what, headers, method, status, code) => {
    const res = await t.pip.app.inject({
      method,
      url: '/v1/request-authentications/shop/from-json',
      headers: { ...headers, 'content-type': 'application/json' },
      ...(method === 'PUT' ? { payload: requestAuthentication('shop', 'from-json', RULES) } : {}),
    });
    expect(res.statusCode).toBe(status);
    expect(res.json().code).toBe(code);
  });

  it('keeps resources across a restart (loaded from the database)', async () => {
    const again = await t.rebuild();
    expect(again.services.policies.list('shop').map((r) => r.metadata.name)).toEqual([
      'from-json',
      'from-yaml-a',
      'from-yaml-b',
    ]);
    expect(again.services.sync.status().state).toBe('OK');
    expect(ADMIN_TOKEN).not.toBe(AUTHOR_TOKEN);
  });
});
