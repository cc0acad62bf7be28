// Attribute changes over a real Kafka broker: PIP outbox → relay → bus → an enforcement point's cache, and the TTL bound while the bus is down.
import { AttributeCache, GrpcAttributeSource } from '@portcullis/attributes';
import { buildPip, loadPipConfig, type Pip } from '@portcullis/pip';
import { type Bus, createBus, createLogger, createMetrics, Health } from '@portcullis/runtime';
import {
  createTestDatabase,
  startTestKafka,
  type TestDatabase,
  type TestKafka,
  waitFor,
} from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TOKEN = 'pip-events-admin-token-0123456789';
const TTL_MS = 60_000;
let kafka: TestKafka;
let db: TestDatabase;
let pipBus: Bus;
let pepBus: Bus;
let pip: Pip;
let source: GrpcAttributeSource;
let cache: AttributeCache;
let fetches = 0;
let ms = Date.now();

beforeAll(async () => {
  [kafka, db] = await Promise.all([startTestKafka(), createTestDatabase()]);
  const logger = createLogger('pip-events', 'silent');
  pipBus = createBus({ transport: 'kafka', brokers: kafka.brokers, clientId: 'pip' }, logger);
  pepBus = createBus({ transport: 'kafka', brokers: kafka.brokers, clientId: 'pep' }, logger);
  pip = await buildPip({
    config: loadPipConfig({
      DATABASE_URL: db.url,
      PIP_ADMIN_TOKEN: TOKEN,
      PIP_HTTP_PORT: '0',
      PIP_GRPC_PORT: '0',
    }),
    logger,
    metrics: createMetrics('pip'),
    health: new Health(),
    bus: pipBus,
  });
  const { grpcPort } = await pip.listen();
  source = new GrpcAttributeSource({ address: `127.0.0.1:${grpcPort}` });
  cache = new AttributeCache({
    source: {
      batchGet: (keys) => {
        fetches++;
        return source.batchGet(keys);
      },
    },
    bus: pepBus,
    ttlMs: TTL_MS,
    // The cache's clock is the test's: the TTL passes when the test says so, not by sleeping.
    now: () => ms,
  });
  await cache.start();
}, 180_000);

afterAll(async () => {
  await cache?.stop();
  source?.close();
  await pip?.close();
  await Promise.allSettled([pipBus?.close(), pepBus?.close()]);
  await Promise.allSettled([kafka?.dispose(), db?.drop()]);
});

/** Writes a record and waits until the cache has heard its event, so later reads are not raced by it. */
async function putHeard(id: string, attributes: Record<string, unknown>): Promise<void> {
  const heard = cache.stats().changesHeard;
  await putAttributes(id, attributes);
  await waitFor(() => cache.stats().changesHeard > heard, {
    timeoutMs: 30_000,
    message: `the event of ${id}`,
  });
}

async function putAttributes(id: string, attributes: Record<string, unknown>): Promise<void> {
  const res = await pip.app.inject({
    method: 'PUT',
    url: `/v1/attributes/user/${id}`,
    headers: { authorization: `Bearer ${TOKEN}` },
    payload: { attributes },
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
}

describe('attribute events over Kafka', () => {
  it('invalidates a cached entry when the record changes, so the next read sees the change', async () => {
    await putHeard('alice', { level: 1 });
    expect((await cache.get('user', 'alice'))?.attributes).toEqual({ level: 1 });
    const before = fetches;
    expect((await cache.get('user', 'alice'))?.attributes).toEqual({ level: 1 });
    expect(fetches).toBe(before);

    await putAttributes('alice', { level: 2 });
    await waitFor(() => cache.peek('user', 'alice') === undefined, {
      timeoutMs: 30_000,
      message: 'the change event to reach the cache',
    });
    expect((await cache.get('user', 'alice'))?.attributes).toEqual({ level: 2 });
    expect(cache.stats().invalidations).toBeGreaterThanOrEqual(1);
  });

  it('invalidates the records of a bulk import', async () => {
    await cache.get('user', 'bulk-1');
    expect(cache.peek('user', 'bulk-1')).toBeNull();
    const res = await pip.app.inject({
      method: 'POST',
      url: '/v1/attributes:import',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' },
      payload: [1, 2, 3]
        .map((i) => JSON.stringify({ kind: 'user', id: `bulk-${i}`, attributes: { i } }))
        .join('\n'),
    });
    expect(res.json()).toMatchObject({ imported: 3 });
    await waitFor(() => cache.peek('user', 'bulk-1') === undefined, {
      timeoutMs: 30_000,
      message: 'the import event',
    });
    expect((await cache.get('user', 'bulk-1'))?.attributes).toEqual({ i: 1 });
  });

  it('while the bus is down, serves a changed record stale only until the TTL runs out', async () => {
    await putHeard('bob', { v: 1 });
    expect((await cache.get('user', 'bob'))?.attributes).toEqual({ v: 1 });
    await kafka.stop();
    await putAttributes('bob', { v: 2 });
    // The event waits in the outbox; the cache has not heard of the change.
    ms += TTL_MS - 1;
    expect(cache.peek('user', 'bob')?.attributes).toEqual({ v: 1 });
    ms += 1;
    expect(cache.peek('user', 'bob')).toBeUndefined();
    expect((await cache.get('user', 'bob'))?.attributes).toEqual({ v: 2 });

    await kafka.start();
    await waitFor(
      async () => {
        const { rows } = await pip.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pip_outbox WHERE published_at IS NULL',
        );
        return rows[0]?.n === 0;
      },
      { timeoutMs: 60_000, message: 'the outbox to drain after the broker came back' },
    );
    await putAttributes('bob', { v: 3 });
    await waitFor(() => cache.peek('user', 'bob') === undefined, {
      timeoutMs: 60_000,
      message: 'events to flow again',
    });
    expect((await cache.get('user', 'bob'))?.attributes).toEqual({ v: 3 });
  });
});
