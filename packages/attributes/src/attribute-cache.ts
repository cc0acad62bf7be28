// A bounded LRU cache of subject and resource attributes with a TTL, invalidated by the PIP's change events.
import {
  type Bus,
  backoffDelay,
  type Component,
  type ComponentStatus,
  type Logger,
  type Subscription,
} from '@portcullis/runtime';
import { ATTRIBUTE_EVENTS_TOPIC, type AttributeChange, decodeAttributeEvent } from './attribute-events.ts';

export interface AttributeKey {
  readonly kind: string;
  readonly id: string;
}

/** A stored record's attributes and version. */
export interface AttributeValue {
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly version: number;
}

/**
 * Where misses are fetched from (the PIP's `Attributes/BatchGet` in production). One answer per
 * key, in order; undefined for a record that does not exist. Rejects when it cannot answer.
 */
export interface AttributeSource {
  batchGet(keys: readonly AttributeKey[]): Promise<(AttributeValue | undefined)[]>;
}

export interface AttributeCacheOptions {
  source: AttributeSource;
  /** Change events arrive here; without a bus, entries change only when their TTL runs out. */
  bus?: Bus;
  /** Most entries kept (default 10 000); the least recently used go first (approximately: see the class). */
  maxEntries?: number;
  /** Longest an entry is served, counted from when its fetch started (default 30 s). */
  ttlMs?: number;
  /** Most keys per source call (default 1000, the PIP's BatchGet limit). */
  maxBatchKeys?: number;
  /** Clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
  logger?: Logger;
  /** Component name for health reporting (default `attribute-cache`). */
  name?: string;
}

export interface AttributeCacheStats {
  size: number;
  hits: number;
  misses: number;
  /** Entries dropped to stay within `maxEntries`. */
  evictions: number;
  /** Entries dropped because a change event named them. */
  invalidations: number;
  /** Source calls made (each for up to `maxBatchKeys` keys). */
  fetches: number;
  /** Changed records named by the events heard on the bus (cached or not). */
  changesHeard: number;
}

interface Entry {
  /** null: the record does not exist (cached too, so repeated lookups of a missing id cost nothing). */
  readonly value: AttributeValue | null;
  readonly expiresAt: number;
}

interface Waiter {
  resolve(value: AttributeValue | undefined): void;
  reject(error: unknown): void;
}

interface Pending {
  key: AttributeKey;
  waiters: Waiter[];
  /** A change event named the key while its fetch was in flight: the answer may predate it. */
  invalidated: boolean;
}

const SEP = '\u0000';

/**
 * The cache enforcement points and PDPs keep in front of the PIP. Contract:
 * - `peek` never waits and never fetches; `get` and `getMany` answer from the cache when they can
 *   (no network round trip, not even a timer) and otherwise fetch the misses in one `batchGet`,
 *   shared by every concurrent caller of the same key.
 * - Staleness is bounded by `ttlMs` whatever the bus does: an entry is never served once
 *   `ttlMs` has passed since its fetch started, even while the bus is down. Change events
 *   (at least once, possibly missed while disconnected) only make updates visible sooner; after
 *   a reconnect the whole cache is dropped, since events of the outage may be lost.
 * - A fetch that a change event overtook is answered to its callers but not cached.
 * - Source failures reject the callers waiting on that fetch; nothing is cached for them.
 * Safe for concurrent use within one event loop.
 */
export class AttributeCache implements Component {
  readonly name: string;
  private readonly source: AttributeSource;
  private readonly bus: Bus | undefined;
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly maxBatchKeys: number;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  /*
   * LRU in two generations (as quick-lru does): hits in `current` cost one lookup and no write;
   * a hit in `previous` moves the entry to `current`; when `current` is full it becomes
   * `previous` and the old `previous` (what nobody used for a whole generation) is dropped.
   * Moving every hit to the end of one Map instead (delete + set) leaves a deleted slot per hit,
   * and V8 rehashes the whole table to reclaim them: tens of µs per hit at 10 000 entries.
   */
  private current = new Map<string, Entry>();
  private previous = new Map<string, Entry>();
  private readonly generationSize: number;
  private readonly pending = new Map<string, Pending>();
  private queued: Pending[] = [];
  private flushScheduled = false;
  private subscription: Subscription | undefined;
  private subscribing: NodeJS.Timeout | undefined;
  private subscribeAttempt = 0;
  private busDown: string | undefined;
  private running = false;
  private readonly counters = {
    hits: 0,
    misses: 0,
    evictions: 0,
    invalidations: 0,
    fetches: 0,
    changesHeard: 0,
  };

  constructor(options: AttributeCacheOptions) {
    this.name = options.name ?? 'attribute-cache';
    this.source = options.source;
    this.bus = options.bus;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxBatchKeys = options.maxBatchKeys ?? 1000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger?.child({ component: this.name });
    this.generationSize = Math.max(1, Math.floor(this.maxEntries / 2));
    for (const [what, value] of [
      ['maxEntries', this.maxEntries],
      ['ttlMs', this.ttlMs],
      ['maxBatchKeys', this.maxBatchKeys],
    ] as const) {
      if (!Number.isInteger(value) || value <= 0)
        throw new RangeError(`AttributeCache ${what} must be a positive integer`);
    }
  }

  /** Subscribes to change events. A bus that is down now is retried in the background (the TTL bounds staleness meanwhile). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.bus !== undefined) await this.subscribe();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.subscribing);
    const subscription = this.subscription;
    this.subscription = undefined;
    await subscription?.close();
  }

  status(): ComponentStatus {
    const size = `${this.size} entries`;
    if (this.bus !== undefined && this.running && this.busDown !== undefined) {
      return {
        state: 'WARN',
        message: `${size}; no change events (bus: ${this.busDown}), entries live up to their TTL`,
      };
    }
    return { state: 'OK', message: size };
  }

  /** The cached answer without waiting: a value, null for a record known not to exist, undefined on a miss. */
  peek(kind: string, id: string): AttributeValue | null | undefined {
    const key = kind + SEP + id;
    let entry = this.current.get(key);
    if (entry === undefined) {
      entry = this.previous.get(key);
      if (entry === undefined) return undefined;
      this.previous.delete(key);
      if (this.now() >= entry.expiresAt) return undefined;
      this.insert(key, entry);
      return entry.value;
    }
    if (this.now() >= entry.expiresAt) {
      this.current.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** The record's attributes, or undefined when it does not exist. */
  get(kind: string, id: string): Promise<AttributeValue | undefined> {
    const cached = this.peek(kind, id);
    if (cached !== undefined) {
      this.counters.hits++;
      return Promise.resolve(cached ?? undefined);
    }
    this.counters.misses++;
    return new Promise((resolve, reject) => this.enqueue({ kind, id }, { resolve, reject }));
  }

  /** One answer per key, in order; the misses go to the source in as few calls as the batch limit allows. */
  getMany(keys: readonly AttributeKey[]): Promise<(AttributeValue | undefined)[]> {
    const out: (AttributeValue | undefined)[] = new Array(keys.length);
    let misses: Promise<void>[] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const { kind, id } = keys[i]!;
      const cached = this.peek(kind, id);
      if (cached !== undefined) {
        this.counters.hits++;
        out[i] = cached ?? undefined;
        continue;
      }
      this.counters.misses++;
      misses ??= [];
      misses.push(
        new Promise<AttributeValue | undefined>((resolve, reject) =>
          this.enqueue({ kind, id }, { resolve, reject }),
        ).then((value) => {
          out[i] = value;
        }),
      );
    }
    // All hits: one resolved promise, no per-key promise.
    return misses === undefined ? Promise.resolve(out) : Promise.all(misses).then(() => out);
  }

  /** Drops the entries the changes name (an event handler; also for callers that know better). */
  invalidate(changes: readonly AttributeKey[]): void {
    for (const { kind, id } of changes) {
      const key = kind + SEP + id;
      if (this.current.delete(key) || this.previous.delete(key)) this.counters.invalidations++;
      const pending = this.pending.get(key);
      if (pending !== undefined) pending.invalidated = true;
    }
  }

  /** Drops every entry; fetches in flight are not cached when they land. */
  clear(): void {
    this.current = new Map();
    this.previous = new Map();
    for (const pending of this.pending.values()) pending.invalidated = true;
  }

  stats(): AttributeCacheStats {
    return { size: this.size, ...this.counters };
  }

  private enqueue(key: AttributeKey, waiter: Waiter): void {
    const k = key.kind + SEP + key.id;
    const existing = this.pending.get(k);
    if (existing !== undefined) {
      existing.waiters.push(waiter);
      return;
    }
    const pending: Pending = { key, waiters: [waiter], invalidated: false };
    this.pending.set(k, pending);
    this.queued.push(pending);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Misses requested in the same turn of the event loop go out together.
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.queued;
    this.queued = [];
    for (let i = 0; i < queued.length; i += this.maxBatchKeys) {
      void this.fetch(queued.slice(i, i + this.maxBatchKeys));
    }
  }

  private async fetch(batch: Pending[]): Promise<void> {
    const started = this.now();
    this.counters.fetches++;
    let values: (AttributeValue | undefined)[];
    try {
      values = await this.source.batchGet(batch.map((p) => p.key));
      if (values.length !== batch.length) {
        throw new Error(`the attribute source answered ${values.length} records for ${batch.length} keys`);
      }
    } catch (error) {
      for (const p of batch) {
        this.pending.delete(p.key.kind + SEP + p.key.id);
        for (const w of p.waiters) w.reject(error);
      }
      return;
    }
    batch.forEach((p, i) => {
      const key = p.key.kind + SEP + p.key.id;
      this.pending.delete(key);
      const value = values[i];
      if (!p.invalidated) this.store(key, { value: value ?? null, expiresAt: started + this.ttlMs });
      for (const w of p.waiters) w.resolve(value);
    });
  }

  private get size(): number {
    return this.current.size + this.previous.size;
  }

  private store(key: string, entry: Entry): void {
    this.previous.delete(key);
    this.insert(key, entry);
  }

  /** Puts an entry absent from `previous` into `current`, starting a new generation when it is full. */
  private insert(key: string, entry: Entry): void {
    if (!this.current.has(key) && this.current.size >= this.generationSize) {
      this.counters.evictions += this.previous.size;
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, entry);
  }

  private onChanges(changes: readonly AttributeChange[]): void {
    this.counters.changesHeard += changes.length;
    this.invalidate(changes);
  }

  private async subscribe(): Promise<void> {
    const bus = this.bus;
    if (bus === undefined || !this.running) return;
    try {
      const subscription = await bus.subscribe(
        ATTRIBUTE_EVENTS_TOPIC,
        (message) => {
          const event = decodeAttributeEvent(message.value);
          if (event !== undefined) this.onChanges(event.changes);
        },
        {
          onDisconnect: (err) => {
            this.busDown = err instanceof Error ? err.message : String(err);
          },
          onReconnect: () => {
            this.busDown = undefined;
            // Events published during the outage may be lost: start again from the source.
            this.clear();
          },
        },
      );
      if (!this.running) {
        await subscription.close();
        return;
      }
      this.subscription = subscription;
      this.busDown = undefined;
      this.subscribeAttempt = 0;
      // Changes made before the subscription existed were not heard: drop what was fetched meanwhile.
      this.clear();
    } catch (err) {
      this.busDown = err instanceof Error ? err.message : String(err);
      this.logger?.warn(
        { err },
        'cannot subscribe to attribute events; retrying (entries live up to their TTL)',
      );
      const delay = backoffDelay(this.subscribeAttempt++, { initialMs: 200, maxMs: 30_000 });
      this.subscribing = setTimeout(() => void this.subscribe(), delay);
      this.subscribing.unref();
    }
  }
}
