// Ships decision logs to the bus in batches from a bounded buffer, never blocking the decision path.
import type { Logger } from 'pino';
import { backoffDelay } from './bus/backoff.ts';
import { type Bus, type BusMessage, TOPICS } from './bus.ts';
import type { Component, ComponentStatus } from './lifecycle.ts';
import { Counter, Gauge, type Registry } from './metrics.ts';

/** One decision as it goes to the decision-log topic (field names follow OPA's decision logs). */
export interface DecisionLogEntry {
  decision_id: string;
  /** RFC 3339 time of the decision. */
  timestamp: string;
  path: string;
  input: unknown;
  result: unknown;
  bundle: string;
  revision: number;
  digest: string;
  eval_ns: number;
  labels?: Record<string, string>;
}

/** What is published: the entry, its input redacted, and (like OPA) which pointers were erased. */
export type ShippedDecisionLogEntry = DecisionLogEntry & { erased?: string[] };

/** Credentials that must never leave the PDP in a log: Envoy's request headers, lower-cased. */
export const DEFAULT_DECISION_LOG_REDACT = [
  '/attributes/request/http/headers/authorization',
  '/attributes/request/http/headers/cookie',
  // A plain (non-Envoy) input carries its bearer token here when the PDP enriches identity.
  '/token',
];

export interface DecisionLoggerOptions {
  bus: Bus;
  /** Default `portcullis.decision.logs`. */
  topic?: string;
  /** Entries held at most; beyond, new entries are dropped and counted (default 10 000). */
  maxBuffer?: number;
  /** Entries per publish (default 500). */
  batchSize?: number;
  /** A partial batch is sent after at most this long (default 1 s). */
  flushIntervalMs?: number;
  /** JSON pointers (RFC 6901) into `input` to erase before shipping. */
  redact?: string[];
  /** A serialised entry larger than this is dropped, not sent (default 512 KiB). */
  maxEntryBytes?: number;
  /** Ceiling of the retry backoff while the bus fails (default 30 s). */
  maxBackoffMs?: number;
  /** How long `stop` keeps trying to send what is buffered (default 5 s). */
  stopTimeoutMs?: number;
  metrics: { registry: Registry };
  logger?: Logger;
}

/** Parses an RFC 6901 pointer; '' (the whole input) is refused, as erasing it would erase the log. */
export function parseJsonPointer(pointer: string): string[] {
  if (!pointer.startsWith('/'))
    throw new Error(`invalid JSON pointer ${JSON.stringify(pointer)}: must start with '/'`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

const MISSING = Symbol('missing');

/** Returns `node` with the target erased, copying only the containers on the path; MISSING if absent. */
function eraseAt(node: unknown, tokens: string[], i: number): unknown {
  if (typeof node !== 'object' || node === null) return MISSING;
  const token = tokens[i]!;
  const last = i === tokens.length - 1;
  if (Array.isArray(node)) {
    if (!/^(0|[1-9]\d*)$/.test(token)) return MISSING;
    const index = Number(token);
    if (index >= node.length) return MISSING;
    // An element is nulled, not removed, so the indices of its siblings keep their meaning.
    const child = last ? null : eraseAt(node[index], tokens, i + 1);
    if (child === MISSING) return MISSING;
    const copy = node.slice();
    copy[index] = child;
    return copy;
  }
  const obj = node as Record<string, unknown>;
  if (!Object.hasOwn(obj, token)) return MISSING;
  if (last) {
    const { [token]: _erased, ...rest } = obj;
    return rest;
  }
  const child = eraseAt(obj[token], tokens, i + 1);
  if (child === MISSING) return MISSING;
  return { ...obj, [token]: child };
}

/**
 * The entry with every pointer erased from its input. Copy-on-write: the caller's input is never
 * modified, and branches that hold nothing to erase are shared, not copied.
 */
export function redactDecisionLogEntry(
  entry: DecisionLogEntry,
  pointers: readonly string[][],
): ShippedDecisionLogEntry {
  let input = entry.input;
  const erased: string[] = [];
  for (const tokens of pointers) {
    const next = eraseAt(input, tokens, 0);
    if (next === MISSING) continue;
    input = next;
    erased.push(`/input/${tokens.map((t) => t.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`);
  }
  return erased.length === 0 ? entry : { ...entry, input, erased };
}

interface LoggerMetrics {
  dropped: Counter<'reason'>;
  sent: Counter;
  failures: Counter;
}

/** Per registry, the loggers whose decision-path drop counts its counter must collect. */
const dropSyncers = new WeakMap<Registry, Set<() => void>>();

function syncersOf(registry: Registry): Set<() => void> {
  let set = dropSyncers.get(registry);
  if (!set) {
    set = new Set();
    dropSyncers.set(registry, set);
  }
  return set;
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * The decision-log shipper. `log` only appends to a ring buffer (O(1), no I/O, no
 * serialisation); a background flusher redacts, serialises and publishes batches.
 *
 * Failure policy: when a publish fails the batch stays at the head of the buffer and is retried
 * with backoff, so a short bus outage loses nothing. The buffer stays bounded meanwhile: once it
 * is full, new decisions are dropped and counted (`reason="buffer_full"`), i.e. a long outage
 * keeps the oldest entries and drops the newest. Entries that could never be sent (not
 * serialisable, or larger than `maxEntryBytes`) are dropped and counted rather than retried, so
 * one bad entry cannot stall the log. A publish that fails after the bus accepted it is retried,
 * so consumers may see an entry twice (dedupe on `decision_id`).
 *
 * Ownership: the logger keeps a reference to the entry (and its input) until it is sent; the
 * caller must not mutate them after `log`.
 */
export class DecisionLogger implements Component {
  readonly name = 'decision-logger';
  private readonly bus: Bus;
  private readonly topic: string;
  private readonly capacity: number;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly pointers: string[][];
  private readonly maxEntryBytes: number;
  private readonly maxBackoffMs: number;
  private readonly stopTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly metrics: LoggerMetrics;
  /** Drops for a full buffer not yet added to the counter: a plain increment on the decision path. */
  private unsyncedFullDrops = 0;
  private readonly syncer = (): void => this.syncDrops();
  private readonly registry: Registry;
  private readonly ring: (DecisionLogEntry | undefined)[];
  private head = 0;
  private count = 0;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private kickScheduled = false;
  private failure: { since: number; error: string } | undefined;
  private attempt = 0;
  private retryAt = 0;

  constructor(opts: DecisionLoggerOptions) {
    this.bus = opts.bus;
    this.topic = opts.topic ?? TOPICS.decisionLogs;
    this.capacity = opts.maxBuffer ?? 10_000;
    this.batchSize = opts.batchSize ?? 500;
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.pointers = (opts.redact ?? DEFAULT_DECISION_LOG_REDACT).map(parseJsonPointer);
    this.maxEntryBytes = opts.maxEntryBytes ?? 512 * 1024;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 5000;
    this.logger = opts.logger?.child({ component: 'decision-logger' });
    if (this.capacity < 1 || this.batchSize < 1)
      throw new Error('maxBuffer and batchSize must be at least 1');
    this.ring = new Array<DecisionLogEntry | undefined>(this.capacity);

    const { registry } = opts.metrics;
    this.registry = registry;
    const registers = [registry];
    this.metrics = {
      dropped: metric(
        registry,
        'portcullis_decision_logs_dropped_total',
        () =>
          new Counter({
            name: 'portcullis_decision_logs_dropped_total',
            help: 'Decision log entries dropped, by reason (buffer_full, too_large, unserializable, stopped).',
            labelNames: ['reason'],
            registers,
            // Brings in the drops counted on the decision path, so a scrape is exact.
            collect: () => {
              for (const sync of syncersOf(registry)) sync();
            },
          }),
      ),
      sent: metric(
        registry,
        'portcullis_decision_logs_sent_total',
        () =>
          new Counter({
            name: 'portcullis_decision_logs_sent_total',
            help: 'Decision log entries the bus acknowledged.',
            registers,
          }),
      ),
      failures: metric(
        registry,
        'portcullis_decision_logs_publish_failures_total',
        () =>
          new Counter({
            name: 'portcullis_decision_logs_publish_failures_total',
            help: 'Decision log batches the bus rejected (they stay buffered and are retried).',
            registers,
          }),
      ),
    };
    syncersOf(registry).add(this.syncer);
    if (!registry.getSingleMetric('portcullis_decision_logs_buffered')) {
      // Read at scrape time, so `log` does not pay for a gauge update.
      const gauge: Gauge = new Gauge({
        name: 'portcullis_decision_logs_buffered',
        help: 'Decision log entries waiting to be sent.',
        registers,
        collect: () => gauge.set(this.count),
      });
    }
  }

  /** Buffers one decision; false if it was dropped. Synchronous, O(1), never throws. */
  log(entry: DecisionLogEntry): boolean {
    if (this.state === 'stopped') {
      this.metrics.dropped.inc({ reason: 'stopped' });
      return false;
    }
    if (this.count === this.capacity) {
      this.unsyncedFullDrops++;
      return false;
    }
    this.ring[(this.head + this.count) % this.capacity] = entry;
    this.count++;
    if (this.count >= this.batchSize && this.state === 'running' && !this.kickScheduled) {
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        this.kick();
      });
    }
    return true;
  }

  private syncDrops(): void {
    if (this.unsyncedFullDrops === 0) return;
    this.metrics.dropped.inc({ reason: 'buffer_full' }, this.unsyncedFullDrops);
    this.unsyncedFullDrops = 0;
  }

  /** Entries waiting to be sent. */
  get buffered(): number {
    return this.count;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.timer = setInterval(() => this.kick(), this.flushIntervalMs);
    this.timer.unref();
    if (this.count >= this.batchSize) this.kick();
  }

  /** Stops accepting entries and tries, for up to `stopTimeoutMs`, to send what is buffered. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    clearInterval(this.timer);
    this.syncDrops();
    syncersOf(this.registry).delete(this.syncer);
    const deadline = Date.now() + this.stopTimeoutMs;
    while (this.count > 0 && Date.now() < deadline) {
      const before = this.count;
      await this.exclusive(() => this.flushOnce());
      if (this.count >= before) break; // the bus is failing: no point in spinning until the deadline
    }
    if (this.count > 0) {
      this.logger?.warn({ dropped: this.count }, 'decision logs still buffered at stop were dropped');
      this.metrics.dropped.inc({ reason: 'stopped' }, this.count);
      this.ring.fill(undefined);
      this.head = 0;
      this.count = 0;
    }
  }

  status(): ComponentStatus {
    if (this.state === 'new') return { state: 'NOT_READY', message: 'not started' };
    if (this.state === 'stopped') return { state: 'NOT_READY', message: 'stopped' };
    if (this.failure) {
      const seconds = Math.round((Date.now() - this.failure.since) / 1000);
      return {
        state: 'WARN',
        message: `bus publish failing for ${seconds}s, ${this.count}/${this.capacity} buffered: ${this.failure.error}`,
      };
    }
    return { state: 'OK', message: `${this.count} buffered` };
  }

  /** Sends everything buffered now (tests, shutdown); resolves when the buffer is empty or a publish fails. */
  async flush(): Promise<void> {
    while (this.count > 0) {
      const before = this.count;
      await this.exclusive(() => this.flushOnce());
      if (this.count >= before) return;
    }
  }

  private kick(): void {
    if (this.flushing || this.count === 0 || Date.now() < this.retryAt) return;
    void this.exclusive(() => this.drain());
  }

  /** One flusher at a time: two would read the same head of the buffer and send it twice. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = (this.flushing ?? Promise.resolve()).then(fn);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.flushing = settled;
    void settled.then(() => {
      if (this.flushing === settled) this.flushing = undefined;
    });
    return result;
  }

  /** Sends full batches back to back, then the remainder; stops at the first failure. */
  private async drain(): Promise<void> {
    while (this.count > 0 && this.state === 'running') {
      const n = Math.min(this.batchSize, this.count);
      if (!(await this.flushOnce())) return;
      if (n < this.batchSize) return;
    }
  }

  /** Publishes the batch at the head; removes it only once the bus acknowledged. */
  private async flushOnce(): Promise<boolean> {
    const n = Math.min(this.batchSize, this.count);
    if (n === 0) return true;
    const messages: BusMessage[] = [];
    const drops: Record<'too_large' | 'unserializable', number> = { too_large: 0, unserializable: 0 };
    for (let i = 0; i < n; i++) {
      const entry = this.ring[(this.head + i) % this.capacity]!;
      let value: string;
      try {
        value = JSON.stringify(redactDecisionLogEntry(entry, this.pointers));
      } catch {
        drops.unserializable++;
        continue;
      }
      if (Buffer.byteLength(value) > this.maxEntryBytes) {
        drops.too_large++;
        continue;
      }
      messages.push({ topic: this.topic, key: entry.decision_id, value });
    }
    try {
      if (messages.length > 0) await this.bus.publish(messages);
    } catch (err) {
      this.metrics.failures.inc();
      const error = err instanceof Error ? err.message : String(err);
      if (!this.failure)
        this.logger?.warn({ err }, 'decision log publish failed; keeping the batch and retrying');
      this.failure = { since: this.failure?.since ?? Date.now(), error };
      this.retryAt = Date.now() + backoffDelay(this.attempt++, { initialMs: 200, maxMs: this.maxBackoffMs });
      return false;
    }
    for (let i = 0; i < n; i++) this.ring[(this.head + i) % this.capacity] = undefined;
    this.head = (this.head + n) % this.capacity;
    this.count -= n;
    this.metrics.sent.inc(messages.length);
    for (const reason of ['too_large', 'unserializable'] as const) {
      if (drops[reason] > 0) this.metrics.dropped.inc({ reason }, drops[reason]);
    }
    if (this.failure) this.logger?.info('decision log publishing recovered');
    this.failure = undefined;
    this.attempt = 0;
    this.retryAt = 0;
    return true;
  }
}
