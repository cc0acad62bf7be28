// A bundle's data reaches the engine as text, checked but not parsed on the way: what that must not change.
import { gunzipSync, gzipSync } from 'node:zlib';
import { waitFor } from '@portcullis/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileArchive, startTestPdp, type TestPdp } from './fixtures.ts';

let archives: Buffer[] = [];
let t: TestPdp | undefined;

beforeAll(async () => {
  archives = await Promise.all([1, 2, 3].map((v) => compileArchive(v)));
});

afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** The archive with the first byte of its data.json turned into one no JSON text starts with (the tar stays valid). */
function withInvalidData(archive: Buffer): Buffer {
  const tar = gunzipSync(archive);
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const field = (at: number, length: number) =>
      tar
        .subarray(offset + at, offset + at + length)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    if (field(0, 100).replace(/^(\.?\/)+/, '') === 'data.json') {
      tar[offset + 512] = 0x78; // 'x'
      return gzipSync(tar);
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('the archive has no data.json');
}

async function invalidBundleFailures(pdp: TestPdp): Promise<number> {
  const metric = pdp.metrics.registry.getSingleMetric('portcullis_bundle_load_failures_total');
  const values = metric ? (await metric.get()).values : [];
  return values.find((v) => v.labels.reason === 'invalid_bundle')?.value ?? 0;
}

describe.each(['worker-pool', 'in-thread'])('a PDP with the %s evaluator', (evaluator) => {
  it('refuses a revision whose data.json is not JSON and keeps serving the previous one', async () => {
    t = await startTestPdp(archives[0], { PDP_EVALUATOR: evaluator, PDP_RECONCILE_INTERVAL: '100ms' });
    const pdp = t;
    const version = async () => (await pdp.pdp.evaluator.evaluate('authz/version', undefined)).resultJson;
    expect(await version()).toBe('1');

    pdp.distribution.activate(withInvalidData(archives[1]!), { bundle: 'authz', revision: 2 });
    await waitFor(async () => (await invalidBundleFailures(pdp)) > 0, {
      message: 'the refusal to be counted',
    });
    expect(await version()).toBe('1');
    expect(pdp.pdp.documents.bundles().map((b) => b.revision)).toEqual([1]);
    expect(pdp.pdp.sync.status().message).toMatch(
      /r2 refused \(invalid_bundle\).*data\.json: not valid JSON/,
    );

    pdp.distribution.activate(archives[2]!, { bundle: 'authz', revision: 3 });
    await waitFor(async () => (await version()) === '3', { message: 'revision 3 to serve' });
    // The Data API reads the data the engine got as text.
    const plan = pdp.pdp.documents.plan(['settings']);
    expect(plan).toMatchObject({ kind: 'data', value: { region: 'eu', limits: [10, 20] } });
  });
});
