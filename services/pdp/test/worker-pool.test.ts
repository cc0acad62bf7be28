// The worker pool evaluator: same answers as the engine on the calling thread, and a dead thread is replaced.
import { compileWasm, type Revision } from '@portcullis/engine';
import { opaBin, waitFor } from '@portcullis/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InThreadEvaluator } from '../src/serving/evaluator.ts';
import { WorkerPoolEvaluator } from '../src/serving/worker-pool.ts';
import { dataOf, ENTRYPOINTS, MODULES } from './fixtures.ts';

let rev: Revision;
const pools: WorkerPoolEvaluator[] = [];

beforeAll(async () => {
  const data = dataOf(1);
  const compiled = await compileWasm({ opaBin: opaBin(), modules: MODULES, data, entrypoints: ENTRYPOINTS });
  rev = {
    bundle: 'authz',
    revision: 1,
    digest: compiled.digest,
    wasm: compiled.wasm,
    data: compiled.data,
    entrypoints: ENTRYPOINTS,
  };
});

afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});

describe('WorkerPoolEvaluator', () => {
  it.each([
    ['authz/allow', '{"user":"alice"}'],
    ['authz/allow', '{"user":"eve"}'],
    ['authz/profile', '{"user":"bob"}'],
    ['authz/profile', undefined],
    ['system/main', '{"user":"alice"}'],
  ])('answers %s %s as the in-thread engine does', async (path, input) => {
    const pool = new WorkerPoolEvaluator(2);
    pools.push(pool);
    const local = new InThreadEvaluator();
    await Promise.all([pool.load(rev), local.load(rev)]);
    const { evalNs: _a, ...theirs } = local.evaluate(path, input);
    const { evalNs: _b, ...ours } = await pool.evaluate(path, input);
    expect(ours).toEqual(theirs);
  });

  it('passes engine errors through with their code', async () => {
    const pool = new WorkerPoolEvaluator(1);
    pools.push(pool);
    await pool.load(rev);
    await expect(pool.evaluate('nothing/here', '{}')).rejects.toMatchObject({ code: 'entrypoint_not_found' });
    await expect(pool.evaluate('authz/conflict', '{"a":true,"b":true}')).rejects.toMatchObject({
      code: 'eval_failed',
    });
  });

  it('swaps back and forth without a failed decision, each swap answering as a fresh engine', async () => {
    const pool = new WorkerPoolEvaluator(2);
    pools.push(pool);
    const compiled = await compileWasm({
      opaBin: opaBin(),
      modules: MODULES,
      data: { ...dataOf(2), users: ['carol'] },
      entrypoints: ENTRYPOINTS,
    });
    const rev2: Revision = {
      ...rev,
      revision: 2,
      digest: compiled.digest,
      wasm: compiled.wasm,
      data: compiled.data,
    };
    await pool.load(rev);
    let stop = false;
    const decisions: Promise<unknown>[] = [];
    const traffic = (async () => {
      while (!stop) {
        decisions.push(pool.evaluate('authz/allow', '{"user":"alice"}'));
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (const [i, next] of [rev2, rev, rev2, rev, rev2].entries()) {
      expect(await pool.load(next)).toBe(true);
      // Loading what serves already is a no-op.
      expect(await pool.load({ ...next, revision: 100 + i })).toBe(false);
      const fresh = new InThreadEvaluator();
      await fresh.load(next);
      for (const user of ['alice', 'carol']) {
        const input = JSON.stringify({ user });
        const { evalNs: _a, ...theirs } = fresh.evaluate('authz/allow', input);
        const { evalNs: _b, ...ours } = await pool.evaluate('authz/allow', input);
        expect(ours).toEqual(theirs);
      }
      expect((await pool.evaluate('authz/version', undefined)).resultJson).toBe(String(next.revision));
    }
    stop = true;
    await traffic;
    const settled = await Promise.allSettled(decisions);
    expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(decisions.length).toBeGreaterThan(0);
  });

  it('refuses data that is not JSON and keeps serving the previous revision', async () => {
    const pool = new WorkerPoolEvaluator(1);
    pools.push(pool);
    await pool.load(rev);
    await expect(pool.load({ ...rev, digest: 'f'.repeat(64), data: { n: 1n } })).rejects.toMatchObject({
      code: 'invalid_bundle',
    });
    expect((await pool.evaluate('authz/allow', '{"user":"alice"}')).revision).toBe(1);
  });

  it('replaces a thread that died and gives it the loaded revisions first', async () => {
    const pool = new WorkerPoolEvaluator(2);
    pools.push(pool);
    await pool.load(rev);
    const [first] = pool.threads();
    await first!.terminate();
    await waitFor(() => !pool.threads().includes(first!), { message: 'the thread to be replaced' });
    // Both threads take decisions again, each with the revision.
    await waitFor(async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => pool.evaluate('authz/allow', '{"user":"alice"}')),
      );
      return results.every((r) => r.resultJson === 'true' && r.revision === 1);
    });
    expect(pool.size).toBe(2);
  });
});
