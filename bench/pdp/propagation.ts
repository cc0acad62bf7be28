// Propagation (activation at the PAP → every PDP serving it) and memory across revision swaps.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Pap, type PdpProcess, rssMiB } from './processes.ts';
import { rbacData } from './workloads.ts';

const PROP_POLICY = `package prop

version := data.version
`;

async function served(pdp: PdpProcess, path: string): Promise<unknown> {
  const res = await fetch(`${pdp.http}/v1/data/${path}`, { method: 'POST', body: '{"input":{}}' });
  return ((await res.json()) as { result?: unknown }).result;
}

/** Polls every PDP until each answers `expected` at `path`; resolves with when the last one did. */
async function allServe(
  pdps: PdpProcess[],
  path: string,
  expected: unknown,
  timeoutMs = 30_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  const times = await Promise.all(
    pdps.map(async (pdp) => {
      for (;;) {
        if ((await served(pdp, path)) === expected) return performance.now();
        if (performance.now() > deadline) throw new Error(`${pdp.http} did not serve ${path} = ${expected}`);
        // Every 5 ms: polling harder would take CPU from the very PDPs being timed (2 cores).
        await sleep(5);
      }
    }),
  );
  return Math.max(...times);
}

/**
 * `count` activations alternating between two revisions of a small bundle; each sample is the time
 * from sending the activation to the last of the PDPs answering with the activated revision (the
 * activation's own transaction included, so this is what a publisher waits for).
 */
export async function measurePropagation(pap: Pap, pdps: PdpProcess[], count: number): Promise<number[]> {
  const revisions: number[] = [];
  for (const version of [1, 2]) {
    revisions.push(
      await pap.post('prop', {
        modules: { 'prop/policy.rego': PROP_POLICY },
        data: { version },
        entrypoints: ['prop/version'],
      }),
    );
  }
  await pap.activate('prop', revisions[0]!);
  await allServe(pdps, 'prop/version', 1);
  const samples: number[] = [];
  for (let i = 1; i <= count; i++) {
    const version = (i % 2) + 1;
    const t0 = performance.now();
    await pap.activate('prop', revisions[version - 1]!);
    const t1 = await allServe(pdps, 'prop/version', version);
    samples.push(t1 - t0);
    await sleep(20);
  }
  return samples;
}

export interface MemoryResult {
  swaps: number;
  /** Per PDP: RSS in MiB after the first swap and after the last. */
  rss_first_mib: number[];
  rss_last_mib: number[];
  growth_pct: number[];
}

/** Swaps a large bundle (RBAC at 1,000 roles / 10,000 bindings) `swaps` times; RSS after the first and the last. */
export async function measureSwapMemory(
  pap: Pap,
  pdps: PdpProcess[],
  rbacPolicy: string,
  swaps: number,
): Promise<MemoryResult> {
  const modules = {
    'rbac/policy.rego': rbacPolicy,
    'memswap/version.rego': 'package memswap\n\nversion := data.version\n',
  };
  const entrypoints = ['rbac/allow', 'rbac/decision', 'memswap/version'];
  const revisions: number[] = [];
  for (const version of [1, 2]) {
    revisions.push(
      await pap.post('rbac', { modules, data: { ...rbacData(1000, 10_000), version }, entrypoints }),
    );
  }
  const swap = async (i: number): Promise<void> => {
    const version = (i % 2) + 1;
    await pap.activate('rbac', revisions[version - 1]!);
    await allServe(pdps, 'memswap/version', version, 60_000);
  };
  await swap(0);
  await swap(1);
  await sleep(2000);
  const first = pdps.map((p) => rssMiB(p.service.pid));
  for (let i = 2; i <= swaps; i++) await swap(i);
  await sleep(2000);
  const last = pdps.map((p) => rssMiB(p.service.pid));
  return {
    swaps,
    rss_first_mib: first,
    rss_last_mib: last,
    growth_pct: first.map((f, i) => Math.round(((last[i]! - f) / f) * 1000) / 10),
  };
}
