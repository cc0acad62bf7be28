// The shared test Postgres: provided to workers, and databases created on it are isolated and droppable.
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, PG_URL_ENV, type TestDatabase, testPostgresUrl } from '../src/index.ts';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('shared test Postgres', () => {
  it('reaches the worker both through the environment and through inject()', () => {
    expect(process.env[PG_URL_ENV]).toMatch(/^postgres:\/\/.+@127\.0\.0\.1:\d+\/postgres$/);
    expect(inject('portcullisPgUrl')).toBe(process.env[PG_URL_ENV]);
    expect(testPostgresUrl()).toBe(process.env[PG_URL_ENV]);
  });
});

describe('createTestDatabase', () => {
  const created: TestDatabase[] = [];
  const create = async (): Promise<TestDatabase> => {
    const database = await createTestDatabase();
    created.push(database);
    return database;
  };
  afterAll(async () => {
    await Promise.all(created.map((database) => database.drop()));
  });

  it('gives each caller its own database, invisible to the others', async () => {
    const [a, b] = await Promise.all([create(), create()]);
    expect(a.name).not.toBe(b.name);
    await query(a.url, "CREATE TABLE marker (owner text); INSERT INTO marker VALUES ('a')");
    await query(b.url, "CREATE TABLE marker (owner text); INSERT INTO marker VALUES ('b')");

    const cases = [
      { database: a, owners: ['a'] },
      { database: b, owners: ['b'] },
    ];
    for (const { database, owners } of cases) {
      const rows = await query<{ owner: string; db: string }>(
        database.url,
        'SELECT owner, current_database() AS db FROM marker',
      );
      expect(rows).toEqual(owners.map((owner) => ({ owner, db: database.name })));
    }
  });

  it('drop() removes the database even with a client still connected, and may be repeated', async () => {
    const database = await create();
    const lingering = new pg.Client({ connectionString: database.url });
    lingering.on('error', () => {});
    await lingering.connect();
    try {
      await database.drop();
      await database.drop();
    } finally {
      await lingering.end().catch(() => {});
    }
    const rows = await query<{ count: string }>(
      testPostgresUrl(),
      `SELECT count(*) FROM pg_database WHERE datname = '${database.name}'`,
    );
    expect(rows).toEqual([{ count: '0' }]);
    await expect(query(database.url, 'SELECT 1')).rejects.toMatchObject({ code: '3D000' });
  });
});
