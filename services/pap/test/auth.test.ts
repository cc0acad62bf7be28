// The auth matrix (route × role → status), token management and the first admin token.

import { mkdtempSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, opaBin } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPapConfig } from '../src/config.ts';
import { buildPap } from '../src/pap-app.ts';
import { ROLES, type Role } from '../src/schemas.ts';
import {
  ADMIN_TOKEN,
  activate,
  bearer,
  json,
  postRevision,
  SAMPLE,
  startTestPap,
  type TestPap,
} from './pap-fixture.ts';

let t: TestPap;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestPap();
  expect((await postRevision(t.pap, 'm', SAMPLE)).statusCode).toBe(201);
  expect((await activate(t.pap, 'm', 1)).statusCode).toBe(200);
  for (const role of ROLES) {
    const res = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: bearer(ADMIN_TOKEN),
      payload: { name: `${role}-token`, role },
    });
    expect(res.statusCode, res.body).toBe(201);
    tokens[role] = json<{ token: string }>(res).token;
  }
});
afterAll(async () => {
  await t?.close();
});

interface RouteCase {
  route: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  payload?: object;
  headers?: Record<string, string>;
  needs: Role;
  /** The status when allowed; chosen so the call changes nothing (same content, stale ETag, …). */
  ok: number;
}

const ROUTES: RouteCase[] = [
  { route: 'list bundles', method: 'GET', url: '/v1/bundles', needs: 'viewer', ok: 200 },
  { route: 'read bundle', method: 'GET', url: '/v1/bundles/m', needs: 'viewer', ok: 200 },
  { route: 'list revisions', method: 'GET', url: '/v1/bundles/m/revisions', needs: 'viewer', ok: 200 },
  { route: 'read revision', method: 'GET', url: '/v1/bundles/m/revisions/1', needs: 'viewer', ok: 200 },
  {
    route: 'evaluate',
    method: 'POST',
    url: '/v1/bundles/m/revisions/1/evaluate',
    payload: { entrypoint: 'authz/allow', input: {} },
    needs: 'viewer',
    ok: 200,
  },
  { route: 'download', method: 'GET', url: '/v1/bundles/m/bundle.tar.gz', needs: 'viewer', ok: 200 },
  { route: 'audit', method: 'GET', url: '/v1/audit', needs: 'viewer', ok: 200 },
  {
    route: 'create revision',
    method: 'POST',
    url: '/v1/bundles/m/revisions',
    payload: SAMPLE,
    needs: 'author',
    ok: 200,
  },
  {
    route: 'activate',
    method: 'PUT',
    url: '/v1/bundles/m/active',
    payload: { revision: 1 },
    headers: { 'if-match': '"999999"' },
    needs: 'publisher',
    ok: 412,
  },
  { route: 'list tokens', method: 'GET', url: '/v1/tokens', needs: 'admin', ok: 200 },
  {
    route: 'create token',
    method: 'POST',
    url: '/v1/tokens',
    payload: { name: '' },
    needs: 'admin',
    ok: 400,
  },
  {
    route: 'delete token',
    method: 'DELETE',
    url: '/v1/tokens/tok_0000000000000000',
    needs: 'admin',
    ok: 404,
  },
];

const RANK: Record<Role, number> = { viewer: 0, author: 1, publisher: 2, admin: 3 };
type Caller = Role | 'none' | 'bad token' | 'not bearer';

const MATRIX = ROUTES.flatMap((r) =>
  (['none', 'bad token', 'not bearer', ...ROLES] as Caller[]).map((caller) => ({
    ...r,
    caller,
    status:
      caller === 'none' || caller === 'bad token' || caller === 'not bearer'
        ? 401
        : RANK[caller] >= RANK[r.needs]
          ? r.ok
          : 403,
  })),
);

describe('auth matrix', () => {
  it.each(MATRIX)(
    '$route as $caller → $status',
    async ({ method, url, payload, headers, caller, status }) => {
      const auth: Record<string, string> =
        caller === 'none'
          ? {}
          : caller === 'bad token'
            ? bearer('pct_not-a-real-token')
            : caller === 'not bearer'
              ? { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }
              : bearer(tokens[caller]!);
      const res = await t.pap.app.inject({
        method,
        url,
        headers: { ...auth, ...headers },
        ...(payload ? { payload } : {}),
      });
      expect(res.statusCode, res.body).toBe(status);
      if (status === 401) {
        expect(json(res).code).toBe('unauthenticated');
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
      if (status === 403) expect(json(res).code).toBe('forbidden');
    },
  );
});

describe('tokens', () => {
  it('lists tokens without their secrets and stores only hashes', async () => {
    const res = await t.pap.app.inject({ url: '/v1/tokens', headers: bearer(ADMIN_TOKEN) });
    const list = json<{ tokens: Record<string, unknown>[] }>(res).tokens;
    expect(list.map((x) => x.name).sort()).toEqual(['admin-env', ...ROLES.map((r) => `${r}-token`)].sort());
    expect(res.body).not.toContain(tokens.admin);
    const { rows } = await t.pap.pool.query('SELECT * FROM api_tokens');
    expect(JSON.stringify(rows)).not.toContain(tokens.viewer);
  });

  it('refuses a duplicate name with 409', async () => {
    const res = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: bearer(ADMIN_TOKEN),
      payload: { name: 'viewer-token', role: 'viewer' },
    });
    expect(res.statusCode).toBe(409);
  });

  it('revokes a token: it stops working at once, and the deletion is audited', async () => {
    const created = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: bearer(ADMIN_TOKEN),
      payload: { name: 'short-lived', role: 'viewer' },
    });
    const { id, token } = json<{ id: string; token: string }>(created);
    expect((await t.pap.app.inject({ url: '/v1/bundles', headers: bearer(token) })).statusCode).toBe(200);
    const del = await t.pap.app.inject({
      method: 'DELETE',
      url: `/v1/tokens/${id}`,
      headers: bearer(ADMIN_TOKEN),
    });
    expect(del.statusCode).toBe(204);
    expect((await t.pap.app.inject({ url: '/v1/bundles', headers: bearer(token) })).statusCode).toBe(401);
    const audit = await t.pap.app.inject({
      url: '/v1/audit?actor=admin-env&limit=2',
      headers: bearer(ADMIN_TOKEN),
    });
    expect(json<{ entries: { action: string; target: string }[] }>(audit).entries).toMatchObject([
      { action: 'token.delete', target: `tokens/${id}` },
      { action: 'token.create', target: `tokens/${id}` },
    ]);
  });

  it('refuses to delete the last admin token', async () => {
    const list = json<{ tokens: { id: string; name: string }[] }>(
      await t.pap.app.inject({ url: '/v1/tokens', headers: bearer(ADMIN_TOKEN) }),
    ).tokens;
    const id = (name: string) => list.find((x) => x.name === name)!.id;
    const del = (name: string) =>
      t.pap.app.inject({ method: 'DELETE', url: `/v1/tokens/${id(name)}`, headers: bearer(ADMIN_TOKEN) });
    expect((await del('admin-token')).statusCode).toBe(204);
    const last = await del('admin-env');
    expect(last.statusCode).toBe(409);
    expect(json(last).code).toBe('conflict');
  });
});

describe('first admin token', () => {
  it('is generated once into PAP_ADMIN_TOKEN_FILE with mode 0600, and works', async () => {
    const db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'pap-token-'));
    const file = join(dir, 'nested', 'admin-token');
    const config = loadPapConfig({ DATABASE_URL: db.url, OPA_BIN: opaBin(), PAP_ADMIN_TOKEN_FILE: file });
    const ctx = {
      logger: createLogger('pap', 'silent'),
      metrics: createMetrics('pap'),
      health: new Health(),
    };
    const pap = await buildPap({ config, ...ctx });
    try {
      const token = (await readFile(file, 'utf8')).trim();
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(token).toMatch(/^pct_[A-Za-z0-9_-]{43}$/);
      const res = await pap.app.inject({ url: '/v1/tokens', headers: bearer(token) });
      expect(res.statusCode).toBe(200);
      // A second start finds the admin and leaves the file alone.
      const again = await buildPap({ config, ...ctx, metrics: createMetrics('pap') });
      await again.close();
      expect((await readFile(file, 'utf8')).trim()).toBe(token);
    } finally {
      await pap.close();
      await db.drop();
    }
  });
});
