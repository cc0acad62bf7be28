// The embedded bus transport: a Postgres table as the log, LISTEN/NOTIFY as the doorbell.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Bus, BusHandler, BusMessage, SubscribeOptions, Subscription } from '../bus.ts';
import { createPool, migrate } from '../db.ts';
import { PortcullisError } from '../errors.ts';
import { backoffDelay } from './backoff.ts';

export interface PostgresBusConfig {
  url: string;
  /** Messages older than this are deleted from time to time (default 1 h). */
  retentionMs?: number;
  /** How often retention runs (default: a tenth of the retention, at most once a minute). */
  retentionCheckMs?: number;
  /** Backstop poll of each subscription besides the NOTIFY doorbell (default 1 s). */
  pollIntervalMs?: number;
  /** Reconnect backoff of a subscription's LISTEN connection. */
  reconnect?: { initialMs?: number; maxMs?: number };
}

const CHANNEL = 'portcullis_bus';
const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));
const READ_BATCH = 500;

/**
 * Concurrent publishers would otherwise commit bigserial ids out of order (id 10 commits after
 * id 11), and a subscriber whose cursor already passed 11 would never see 10. Publishers of one
 * topic therefore serialise on a transaction-scoped advisory lock, so within a topic the id
 * order is the commit order and `id > cursor` cannot skip a row.
 */
function topicLockKey(topic: string): string {
  return createHash('sha256').update(`portcullis-bus:${topic}`).digest().readBigInt64BE(0).toString();
}

function unavailable(what: string, err: unknown): PortcullisError {
  const reason = err instanceof Error ? err.message : String(err);
  return new PortcullisError('unavailable', `bus (postgres) ${what} failed: ${reason}`, { cause: err });
}

export class PostgresBus implements Bus {
  readonly transport = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly subscriptions = new Set<PostgresSubscription>();
  private readonly retentionTimer: NodeJS.Timeout;
  private schema: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly config: PostgresBusConfig,
    private readonly logger: Logger,
  ) {
    this.pool = createPool(config.url, { max: 4, applicationName: 'portcullis-bus' });
    const retentionMs = config.retentionMs ?? 3_600_000;
    const every = config.retentionCheckMs ?? Math.min(60_000, Math.max(1000, Math.floor(retentionMs / 10)));
    this.retentionTimer = setInterval(() => void this.prune(retentionMs), every);
    this.retentionTimer.unref();
  }

  /** Creates the table on first use rather than at construction, so a service starts while Postgres is down. */
  ensureSchema(): Promise<void> {
    if (!this.schema) {
      const p = migrate(this.pool, 'bus', MIGRATIONS_DIR).then(() => undefined);
      this.schema = p;
      p.catch(() => {
        if (this.schema === p) this.schema = undefined;
      });
    }
    return this.schema;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new PortcullisError('unavailable', 'bus is closed');
    if (messages.length === 0) return;
    try {
      await this.ensureSchema();
      await this.transaction(async (client) => {
        // Bounded, so a publisher stuck behind another's lock rejects instead of hanging.
        await client.query("SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '10s'");
        const topics = [...new Set(messages.map((m) => m.topic))].sort();
        // Sorted, so two publishers of overlapping topic sets cannot deadlock.
        for (const topic of topics)
          await client.query('SELECT pg_advisory_xact_lock($1)', [topicLockKey(topic)]);
        await client.query(
          `INSERT INTO bus_messages (topic, key, value)
           SELECT t, k, v FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS m(t, k, v, n)
           ORDER BY n`,
          [messages.map((m) => m.topic), messages.map((m) => m.key), messages.map((m) => m.value)],
        );
        // Delivered by Postgres only on commit: a subscriber never hears of a row it cannot read.
        await client.query('SELECT pg_notify($1, t) FROM unnest($2::text[]) AS t', [CHANNEL, topics]);
      });
    } catch (err) {
      throw unavailable('publish', err);
    }
  }

  /**
   * Like db.ts's withTransaction, but with an 'error' listener on the checked-out client: pg
   * emits a dropped connection as an 'error' event as well as rejecting the query, and an
   * unlistened 'error' event would crash the process (pg-pool only listens while a client idles).
   */
  private async transaction(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      await fn(client);
      await client.query('COMMIT');
    } catch (err) {
      if (!broken) await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.off('error', onError);
      // A broken client is destroyed rather than returned to the pool.
      client.release(broken);
    }
  }

  async subscribe(topic: string, handler: BusHandler, opts: SubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw new PortcullisError('unavailable', 'bus is closed');
    try {
      await this.ensureSchema();
    } catch (err) {
      throw unavailable('subscribe', err);
    }
    const sub = new PostgresSubscription(this.config, topic, handler, opts, this.logger, () =>
      this.subscriptions.delete(sub),
    );
    await sub.start();
    this.subscriptions.add(sub);
    return sub;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.retentionTimer);
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.pool.end();
  }

  private async prune(retentionMs: number): Promise<void> {
    if (!this.schema || this.closed) return;
    try {
      await this.schema;
      const { rowCount } = await this.pool.query(
        'DELETE FROM bus_messages WHERE created_at < now() - make_interval(secs => $1)',
        [retentionMs / 1000],
      );
      if (rowCount) this.logger.debug({ deleted: rowCount }, 'bus retention pruned old messages');
    } catch (err) {
      this.logger.warn({ err }, 'bus retention failed; will retry');
    }
  }
}

/**
 * One subscriber: its own LISTEN connection, which it also reads through, and a cursor (the
 * last id delivered). The table is the truth; notifications and a periodic poll only say when
 * to look. After a reconnect it reads on from its cursor, so messages published during a short
 * outage are delivered late rather than lost, as long as retention has not pruned them.
 */
class PostgresSubscription implements Subscription {
  private client: pg.Client | undefined;
  private cursor = '0';
  private closed = false;
  private draining: Promise<void> | undefined;
  private again = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;

  constructor(
    private readonly config: PostgresBusConfig,
    private readonly topic: string,
    private readonly handler: BusHandler,
    private readonly opts: SubscribeOptions,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {}

  async start(): Promise<void> {
    let client: pg.Client;
    try {
      client = await this.connect();
      const { rows } = await client.query<{ max: string | null }>(
        'SELECT max(id) AS max FROM bus_messages WHERE topic = $1',
        [this.topic],
      );
      this.cursor = rows[0]?.max ?? '0';
    } catch (err) {
      this.closed = true;
      this.drop();
      throw unavailable('subscribe', err);
    }
    this.pollTimer = setInterval(() => this.kick(), this.config.pollIntervalMs ?? 1000);
    this.pollTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await this.draining;
    if (client) {
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
    }
    this.onClosed();
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.config.url,
      application_name: 'portcullis-bus-listen',
      keepAlive: true,
      connectionTimeoutMillis: 5000,
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('LISTEN connection ended')));
    client.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload === this.topic) this.kick();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    // Only now does it count: errors while connecting are the caller's to handle, not an outage.
    this.client = client;
    return client;
  }

  /** Forgets the current connection without reporting anything. */
  private drop(): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => {});
  }

  private lost(client: pg.Client, err: unknown): void {
    if (client !== this.client || this.closed) return;
    this.drop();
    this.logger.warn({ err, topic: this.topic }, 'bus subscription lost its connection; reconnecting');
    this.opts.onDisconnect?.(err);
    this.reconnectAttempt = 0;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = backoffDelay(this.reconnectAttempt++, this.config.reconnect);
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.connect();
    } catch (err) {
      this.logger.debug({ err, topic: this.topic }, 'bus subscription reconnect failed');
      if (!this.closed) this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      this.drop();
      return;
    }
    this.logger.info({ topic: this.topic }, 'bus subscription reconnected');
    this.opts.onReconnect?.();
    this.kick();
  }

  /** Coalesces wake-ups: one drain at a time, and one more if woken while draining. */
  private kick(): void {
    if (this.closed) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      let more = true;
      while (more && !this.closed) {
        const client = this.client;
        if (!client) return;
        let rows: { id: string; key: string; value: string }[];
        try {
          // pg returns bigint as a string; no cast in SQL, or ORDER BY would sort the text.
          ({ rows } = await client.query<{ id: string; key: string; value: string }>(
            'SELECT id, key, value FROM bus_messages WHERE topic = $1 AND id > $2 ORDER BY id LIMIT $3',
            [this.topic, this.cursor, READ_BATCH],
          ));
        } catch (err) {
          // A dropped connection is reported by its 'error'/'end' events; anything else is worth a line.
          if (client === this.client)
            this.logger.warn({ err, topic: this.topic }, 'bus subscription read failed');
          return;
        }
        for (const row of rows) {
          if (this.closed) return;
          try {
            await this.handler({ topic: this.topic, key: row.key, value: row.value });
          } catch (err) {
            this.logger.error(
              { err, topic: this.topic, key: row.key },
              'bus handler failed; message skipped',
            );
          }
          this.cursor = row.id;
        }
        more = rows.length === READ_BATCH;
      }
    } while (this.again && !this.closed);
  }
}
