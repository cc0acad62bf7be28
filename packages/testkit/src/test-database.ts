// Fresh, uniquely named databases on the shared test Postgres server, so tests never see each other's data.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { testPostgresUrl } from './test-env.ts';

export interface TestDatabase {
  /** Connection URL of the new database (superuser credentials). */
  readonly url: string;
  readonly name: string;
  /** Drops the database, disconnecting any client still connected to it. Idempotent. */
  drop(): Promise<void>;
}

async function asAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testPostgresUrl() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database on the shared server and returns its URL. */
export async function createTestDatabase(): Promise<TestDatabase> {
  // Unique across workers and runs; lower case so it needs no quoting in psql or URLs.
  const name = `test_${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  await asAdmin((client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  const url = new URL(testPostgresUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      await asAdmin((client) =>
        client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}
