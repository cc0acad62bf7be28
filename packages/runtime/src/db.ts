// Postgres access: a pool, transactions, and versioned SQL migrations applied under an advisory lock.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { PortcullisError } from './errors.ts';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export function createPool(url: string, opts: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'portcullis',
    connectionTimeoutMillis: 5000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

/**
 * Checks a client out for `fn`. pg reports a connection dropped mid-use both as a rejected query
 * and as an `'error'` event on the client; without a listener that event would crash the
 * process, and the broken client must be destroyed rather than returned to the pool.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** Runs `fn` in a transaction; commits on success, rolls back and rethrows on failure. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return withClient(pool, async (client) => {
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

/** Postgres error codes we turn into API errors rather than 500s. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_SERIALIZATION_FAILURE = '40001';

export function isPgError(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function lockKey(component: string): bigint {
  return createHash('sha256').update(`portcullis-migrations:${component}`).digest().readBigInt64BE(0);
}

/**
 * Applies `NNN_name.sql` files from `dir` in order, each in its own transaction, recording them in
 * `portcullis_migrations`. A session advisory lock serialises concurrent starters (several
 * replicas starting at once): the second waits, then finds nothing left to apply. Applied
 * files must never change; a changed checksum stops the start.
 */
export async function migrate(pool: pg.Pool, component: string, dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f)).sort();
  const key = lockKey(component).toString();
  return withClient(pool, async (client) => {
    try {
      await client.query('SELECT pg_advisory_lock($1)', [key]);
      await client.query(`CREATE TABLE IF NOT EXISTS portcullis_migrations (
      component text NOT NULL,
      version integer NOT NULL,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, version))`);
      const { rows } = await client.query<{ version: number; checksum: string; name: string }>(
        'SELECT version, checksum, name FROM portcullis_migrations WHERE component = $1',
        [component],
      );
      const applied = new Map(rows.map((r) => [r.version, r]));
      const done: string[] = [];
      for (const file of files) {
        const version = Number.parseInt(file, 10);
        const sql = await readFile(join(dir, file), 'utf8');
        const checksum = createHash('sha256').update(sql).digest('hex');
        const prior = applied.get(version);
        if (prior) {
          if (prior.checksum !== checksum) {
            throw new PortcullisError(
              'internal',
              `migration ${component}/${file} changed after it was applied`,
            );
          }
          continue;
        }
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query(
            'INSERT INTO portcullis_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)',
            [component, version, file, checksum],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw new PortcullisError(
            'internal',
            `migration ${component}/${file} failed: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        done.push(file);
      }
      return done;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => {});
    }
  });
}
