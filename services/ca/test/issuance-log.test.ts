// Issuance records: every record committed before it resolves, concurrent ones grouped, a failed write failing its batch only.
import { createPool, migrate, type Pool } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../src/ca-app.ts';
import { IssuanceLog, type IssuanceRecord } from '../src/issuance-log.ts';

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4, applicationName: 'issuance-log-test' });
  await migrate(pool, 'ca', MIGRATIONS_DIR);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const record = (serial: string): IssuanceRecord => ({
  serial,
  spiffeId: 'spiffe://cluster.local/ns/shop/sa/cart',
  notBefore: new Date('2026-01-01T00:00:00Z'),
  notAfter: new Date('2026-01-02T00:00:00Z'),
  caller: 'token:shop/cart',
  authMethod: 'token',
  keyType: 'ec-p256',
});

async function stored(prefix: string): Promise<string[]> {
  const { rows } = await pool.query<{ serial: string }>(
    'SELECT serial FROM ca_issuances WHERE serial LIKE $1 ORDER BY serial',
    [`${prefix}%`],
  );
  return rows.map((r) => r.serial);
}

describe('IssuanceLog', () => {
  it('commits every record before resolving it, grouping concurrent ones into few INSERTs', async () => {
    let inserts = 0;
    const counting = new Proxy(pool, {
      get(target, key, receiver) {
        if (key === 'query') {
          return (...args: Parameters<Pool['query']>) => {
            inserts++;
            return (target.query as (...a: unknown[]) => unknown)(...args);
          };
        }
        return Reflect.get(target, key, receiver);
      },
    });
    const log = new IssuanceLog(counting as Pool);
    const serials = Array.from({ length: 100 }, (_, i) => `AA${String(i).padStart(4, '0')}`);
    await Promise.all(
      serials.map((serial) =>
        log.record(record(serial)).then(async () => {
          // Resolved means committed: another connection sees the row already.
          expect(await stored(serial)).toEqual([serial]);
        }),
      ),
    );
    expect(await stored('AA')).toEqual(serials);
    // Two go out alone at once; the rest wait and are grouped.
    expect(inserts).toBeLessThanOrEqual(4);
  });

  it('rejects the records of a batch that failed and keeps taking records', async () => {
    const log = new IssuanceLog(pool);
    // The first two go out alone; the next three wait and go together, and the serial repeated among
    // them violates the primary key, so that INSERT fails as a whole.
    const alone = [log.record(record('BB0001')), log.record(record('BB0002'))];
    // Settled at once: the group may fail before the first two are committed.
    const grouped = Promise.allSettled([
      log.record(record('BB0003')),
      log.record(record('BB0003')),
      log.record(record('BB0005')),
    ]);
    await Promise.all(alone);
    const results = await grouped;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    await log.record(record('BB0004'));
    expect(await stored('BB')).toEqual(['BB0001', 'BB0002', 'BB0004']);
  });
});
