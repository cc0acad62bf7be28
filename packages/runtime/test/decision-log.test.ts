// The decision-log shipper: redaction, batching over a real bus, and bounded buffering when the bus is stuck.
import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Bus,
  type BusMessage,
  createBus,
  createLogger,
  DEFAULT_DECISION_LOG_REDACT,
  type DecisionLogEntry,
  DecisionLogger,
  PortcullisError,
  parseJsonPointer,
  Registry,
  redactDecisionLogEntry,
  type ShippedDecisionLogEntry,
} from '../src/index.ts';

const logger = createLogger('decision-log-test', process.env.TEST_LOG_LEVEL ?? 'silent');

function envoyInput(): Record<string, unknown> {
  return {
    attributes: {
      request: {
        http: {
          method: 'GET',
          path: '/api/orders',
          headers: {
            authorization: 'Bearer secret',
            cookie: 'session=abc',
            'x-request-id': 'r-1',
            'a/b': 'slash',
          },
        },
      },
      source: { principal: 'spiffe://cluster.local/ns/default/sa/web' },
    },
    parsed_path: ['api', 'orders'],
    list: [{ token: 't0' }, { token: 't1' }],
  };
}

let n = 0;
function entry(input: unknown = envoyInput()): DecisionLogEntry {
  n++;
  return {
    decision_id: `d-${n}-${randomUUID().slice(0, 8)}`,
    timestamp: new Date().toISOString(),
    path: 'envoy/authz/allow',
    input,
    result: true,
    bundle: 'envoy',
    revision: 3,
    digest: 'f'.repeat(64),
    eval_ns: 12_345,
  };
}

/** Fault injection around a bus: fail, or hang until released; records acknowledged batches. */
class FaultyBus implements Bus {
  readonly transport: Bus['transport'];
  failing = false;
  gate: Promise<void> | undefined;
  attempts = 0;
  readonly batches: BusMessage[][] = [];

  constructor(private readonly inner?: Bus) {
    this.transport = inner?.transport ?? 'postgres';
  }

  async publish(messages: BusMessage[]): Promise<void> {
    this.attempts++;
    await this.gate;
    if (this.failing) throw new PortcullisError('unavailable', 'injected bus failure');
    await this.inner?.publish(messages);
    this.batches.push(messages);
  }

  subscribe: Bus['subscribe'] = (...args) => {
    if (!this.inner) throw new Error('no inner bus');
    return this.inner.subscribe(...args);
  };

  async close(): Promise<void> {}
}

async function counter(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const match = metric?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return match?.value ?? 0;
}

const shipped = (m: BusMessage): ShippedDecisionLogEntry => JSON.parse(m.value) as ShippedDecisionLogEntry;

describe('redaction', () => {
  it.each([
    {
      name: 'the default pointers erase credentials and keep the rest',
      pointers: DEFAULT_DECISION_LOG_REDACT,
      erased: [
        '/input/attributes/request/http/headers/authorization',
        '/input/attributes/request/http/headers/cookie',
      ],
      headers: { 'x-request-id': 'r-1', 'a/b': 'slash' },
    },
    {
      name: 'a pointer to something absent changes nothing',
      pointers: ['/attributes/request/http/headers/x-api-key', '/parsed_path/7', '/nothing/here'],
      erased: [],
      headers: {
        authorization: 'Bearer secret',
        cookie: 'session=abc',
        'x-request-id': 'r-1',
        'a/b': 'slash',
      },
    },
    {
      name: '~1 in a pointer is a slash in a key',
      pointers: ['/attributes/request/http/headers/a~1b'],
      erased: ['/input/attributes/request/http/headers/a~1b'],
      headers: { authorization: 'Bearer secret', cookie: 'session=abc', 'x-request-id': 'r-1' },
    },
  ])('$name', ({ pointers, erased, headers }) => {
    const input = envoyInput();
    const before = structuredClone(input);
    const original = entry(input);
    const out = redactDecisionLogEntry(original, pointers.map(parseJsonPointer));
    const outInput = out.input as ReturnType<typeof envoyInput> & {
      attributes: { request: { http: { headers: unknown } } };
    };
    expect(outInput.attributes.request.http.headers).toEqual(headers);
    expect(out.erased ?? []).toEqual(erased);
    // The caller's input is untouched, and untouched branches are shared rather than copied.
    expect(input).toEqual(before);
    expect(outInput.parsed_path).toBe(input.parsed_path);
    expect((outInput.attributes as Record<string, unknown>).source).toBe(
      (input.attributes as Record<string, unknown>).source,
    );
    if (erased.length === 0) expect(out).toBe(original);
  });

  it('nulls an array element instead of shifting its siblings', () => {
    const input = envoyInput();
    const out = redactDecisionLogEntry(entry(input), [
      parseJsonPointer('/list/0/token'),
      parseJsonPointer('/list/1'),
    ]);
    expect((out.input as { list: unknown[] }).list).toEqual([{}, null]);
    expect(input.list).toEqual([{ token: 't0' }, { token: 't1' }]);
  });

  it.each(['', 'attributes/request', '#/a'])('refuses the pointer %j', (pointer) => {
    expect(() => parseJsonPointer(pointer)).toThrow(/JSON pointer/);
  });
});

describe('decision logger', () => {
  let db: TestDatabase;
  let bus: Bus;

  beforeAll(async () => {
    db = await createTestDatabase();
    bus = createBus({ transport: 'postgres', url: db.url }, logger);
  });
  afterAll(async () => {
    await bus?.close();
    await db?.drop();
  });

  it('publishes in batches of batchSize, a partial batch on its interval, redacted, over a real bus', async () => {
    const topic = `decisions.${randomUUID()}`;
    const received: BusMessage[] = [];
    const sub = await bus.subscribe(topic, (m) => void received.push(m));
    const recording = new FaultyBus(bus);
    const registry = new Registry();
    const dl = new DecisionLogger({
      bus: recording,
      topic,
      batchSize: 50,
      flushIntervalMs: 300,
      metrics: { registry },
    });
    await dl.start();
    const entries = Array.from({ length: 120 }, () => entry());
    for (const e of entries) expect(dl.log(e)).toBe(true);
    await waitFor(() => received.length === entries.length, { message: 'every entry at the subscriber' });
    expect(recording.batches.map((b) => b.length)).toEqual([50, 50, 20]);
    expect(received.map((m) => m.key)).toEqual(entries.map((e) => e.decision_id));
    const first = shipped(received[0]!);
    expect(first.erased).toEqual([
      '/input/attributes/request/http/headers/authorization',
      '/input/attributes/request/http/headers/cookie',
    ]);
    expect(JSON.stringify(received.map(shipped))).not.toMatch(/Bearer secret|session=abc/);
    expect({ ...first, input: undefined, erased: undefined }).toEqual({ ...entries[0], input: undefined });
    expect(await counter(registry, 'portcullis_decision_logs_sent_total')).toBe(120);
    expect(await counter(registry, 'portcullis_decision_logs_dropped_total')).toBe(0);
    expect(dl.status()).toEqual({ state: 'OK', message: '0 buffered' });

    // Fewer than a batch: nothing triggers a send but the interval.
    for (let i = 0; i < 3; i++) dl.log(entry());
    await waitFor(() => received.length === entries.length + 3, { message: 'the partial batch' });
    expect(recording.batches.map((b) => b.length)).toEqual([50, 50, 20, 3]);
    await dl.stop();
    await sub.close();
  });

  it('drops and counts what does not fit while the bus is stuck, without blocking log()', async () => {
    const stuck = new FaultyBus();
    let release!: () => void;
    stuck.gate = new Promise((resolve) => (release = resolve));
    const registry = new Registry();
    const dl = new DecisionLogger({
      bus: stuck,
      batchSize: 5,
      maxBuffer: 10,
      flushIntervalMs: 50,
      metrics: { registry },
    });
    await dl.start();
    const accepted = Array.from({ length: 10 }, () => dl.log(entry()));
    expect(accepted.every(Boolean)).toBe(true);
    await waitFor(() => stuck.attempts === 1, { message: 'the first batch to be in flight' });
    // The in-flight batch still occupies the buffer until the bus acknowledges it.
    const overflow = Array.from({ length: 1000 }, () => dl.log(entry()));
    expect(overflow.filter(Boolean)).toHaveLength(0);
    expect(dl.buffered).toBe(10);
    expect(await counter(registry, 'portcullis_decision_logs_dropped_total', { reason: 'buffer_full' })).toBe(
      1000,
    );
    expect(await counter(registry, 'portcullis_decision_logs_buffered')).toBe(10);

    release();
    await waitFor(() => dl.buffered === 0, { message: 'the buffer to drain' });
    expect(stuck.batches.map((b) => b.length)).toEqual([5, 5]);
    expect(await counter(registry, 'portcullis_decision_logs_sent_total')).toBe(10);
    expect(dl.log(entry())).toBe(true);
    await dl.stop();
  });

  it('keeps a failed batch, reports WARN, and sends it when the bus is back', async () => {
    const flaky = new FaultyBus();
    flaky.failing = true;
    const registry = new Registry();
    const dl = new DecisionLogger({
      bus: flaky,
      batchSize: 4,
      flushIntervalMs: 20,
      maxBackoffMs: 100,
      metrics: { registry },
      logger,
    });
    await dl.start();
    const entries = Array.from({ length: 6 }, () => entry());
    for (const e of entries) dl.log(e);
    await waitFor(() => flaky.attempts >= 2, { message: 'repeated failures' });
    expect(dl.status().state).toBe('WARN');
    expect(dl.status().message).toContain('6/10000 buffered');
    expect(await counter(registry, 'portcullis_decision_logs_publish_failures_total')).toBeGreaterThanOrEqual(
      2,
    );
    expect(dl.buffered).toBe(6);

    flaky.failing = false;
    await waitFor(() => dl.buffered === 0, { message: 'the buffer to drain' });
    expect(flaky.batches.flat().map((m) => m.key)).toEqual(entries.map((e) => e.decision_id));
    expect(dl.status().state).toBe('OK');
    await dl.stop();
  });

  it.each([
    {
      reason: 'too_large',
      bad: (): DecisionLogEntry => entry({ blob: 'x'.repeat(4096) }),
    },
    {
      reason: 'unserializable',
      bad: (): DecisionLogEntry => entry({ n: 10n }),
    },
  ])('drops an entry that can never be sent ($reason) instead of stalling', async ({ reason, bad }) => {
    const recording = new FaultyBus();
    const registry = new Registry();
    const dl = new DecisionLogger({
      bus: recording,
      batchSize: 3,
      maxEntryBytes: 2048,
      metrics: { registry },
    });
    await dl.start();
    const good = [entry(), entry()];
    dl.log(good[0]!);
    dl.log(bad());
    dl.log(good[1]!);
    await dl.flush();
    expect(recording.batches.flat().map((m) => m.key)).toEqual(good.map((e) => e.decision_id));
    expect(await counter(registry, 'portcullis_decision_logs_dropped_total', { reason })).toBe(1);
    await dl.stop();
  });

  it('sends what is buffered on stop, then refuses and counts new entries', async () => {
    const recording = new FaultyBus();
    const registry = new Registry();
    const dl = new DecisionLogger({ bus: recording, flushIntervalMs: 600_000, metrics: { registry } });
    await dl.start();
    dl.log(entry());
    dl.log(entry());
    await dl.stop();
    expect(recording.batches.map((b) => b.length)).toEqual([2]);
    expect(dl.log(entry())).toBe(false);
    expect(await counter(registry, 'portcullis_decision_logs_dropped_total', { reason: 'stopped' })).toBe(1);
    expect(dl.status().state).toBe('NOT_READY');
  });
});
