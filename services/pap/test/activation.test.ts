// Activation under If-Match: 428/412, concurrent activations, the outbox row, audit entries, rollback, download.
import { createHash } from 'node:crypto';
import { TOPICS } from '@portcullis/runtime';
import { waitFor } from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOX_CHANNEL } from '../src/activation.ts';
import {
  ADMIN_TOKEN,
  activate,
  bearer,
  json,
  postRevision,
  SAMPLE,
  sampleWithAdmins,
  startTestPap,
  type TestPap,
} from './pap-fixture.ts';

let t: TestPap;
const digests: string[] = [];

beforeAll(async () => {
  t = await startTestPap();
  for (const admins of [['alice'], ['alice', 'bob']]) {
    const res = await postRevision(t.pap, 'act', sampleWithAdmins(...admins));
    expect(res.statusCode, res.body).toBe(201);
    digests.push(json<{ digest: string }>(res).digest);
  }
  await postRevision(t.pap, 'pair', SAMPLE);
});
afterAll(async () => {
  await t?.close();
});

function put(bundle: string, revision: unknown, ifMatch?: string) {
  return t.pap.app.inject({
    method: 'PUT',
    url: `/v1/bundles/${bundle}/active`,
    headers: { ...bearer(ADMIN_TOKEN), ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) },
    payload: { revision },
  });
}

async function outboxRows(bundle: string) {
  const { rows } = await t.pap.pool.query<{ topic: string; key: string; payload: Record<string, unknown> }>(
    'SELECT topic, key, payload FROM outbox WHERE key = $1 ORDER BY id',
    [bundle],
  );
  return rows;
}

describe('activation', () => {
  it.each([
    { name: 'no If-Match', ifMatch: undefined, status: 428, code: 'precondition_required' },
    { name: 'a stale If-Match', ifMatch: '"7"', status: 412, code: 'precondition_failed' },
    { name: 'a weak If-Match', ifMatch: 'W/"0"', status: 412, code: 'precondition_failed' },
  ])('refuses $name with $status', async ({ ifMatch, status, code }) => {
    const res = await put('act', 1, ifMatch);
    expect(res.statusCode).toBe(status);
    expect(json(res).code).toBe(code);
    expect(await outboxRows('act')).toHaveLength(0);
  });

  it.each([
    { name: 'an unknown revision', bundle: 'act', revision: 9, status: 404, code: 'not_found' },
    { name: 'an unknown bundle', bundle: 'nope', revision: 1, status: 404, code: 'not_found' },
    {
      name: 'a revision that is not a number',
      bundle: 'act',
      revision: 'one',
      status: 400,
      code: 'validation_failed',
    },
  ])('refuses $name', async ({ bundle, revision, status, code }) => {
    const res = await put(bundle, revision, '"0"');
    expect(res.statusCode).toBe(status);
    expect(json(res).code).toBe(code);
  });

  it('activates, writes one outbox row and an audit entry, and moves the ETag', async () => {
    const res = await put('act', 1, '"0"');
    expect(res.statusCode, res.body).toBe(200);
    const body = json<{ activation_seq: number; etag: string; digest: string; revision: number }>(res);
    expect(body).toMatchObject({ bundle: 'act', revision: 1, digest: digests[0] });
    expect(res.headers.etag).toBe(`"${body.activation_seq}"`);

    const rows = await outboxRows('act');
    expect(rows).toEqual([
      {
        topic: TOPICS.policyEvents,
        key: 'act',
        payload: {
          bundle: 'act',
          revision: 1,
          digest: digests[0],
          activation_seq: body.activation_seq,
          activated_at: expect.any(String),
        },
      },
    ]);

    const view = await t.pap.app.inject({ url: '/v1/bundles/act', headers: bearer(ADMIN_TOKEN) });
    expect(view.headers.etag).toBe(body.etag);
    expect(json(view).active).toMatchObject({ revision: 1, digest: digests[0], actor: 'admin-env' });

    const audit = await t.pap.app.inject({ url: '/v1/audit?bundle=act', headers: bearer(ADMIN_TOKEN) });
    const entries = json<{ entries: Record<string, unknown>[] }>(audit).entries;
    expect(entries[0]).toMatchObject({
      actor: 'admin-env',
      action: 'bundle.activate',
      target: 'bundles/act/active',
      digest_before: null,
      digest_after: digests[0],
      request_id: res.headers['x-request-id'],
    });
    expect(entries.filter((e) => e.action === 'revision.create')).toHaveLength(2);
  });

  it('rolls back to an older revision and serves it for download with ETag and 304', async () => {
    expect((await activate(t.pap, 'act', 2)).statusCode).toBe(200);
    const back = await activate(t.pap, 'act', 1);
    expect(back.statusCode).toBe(200);
    const audit = await t.pap.app.inject({
      url: '/v1/audit?bundle=act&limit=1',
      headers: bearer(ADMIN_TOKEN),
    });
    expect(json<{ entries: Record<string, unknown>[] }>(audit).entries[0]).toMatchObject({
      digest_before: digests[1],
      digest_after: digests[0],
    });

    const dl = await t.pap.app.inject({ url: '/v1/bundles/act/bundle.tar.gz', headers: bearer(ADMIN_TOKEN) });
    expect(dl.statusCode).toBe(200);
    expect(dl.headers['content-type']).toBe('application/gzip');
    expect(createHash('sha256').update(dl.rawPayload).digest('hex')).toBe(digests[0]);
    expect(dl.headers.etag).toBe(`"${digests[0]}"`);
    const again = await t.pap.app.inject({
      url: '/v1/bundles/act/bundle.tar.gz',
      headers: { ...bearer(ADMIN_TOKEN), 'if-none-match': `"${digests[0]}"` },
    });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);

    const rego = await t.pap.app.inject({
      url: '/v1/bundles/act/bundle.tar.gz?target=rego',
      headers: bearer(ADMIN_TOKEN),
    });
    expect(rego.statusCode).toBe(200);
    expect(rego.headers.etag).not.toBe(dl.headers.etag);
    expect(rego.rawPayload.includes(Buffer.from('policy.wasm'))).toBe(false);
  });

  it('lets exactly one of two concurrent activations with the same ETag win', async () => {
    for (let round = 0; round < 5; round++) {
      const view = await t.pap.app.inject({ url: '/v1/bundles/pair', headers: bearer(ADMIN_TOKEN) });
      const etag = String(view.headers.etag);
      const before = (await outboxRows('pair')).length;
      const results = await Promise.all([put('pair', 1, etag), put('pair', 1, etag)]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 412]);
      expect((await outboxRows('pair')).length).toBe(before + 1);
    }
  });

  it('notifies the outbox channel when an activation commits', async () => {
    const listener = new pg.Client({ connectionString: t.db.url });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on('notification', (n) => heard.push(`${n.channel}:${n.payload}`));
      await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
      expect((await activate(t.pap, 'pair', 1)).statusCode).toBe(200);
      await waitFor(() => heard.length > 0, { timeoutMs: 5000, message: 'a NOTIFY on portcullis_outbox' });
      expect(heard).toEqual([`${OUTBOX_CHANNEL}:pair`]);
    } finally {
      await listener.end();
    }
  });

  it('pages the audit trail newest first and filters it by actor', async () => {
    const page1 = await t.pap.app.inject({ url: '/v1/audit?limit=2', headers: bearer(ADMIN_TOKEN) });
    const p1 = json<{ entries: { id: number }[]; next_cursor: string }>(page1);
    expect(p1.entries).toHaveLength(2);
    expect(p1.entries[0]!.id).toBeGreaterThan(p1.entries[1]!.id);
    const page2 = await t.pap.app.inject({
      url: `/v1/audit?limit=2&cursor=${p1.next_cursor}`,
      headers: bearer(ADMIN_TOKEN),
    });
    const p2 = json<{ entries: { id: number }[] }>(page2);
    expect(p2.entries[0]!.id).toBeLessThan(p1.entries[1]!.id);

    const system = await t.pap.app.inject({ url: '/v1/audit?actor=system', headers: bearer(ADMIN_TOKEN) });
    const s = json<{ entries: { action: string }[]; next_cursor: string | null }>(system);
    expect(s.entries.map((e) => e.action)).toEqual(['token.bootstrap']);
    expect(s.next_cursor).toBeNull();
  });
});
