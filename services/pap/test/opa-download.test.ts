// The bundle download served to a real `opa run --server` decides as our evaluate call does.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, opaBin, type Service, spawnService, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
let opa: Service;
let opaUrl: string;

beforeAll(async () => {
  t = await startTestPap();
  expect((await postRevision(t.pap, 'envoy', SAMPLE)).statusCode).toBe(201);
  expect((await postRevision(t.pap, 'envoy', sampleWithAdmins('alice', 'bob'))).statusCode).toBe(201);
  expect((await activate(t.pap, 'envoy', 1)).statusCode).toBe(200);
  const { httpUrl } = await t.pap.listen();

  const port = await freePort();
  opaUrl = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'pap-opa-'));
  const config = join(dir, 'opa.json');
  // The opa we build cannot execute WebAssembly, so it loads the sources-only variant.
  writeFileSync(
    config,
    JSON.stringify({
      services: { pap: { url: `${httpUrl}/v1`, credentials: { bearer: { token: ADMIN_TOKEN } } } },
      bundles: {
        envoy: {
          service: 'pap',
          resource: 'bundles/envoy/bundle.tar.gz?target=rego',
          polling: { min_delay_seconds: 1, max_delay_seconds: 2 },
        },
      },
    }),
  );
  opa = await spawnService(
    opaBin(),
    ['run', '--server', '--addr', `127.0.0.1:${port}`, '--config-file', config, '--log-level', 'error'],
    {},
    { readyUrl: `${opaUrl}/health?bundles`, readyTimeoutMs: 30_000 },
  );
});
afterAll(async () => {
  await opa?.stop();
  await t?.close();
});

async function opaDecision(path: string, input: unknown): Promise<unknown> {
  const res = await fetch(`${opaUrl}/v1/data/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result?: unknown }).result;
}

async function ourDecision(revision: number, entrypoint: string, input: unknown): Promise<unknown> {
  const res = await t.pap.app.inject({
    method: 'POST',
    url: `/v1/bundles/envoy/revisions/${revision}/evaluate`,
    headers: bearer(ADMIN_TOKEN),
    payload: { entrypoint, input },
  });
  expect(res.statusCode, res.body).toBe(200);
  return json<{ result?: unknown }>(res).result;
}

const INPUTS = [
  { user: 'alice' },
  { user: 'bob' },
  { user: 'mallory', method: 'GET', path: ['public', 'index.html'] },
  { user: 'mallory', method: 'POST', path: ['public'] },
  { method: 'GET', path: ['private'] },
  {},
];

describe('opa run --server with the PAP as its bundle service', () => {
  it.each(INPUTS.flatMap((input) => SAMPLE.entrypoints.map((entrypoint) => ({ input, entrypoint }))))(
    'decides $entrypoint on $input as evaluate does',
    async ({ input, entrypoint }) => {
      expect(await opaDecision(entrypoint, input)).toEqual(await ourDecision(1, entrypoint, input));
    },
  );

  it('picks up a new activation through its ETag polling', async () => {
    expect(await opaDecision('authz/allow', { user: 'bob' })).toBe(false);
    expect((await activate(t.pap, 'envoy', 2)).statusCode).toBe(200);
    await waitFor(async () => (await opaDecision('authz/allow', { user: 'bob' })) === true, {
      timeoutMs: 15_000,
      message: 'opa to load revision 2',
    });
    expect(await ourDecision(2, 'authz/allow', { user: 'bob' })).toBe(true);
  });
});
