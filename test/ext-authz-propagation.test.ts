// A policy activated at the PAP changes the in-process adapter's answers within a second; the adapter keeps its last revision on disk and serves it while the PAP is down.
import { waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdapterProcess,
  httpCheck,
  type PapProcess,
  startAdapter,
  startPap,
  tempDir,
  view,
} from './ext-authz-fixture.ts';
import { FEATURES } from './ext-authz-policies.ts';

const metadataCase = httpCheck('GET', '/', { 'x-case': 'metadata' });
/** The bound the issue sets, with the measured figures printed for the report. */
const WITHIN_MS = 1000;

let pap: PapProcess;
let adapter: AdapterProcess;
let revisions: Record<'acme' | 'globex', number>;
const cacheDir = tempDir('ext-authz-cache-');

async function tenant(a: AdapterProcess = adapter): Promise<unknown> {
  return view(await a.client.check(metadataCase)).metadata.tenant;
}

beforeAll(async () => {
  pap = await startPap();
  const acme = await pap.publish('features', FEATURES);
  const globex = await pap.publish('features', { ...FEATURES, data: { tenant: 'globex' } });
  revisions = { acme, globex };
  await pap.activate('features', acme);
  adapter = await startAdapter(
    {
      EXT_AUTHZ_DECISION_PATH: 'portcullis/features/decision',
      EXT_AUTHZ_CACHE_DIR: cacheDir,
      // Events alone must be fast enough: a reconcile would only land within this interval.
      EXT_AUTHZ_RECONCILE_INTERVAL: '10m',
    },
    { pap },
  );
}, 300_000);

afterAll(async () => {
  await adapter?.stop();
  await pap?.stop();
});

describe('propagation', () => {
  it(`an activation (or a rollback) changes the answers within ${WITHIN_MS} ms`, async () => {
    expect(await tenant()).toBe('acme');
    const lags: number[] = [];
    for (const next of ['globex', 'acme', 'globex', 'acme', 'globex'] as const) {
      const started = performance.now();
      await pap.activate('features', revisions[next]);
      // Poll the adapter's answers themselves (not its metrics): what Envoy would see.
      for (;;) {
        if ((await tenant()) === next) break;
        if (performance.now() - started > 10_000) throw new Error(`still not serving ${next} after 10 s`);
      }
      lags.push(Math.round(performance.now() - started));
    }
    process.stdout.write(`ext-authz propagation (activation → new answers), ms: ${lags.join(', ')}\n`);
    for (const lag of lags) expect(lag).toBeLessThan(WITHIN_MS);
  });

  it('serves the cached revision at start while the PAP is down', async () => {
    await pap.service.stop();
    const restarted = await startAdapter({
      EXT_AUTHZ_DECISION_PATH: 'portcullis/features/decision',
      EXT_AUTHZ_CACHE_DIR: cacheDir,
      PAP_GRPC_ADDR: pap.grpcAddress,
      DATABASE_URL: pap.databaseUrl,
    });
    try {
      expect(await tenant(restarted)).toBe('globex');
      // Serving (ready), with the PAP's absence reported.
      await waitFor(
        async () => {
          const res = await fetch(`${restarted.httpUrl}/readyz`);
          const report = (await res.json()) as {
            components: Record<string, { state: string; message?: string }>;
          };
          const sync = report.components['policy-sync'];
          return (
            res.status === 200 && sync?.state === 'WARN' && (sync.message ?? '').includes('PAP unreachable')
          );
        },
        { timeoutMs: 15_000, message: 'readyz to report serving from cache with the PAP unreachable' },
      );
    } finally {
      await restarted.stop();
    }
  });
});
