// Durability: a PAP rebuilt on the same database keeps everything; migrations applied again change nothing.
import { createLogger, createMetrics, createPool, Health, migrate } from '@portcullis/runtime';
import { createTestDatabase, opaBin } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleStore } from '../src/bundle-store.ts';
import { loadPapConfig } from '../src/config.ts';
import { buildPap, createPapApp, MIGRATIONS_DIR } from '../src/pap-app.ts';
import { TokenStore } from '../src/token-store.ts';
import {
  ADMIN_TOKEN,
  activate,
  bearer,
  json,
  postRevision,
  SAMPLE,
  sampleWithAdmins,
  startTestPap,
  type TestPap,
} from './pap-fixture.ts';

let t: TestPap;

beforeAll(async () => {
  t = await startTestPap();
});
afterAll(async () => {
  await t?.close();
});

const READS = [
  '/v1/bundles',
  '/v1/bundles/keep',
  '/v1/bundles/keep/revisions',
  '/v1/bundles/keep/revisions/2',
  '/v1/audit',
];

describe('restart', () => {
  it('serves the same bundles, revisions, activation, audit, tokens and bytes after a rebuild', async () => {
    expect((await postRevision(t.pap, 'keep', SAMPLE)).statusCode).toBe(201);
    expect((await postRevision(t.pap, 'keep', sampleWithAdmins('zed'))).statusCode).toBe(201);
    expect((await activate(t.pap, 'keep', 2)).statusCode).toBe(200);
    const created = await t.pap.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: bearer(ADMIN_TOKEN),
      payload: { name: 'ci', role: 'publisher' },
    });
    const ciToken = json<{ token: string }>(created).token;

    const read = async (app: typeof t.pap.app) =>
      Promise.all(READS.map(async (url) => (await app.inject({ url, headers: bearer(ADMIN_TOKEN) })).body));
    const download = async (app: typeof t.pap.app) =>
      (await app.inject({ url: '/v1/bundles/keep/bundle.tar.gz', headers: bearer(ADMIN_TOKEN) })).rawPayload;
    const before = await read(t.pap.app);
    const bytes = await download(t.pap.app);
    await t.pap.close();

    const again = await t.rebuild();
    expect(await read(again.app)).toEqual(before);
    expect((await download(again.app)).equals(bytes)).toBe(true);
    expect((await again.app.inject({ url: '/v1/bundles', headers: bearer(ciToken) })).statusCode).toBe(200);
    // Numbering continues after the restart, and old content is still recognised.
    expect(json(await postRevision(again, 'keep', SAMPLE))).toMatchObject({ revision: 1 });
    expect(json(await postRevision(again, 'keep', sampleWithAdmins('new')))).toMatchObject({ revision: 3 });
    await again.close();
  });
});

describe('migrations', () => {
  it('applied twice are a no-op', async () => {
    const pap = await t.rebuild();
    try {
      const second = await migrate(pap.pool, 'pap', MIGRATIONS_DIR);
      expect(second).toEqual([]);
      const { rows } = await pap.pool.query(
        "SELECT version FROM portcullis_migrations WHERE component = 'pap'",
      );
      expect(rows.map((r) => r.version)).toEqual([1]);
    } finally {
      await pap.close();
    }
  });

  it('lets several replicas start on one fresh database at once', async () => {
    const db = await createTestDatabase();
    const config = loadPapConfig({ DATABASE_URL: db.url, OPA_BIN: opaBin(), PAP_ADMIN_TOKEN: ADMIN_TOKEN });
    const paps = await Promise.all(
      [1, 2, 3].map(() =>
        buildPap({
          config,
          logger: createLogger('pap', 'silent'),
          metrics: createMetrics('pap'),
          health: new Health(),
        }),
      ),
    );
    try {
      const { rows } = await paps[0]!.pool.query(
        "SELECT count(*)::int AS n FROM api_tokens WHERE role = 'admin'",
      );
      expect(rows[0].n).toBe(1);
    } finally {
      await Promise.all(paps.map((p) => p.close()));
      await db.drop();
    }
  });
});

describe('database down', () => {
  it.each([
    { name: 'authentication', url: '/v1/bundles', tokensAlive: false },
    { name: 'a read', url: '/v1/bundles/keep/revisions/1', tokensAlive: true },
    { name: 'the audit trail', url: '/v1/audit', tokensAlive: true },
  ])('answers with 503 unavailable when $name cannot reach it', async ({ url, tokensAlive }) => {
    const live = await t.rebuild();
    const deadPool = createPool('postgres://postgres@127.0.0.1:1/none', { max: 1 });
    const store = new BundleStore(deadPool);
    const services = {
      ...live.services,
      pool: deadPool,
      store,
      tokens: tokensAlive ? live.services.tokens : new TokenStore(deadPool),
      creation: { ...live.services.creation, store },
    };
    const app = await createPapApp(services, {
      logger: createLogger('pap', 'silent'),
      metrics: createMetrics('pap'),
      health: new Health(),
    });
    try {
      const res = await app.inject({ url, headers: bearer(ADMIN_TOKEN) });
      expect(res.statusCode, res.body).toBe(503);
      expect(json(res).code).toBe('unavailable');
    } finally {
      await app.close();
      await deadPool.end();
      await live.close();
    }
  });
});
