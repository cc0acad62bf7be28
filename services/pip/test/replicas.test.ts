// Two PIP replicas on one database and the Postgres bus: a change made on one reaches the other's policy set.
import { type Bus, createBus, createLogger } from '@portcullis/runtime';
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pip } from '../src/pip-app.ts';
import { bearer, requestAuthentication, startTestPip, type TestPip } from './pip-fixture.ts';

let t: TestPip;
let busA: Bus;
let busB: Bus;
let a: Pip;
let b: Pip;
const RULES = [{ issuer: 'https://replicas.example', jwksUri: 'http://127.0.0.1:9/jwks' }];

beforeAll(async () => {
  t = await startTestPip();
  const logger = createLogger('pip-test', 'silent');
  busA = createBus({ transport: 'postgres', url: t.db.url, pollIntervalMs: 200 }, logger);
  busB = createBus({ transport: 'postgres', url: t.db.url, pollIntervalMs: 200 }, logger);
  // The backstop reload is off, so only bus events can carry changes between the replicas.
  a = await t.rebuild({ PIP_RECONCILE_INTERVAL: '0' }, { bus: busA });
  b = await t.rebuild({ PIP_RECONCILE_INTERVAL: '0' }, { bus: busB });
});

afterAll(async () => {
  await t?.close();
  await busA?.close();
  await busB?.close();
});

describe('replicas', () => {
  it('propagates a put and a delete through the outbox relay and the bus', async () => {
    const put = await a.app.inject({
      method: 'PUT',
      url: '/v1/request-authentications/team/jwt',
      headers: bearer(),
      payload: requestAuthentication('team', 'jwt', RULES),
    });
    expect(put.statusCode).toBe(201);
    expect(a.services.policies.get('team', 'jwt')).toBeDefined();
    await waitFor(() => b.services.policies.get('team', 'jwt') !== undefined, {
      message: 'replica B to load team/jwt',
    });

    const del = await b.app.inject({
      method: 'DELETE',
      url: '/v1/request-authentications/team/jwt',
      headers: bearer(),
    });
    expect(del.statusCode).toBe(204);
    await waitFor(() => a.services.policies.get('team', 'jwt') === undefined, {
      message: 'replica A to drop team/jwt',
    });
    await waitFor(
      async () => {
        const { rows } = await t.pip.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pip_outbox WHERE published_at IS NULL',
        );
        return rows[0]?.n === 0;
      },
      { message: 'the outbox to drain' },
    );
  });

  it('catches changes whose events it missed with a full reload (what a reconnect triggers)', async () => {
    // A row written behind the replicas' backs, with no outbox event: only a full reload can find it.
    await t.pip.pool.query(
      "INSERT INTO request_authentications (namespace, name, document, updated_by) VALUES ('team', 'quiet', $1::jsonb, 'test')",
      [JSON.stringify(requestAuthentication('team', 'quiet', RULES))],
    );
    expect(b.services.policies.get('team', 'quiet')).toBeUndefined();
    await b.services.sync.reloadAll();
    expect(b.services.policies.get('team', 'quiet')).toBeDefined();
    expect(b.services.sync.status().state).toBe('OK');
  });
});
