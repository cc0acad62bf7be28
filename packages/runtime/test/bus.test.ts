// The bus contract, run against both transports on real servers, plus each transport's own guarantees.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import {
  createTestDatabase,
  startTestKafka,
  type TestDatabase,
  type TestKafka,
  waitFor,
} from '@portcullis/testkit';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Bus,
  type BusMessage,
  createBus,
  createLogger,
  isPortcullisError,
  type Subscription,
} from '../src/index.ts';

const logger = createLogger('bus-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/**
 * A TCP relay in front of Postgres that a test can cut and restore: a real network outage
 * (connections reset, new ones refused) without stopping the Postgres shared by other tests.
 */
class FaultProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  urlFor(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }
}

interface Harness {
  /** A bus as a service would build it; several may be made, as several replicas would. */
  makeBus(): Bus;
  /** Takes the transport away from every bus made by `makeBus`. */
  outage(): Promise<void>;
  recover(): Promise<void>;
  dispose(): Promise<void>;
}

async function postgresHarness(): Promise<Harness> {
  const db = await createTestDatabase();
  const target = new URL(db.url);
  const proxy = new FaultProxy(target.hostname, Number(target.port || 5432));
  await proxy.open();
  const buses: Bus[] = [];
  return {
    makeBus() {
      const bus = createBus(
        { transport: 'postgres', url: proxy.urlFor(db.url), pollIntervalMs: 200 },
        logger,
      );
      buses.push(bus);
      return bus;
    },
    outage: () => proxy.cut(),
    recover: () => proxy.open(),
    async dispose() {
      await Promise.all(buses.map((b) => b.close()));
      await proxy.cut();
      await db.drop();
    },
  };
}

async function kafkaHarness(): Promise<Harness> {
  const kafka = await startTestKafka();
  const buses: Bus[] = [];
  return {
    makeBus() {
      // Three partitions, so per-key order is a property of the keying, not of a single partition.
      const bus = createBus(
        {
          transport: 'kafka',
          brokers: kafka.brokers,
          clientId: `test-${randomUUID().slice(0, 8)}`,
          partitions: 3,
        },
        logger,
      );
      buses.push(bus);
      return bus;
    },
    outage: () => kafka.stop(),
    recover: () => kafka.start(),
    async dispose() {
      await Promise.all(buses.map((b) => b.close()));
      await kafka.dispose();
    },
  };
}

function collector(): { messages: BusMessage[]; handler: (m: BusMessage) => void } {
  const messages: BusMessage[] = [];
  return { messages, handler: (m) => void messages.push(m) };
}

const topicName = (): string => `test.${randomUUID()}`;

describe.each([
  { transport: 'postgres', harness: postgresHarness },
  { transport: 'kafka', harness: kafkaHarness },
])('bus contract on $transport', ({ harness: makeHarness }) => {
  let h: Harness;
  let bus: Bus;

  beforeAll(async () => {
    h = await makeHarness();
    bus = h.makeBus();
  });
  afterAll(async () => {
    await h?.dispose();
  });

  it('delivers a published message to a subscriber', async () => {
    const topic = topicName();
    const got = collector();
    const sub = await bus.subscribe(topic, got.handler);
    await bus.publish([{ topic, key: 'bundle-a', value: '{"revision":1}' }]);
    await waitFor(() => got.messages.length === 1, { message: 'the message' });
    expect(got.messages).toEqual([{ topic, key: 'bundle-a', value: '{"revision":1}' }]);
    await sub.close();
  });

  it('delivers nothing published before the subscription and only its own topic', async () => {
    const topic = topicName();
    const other = topicName();
    await bus.publish([{ topic, key: 'k', value: 'before' }]);
    const got = collector();
    const sub = await bus.subscribe(topic, got.handler);
    await bus.publish([
      { topic: other, key: 'k', value: 'elsewhere' },
      { topic, key: 'k', value: 'after' },
    ]);
    await waitFor(() => got.messages.length >= 1, { message: 'the message published after subscribing' });
    // A later message on the same key proves nothing else is still on its way.
    await bus.publish([{ topic, key: 'k', value: 'last' }]);
    await waitFor(() => got.messages.some((m) => m.value === 'last'), { message: 'the last message' });
    expect(got.messages.map((m) => m.value)).toEqual(['after', 'last']);
    await sub.close();
  });

  it('gives every subscriber every message, across bus instances', async () => {
    const topic = topicName();
    const other = h.makeBus();
    const [a, b, c] = [collector(), collector(), collector()];
    const subs = await Promise.all([
      bus.subscribe(topic, a.handler),
      bus.subscribe(topic, b.handler),
      other.subscribe(topic, c.handler),
    ]);
    const sent = Array.from({ length: 30 }, (_, i) => ({ topic, key: `bundle-${i % 5}`, value: String(i) }));
    await bus.publish(sent.slice(0, 10));
    await other.publish(sent.slice(10));
    for (const [name, got] of Object.entries({ a, b, c })) {
      await waitFor(() => got.messages.length >= sent.length, {
        message: `all messages at subscriber ${name}`,
      });
      expect(got.messages.map((m) => m.value).sort()).toEqual(sent.map((m) => m.value).sort());
    }
    await Promise.all(subs.map((s) => s.close()));
  });

  it('keeps the order of messages with one key, within and across publish calls', async () => {
    const topic = topicName();
    const got = collector();
    const sub = await bus.subscribe(topic, got.handler);
    const keys = ['alpha', 'beta', 'gamma', 'delta'];
    const perKey = 25;
    for (let round = 0; round < 5; round++) {
      const batch: BusMessage[] = [];
      for (let i = 0; i < perKey / 5; i++) {
        for (const key of keys) batch.push({ topic, key, value: `${key}:${round * (perKey / 5) + i}` });
      }
      await bus.publish(batch);
    }
    await waitFor(() => got.messages.length >= keys.length * perKey, { message: 'every message' });
    for (const key of keys) {
      const seq = got.messages.filter((m) => m.key === key).map((m) => Number(m.value.split(':')[1]));
      expect(seq).toEqual(Array.from({ length: perKey }, (_, i) => i));
    }
    await sub.close();
  });

  it('goes on after a handler throws', async () => {
    const topic = topicName();
    const seen: string[] = [];
    const sub = await bus.subscribe(topic, (m) => {
      seen.push(m.value);
      if (m.value === 'poison') throw new Error('handler failure');
    });
    await bus.publish([
      { topic, key: 'k', value: 'poison' },
      { topic, key: 'k', value: 'next' },
    ]);
    await waitFor(() => seen.includes('next'), { message: 'the message after the failing one' });
    expect(seen).toEqual(['poison', 'next']);
    await sub.close();
  });

  it('rejects publish and subscribe while the transport is down, reports the outage to subscribers, and recovers', async () => {
    const topic = topicName();
    const events: string[] = [];
    const got = collector();
    const sub = await bus.subscribe(topic, got.handler, {
      onDisconnect: () => events.push('disconnect'),
      onReconnect: () => events.push('reconnect'),
    });
    await bus.publish([{ topic, key: 'k', value: 'before' }]);
    await waitFor(() => got.messages.length === 1, { message: 'the message before the outage' });

    await h.outage();
    const started = Date.now();
    const err = await bus.publish([{ topic, key: 'k', value: 'during' }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err) && err.code).toBe('unavailable');
    // Bounded: a relay must learn of the outage in seconds, not block on it.
    expect(Date.now() - started).toBeLessThan(15_000);
    await waitFor(() => events.includes('disconnect'), { timeoutMs: 30_000, message: 'onDisconnect' });
    expect(events).toEqual(['disconnect']);
    const refused = await h
      .makeBus()
      .subscribe(topicName(), () => {})
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isPortcullisError(refused) && refused.code).toBe('unavailable');

    await h.recover();
    await waitFor(
      () =>
        bus.publish([{ topic, key: 'k', value: 'after' }]).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 60_000, intervalMs: 250, message: 'publish to succeed after recovery' },
    );
    await waitFor(() => events.includes('reconnect'), { timeoutMs: 60_000, message: 'onReconnect' });
    await waitFor(() => got.messages.some((m) => m.value === 'after'), {
      timeoutMs: 30_000,
      message: 'the message after the outage',
    });
    expect(events).toEqual(['disconnect', 'reconnect']);
    expect(got.messages.map((m) => m.value)).not.toContain('during');
    await sub.close();
  });
});

describe('postgres transport', () => {
  let db: TestDatabase;
  let bus: Bus;
  const subs: Subscription[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    bus = createBus({ transport: 'postgres', url: db.url }, logger);
  });
  afterAll(async () => {
    await Promise.all(subs.map((s) => s.close()));
    await bus?.close();
    await db?.drop();
  });

  it('never lets a subscriber skip a message under concurrent publishers', async () => {
    // Concurrent transactions commit bigserial ids out of order unless publishers serialise;
    // a subscriber reading `id > cursor` would then skip the late committer for good.
    const topic = topicName();
    const got = collector();
    subs.push(await bus.subscribe(topic, got.handler));
    const publishers = Array.from({ length: 4 }, () =>
      createBus({ transport: 'postgres', url: db.url }, logger),
    );
    const perPublisher = 40;
    await Promise.all(
      publishers.map(async (p, n) => {
        for (let i = 0; i < perPublisher; i++) await p.publish([{ topic, key: `p${n}`, value: `${n}:${i}` }]);
      }),
    );
    await waitFor(() => got.messages.length >= publishers.length * perPublisher, {
      timeoutMs: 20_000,
      message: () => `all ${publishers.length * perPublisher} messages (got ${got.messages.length})`,
    });
    expect(new Set(got.messages.map((m) => m.value)).size).toBe(publishers.length * perPublisher);
    await Promise.all(publishers.map((p) => p.close()));
  });

  it('delivers, after reconnecting, what was published while its connection was down', async () => {
    const topic = topicName();
    const target = new URL(db.url);
    const proxy = new FaultProxy(target.hostname, Number(target.port || 5432));
    await proxy.open();
    const behindProxy = createBus({ transport: 'postgres', url: proxy.urlFor(db.url) }, logger);
    const got = collector();
    let reconnected = false;
    const sub = await behindProxy.subscribe(topic, got.handler, { onReconnect: () => (reconnected = true) });
    await proxy.cut();
    await bus.publish([{ topic, key: 'k', value: 'while-away' }]);
    await proxy.open();
    await waitFor(() => reconnected, { timeoutMs: 20_000, message: 'onReconnect' });
    await waitFor(() => got.messages.length === 1, { message: 'the message published during the outage' });
    expect(got.messages[0]?.value).toBe('while-away');
    await sub.close();
    await behindProxy.close();
    await proxy.cut();
  });

  it('deletes messages older than the retention', async () => {
    const topic = topicName();
    const pruning = createBus(
      { transport: 'postgres', url: db.url, retentionMs: 60_000, retentionCheckMs: 100 },
      logger,
    );
    await pruning.publish([
      { topic, key: 'k', value: 'old' },
      { topic, key: 'k', value: 'fresh' },
    ]);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query(
        "UPDATE bus_messages SET created_at = now() - interval '2 minutes' WHERE topic = $1 AND value = 'old'",
        [topic],
      );
      const values = async (): Promise<string[]> =>
        (
          await client.query<{ value: string }>(
            'SELECT value FROM bus_messages WHERE topic = $1 ORDER BY id',
            [topic],
          )
        ).rows.map((r) => r.value);
      await waitFor(async () => (await values()).length === 1, { message: 'the old message to be pruned' });
      expect(await values()).toEqual(['fresh']);
    } finally {
      await client.end();
      await pruning.close();
    }
  });
});

describe('kafka transport', () => {
  let kafka: TestKafka;
  beforeAll(async () => {
    kafka = await startTestKafka();
  });
  afterAll(async () => {
    await kafka?.dispose();
  });

  it('uses one consumer group per subscription and deletes it on close', async () => {
    const clientId = `groups-${randomUUID().slice(0, 8)}`;
    const bus = createBus({ transport: 'kafka', brokers: kafka.brokers, clientId }, logger);
    const admin = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topic = topicName();
      const subs = await Promise.all([bus.subscribe(topic, () => {}), bus.subscribe(topic, () => {})]);
      const ours = async (): Promise<string[]> =>
        (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${clientId}-`));
      expect(await ours()).toHaveLength(2);
      await Promise.all(subs.map((s) => s.close()));
      expect(await ours()).toEqual([]);
    } finally {
      await admin.disconnect();
      await bus.close();
    }
  });
});
