// Test support for the PAP: a PAP on a fresh test database, request helpers and sample bundles.
import { gzipSync } from 'node:zlib';
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, opaBin, type TestDatabase } from '@portcullis/testkit';
import type { LightMyRequestResponse } from 'fastify';
import { loadPapConfig, type PapConfig } from '../src/config.ts';
import { buildPap, type Pap, type PapDeps } from '../src/pap-app.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export interface TestPap {
  pap: Pap;
  db: TestDatabase;
  config: PapConfig;
  /** Builds another PAP on the same database (a restart, or a second replica). */
  rebuild(env?: Record<string, string>): Promise<Pap>;
  close(): Promise<void>;
}

/** A PAP on a fresh database with `ADMIN_TOKEN` as admin, not listening (use `app.inject`). */
export async function startTestPap(
  env: Record<string, string> = {},
  extra: Partial<Pick<PapDeps, 'compile' | 'unsupported'>> = {},
): Promise<TestPap> {
  const db = await createTestDatabase();
  const built: Pap[] = [];
  const make = async (more: Record<string, string> = {}): Promise<Pap> => {
    const config = loadPapConfig({
      DATABASE_URL: db.url,
      OPA_BIN: opaBin(),
      PAP_ADMIN_TOKEN: ADMIN_TOKEN,
      PAP_HTTP_PORT: '0',
      PAP_GRPC_PORT: '0',
      PAP_DB_POOL_MAX: '5',
      ...env,
      ...more,
    });
    const pap = await buildPap({
      config,
      logger: createLogger('pap', 'silent'),
      metrics: createMetrics('pap'),
      health: new Health(),
      ...extra,
    });
    built.push(pap);
    return pap;
  };
  const pap = await make();
  return {
    pap,
    db,
    config: pap.services.config,
    rebuild: make,
    async close() {
      for (const p of built) await p.close();
      await db.drop();
    },
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  return res.json() as T;
}

export const POLICY = `package authz

default allow := false

allow if input.user in data.admins

allow if {
	input.method == "GET"
	input.path[0] == "public"
}

reason := "admin" if input.user in data.admins
`;

export const POLICY_TEST = `package authz_test

import data.authz

test_admin_allowed if authz.allow with input as {"user": "alice"} with data.admins as ["alice"]

test_public_get if authz.allow with input as {"method": "GET", "path": ["public", "x"]}

test_anonymous_post_denied if not authz.allow with input as {"method": "POST", "path": ["public"]}
`;

export const SAMPLE = {
  modules: { 'authz/policy.rego': POLICY, 'authz/policy_test.rego': POLICY_TEST },
  data: { admins: ['alice'] },
  entrypoints: ['authz/allow', 'authz/reason'],
};

export type Sample = {
  modules: Record<string, string>;
  data?: unknown;
  entrypoints: string[];
  strict?: boolean;
};

/** A variant of the sample whose revision differs (a new admin in data). */
export function sampleWithAdmins(...admins: string[]): Sample {
  return { ...SAMPLE, data: { admins } };
}

/**
 * A gzipped ustar archive with exactly these entries, written by hand so tests can make archives
 * that no well-behaved tar writer would (paths with `../`).
 */
export function tarGz(entries: { name: string; body: string | Buffer }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body, 'utf8');
    const header = Buffer.alloc(512);
    header.write(e.name, 0, 100, 'utf8');
    header.write('0000644\0', 100, 'ascii');
    header.write('0000000\0', 108, 'ascii');
    header.write('0000000\0', 116, 'ascii');
    header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
    header.write('00000000000\0', 136, 'ascii');
    header.write('        ', 148, 'ascii');
    header.write('0', 156, 'ascii');
    header.write('ustar\0', 257, 'ascii');
    header.write('00', 263, 'ascii');
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** Posts a JSON revision as the admin. */
export function postRevision(pap: Pap, bundle: string, body: unknown, token = ADMIN_TOKEN) {
  return pap.app.inject({
    method: 'POST',
    url: `/v1/bundles/${bundle}/revisions`,
    headers: bearer(token),
    payload: body as Record<string, unknown>,
  });
}

/** Reads the bundle's ETag and activates `revision` with it. */
export async function activate(pap: Pap, bundle: string, revision: number, token = ADMIN_TOKEN) {
  const got = await pap.app.inject({ method: 'GET', url: `/v1/bundles/${bundle}`, headers: bearer(token) });
  const etag = got.headers.etag;
  return pap.app.inject({
    method: 'PUT',
    url: `/v1/bundles/${bundle}/active`,
    headers: { ...bearer(token), 'if-match': String(etag) },
    payload: { revision },
  });
}
