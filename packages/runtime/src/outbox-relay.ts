// Publishes a service's outbox rows to the bus in id order, marking each only after the bus acknowledged it.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffDelay } from './bus/backoff.ts';
import type { Bus } from './bus.ts';
import { type Pool, type PoolClient, withTransaction } from './db.ts';
import type { Component, ComponentStatus } from './lifecycle.ts';
import { Counter, Gauge, Histogram, type Registry } from './metrics.ts';

/*
 * What the relay guarantees, and what it does not.
 *
 * - At least once. A row is marked `published_at` in the same transaction that read it, after
 *   `bus.publish` resolved. If the process dies, or the commit fails, between the bus's ack and
 *   that commit, the row is published again by the next pass: consumers see duplicates (the PDP
 *   ignores an event whose activation_seq it has already applied; PIP caches merely drop an entry
 *   twice), never a gap.
 * - In id order, one relay at a time. Each pass takes a transaction-scoped advisory lock
 *   (`pg_try_advisory_xact_lock`); a replica that does not get it skips the pass. Inside, the
 *   batch is read `ORDER BY id ... FOR UPDATE` and published in one call, and a later batch
 *   starts only after the earlier one is committed, so the bus sees rows in id order and two
 *   replicas never publish the same row at the same time.
 * - Per-key order holds when the writer serialises changes of one key (the PAP locks the bundle
 *   row; every PIP write locks the record's row), so their outbox ids are allocated and
 *   committed in change order. Across keys, ids may commit out of order (id 11 before id 10): the
 *   relay then publishes 11 in one pass and 10 in the next. Nothing is skipped (it reads
 *   "unpublished", not "after a cursor"), but the cross-key order on the bus is commit order.
 * - Not a delivery guarantee to each consumer. Once the bus has the event, a consumer that was
 *   disconnected may still miss it; its reconcile on reconnect is what makes every one converge.
 * - While the bus is down rows wait in the table, retried with capped backoff; the component
 *   reports WARN with the backlog. A row that the bus rejects forever (none today: events are
 *   small) would hold back every row after it, by design: skipping it would break the order.
 */

export interface OutboxRelayOptions {
  pool: Pool;
  /**
   * The outbox table: `id bigserial, topic text, key text, payload jsonb, created_at timestamptz,
   * published_at timestamptz` (default `outbox`). Services sharing a database use their own table.
   */
  table?: string;
  /** The channel the writer NOTIFYs after committing rows (default `portcullis_outbox`). */
  notifyChannel?: string;
  bus: Bus;
  logger: Logger;
  metrics: { registry: Registry };
  /** Rows per publish call (default 100). */
  batchSize?: number;
  /** Backstop poll besides the NOTIFY doorbell (default 1 s). */
  pollIntervalMs?: number;
  /** Ceiling of the retry backoff while the bus or the database fails (default 30 s). */
  maxBackoffMs?: number;
}

/** The default channel a writer notifies after committing outbox rows. */
export const OUTBOX_NOTIFY_CHANNEL = 'portcullis_outbox';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** The same in every replica and different per table: it names "the relay of this outbox" to Postgres. */
function relayLockKey(table: string): string {
  // The PAP's relay predates the option; its key stays what it was so mixed versions still exclude each other.
  if (table === 'outbox') return '7411580253718356519';
  return createHash('sha256')
    .update(`portcullis-outbox-relay:${table}`)
    .digest()
    .readBigInt64BE(0)
    .toString();
}

const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface RelayMetrics {
  published: Counter;
  failures: Counter;
  backlog: Gauge;
  lag: Histogram;
}

/** Several relays in one process (tests) share one registry: reuse a metric already registered. */
function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

function relayMetrics(registry: Registry): RelayMetrics {
  const registers = [registry];
  return {
    published: metric(
      registry,
      'portcullis_outbox_published_total',
      () =>
        new Counter({
          name: 'portcullis_outbox_published_total',
          help: 'Outbox rows published to the bus.',
          registers,
        }),
    ),
    failures: metric(
      registry,
      'portcullis_outbox_publish_failures_total',
      () =>
        new Counter({
          name: 'portcullis_outbox_publish_failures_total',
          help: 'Publish attempts of an outbox batch that the bus rejected.',
          registers,
        }),
    ),
    backlog: metric(
      registry,
      'portcullis_outbox_backlog',
      () =>
        new Gauge({ name: 'portcullis_outbox_backlog', help: 'Outbox rows not yet published.', registers }),
    ),
    lag: metric(
      registry,
      'portcullis_outbox_publish_lag_seconds',
      () =>
        new Histogram({
          name: 'portcullis_outbox_publish_lag_seconds',
          help: 'Time from an outbox row being written to it being marked published.',
          buckets: LAG_BUCKETS,
          registers,
        }),
    ),
  };
}

class BusPublishError extends Error {
  override name = 'BusPublishError';
}

interface PassResult {
  /** Rows published in this pass. */
  published: number;
  /** The batch was full: more rows are probably waiting. */
  full: boolean;
}

export class OutboxRelay implements Component {
  readonly name = 'outbox-relay';
  private readonly opts: Required<Omit<OutboxRelayOptions, 'metrics'>>;
  private readonly lockKey: string;
  private readonly metrics: RelayMetrics;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private pendingWake = false;
  private sleepTimer: NodeJS.Timeout | undefined;
  private listener: PoolClient | undefined;
  private listenTimer: NodeJS.Timeout | undefined;
  private listenAttempt = 0;
  private failure: { since: number; error: string; bus: boolean } | undefined;
  private backlog = 0;
  private attempt = 0;

  constructor(opts: OutboxRelayOptions) {
    const table = opts.table ?? 'outbox';
    const notifyChannel = opts.notifyChannel ?? OUTBOX_NOTIFY_CHANNEL;
    // Both are interpolated into SQL: only plain lower-case identifiers are accepted.
    for (const [what, value] of [
      ['table', table],
      ['notifyChannel', notifyChannel],
    ]) {
      if (!IDENTIFIER.test(value ?? '')) throw new Error(`OutboxRelay ${what} must be a plain identifier`);
    }
    this.lockKey = relayLockKey(table);
    this.opts = {
      pool: opts.pool,
      table,
      notifyChannel,
      bus: opts.bus,
      logger: opts.logger.child({ component: 'outbox-relay', table }),
      batchSize: opts.batchSize ?? 100,
      pollIntervalMs: opts.pollIntervalMs ?? 1000,
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
    };
    this.metrics = relayMetrics(opts.metrics.registry);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    void this.listen();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.listenTimer);
    this.wakeUp();
    await this.loop;
    this.loop = undefined;
    const listener = this.listener;
    this.listener = undefined;
    // Destroyed, not returned to the pool: a pooled connection must not stay subscribed.
    listener?.release(true);
  }

  status(): ComponentStatus {
    if (!this.running) return { state: 'NOT_READY', message: this.loop ? 'stopping' : 'not running' };
    if (this.failure) {
      const seconds = Math.round((Date.now() - this.failure.since) / 1000);
      const what = this.failure.bus ? 'bus publish failing' : 'outbox unreadable';
      return {
        state: 'WARN',
        message: `${what} for ${seconds}s, backlog ${this.backlog}: ${this.failure.error}`,
      };
    }
    return { state: 'OK', message: `backlog ${this.backlog}` };
  }

  /** One pass; exposed so tests and tools can drive the relay without its loop. */
  async relayOnce(): Promise<PassResult> {
    const { pool, bus, batchSize, table } = this.opts;
    return withTransaction(pool, async (client) => {
      const { rows: lock } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1) AS locked',
        [this.lockKey],
      );
      if (!lock[0]?.locked) return { published: 0, full: false };
      const { rows } = await client.query<{ id: string; topic: string; key: string; value: string }>(
        `SELECT id, topic, key, payload::text AS value FROM ${table}
         WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE`,
        [batchSize],
      );
      if (rows.length === 0) return { published: 0, full: false };
      try {
        await bus.publish(rows.map((r) => ({ topic: r.topic, key: r.key, value: r.value })));
      } catch (err) {
        throw new BusPublishError(err instanceof Error ? err.message : String(err), { cause: err });
      }
      const { rows: marked } = await client.query<{ lag: number }>(
        `UPDATE ${table} SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])
         RETURNING extract(epoch FROM published_at - created_at)::float8 AS lag`,
        [rows.map((r) => r.id)],
      );
      for (const { lag } of marked) this.metrics.lag.observe(Math.max(0, lag));
      this.metrics.published.inc(rows.length);
      return { published: rows.length, full: rows.length === batchSize };
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      let delay = this.opts.pollIntervalMs;
      let wakeable = true;
      try {
        const pass = await this.relayOnce();
        if (this.failure) {
          this.opts.logger.info({ failedForMs: Date.now() - this.failure.since }, 'outbox relay recovered');
        }
        this.failure = undefined;
        this.attempt = 0;
        if (pass.full) delay = 0;
      } catch (err) {
        const bus = err instanceof BusPublishError;
        if (bus) this.metrics.failures.inc();
        const error = err instanceof Error ? err.message : String(err);
        if (!this.failure)
          this.opts.logger.warn({ err, bus }, 'outbox relay pass failed; rows wait and are retried');
        this.failure = { since: this.failure?.since ?? Date.now(), error, bus };
        delay = backoffDelay(this.attempt++, { initialMs: 200, maxMs: this.opts.maxBackoffMs });
        // A notification must not cut a backoff short: that would hammer a bus that is down.
        wakeable = false;
      }
      await this.refreshBacklog();
      if (delay > 0 && this.running) await this.sleep(delay, wakeable);
    }
  }

  private async refreshBacklog(): Promise<void> {
    try {
      const { rows } = await this.opts.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${this.opts.table} WHERE published_at IS NULL`,
      );
      this.backlog = rows[0]?.n ?? 0;
      this.metrics.backlog.set(this.backlog);
    } catch {
      // The database is down: the pass failed too and says so; keep the last known backlog.
    }
  }

  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (wakeable && this.pendingWake) {
      // Notified during the pass: the row may have committed after our SELECT.
      this.pendingWake = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(this.sleepTimer);
        this.wake = undefined;
        this.pendingWake = false;
        resolve();
      };
      this.sleepTimer = setTimeout(done, ms);
      // stop() always wakes; a notification only when `wakeable`.
      this.wake = wakeable ? done : () => (this.running ? undefined : done());
    });
  }

  private wakeUp(): void {
    if (this.wake) this.wake();
    else this.pendingWake = true;
  }

  /** Keeps one connection LISTENing for new rows, reconnecting with backoff when it drops. */
  private async listen(): Promise<void> {
    if (!this.running) return;
    let client: PoolClient | undefined;
    try {
      client = await this.opts.pool.connect();
      const c = client;
      c.on('error', (err) => this.listenerLost(c, err));
      c.on('notification', () => this.wakeUp());
      await c.query(`LISTEN ${this.opts.notifyChannel}`);
      if (!this.running) {
        c.release(true);
        return;
      }
      this.listener = c;
      this.listenAttempt = 0;
      // Rows committed while we were not listening are picked up by this wake-up, not lost.
      this.wakeUp();
    } catch (err) {
      client?.release(true);
      this.opts.logger.debug({ err }, 'outbox relay could not LISTEN; polling meanwhile');
      this.scheduleListen();
    }
  }

  private listenerLost(client: PoolClient, err: unknown): void {
    if (client !== this.listener) return;
    this.listener = undefined;
    client.release(true);
    this.opts.logger.warn({ err }, 'outbox relay lost its LISTEN connection; polling until it is back');
    this.scheduleListen();
  }

  private scheduleListen(): void {
    if (!this.running) return;
    const delay = backoffDelay(this.listenAttempt++, { initialMs: 200, maxMs: this.opts.maxBackoffMs });
    this.listenTimer = setTimeout(() => void this.listen(), delay);
  }
}
