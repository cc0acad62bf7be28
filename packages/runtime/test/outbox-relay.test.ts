// The outbox relay against a real Postgres and real buses: order, marking, outages, and two replicas.

import {
  type Bus,
  type BusMessage,
  createBus,
  createLogger,
  createPool,
  type Pool,
  PortcullisError,
  Registry,
  TOPICS,
} from '@portcullis/runtime';
import {
  createTestDatabase,
  startTestKafka,
  type TestDatabase,
  type TestKafka,
  waitFor,
} from '@portcullis/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRelay } from '../src/outbox-relay.ts';

const logger = createLogger('outbox-relay-test', process.env.TEST_LOG_LEVEL ?? 'silent');

// The PAP's migration creates this table; the relay depends on exactly this shape.
const OUTBOX_DDL = `
  CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
  );
  CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;`;

/**
 * Fault injection around a real bus: records what the bus acknowledged, can be made to fail,
 * and counts how many publishes run at once across every relay that shares it.
 */
class RecordingBus implements Bus {
  readonly transport: Bus['transport'];
  failing = false;
  /** Pretend the broker is slow, to widen the window in which two relays could overlap. */
  slowMs = 0;
  /** While set, publishes hang until it resolves: a broker that has not answered yet. */
  gate: Promise<void> | undefined;
  failures = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly acknowledged: BusMessage[] = [];

  constructor(private readonly inner: Bus) {
    this.transport = inner.transport;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.slowMs > 0) await new Promise((resolve) => setTimeout(resolve, this.slowMs));
      await this.gate;
      if (this.failing) {
        this.failures++;
        throw new PortcullisError('unavailable', 'injected bus failure');
      }
      await this.inner.publish(messages);
      this.acknowledged.push(...messages);
    } finally {
      this.inFlight--;
    }
  }

  subscribe: Bus['subscribe'] = (...args) => this.inner.subscribe(...args);
  close = (): Promise<void> => this.inner.close();
}

const seqOf = (m: BusMessage): number => (JSON.parse(m.value) as { activation_seq: number }).activation_seq;

async function freshOutbox(): Promise<{ db: TestDatabase; pool: Pool }> {
  const db = await createTestDatabase();
  const pool = createPool(db.url);
  await pool.query(OUTBOX_DDL);
  return { db, pool };
}

let nextSeq = 1;
/** Writes activations as the PAP does: outbox rows, then a NOTIFY after the commit. */
async function activate(pool: Pool, bundles: string[], notify = true): Promise<number[]> {
  const seqs: number[] = [];
  for (const bundle of bundles) {
    const seq = nextSeq++;
    seqs.push(seq);
    await pool.query('INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)', [
      TOPICS.policyEvents,
      bundle,
      JSON.stringify({
        bundle,
        revision: seq,
        digest: 'a'.repeat(64),
        activation_seq: seq,
        activated_at: new Date().toISOString(),
      }),
    ]);
  }
  if (notify) await pool.query('NOTIFY portcullis_outbox');
  return seqs;
}

async function unpublished(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL',
  );
  return rows[0]!.n;
}

async function metricValue(registry: Registry, name: string): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  const count = m.values.find((v) => (v as { metricName?: string }).metricName === `${name}_count`);
  return (count ?? m.values[0])?.value ?? 0;
}

function expectStrictlyIncreasing(seqs: number[]): void {
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
}

describe('outbox relay on the postgres bus', () => {
  let db: TestDatabase;
  let pool: Pool;
  let bus: Bus;
  const relays: OutboxRelay[] = [];

  beforeAll(async () => {
    ({ db, pool } = await freshOutbox());
    bus = createBus({ transport: 'postgres', url: db.url }, logger);
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await pool.query('TRUNCATE outbox');
  });
  afterAll(async () => {
    await bus?.close();
    await pool?.end();
    await db?.drop();
  });

  function relay(
    b: Bus,
    opts: { batchSize?: number; pollIntervalMs?: number; registry?: Registry } = {},
  ): OutboxRelay {
    const r = new OutboxRelay({
      pool,
      bus: b,
      logger,
      metrics: { registry: opts.registry ?? new Registry() },
      maxBackoffMs: 500,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      ...(opts.pollIntervalMs ? { pollIntervalMs: opts.pollIntervalMs } : {}),
    });
    relays.push(r);
    return r;
  }

  it.each([{ batchSize: 1 }, { batchSize: 4 }, { batchSize: 100 }])(
    'publishes rows in id order and marks them (batch size $batchSize)',
    async ({ batchSize }) => {
      const delivered: BusMessage[] = [];
      const sub = await bus.subscribe(TOPICS.policyEvents, (m) => void delivered.push(m));
      const recording = new RecordingBus(bus);
      const registry = new Registry();
      const r = relay(recording, { batchSize, registry });
      expect(r.status().state).toBe('NOT_READY');
      const seqs = await activate(pool, [
        'alpha',
        'beta',
        'alpha',
        'gamma',
        'beta',
        'alpha',
        'gamma',
        'alpha',
        'beta',
      ]);
      await r.start();
      await waitFor(async () => (await unpublished(pool)) === 0, { message: 'every row marked published' });
      expect(recording.acknowledged.map(seqOf)).toEqual(seqs);
      await waitFor(() => delivered.length === seqs.length, { message: 'every event at a subscriber' });
      expect(delivered.map(seqOf)).toEqual(seqs);
      expect(delivered.filter((m) => m.key === 'alpha').map(seqOf)).toEqual([
        seqs[0],
        seqs[2],
        seqs[5],
        seqs[7],
      ]);
      expect(await metricValue(registry, 'portcullis_outbox_published_total')).toBe(seqs.length);
      expect(await metricValue(registry, 'portcullis_outbox_publish_lag_seconds')).toBe(seqs.length);
      await waitFor(() => r.status().state === 'OK' && r.status().message === 'backlog 0', {
        message: 'status OK',
      });
      expect(await metricValue(registry, 'portcullis_outbox_backlog')).toBe(0);
      await sub.close();
    },
  );

  it('wakes on NOTIFY instead of waiting for its poll', async () => {
    const recording = new RecordingBus(bus);
    const r = relay(recording, { pollIntervalMs: 600_000 });
    await r.start();
    // The start-up pass finds nothing; only the notification can bring the relay back in time.
    await waitFor(() => r.status().state === 'OK', { message: 'relay running' });
    const seqs = await activate(pool, ['alpha']);
    await waitFor(() => recording.acknowledged.length === 1, {
      timeoutMs: 5000,
      message: 'the notified row',
    });
    expect(recording.acknowledged.map(seqOf)).toEqual(seqs);
  });

  it('keeps rows while the bus fails, reports WARN with the backlog, then drains in order', async () => {
    const recording = new RecordingBus(bus);
    recording.failing = true;
    const registry = new Registry();
    const r = relay(recording, { batchSize: 3, registry });
    await r.start();
    const first = await activate(pool, ['alpha', 'beta', 'alpha', 'gamma']);
    await waitFor(() => recording.failures >= 2, { message: 'repeated publish failures' });
    const second = await activate(pool, ['beta', 'alpha', 'gamma']);
    await waitFor(() => r.status().state === 'WARN' && (r.status().message ?? '').includes('backlog 7'), {
      message: () => `WARN with backlog 7 (status ${JSON.stringify(r.status())})`,
    });
    expect(r.status().message).toContain('bus publish failing');
    expect(await unpublished(pool)).toBe(7);
    expect(recording.acknowledged).toEqual([]);
    expect(await metricValue(registry, 'portcullis_outbox_publish_failures_total')).toBeGreaterThanOrEqual(2);

    recording.failing = false;
    await waitFor(async () => (await unpublished(pool)) === 0, { message: 'the backlog to drain' });
    expect(recording.acknowledged.map(seqOf)).toEqual([...first, ...second]);
    await waitFor(() => r.status().state === 'OK', { message: 'status OK again' });
  });

  it('with two relays on one table, never publishes a row twice or out of order', async () => {
    const recording = new RecordingBus(bus);
    recording.slowMs = 5;
    const [a, b] = [relay(recording, { batchSize: 7 }), relay(recording, { batchSize: 7 })];
    await Promise.all([a.start(), b.start()]);
    const seqs: number[] = [];
    for (let i = 0; i < 20; i++)
      seqs.push(...(await activate(pool, ['alpha', 'beta', 'gamma', 'delta', 'epsilon'])));
    await waitFor(async () => (await unpublished(pool)) === 0, {
      timeoutMs: 20_000,
      message: 'every row published',
    });
    const published = recording.acknowledged.map(seqOf);
    expect(published).toHaveLength(seqs.length);
    expect(new Set(published).size).toBe(seqs.length);
    expectStrictlyIncreasing(published);
    expect(recording.maxInFlight).toBe(1);
  });

  it('skips its pass, without waiting, while another replica is publishing', async () => {
    const busy = new RecordingBus(bus);
    let answer!: () => void;
    busy.gate = new Promise((resolve) => (answer = resolve));
    const other = new RecordingBus(bus);
    const [a, b] = [relay(busy), relay(other)];
    const seqs = await activate(pool, ['alpha', 'beta']);
    await a.start();
    await waitFor(() => busy.inFlight === 1, { message: 'the first replica to be mid-publish' });
    // Without the relay lock this pass would block on the row locks until the first replica commits.
    expect(await b.relayOnce()).toEqual({ published: 0, full: false });
    answer();
    await waitFor(async () => (await unpublished(pool)) === 0, { message: 'the first replica to finish' });
    expect(busy.acknowledged.map(seqOf)).toEqual(seqs);
    expect(await b.relayOnce()).toEqual({ published: 0, full: false });
    expect(other.acknowledged).toEqual([]);
  });

  it('stops cleanly and picks up where it left off after a restart', async () => {
    const recording = new RecordingBus(bus);
    const r1 = relay(recording);
    await r1.start();
    const first = await activate(pool, ['alpha', 'beta']);
    await waitFor(() => recording.acknowledged.length === 2, { message: 'the first rows' });
    await r1.stop();
    expect(r1.status().state).toBe('NOT_READY');
    const second = await activate(pool, ['alpha', 'gamma']);
    const r2 = relay(recording);
    await r2.start();
    await waitFor(() => recording.acknowledged.length === 4, { message: 'the rows written while stopped' });
    expect(recording.acknowledged.map(seqOf)).toEqual([...first, ...second]);
  });
});

describe('outbox relay on the kafka bus', () => {
  let kafka: TestKafka;
  let db: TestDatabase;
  let pool: Pool;
  let bus: Bus;

  beforeAll(async () => {
    [kafka, { db, pool }] = await Promise.all([startTestKafka(), freshOutbox()]);
    bus = createBus(
      { transport: 'kafka', brokers: kafka.brokers, clientId: 'pap-test', partitions: 3 },
      logger,
    );
  });
  afterAll(async () => {
    await bus?.close();
    await pool?.end();
    await db?.drop();
    await kafka?.dispose();
  });

  it('waits out a broker outage and then delivers every activation in per-bundle order', async () => {
    const delivered: BusMessage[] = [];
    const sub = await bus.subscribe(TOPICS.policyEvents, (m) => void delivered.push(m));
    const relay = new OutboxRelay({
      pool,
      bus,
      logger,
      metrics: { registry: new Registry() },
      maxBackoffMs: 1000,
    });
    await relay.start();
    try {
      const before = await activate(pool, ['alpha', 'beta']);
      await waitFor(() => delivered.length === 2, { timeoutMs: 20_000, message: 'events before the outage' });

      await kafka.stop();
      const during = await activate(pool, ['alpha', 'beta', 'alpha', 'gamma']);
      await waitFor(() => relay.status().state === 'WARN', { timeoutMs: 30_000, message: 'relay WARN' });
      expect(await unpublished(pool)).toBe(during.length);

      await kafka.start();
      await waitFor(async () => (await unpublished(pool)) === 0, {
        timeoutMs: 60_000,
        message: 'the backlog to drain',
      });
      const all = [...before, ...during];
      await waitFor(() => new Set(delivered.map(seqOf)).size === all.length, {
        timeoutMs: 60_000,
        message: () => `every event (have ${delivered.map(seqOf).join(',')})`,
      });
      // At least once: a batch whose ack was lost in the outage may arrive twice, but per bundle
      // the last word is always the latest activation, and nothing is missing.
      for (const bundle of ['alpha', 'beta', 'gamma']) {
        const seqs = delivered.filter((m) => m.key === bundle).map(seqOf);
        const firsts = seqs.filter((s, i) => seqs.indexOf(s) === i);
        expectStrictlyIncreasing(firsts);
      }
      expect([...new Set(delivered.map(seqOf))].sort((x, y) => x - y)).toEqual(all);
      await waitFor(() => relay.status().state === 'OK', { message: 'relay OK again' });
    } finally {
      await relay.stop();
      await sub.close();
    }
  });
});
