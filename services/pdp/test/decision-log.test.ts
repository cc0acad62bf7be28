// Decisions reach the bus's decision-log topic with credentials erased, through the real Postgres bus.
import { type Bus, type BusMessage, createBus, createLogger, TOPICS } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileArchive, startTestPdp, type TestPdp } from './fixtures.ts';

describe('decision log', () => {
  let db: TestDatabase;
  let bus: Bus;
  let t: TestPdp;
  const received: BusMessage[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    bus = createBus(
      { transport: 'postgres', url: db.url, pollIntervalMs: 100 },
      createLogger('bus', 'silent'),
    );
    await bus.subscribe(TOPICS.decisionLogs, (m) => {
      received.push(m);
    });
    t = await startTestPdp(await compileArchive(1), { PDP_DECISION_LOG_FLUSH_INTERVAL: '50ms' }, { bus });
  });

  afterAll(async () => {
    await t?.close();
    await bus?.close();
    await db?.drop();
  });

  it('ships each decision with its revision, input redacted by JSON pointer', async () => {
    const input = {
      user: 'alice',
      attributes: {
        request: { http: { headers: { authorization: 'Bearer secret', cookie: 'sid=1', host: 'x' } } },
      },
    };
    const res = await t.pdp.app.inject({ method: 'POST', url: '/v1/data/authz/allow', payload: { input } });
    const { decision_id } = res.json() as { decision_id: string };
    await waitFor(() => received.some((m) => m.key === decision_id), { message: 'the decision log entry' });
    const entry = JSON.parse(received.find((m) => m.key === decision_id)!.value) as Record<string, unknown>;
    expect(entry).toMatchObject({
      decision_id,
      path: 'authz/allow',
      result: true,
      bundle: 'authz',
      revision: 1,
      digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      eval_ns: expect.any(Number),
      timestamp: expect.any(String),
      input: { user: 'alice', attributes: { request: { http: { headers: { host: 'x' } } } } },
      erased: [
        '/input/attributes/request/http/headers/authorization',
        '/input/attributes/request/http/headers/cookie',
      ],
    });
    expect(JSON.stringify(entry)).not.toContain('secret');
    // The caller's input was not modified by the redaction.
    expect(input.attributes.request.http.headers.authorization).toBe('Bearer secret');
  });
});
