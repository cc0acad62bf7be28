// PolicySync against a real gRPC PolicyDistribution, a real engine, a real Postgres bus and a real disk.
import { getEventListeners } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '@portcullis/bundle';
import { PolicyEngine } from '@portcullis/engine';
import { type Bus, createBus, type Registry, TOPICS } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase, waitFor } from '@portcullis/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Activation, DistributionClient, PolicySync, StaticPolicyDistribution } from '../src/index.ts';
import { compileArchive, quiet } from './fixtures.ts';

const USERS = ['alice'];
let archives: Buffer[] = [];
let distribution: StaticPolicyDistribution;
let address: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  // Four revisions of one bundle: version 1..4, and alice is allowed from revision 2 on.
  archives = await Promise.all(
    [1, 2, 3, 4].map((v) => compileArchive({ version: v, users: v >= 2 ? USERS : [] }, v)),
  );
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function freshDistribution(): Promise<void> {
  distribution = new StaticPolicyDistribution(quiet());
  address = await distribution.listen();
  cleanups.push(() => distribution.close());
}

function startSync(opts: Partial<ConstructorParameters<typeof PolicySync>[0]> = {}) {
  const engine = new PolicyEngine();
  const { logger, metrics } = quiet();
  const sync = new PolicySync({
    engine,
    distribution: address,
    reconcileIntervalMs: 60_000,
    logger,
    metrics,
    ...opts,
  });
  cleanups.push(() => sync.stop());
  const version = (): unknown => {
    try {
      return engine.evaluate('authz/version').result;
    } catch {
      return undefined;
    }
  };
  return { sync, engine, metrics, version };
}

/** The value of the series of `name` whose labels include `labels` (0 when there is none). */
async function metricValue(
  metrics: { registry: Registry },
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x));
  return hit?.value ?? 0;
}

describe('PolicySync', () => {
  it('is not ready before anything is loaded, and loads the active revision by reconciling at start', async () => {
    await freshDistribution();
    const { sync, version, metrics } = startSync();
    expect(sync.status().state).toBe('NOT_READY');
    distribution.activate(archives[1]!, { bundle: 'authz', revision: 2 });
    await sync.start();
    await waitFor(() => version() === 2, { message: 'revision 2 to serve' });
    expect(sync.status().state).toBe('OK');
    expect(sync.applied().authz).toMatchObject({ revision: 2, source: 'reconcile', activationSeq: 1 });
    expect(
      await metricValue(metrics, 'portcullis_bundle_loaded_info', {
        bundle: 'authz',
        revision: '2',
        digest: sha256Hex(archives[1]!),
      }),
    ).toBe(1);
  });

  // Each step is [activation sequence number, revision]; the archive of revision r is archives[r-1].
  it.each([
    {
      name: 'in order',
      steps: [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
      serves: 3,
    },
    {
      name: 'duplicates',
      steps: [
        [1, 1],
        [2, 2],
        [2, 2],
        [1, 1],
      ],
      serves: 2,
    },
    {
      name: 'out of order',
      steps: [
        [3, 3],
        [1, 1],
        [2, 2],
      ],
      serves: 3,
    },
    {
      name: 'a rollback is a newer activation of an older revision',
      steps: [
        [1, 1],
        [2, 3],
        [3, 1],
      ],
      serves: 1,
    },
    {
      name: 'a stale replay after a rollback',
      steps: [
        [2, 3],
        [3, 1],
        [2, 3],
      ],
      serves: 1,
    },
  ])('orders events by activation sequence: $name', async ({ steps, serves }) => {
    await freshDistribution();
    // Register every archive under its digest so FetchBundle finds it; activations are offered by hand.
    const byRevision = new Map<number, Activation>();
    for (const [i, archive] of archives.entries()) {
      byRevision.set(i + 1, distribution.activate(archive, { bundle: 'authz', revision: i + 1 }));
    }
    const { sync, version } = startSync({ distribution: new DistributionClient(address) });
    // Offers are only taken once started; GetActive fails meanwhile so that reconcile brings nothing in.
    distribution.failing = true;
    await sync.start();
    await waitFor(() => sync.status().message?.includes('PAP unreachable') ?? false);
    distribution.failing = false;
    for (const [seq, revision] of steps) {
      sync.offer({ ...byRevision.get(revision!)!, activationSeq: seq! });
    }
    await waitFor(
      () =>
        version() === serves && sync.applied().authz?.activationSeq === Math.max(...steps.map((s) => s[0]!)),
      {
        message: `revision ${serves} to serve`,
      },
    );
    expect(sync.applied().authz?.revision).toBe(serves);
  });

  it('refuses a bundle whose bytes do not match the digest, keeps serving, counts and reports it', async () => {
    await freshDistribution();
    distribution.activate(archives[0]!, { bundle: 'authz', revision: 1 });
    const { sync, version, metrics } = startSync();
    await sync.start();
    await waitFor(() => version() === 1);
    // Revision 2 announced with its real digest, but the bytes served are revision 3's.
    distribution.activate(archives[2]!, { bundle: 'authz', revision: 2, digest: sha256Hex(archives[1]!) });
    await sync.reconcile();
    await waitFor(
      async () =>
        (await metricValue(metrics, 'portcullis_bundle_load_failures_total', {
          reason: 'digest_mismatch',
        })) === 1,
      {
        message: 'the digest mismatch to be counted',
      },
    );
    expect(version()).toBe(1);
    expect(sync.status()).toMatchObject({ state: 'WARN' });
    expect(sync.status().message).toContain('digest_mismatch');
    // A good activation afterwards clears the warning.
    distribution.activate(archives[3]!, { bundle: 'authz', revision: 4 });
    await sync.reconcile();
    await waitFor(() => version() === 4);
    expect(sync.status().state).toBe('OK');
  });

  it('serves from the disk cache at start while the PAP is down, then converges when it is back', async () => {
    await freshDistribution();
    const cacheDir = await mkdtemp(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), 'pdp-cache-'));
    cleanups.push(() => rm(cacheDir, { recursive: true, force: true }));
    distribution.activate(archives[1]!, { bundle: 'authz', revision: 2 });
    const first = startSync({ cacheDir });
    await first.sync.start();
    await waitFor(
      async () => first.version() === 2 && (await readdir(cacheDir)).includes('authz.bundle.json'),
    );
    await first.sync.stop();

    distribution.failing = true;
    distribution.activate(archives[2]!, { bundle: 'authz', revision: 3 });
    const second = startSync({ cacheDir, reconcileIntervalMs: 100 });
    await second.sync.start();
    // Served as soon as start resolves: no network was needed.
    expect(second.version()).toBe(2);
    expect(second.sync.applied().authz?.source).toBe('cache');
    await waitFor(() => second.sync.status().state === 'WARN', { message: 'the PAP outage to be reported' });
    expect(second.sync.status().message).toContain('PAP unreachable');

    distribution.failing = false;
    await waitFor(() => second.version() === 3, { message: 'convergence once the PAP is back' });
    expect(second.sync.status().state).toBe('OK');
  });

  it('skips a damaged cache entry and counts it', async () => {
    await freshDistribution();
    const cacheDir = await mkdtemp(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), 'pdp-cache-'));
    cleanups.push(() => rm(cacheDir, { recursive: true, force: true }));
    await writeFile(
      join(cacheDir, 'authz.bundle.json'),
      JSON.stringify({
        format: 1,
        bundle: 'authz',
        revision: 1,
        digest: '0'.repeat(64),
        activation_seq: 1,
        archive: archives[0]!.toString('base64'),
      }),
    );
    distribution.failing = true;
    const { sync, version, metrics } = startSync({ cacheDir });
    await sync.start();
    expect(version()).toBeUndefined();
    expect(sync.status().state).toBe('NOT_READY');
    expect(
      await metricValue(metrics, 'portcullis_bundle_load_failures_total', { reason: 'cache_damaged' }),
    ).toBe(1);
  });

  it('retries a fetch that failed because the PAP went away mid-way', async () => {
    await freshDistribution();
    const { sync, version } = startSync();
    distribution.failing = true;
    await sync.start();
    const activation = distribution.activate(archives[0]!, { bundle: 'authz', revision: 1 });
    sync.offer(activation);
    await waitFor(() => sync.status().message?.includes('fetch_failed') ?? false, {
      message: 'the failed fetch',
    });
    distribution.failing = false;
    await waitFor(() => version() === 1, { message: 'the retry to load revision 1' });
  });

  it('follows only the bundles it is told to', async () => {
    await freshDistribution();
    distribution.activate(archives[0]!, { bundle: 'authz', revision: 1 });
    const { sync, version } = startSync({ bundles: ['other'] });
    await sync.start();
    await waitFor(() => distribution.getActiveCalls > 0);
    await sync.reconcile();
    expect(version()).toBeUndefined();
    expect(sync.status()).toMatchObject({ state: 'NOT_READY' });
    expect(sync.status().message).toContain('other: nothing loaded yet');
  });
});

describe('PolicySync on the postgres bus', () => {
  let db: TestDatabase;
  let bus: Bus;

  beforeAll(async () => {
    db = await createTestDatabase();
    bus = createBus({ transport: 'postgres', url: db.url, pollIntervalMs: 200 }, quiet().logger);
  });

  afterAll(async () => {
    await bus?.close();
    await db?.drop();
  });

  it('loads what events announce without waiting for a reconcile, and ignores malformed events', async () => {
    await freshDistribution();
    const { sync, version, metrics } = startSync({ bus });
    await sync.start();
    await waitFor(() => sync.status().state === 'NOT_READY' && distribution.getActiveCalls >= 2, {
      message: 'the subscription and the reconcile after it',
    });
    const calls = distribution.getActiveCalls;
    const publish = (value: string, key = 'authz') =>
      bus.publish([{ topic: TOPICS.policyEvents, key, value }]);
    await publish('{not json');
    const a = distribution.activate(archives[2]!, { bundle: 'authz', revision: 3 });
    await publish(
      JSON.stringify({
        bundle: a.bundle,
        revision: a.revision,
        digest: a.digest,
        activation_seq: a.activationSeq,
        activated_at: a.activatedAt?.toISOString(),
      }),
    );
    await waitFor(() => version() === 3, { message: 'the event to be applied' });
    expect(sync.applied().authz?.source).toBe('event');
    expect(distribution.getActiveCalls).toBe(calls);
    expect(
      await metricValue(metrics, 'portcullis_bundle_load_failures_total', { reason: 'invalid_event' }),
    ).toBe(1);
    expect(
      await metricValue(metrics, 'portcullis_bundle_propagation_lag_seconds', {
        bundle: 'authz',
        le: '+Inf',
      }),
    ).toBe(1);
  });
});

describe('DistributionClient', () => {
  it('leaves no listener on the abort signal once a fetch settled (it would keep the archive alive)', async () => {
    await freshDistribution();
    const a = distribution.activate(archives[0]!, { bundle: 'authz', revision: 1 });
    const client = new DistributionClient(address);
    const controller = new AbortController();
    try {
      for (let i = 0; i < 3; i++) {
        const bytes = await client.fetchBundle('authz', a.digest, { signal: controller.signal });
        expect(sha256Hex(bytes)).toBe(a.digest);
      }
      await expect(
        client.fetchBundle('authz', '0'.repeat(64), { signal: controller.signal }),
      ).rejects.toMatchObject({
        code: 'not_found',
      });
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    } finally {
      client.close();
    }
  });

  it.each([
    { name: 'an archive over maxBytes', maxBytes: 100, code: 'payload_too_large' },
    { name: 'a cancelled fetch', maxBytes: undefined, abort: true, code: 'unavailable' },
  ])('refuses $name', async ({ maxBytes, abort, code }) => {
    await freshDistribution();
    const a = distribution.activate(archives[0]!, { bundle: 'authz', revision: 1 });
    const client = new DistributionClient(address);
    const controller = new AbortController();
    if (abort) controller.abort();
    try {
      await expect(
        client.fetchBundle('authz', a.digest, {
          signal: controller.signal,
          ...(maxBytes ? { maxBytes } : {}),
        }),
      ).rejects.toMatchObject({ code });
    } finally {
      client.close();
    }
  });
});
