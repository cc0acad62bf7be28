// Attributes through the REST API: CRUD with ETags, concurrent writers, schemas, bulk import, and the outbox events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR_TOKEN, bearer, startTestPip, type TestPip, VIEWER_TOKEN } from './pip-fixture.ts';

let t: TestPip;

beforeAll(async () => {
  t = await startTestPip();
});
afterAll(() => t?.close());

function put(path: string, body: unknown, headers: Record<string, string> = {}) {
  return t.pip.app.inject({
    method: 'PUT',
    url: path,
    headers: { ...bearer(AUTHOR_TOKEN), ...headers },
    payload: body as object,
  });
}

async function outboxChanges(): Promise<{ kind: string; id: string; version: number; deleted: boolean }[]> {
  const { rows } = await t.pip.pool.query<{ payload: { changes: never[] } }>(
    "SELECT payload FROM pip_outbox WHERE topic = 'portcullis.attribute.events' ORDER BY id",
  );
  return rows.flatMap((r) => r.payload.changes);
}

describe('attribute records', () => {
  it('creates, reads, replaces and deletes a record, with versions and ETags', async () => {
    const created = await put('/v1/attributes/user/alice', { attributes: { department: 'eng', level: 3 } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers.etag).toBe('"1"');
    expect(created.json()).toMatchObject({
      kind: 'user',
      id: 'alice',
      attributes: { department: 'eng', level: 3 },
      version: 1,
    });

    const got = await t.pip.app.inject({ url: '/v1/attributes/user/alice', headers: bearer(VIEWER_TOKEN) });
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"1"');
    const notModified = await t.pip.app.inject({
      url: '/v1/attributes/user/alice',
      headers: { ...bearer(VIEWER_TOKEN), 'if-none-match': '"1"' },
    });
    expect(notModified.statusCode).toBe(304);

    const replaced = await put(
      '/v1/attributes/user/alice',
      { attributes: { department: 'ops' } },
      { 'if-match': '"1"' },
    );
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.json()).toMatchObject({ attributes: { department: 'ops' }, version: 2 });
    expect(replaced.headers.etag).toBe('"2"');

    const deleted = await t.pip.app.inject({
      method: 'DELETE',
      url: '/v1/attributes/user/alice',
      headers: bearer(AUTHOR_TOKEN),
    });
    expect(deleted.statusCode).toBe(204);
    const gone = await t.pip.app.inject({ url: '/v1/attributes/user/alice', headers: bearer(VIEWER_TOKEN) });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().code).toBe('not_found');

    expect((await outboxChanges()).filter((c) => c.id === 'alice')).toEqual([
      { kind: 'user', id: 'alice', version: 1, deleted: false },
      { kind: 'user', id: 'alice', version: 2, deleted: false },
      { kind: 'user', id: 'alice', version: 2, deleted: true },
    ]);
  });

  it('accepts ids that need URL encoding', async () => {
    const res = await put(`/v1/attributes/document/${encodeURIComponent('reports/2024 Q1.pdf')}`, {
      attributes: { owner: 'bob' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().id).toBe('reports/2024 Q1.pdf');
  });

  it.each([
    ['a stale If-Match', { 'if-match': '"1"' }, {}, 412, 'precondition_failed'],
    ['If-Match on a missing record', { 'if-match': '"1"' }, {}, 412, 'precondition_failed', 'missing'],
    ['If-None-Match: * on an existing record', { 'if-none-match': '*' }, {}, 412, 'precondition_failed'],
    ['a stale body version', {}, { version: 1 }, 409, 'conflict'],
    ['body version 0 (create only) on an existing record', {}, { version: 0 }, 409, 'conflict'],
  ])('refuses %s', async (_what, headers, body, status, code, id = 'carol') => {
    await put('/v1/attributes/user/carol', { attributes: { n: 1 } });
    await put('/v1/attributes/user/carol', { attributes: { n: 2 } });
    const res = await put(`/v1/attributes/user/${id}`, { attributes: { n: 3 }, ...body }, headers);
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json().code).toBe(code);
  });

  it.each([
    ['a missing attributes field', { version: 1 }, 'validation_failed'],
    ['attributes that are not an object', { attributes: [1, 2] }, 'validation_failed'],
    ['an unknown field', { attributes: {}, extra: true }, 'validation_failed'],
    ['a NUL in a string', { attributes: { name: 'a\u0000b' } }, 'validation_failed'],
    ['an oversized record', { attributes: { blob: 'x'.repeat(70_000) } }, 'validation_failed'],
  ])('refuses %s with 400', async (_what, body, code) => {
    const res = await put('/v1/attributes/user/dave', body);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().code).toBe(code);
  });

  it.each([
    ['a kind with capitals', '/v1/attributes/User/x'],
    ['an id with a control character', '/v1/attributes/user/a%01b'],
  ])('refuses %s in the path', async (_what, url) => {
    const res = await put(url, { attributes: {} });
    expect(res.statusCode).toBe(400);
  });

  it.each([
    ['no token', {}, 401],
    ['a viewer writing', bearer(VIEWER_TOKEN), 403],
  ])('refuses %s', async (_what, headers, status) => {
    const res = await t.pip.app.inject({
      method: 'PUT',
      url: '/v1/attributes/user/eve',
      headers,
      payload: { attributes: {} },
    });
    expect(res.statusCode).toBe(status);
  });
});

describe('concurrent writers', () => {
  it('lets exactly one of many writers holding the same ETag win; the others get 412', async () => {
    const first = await put('/v1/attributes/user/race', { attributes: { n: 0 } });
    const etag = first.headers.etag as string;
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        put('/v1/attributes/user/race', { attributes: { n: i + 1 } }, { 'if-match': etag }),
      ),
    );
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes.filter((c) => c === 200)).toHaveLength(1);
    expect(codes.filter((c) => c === 412)).toHaveLength(11);
    const winner = answers.find((a) => a.statusCode === 200)!.json();
    const now = await t.pip.app.inject({ url: '/v1/attributes/user/race', headers: bearer() });
    expect(now.json()).toMatchObject({ version: 2, attributes: winner.attributes });
  });

  it('same with body versions: one wins, the others get 409', async () => {
    const first = await put('/v1/attributes/user/race2', { attributes: { n: 0 } });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        put('/v1/attributes/user/race2', { attributes: { n: i }, version: first.json().version }),
      ),
    );
    expect(answers.filter((a) => a.statusCode === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.statusCode === 409)).toHaveLength(7);
  });

  it('loses no unconditional write: each gets its own version', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => put('/v1/attributes/user/many', { attributes: { n: i } })),
    );
    const versions = answers.map((a) => a.json().version as number).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const changes = (await outboxChanges()).filter((c) => c.id === 'many');
    expect(changes.map((c) => c.version).sort((a, b) => a - b)).toEqual(versions);
  });
});

describe('schemas', () => {
  const schema = {
    type: 'object',
    required: ['department'],
    properties: { department: { type: 'string' }, level: { type: 'integer', minimum: 1 } },
    additionalProperties: false,
  };

  it('validates writes of a kind that has a schema, naming the fields', async () => {
    const set = await put('/v1/attribute-schemas/employee', { schema });
    expect(set.statusCode, set.body).toBe(201);
    const bad = await put('/v1/attributes/employee/x', { attributes: { level: 0, extra: 1 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('validation_failed');
    expect(
      bad
        .json()
        .details.map((d: { field: string }) => d.field)
        .sort(),
    ).toEqual(['body.attributes', 'body.attributes.department', 'body.attributes.level']);
    const good = await put('/v1/attributes/employee/x', { attributes: { department: 'eng', level: 2 } });
    expect(good.statusCode).toBe(201);
    const read = await t.pip.app.inject({
      url: '/v1/attribute-schemas/employee',
      headers: bearer(VIEWER_TOKEN),
    });
    expect(read.json()).toMatchObject({ kind: 'employee', schema, version: 1 });
  });

  it('applies a replaced schema at once and a removed one no more', async () => {
    await put('/v1/attribute-schemas/employee', { schema: { ...schema, required: ['department', 'level'] } });
    expect((await put('/v1/attributes/employee/y', { attributes: { department: 'eng' } })).statusCode).toBe(
      400,
    );
    const removed = await t.pip.app.inject({
      method: 'DELETE',
      url: '/v1/attribute-schemas/employee',
      headers: bearer(),
    });
    expect(removed.statusCode).toBe(204);
    expect((await put('/v1/attributes/employee/y', { attributes: { anything: true } })).statusCode).toBe(201);
  });

  it('refuses a schema that does not compile', async () => {
    const res = await put('/v1/attribute-schemas/broken', { schema: { type: 'no-such-type' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().details[0].field).toBe('body.schema');
  });
});

function importLines(body: string | Buffer) {
  return t.pip.app.inject({
    method: 'POST',
    url: '/v1/attributes:import',
    headers: { ...bearer(AUTHOR_TOKEN), 'content-type': 'application/x-ndjson' },
    payload: body,
  });
}

describe('bulk import', () => {
  it('imports the good lines and reports each bad one with its line number', async () => {
    await put('/v1/attribute-schemas/team', { schema: { type: 'object', required: ['name'] } });
    const lines = [
      JSON.stringify({ kind: 'user', id: 'i1', attributes: { a: 1 } }),
      '',
      '{not json',
      JSON.stringify({ kind: 'User', id: 'x', attributes: {} }),
      JSON.stringify({ kind: 'user', id: 'i2', attributes: 'nope' }),
      JSON.stringify({ kind: 'team', id: 't1', attributes: { size: 3 } }),
      JSON.stringify({ kind: 'team', id: 't2', attributes: { name: 'core' } }),
      JSON.stringify({ kind: 'user', id: 'i1', attributes: { a: 2 } }),
      JSON.stringify({ kind: 'user', id: 'i3', attributes: {}, extra: 1 }),
      JSON.stringify({ kind: 'user', id: 'i4', attributes: { big: 'y'.repeat(66_000) } }),
      JSON.stringify({ kind: 'user', id: 'i5', attributes: { ok: true } }),
    ];
    const res = await importLines(lines.join('\r\n'));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ imported: 4, failed: 6, errors_truncated: false });
    expect(res.json().errors.map((e: { line: number; field?: string }) => [e.line, e.field ?? null])).toEqual(
      [
        [3, null],
        [4, 'kind'],
        [5, 'attributes'],
        [6, 'attributes.name'],
        [9, 'extra'],
        [10, 'attributes'],
      ],
    );
    const i1 = await t.pip.app.inject({ url: '/v1/attributes/user/i1', headers: bearer() });
    expect(i1.json()).toMatchObject({ attributes: { a: 2 }, version: 2 });
  });

  it('reports a line too long to hold without buffering it', async () => {
    const res = await importLines(
      `${'x'.repeat(200_000)}\n${JSON.stringify({ kind: 'user', id: 'after', attributes: {} })}\n`,
    );
    expect(res.json()).toMatchObject({ imported: 1, failed: 1 });
    expect(res.json().errors[0].line).toBe(1);
  });

  it('refuses other content types and callers without the author role', async () => {
    const json = await t.pip.app.inject({
      method: 'POST',
      url: '/v1/attributes:import',
      headers: { ...bearer(), 'content-type': 'text/csv' },
      payload: 'a,b',
    });
    expect(json.statusCode).toBe(415);
    const viewer = await t.pip.app.inject({
      method: 'POST',
      url: '/v1/attributes:import',
      headers: { ...bearer(VIEWER_TOKEN), 'content-type': 'application/x-ndjson' },
      payload: '{}',
    });
    expect(viewer.statusCode).toBe(403);
  });

  it('imports 100,000 rows, each readable afterwards, with one event per batch', async () => {
    const rows = 100_000;
    const text = Array.from({ length: rows }, (_, i) =>
      JSON.stringify({
        kind: 'bulk',
        id: `u${i}`,
        attributes: { n: i, group: `g${i % 100}`, active: i % 2 === 0 },
      }),
    ).join('\n');
    const started = performance.now();
    const res = await importLines(text);
    const seconds = (performance.now() - started) / 1000;
    expect(res.statusCode, res.body.slice(0, 500)).toBe(200);
    expect(res.json()).toMatchObject({ imported: rows, failed: 0 });
    // A correctness check with a generous bound; throughput is measured in bench/pip.
    expect(seconds).toBeLessThan(60);
    const { rows: counted } = await t.pip.pool.query<{ n: number; sum: string }>(
      "SELECT count(*)::int AS n, sum((attributes->>'n')::bigint)::text AS sum FROM attributes WHERE kind = 'bulk'",
    );
    expect(counted[0]).toEqual({ n: rows, sum: String((rows * (rows - 1)) / 2) });
    const sample = await t.pip.services.attributes.batchGet([
      { kind: 'bulk', id: 'u0' },
      { kind: 'bulk', id: 'u99999' },
      { kind: 'bulk', id: 'missing' },
    ]);
    expect(sample.map((r) => r?.attributes['n'])).toEqual([0, 99_999, undefined]);
    const { rows: events } = await t.pip.pool.query<{ n: number; changes: number }>(
      `SELECT count(*)::int AS n, sum(jsonb_array_length(payload->'changes'))::int AS changes
       FROM pip_outbox WHERE key = 'attributes/batch'`,
    );
    expect(events[0]!.changes).toBeGreaterThanOrEqual(rows);
    expect(events[0]!.n).toBeLessThanOrEqual(rows / 1000);
  });
});
