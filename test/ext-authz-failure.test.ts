// When no decision can be made — no policy loaded, an evaluation error, PDPs down or too slow — the adapter denies (fail closed), says why in its metrics, and allows only when told to fail open.
import { DECISIONS_PROTO, DECISIONS_SERVICE } from '@portcullis/envoy-authz';
import { grpc, loadProtos, serviceClient } from '@portcullis/runtime';
import { freePort } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdapterProcess,
  httpCheck,
  metricValue,
  type PapProcess,
  type PdpProcess,
  startAdapter,
  startPap,
  startPdp,
  view,
} from './ext-authz-fixture.ts';
import { FEATURES } from './ext-authz-policies.ts';

const DECISION_PATH = { EXT_AUTHZ_DECISION_PATH: 'portcullis/features/decision' };
const allowCase = httpCheck('GET', '/productpage', { 'x-case': 'allow' });

/** A PDP that accepts calls and never answers in time: fault injection for the remote deadline. */
async function startSlowPdp(delayMs: number): Promise<{ address: string; calls: number; close(): void }> {
  const server = new grpc.Server();
  const state = { calls: 0 };
  const service = serviceClient(loadProtos([DECISIONS_PROTO]), DECISIONS_SERVICE).service;
  server.addService(service, {
    Decide: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      state.calls++;
      setTimeout(
        () => callback(null, { result: '{"allowed":true}', bundle: 'slow', revision: 1 }),
        delayMs,
      ).unref();
    },
    DecideBatch: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { items: [] }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    get calls() {
      return state.calls;
    },
    close: () => server.forceShutdown(),
  };
}

let pap: PapProcess;

beforeAll(async () => {
  pap = await startPap();
}, 300_000);
afterAll(async () => {
  await pap?.stop();
});

describe('in-process, before any policy is active', () => {
  let closed: AdapterProcess;
  let closed401: AdapterProcess;
  let open: AdapterProcess;

  beforeAll(async () => {
    [closed, closed401, open] = await Promise.all([
      startAdapter(DECISION_PATH, { pap, ready: 'healthz' }),
      startAdapter({ ...DECISION_PATH, EXT_AUTHZ_DENY_STATUS: '401' }, { pap, ready: 'healthz' }),
      startAdapter({ ...DECISION_PATH, EXT_AUTHZ_FAIL_OPEN: 'true' }, { pap, ready: 'healthz' }),
    ]);
  }, 300_000);
  afterAll(async () => {
    await Promise.all([closed?.stop(), closed401?.stop(), open?.stop()]);
  });

  it('is not ready, and says why', async () => {
    const res = await fetch(`${closed.httpUrl}/readyz`);
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toContain('no bundle loaded yet');
  });

  it.each<[string, () => AdapterProcess, number]>([
    ['the default stance', () => closed, 403],
    ['EXT_AUTHZ_DENY_STATUS=401', () => closed401, 401],
  ])('denies over gRPC with %s, and counts the reason', async (_name, adapter, status) => {
    const v = view(await adapter().client.check(allowCase));
    expect(v).toMatchObject({ allowed: false, status, body: '', message: 'decision unavailable' });
    expect(v.metadata.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    const metrics = await adapter().metrics();
    expect(
      metricValue(metrics, 'portcullis_ext_authz_check_failures_total', {
        mode: 'grpc',
        reason: 'no_policy',
      }),
    ).toBe(1);
    expect(
      metricValue(metrics, 'portcullis_ext_authz_checks_total', {
        mode: 'grpc',
        outcome: 'failed_closed',
        status: String(status),
      }),
    ).toBe(1);
  });

  it('denies in HTTP mode too', async () => {
    const res = await fetch(`${closed.httpUrl}/envoy-authz/productpage`, { headers: { 'x-case': 'allow' } });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('allows only when told to fail open (EXT_AUTHZ_FAIL_OPEN=true), and counts that', async () => {
    const v = view(await open.client.check(httpCheck('GET', '/anything')));
    expect(v).toMatchObject({ allowed: true, headers: [] });
    expect(v.metadata.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    const res = await fetch(`${open.httpUrl}/envoy-authz/anything`);
    expect(res.status).toBe(200);
    const metrics = await open.metrics();
    expect(
      metricValue(metrics, 'portcullis_ext_authz_checks_total', { outcome: 'failed_open', status: '200' }),
    ).toBe(2);
  });
});

describe('remote mode', () => {
  let pdp: PdpProcess;
  let slow: Awaited<ReturnType<typeof startSlowPdp>>;
  let deadPort: number;
  const adapters: Record<'one' | 'twoWithOneDead' | 'slow' | 'slowOpen' | 'unknownPath', AdapterProcess> =
    {} as never;

  beforeAll(async () => {
    const revision = await pap.publish('features', FEATURES);
    await pap.activate('features', revision);
    [pdp, slow, deadPort] = await Promise.all([startPdp(pap, ['features']), startSlowPdp(2000), freePort()]);
    const remote = (addr: string, env: Record<string, string> = {}) =>
      startAdapter(
        {
          ...DECISION_PATH,
          EXT_AUTHZ_MODE: 'remote',
          EXT_AUTHZ_PDP_ADDR: addr,
          EXT_AUTHZ_PDP_TIMEOUT: '150ms',
          ...env,
        },
        { ready: 'healthz' },
      );
    [adapters.one, adapters.twoWithOneDead, adapters.slow, adapters.slowOpen, adapters.unknownPath] =
      await Promise.all([
        remote(pdp.grpcAddress),
        remote(`127.0.0.1:${deadPort},${pdp.grpcAddress}`),
        remote(slow.address),
        remote(slow.address, { EXT_AUTHZ_FAIL_OPEN: 'true' }),
        remote(pdp.grpcAddress, { EXT_AUTHZ_DECISION_PATH: 'no/such/decision' }),
      ]);
  }, 300_000);
  afterAll(async () => {
    await Promise.all(Object.values(adapters).map((a) => a?.stop()));
    await pdp?.stop();
    slow?.close();
  });

  it.each<[string, string, Record<string, unknown>]>([
    ['allow', 'allow', { allowed: true }],
    [
      'a denial with status and body',
      'unauthorized',
      { allowed: false, status: 401, body: '{"error":"login required"}' },
    ],
    ['headers', 'headers', { allowed: true, headersToRemove: ['authorization', 'x-secret'] }],
    [
      'an evaluation error at the PDP: fail closed',
      'conflict',
      { allowed: false, status: 403, message: 'decision unavailable' },
    ],
  ])('decides through the PDP: %s', async (_name, c, expected) => {
    const v = view(await adapters.one.client.check(httpCheck('GET', '/', { 'x-case': c })));
    expect(v).toMatchObject(expected);
    expect(v.metadata.decision_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('is ready with a PDP connected', async () => {
    expect((await fetch(`${adapters.one.httpUrl}/readyz`)).status).toBe(200);
  });

  it('spreads over several PDPs and skips the one that is down', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => adapters.twoWithOneDead.client.check(allowCase)),
    );
    expect(results.map((r) => view(r).allowed)).toEqual(Array(20).fill(true));
    const metrics = await adapters.twoWithOneDead.metrics();
    expect(metricValue(metrics, 'portcullis_ext_authz_check_failures_total', {})).toBe(0);
  });

  it('a PDP slower than EXT_AUTHZ_PDP_TIMEOUT: denied at the deadline, not when the PDP answers', async () => {
    const started = performance.now();
    const v = view(await adapters.slow.client.check(allowCase));
    const elapsed = performance.now() - started;
    expect(v).toMatchObject({ allowed: false, status: 403 });
    expect(slow.calls).toBeGreaterThan(0);
    // 150 ms budget; the PDP would answer after 2 s. Generous bound for a busy machine.
    expect(elapsed).toBeLessThan(1500);
    const metrics = await adapters.slow.metrics();
    expect(metricValue(metrics, 'portcullis_ext_authz_check_failures_total', { reason: 'timeout' })).toBe(1);
  });

  it('fails open on the PDP timeout only when told to', async () => {
    expect(view(await adapters.slowOpen.client.check(allowCase)).allowed).toBe(true);
  });

  it('a decision path no PDP serves is denied (no_policy)', async () => {
    expect(view(await adapters.unknownPath.client.check(allowCase))).toMatchObject({
      allowed: false,
      status: 403,
    });
    const metrics = await adapters.unknownPath.metrics();
    expect(metricValue(metrics, 'portcullis_ext_authz_check_failures_total', { reason: 'no_policy' })).toBe(
      1,
    );
  });

  it('every PDP down: denied (unavailable), and not ready', async () => {
    await pdp.stop();
    const v = view(await adapters.one.client.check(allowCase));
    expect(v).toMatchObject({ allowed: false, status: 403, message: 'decision unavailable' });
    const metrics = await adapters.one.metrics();
    expect(
      metricValue(metrics, 'portcullis_ext_authz_check_failures_total', { reason: 'unavailable' }),
    ).toBeGreaterThanOrEqual(1);
    expect((await fetch(`${adapters.one.httpUrl}/readyz`)).status).toBe(503);
  });
});
