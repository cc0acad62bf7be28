// The two policies the PDP benchmark runs (the example Envoy policy, RBAC at 1,000 roles and 10,000 bindings) and their inputs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Workload {
  /** Bundle name at the PAP. */
  bundle: string;
  /** The decision every request asks for. */
  path: string;
  entrypoints: string[];
  modules: Record<string, string>;
  data: Record<string, unknown>;
  /** Inputs cycled through by every load generator, the same for every server. */
  inputs: unknown[];
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token the example policy decodes (it checks issuer and expiry; the signature is the proxy's job). */
function jwt(claims: Record<string, unknown>): string {
  return `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}.c2lnbmF0dXJl`;
}

function envoyRequest(method: string, path: string, token?: string) {
  return {
    attributes: {
      request: {
        http: {
          method,
          path,
          host: 'bookinfo.example',
          headers: {
            'user-agent': 'bench/1.0',
            'x-request-id': 'e1b6f1e2-1b7c-4c55-9d3f-4b3f0c0b8c11',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        },
      },
    },
    parsed_path: path
      .split('?')[0]!
      .split('/')
      .filter((s) => s !== ''),
  };
}

export async function envoyWorkload(root: string): Promise<Workload> {
  const dir = join(root, 'policies/envoy-authz');
  const iss = 'https://auth.bookinfo.example';
  const exp = 4_102_444_800;
  return {
    bundle: 'envoy-authz',
    path: 'envoy/authz/allow',
    entrypoints: ['envoy/authz/allow', 'envoy/authz/result'],
    modules: { 'policy.rego': await readFile(join(dir, 'policy.rego'), 'utf8') },
    data: JSON.parse(await readFile(join(dir, 'data.json'), 'utf8')) as Record<string, unknown>,
    inputs: [
      envoyRequest('GET', '/productpage'),
      envoyRequest('GET', '/api/v1/products'),
      envoyRequest('GET', '/api/v1/products/7', jwt({ iss, sub: 'alice', exp })),
      envoyRequest('POST', '/api/v1/products/7/reviews', jwt({ iss, sub: 'rita', exp, roles: ['reviewer'] })),
      envoyRequest('GET', '/static/css/site.css?v=3'),
      envoyRequest('DELETE', '/api/v1/products/1', jwt({ iss, sub: 'root', exp, roles: ['admin'] })),
      envoyRequest('PUT', '/api/v1/users/alice/profile', jwt({ iss, sub: 'alice', exp })),
      envoyRequest('GET', '/api/v1/products', jwt({ iss: 'https://evil.example', sub: 'eve', exp })),
    ],
  };
}

/**
 * RBAC data at scale, deterministic: role-i grants `read` on `res-i/*` and, for every third role,
 * `write` too; subject-j is bound to roles j mod R and (j*7) mod R (the engine's tests build the
 * same shape).
 */
export function rbacData(roleCount: number, bindingCount: number): Record<string, unknown> {
  const roles: Record<string, { grants: { action: string; resource: string }[] }> = {};
  for (let i = 0; i < roleCount; i++) {
    const grants = [{ action: 'read', resource: `res-${i}/*` }];
    if (i % 3 === 0) grants.push({ action: 'write', resource: `res-${i}/*` });
    roles[`role-${i}`] = { grants };
  }
  const bindings: Record<string, string[]> = {};
  for (let j = 0; j < bindingCount; j++) {
    bindings[`subject-${j}`] = [...new Set([`role-${j % roleCount}`, `role-${(j * 7) % roleCount}`])];
  }
  return { roles, bindings };
}

export async function rbacWorkload(root: string): Promise<Workload> {
  const ROLES = 1000;
  const BINDINGS = 10_000;
  // A fixed pseudo-random sequence: half allowed, half denied, spread over the subjects.
  let seed = 42;
  const next = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  const inputs: unknown[] = [];
  for (let i = 0; i < 64; i++) {
    const j = next(BINDINGS);
    const role = i % 2 === 0 ? j % ROLES : next(ROLES);
    inputs.push({
      subject: `subject-${j}`,
      action: i % 4 === 0 ? 'write' : 'read',
      resource: `res-${role}/item-${i}`,
    });
  }
  return {
    bundle: 'rbac',
    path: 'rbac/allow',
    entrypoints: ['rbac/allow', 'rbac/decision'],
    modules: { 'policy.rego': await readFile(join(root, 'policies/rbac/policy.rego'), 'utf8') },
    data: rbacData(ROLES, BINDINGS),
    inputs,
  };
}
