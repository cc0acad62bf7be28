// gRPC portcullis.pdp.v1.Decisions with a real client: Decide, DecideBatch, limits and error statuses.
import { request as httpRequest } from 'node:http';
import { grpc, loadProtos, PortcullisError, serviceClient, unary } from '@portcullis/runtime';
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISIONS_PROTO, DECISIONS_SERVICE } from '../src/decisions-service.ts';
import { compileArchive, startTestPdp, type TestPdp } from './fixtures.ts';

interface DecideResponse {
  result: string;
  undefined: boolean;
  bundle: string;
  revision: number;
  digest: string;
  decision_id: string;
  eval_ns: string;
}

let archive: Buffer;
let t: TestPdp;
let client: grpc.Client;

function decide(path: string, input?: unknown, extra: Record<string, unknown> = {}): Promise<DecideResponse> {
  return unary(client, 'Decide', {
    path,
    input: input === undefined ? '' : typeof input === 'string' ? input : JSON.stringify(input),
    ...extra,
  });
}

async function failure(p: Promise<unknown>): Promise<{ code: string; status: grpc.status }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisError);
  const pe = err as PortcullisError;
  return { code: pe.code, status: (pe.cause as grpc.ServiceError).code };
}

beforeAll(async () => {
  archive = await compileArchive(1);
  t = await startTestPdp(
    archive,
    { PDP_MAX_INPUT_BYTES: '1024', PDP_MAX_BATCH: '3', PDP_MAX_CONCURRENCY: '1' },
    { listen: true },
  );
  const Client = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE);
  client = new Client(`127.0.0.1:${t.grpcPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await t?.close();
});

describe('Decide', () => {
  it.each([
    { path: 'authz/allow', input: { user: 'alice' }, result: true },
    { path: 'data.authz.allow', input: { user: 'eve' }, result: false },
    {
      path: '/authz/profile/',
      input: { user: 'bob' },
      result: { admin: false, tags: ['a', 'b'], user: 'bob' },
    },
    { path: 'authz/version', input: undefined, result: 1 },
    { path: 'settings/region', input: undefined, result: 'eu' },
  ])('$path answers $result with the revision that made it', async ({ path, input, result }) => {
    const res = await decide(path, input);
    expect(JSON.parse(res.result)).toEqual(result);
    expect(res).toMatchObject({ undefined: false, bundle: 'authz', revision: 1 });
    expect(res.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(res.decision_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('says undefined apart from false', async () => {
    expect(await decide('authz/profile', {})).toMatchObject({ result: '', undefined: true, bundle: 'authz' });
  });

  it('keeps a caller-chosen decision id', async () => {
    expect((await decide('authz/allow', {}, { decision_id: 'req-42' })).decision_id).toBe('req-42');
  });

  it.each([
    {
      name: 'a path no bundle serves',
      path: 'nothing/here',
      input: '{}',
      code: 'not_found',
      status: grpc.status.NOT_FOUND,
    },
    {
      name: 'an empty path',
      path: '',
      input: '{}',
      code: 'bad_request',
      status: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'input that is not JSON',
      path: 'authz/allow',
      input: '{bad',
      code: 'bad_request',
      status: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'input over PDP_MAX_INPUT_BYTES',
      path: 'authz/allow',
      input: JSON.stringify({ pad: 'x'.repeat(2000) }),
      code: 'bad_request',
      status: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'an evaluation error',
      path: 'authz/conflict',
      input: '{"a":true,"b":true}',
      code: 'evaluation_error',
      status: grpc.status.INTERNAL,
    },
  ])('refuses $name with $code', async ({ path, input, code, status }) => {
    expect(await failure(decide(path, input))).toEqual({ code, status });
  });
});

describe('DecideBatch', () => {
  it('decides each item independently', async () => {
    const res = await unary<unknown, { items: Record<string, unknown>[] }>(client, 'DecideBatch', {
      requests: [
        { path: 'authz/allow', input: '{"user":"alice"}' },
        { path: 'authz/allow', input: '{bad' },
        { path: 'nothing', input: '{}' },
      ],
    });
    expect(res.items).toHaveLength(3);
    expect(res.items[0]).toMatchObject({ response: { result: 'true', bundle: 'authz' } });
    expect(res.items[1]).toMatchObject({ error: { code: 'bad_request' } });
    expect(res.items[2]).toMatchObject({ error: { code: 'not_found' } });
  });

  it('refuses a batch over PDP_MAX_BATCH', async () => {
    const requests = Array.from({ length: 4 }, () => ({ path: 'authz/allow', input: '{}' }));
    expect(await failure(unary(client, 'DecideBatch', { requests }))).toEqual({
      code: 'bad_request',
      status: grpc.status.INVALID_ARGUMENT,
    });
  });
});

describe('concurrency limit', () => {
  it('refuses with RESOURCE_EXHAUSTED while HTTP decisions hold every slot', async () => {
    const port = Number(new URL(t.httpUrl).port);
    const held = httpRequest({
      port,
      method: 'POST',
      path: '/v1/data/authz/allow',
      headers: { 'content-length': '12' },
    });
    const done = new Promise<number>((resolve) => held.on('response', (r) => resolve(r.statusCode ?? 0)));
    held.write('{"input"');
    await waitFor(async () => {
      const m = await t.pdp.app.inject({ method: 'GET', url: '/metrics' });
      return /portcullis_decisions_in_flight\{[^}]*\} 1/.test(m.body);
    });
    expect(await failure(decide('authz/allow', {}))).toEqual({
      code: 'too_many_requests',
      status: grpc.status.RESOURCE_EXHAUSTED,
    });
    held.end(':{}}');
    expect(await done).toBe(200);
    expect((await decide('authz/allow', { user: 'alice' })).result).toBe('true');
  });
});
