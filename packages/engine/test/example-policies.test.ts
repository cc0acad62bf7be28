// The example bundles in policies/: their Rego unit tests, and decisions through the engine (with real JWTs
// for envoy-authz, compared with `opa eval`; with 1,000 roles and 10,000 bindings for rbac).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../src/index.ts';
import { opaEval } from './differential.ts';
import { compilePolicyDir, generateRbacData, opaBin, POLICIES_DIR } from './fixtures.ts';
import { sign } from './jwt-keys.ts';

const run = promisify(execFile);
const ISSUER = 'https://auth.bookinfo.example';
const HOUR = 3600;
const nowS = (): number => Math.floor(Date.now() / 1000);

it.each([['envoy-authz'], ['rbac']])('opa test passes for policies/%s', async (name) => {
  const { stdout } = await run(opaBin(), ['test', join(POLICIES_DIR, name), '--format', 'json']);
  const results = JSON.parse(stdout) as { name: string; fail?: boolean; error?: unknown }[];
  expect(results.length).toBeGreaterThan(0);
  expect(results.filter((r) => r.fail === true || r.error !== undefined)).toEqual([]);
});

type Who =
  | 'anonymous'
  | 'user'
  | 'reviewer'
  | 'admin'
  | 'expired-admin'
  | 'foreign-admin'
  | 'bob'
  | 'basic'
  | 'garbage';

interface EnvoyCase {
  name: string;
  who: Who;
  method: string;
  path: string;
  parsed?: boolean;
  allow: boolean;
  status: number;
}

const envoyCases: EnvoyCase[] = [
  {
    name: 'anonymous product page',
    who: 'anonymous',
    method: 'GET',
    path: '/productpage',
    allow: true,
    status: 200,
  },
  {
    name: 'product page with a query',
    who: 'anonymous',
    method: 'GET',
    path: '/productpage?u=normal',
    allow: true,
    status: 200,
  },
  {
    name: 'static asset',
    who: 'anonymous',
    method: 'GET',
    path: '/static/css/site.css',
    allow: true,
    status: 200,
  },
  {
    name: 'static without parsed_path',
    who: 'anonymous',
    method: 'GET',
    path: '/static/x.js?v=1',
    parsed: false,
    allow: true,
    status: 200,
  },
  {
    name: 'not quite the product page',
    who: 'anonymous',
    method: 'GET',
    path: '/productpagex',
    allow: false,
    status: 401,
  },
  {
    name: 'anonymous API read',
    who: 'anonymous',
    method: 'GET',
    path: '/api/v1/products',
    allow: false,
    status: 401,
  },
  {
    name: 'user reads products',
    who: 'user',
    method: 'GET',
    path: '/api/v1/products',
    allow: true,
    status: 200,
  },
  {
    name: 'user reads a product',
    who: 'user',
    method: 'GET',
    path: '/api/v1/products/7',
    allow: true,
    status: 200,
  },
  {
    name: 'user reads reviews',
    who: 'user',
    method: 'GET',
    path: '/api/v1/products/7/reviews',
    allow: false,
    status: 403,
  },
  {
    name: 'reviewer posts a review',
    who: 'reviewer',
    method: 'POST',
    path: '/api/v1/products/7/reviews',
    allow: true,
    status: 200,
  },
  {
    name: 'reviewer deletes a product',
    who: 'reviewer',
    method: 'DELETE',
    path: '/api/v1/products/7',
    allow: false,
    status: 403,
  },
  {
    name: 'admin deletes a product',
    who: 'admin',
    method: 'DELETE',
    path: '/api/v1/products/7',
    allow: true,
    status: 200,
  },
  {
    name: 'expired admin token',
    who: 'expired-admin',
    method: 'DELETE',
    path: '/api/v1/products/7',
    allow: false,
    status: 401,
  },
  {
    name: 'admin token of another issuer',
    who: 'foreign-admin',
    method: 'DELETE',
    path: '/api/v1/products/7',
    allow: false,
    status: 401,
  },
  {
    name: 'own profile',
    who: 'user',
    method: 'PUT',
    path: '/api/v1/users/alice/profile',
    allow: true,
    status: 200,
  },
  {
    name: 'someone else’s profile',
    who: 'bob',
    method: 'PUT',
    path: '/api/v1/users/alice/profile',
    allow: false,
    status: 403,
  },
  {
    name: 'basic auth is anonymous',
    who: 'basic',
    method: 'GET',
    path: '/api/v1/products',
    allow: false,
    status: 401,
  },
  {
    name: 'garbage bearer is anonymous',
    who: 'garbage',
    method: 'GET',
    path: '/productpage',
    allow: true,
    status: 200,
  },
];

describe('policies/envoy-authz through the engine', () => {
  const engine = new PolicyEngine();
  const auth: Partial<Record<Who, string>> = {};

  beforeAll(async () => {
    await engine.load(await compilePolicyDir('envoy-authz'));
    const key = new TextEncoder().encode('demo-signing-key');
    const token = (claims: Record<string, unknown>) =>
      sign({ iss: ISSUER, exp: nowS() + HOUR, ...claims }, 'HS256', key).then((t) => `Bearer ${t}`);
    auth.user = await token({ sub: 'alice' });
    auth.bob = await token({ sub: 'bob' });
    auth.reviewer = await token({ sub: 'rita', roles: ['reviewer'] });
    auth.admin = await token({ sub: 'root', roles: ['admin'] });
    auth['expired-admin'] = await token({ sub: 'root', roles: ['admin'], exp: nowS() - HOUR });
    auth['foreign-admin'] = await token({ sub: 'root', roles: ['admin'], iss: 'https://evil.example' });
    auth.basic = 'Basic YWxpY2U6c2VjcmV0';
    auth.garbage = 'Bearer not.a.jwt';
  });

  const inputOf = (c: EnvoyCase): Record<string, unknown> => {
    const headers: Record<string, string> = { ':authority': 'bookinfo', 'user-agent': 'test' };
    const authorization = auth[c.who];
    if (authorization !== undefined) headers['authorization'] = authorization;
    const input: Record<string, unknown> = {
      attributes: { request: { http: { method: c.method, path: c.path, host: 'bookinfo', headers } } },
    };
    if (c.parsed !== false) input['parsed_path'] = c.path.split('?')[0]!.split('/').slice(1);
    return input;
  };

  it.each(envoyCases)('$name → allow $allow, status $status, same as opa eval', async (c) => {
    const input = inputOf(c);
    const allow = engine.evaluate('envoy/authz/allow', input);
    const result = engine.evaluate('envoy.authz.result', input);
    expect(allow).toMatchObject({ result: c.allow, bundle: 'envoy-authz', revision: 1 });
    expect(result.result).toMatchObject({ allowed: c.allow, http_status: c.status });

    const opa = await opaEval(
      '{"allow": data.envoy.authz.allow, "result": data.envoy.authz.result}',
      [join(POLICIES_DIR, 'envoy-authz/policy.rego'), join(POLICIES_DIR, 'envoy-authz/data.json')],
      input,
    );
    expect({ allow: allow.result, result: result.result }).toEqual(opa);
  });
});

describe('policies/rbac through the engine, 1,000 roles and 10,000 bindings', () => {
  const engine = new PolicyEngine();
  const data = generateRbacData(1000, 10_000);

  beforeAll(async () => {
    await engine.load(await compilePolicyDir('rbac', { data }));
  });

  it('generates the requested scale', () => {
    expect(Object.keys(data.roles)).toHaveLength(1000);
    expect(Object.keys(data.bindings)).toHaveLength(10_000);
    expect(data.bindings['subject-1234']).toEqual(['role-234', 'role-638']);
  });

  it.each([
    ['subject-5', 'read', 'res-5/doc', true],
    ['subject-5', 'read', 'res-35/doc', true],
    ['subject-5', 'write', 'res-5/doc', false],
    ['subject-3', 'write', 'res-3/doc', true],
    ['subject-1003', 'read', 'res-3/a', true],
    ['subject-5', 'read', 'res-6/doc', false],
    ['subject-5', 'read', 'res-5/doc/deeper', false],
    ['subject-10000', 'read', 'res-0/doc', false],
    ['nobody', 'read', 'res-0/doc', false],
  ])('%s %s %s → %s', (subject, action, resource, allow) => {
    const input = { subject, action, resource };
    expect(engine.evaluate('rbac/allow', input).result).toBe(allow);
    const decision = engine.evaluate('rbac/decision', input).result as { allow: boolean; roles: string[] };
    expect(decision.allow).toBe(allow);
    expect(decision.roles.sort()).toEqual([...(data.bindings[subject] ?? [])].sort());
  });
});
