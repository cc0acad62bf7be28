// Configuration: defaults, and a bad value stops `main.ts` at start with a message naming the variable.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@portcullis/runtime';
import { createTestDatabase, freePort, opaBin, spawnService, waitFor } from '@portcullis/testkit';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadPapConfig } from '../src/config.ts';
import { SAMPLE } from './pap-fixture.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'services/pap/src/main.ts');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const GOOD = { DATABASE_URL: 'postgres://u@127.0.0.1:1/db' };

function runMain(env: Record<string, string | undefined>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('loadPapConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadPapConfig(GOOD)).toMatchObject({
      PAP_HTTP_PORT: 8080,
      PAP_GRPC_PORT: 9080,
      PAP_HOST: '127.0.0.1',
      OPA_BIN: 'opa',
      PAP_MAX_BODY: 8 * 1024 * 1024,
      PAP_COMPILE_TIMEOUT: 60_000,
      PAP_ADMIN_TOKEN_FILE: '.portcullis/admin-token',
      PAP_ADMIN_TOKEN: undefined,
    });
  });

  it.each([
    { PAP_MAX_BODY: '64KiB', key: 'PAP_MAX_BODY', value: 65536 },
    { PAP_COMPILE_TIMEOUT: '5s', key: 'PAP_COMPILE_TIMEOUT', value: 5000 },
    { PAP_HTTP_PORT: '0', key: 'PAP_HTTP_PORT', value: 0 },
  ])('parses $key', ({ key, value, ...env }) => {
    expect(loadPapConfig({ ...GOOD, ...env })[key as 'PAP_MAX_BODY']).toBe(value);
  });
});

const BAD: { variable: string; env: Record<string, string | undefined> }[] = [
  { variable: 'PAP_HTTP_PORT', env: { ...GOOD, PAP_HTTP_PORT: 'eighty' } },
  { variable: 'PAP_HTTP_PORT', env: { ...GOOD, PAP_HTTP_PORT: '70000' } },
  { variable: 'PAP_GRPC_PORT', env: { ...GOOD, PAP_GRPC_PORT: '-1' } },
  { variable: 'DATABASE_URL', env: {} },
  { variable: 'DATABASE_URL', env: { DATABASE_URL: 'not a url' } },
  { variable: 'PAP_MAX_BODY', env: { ...GOOD, PAP_MAX_BODY: 'lots' } },
  { variable: 'PAP_COMPILE_TIMEOUT', env: { ...GOOD, PAP_COMPILE_TIMEOUT: 'soon' } },
  { variable: 'PAP_ADMIN_TOKEN', env: { ...GOOD, PAP_ADMIN_TOKEN: 'short' } },
];

describe('bad configuration', () => {
  it.each(BAD)('rejects $variable in loadPapConfig', ({ variable, env }) => {
    expect(() => loadPapConfig(env)).toThrow(ConfigError);
    expect(() => loadPapConfig(env)).toThrow(variable);
  });

  it.each(BAD.slice(0, 4))('stops main.ts with exit 78 naming $variable', async ({ variable, env }) => {
    const { code, stderr } = await runMain(env);
    expect(code).toBe(78);
    expect(stderr).toMatch(new RegExp(`^pap: invalid configuration: ${variable}: `));
  });
});

describe('main.ts', () => {
  it('starts with a good configuration, serves the API, relays activations, and stops cleanly on SIGTERM', async () => {
    const db = await createTestDatabase();
    const [http, grpc] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), 'pap-main-'));
    const service = await spawnService(
      TSX,
      [MAIN],
      {
        DATABASE_URL: db.url,
        OPA_BIN: opaBin(),
        PAP_HTTP_PORT: String(http),
        PAP_GRPC_PORT: String(grpc),
        PAP_ADMIN_TOKEN_FILE: join(dir, 'admin-token'),
        PAP_ADMIN_TOKEN: undefined,
      },
      { cwd: ROOT, readyUrl: `http://127.0.0.1:${http}/readyz` },
    );
    try {
      const base = `http://127.0.0.1:${http}`;
      expect((await fetch(`${base}/openapi.json`)).status).toBe(200);
      expect(service.output()).toContain('admin-token');
      // The wiring end to end: an activation's outbox row is published by the relay main.ts starts.
      const token = (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const posted = await fetch(`${base}/v1/bundles/wired/revisions`, {
        method: 'POST',
        headers,
        body: JSON.stringify(SAMPLE),
      });
      expect(posted.status).toBe(201);
      const activated = await fetch(`${base}/v1/bundles/wired/active`, {
        method: 'PUT',
        headers: { ...headers, 'if-match': '"0"' },
        body: JSON.stringify({ revision: 1 }),
      });
      expect(activated.status).toBe(200);
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      try {
        await waitFor(
          async () => {
            const { rows } = await pool.query('SELECT published_at FROM outbox');
            return rows.length === 1 && rows[0].published_at !== null;
          },
          { timeoutMs: 15_000, message: 'the outbox row to be published' },
        );
      } finally {
        await pool.end();
      }
      const exit = await service.stop();
      expect(exit.code).toBe(0);
    } finally {
      await service.stop();
      await db.drop();
    }
  });
});
