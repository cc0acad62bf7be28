// PAP benchmark: revision creation and activation, against plain `opa build -t wasm` of the same bundle in the same run.
//
// Run: npm run bench:pap [-- --iterations 40 --activations 300]  (writes bench/results/pap.json)
// Uses DATABASE_URL if set, else a throwaway embedded Postgres (durable, as a real one would be).
import { spawn } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildPap, loadPapConfig } from '@portcullis/pap';
import { createLogger, createMetrics, Health, type ServiceMetrics } from '@portcullis/runtime';
import { startPostgres } from '../../scripts/lib/postgres.mjs';
import { ensureOpa, OPA_VERSION } from '../../scripts/tools.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const BUNDLE_DIR = join(ROOT, 'policies/envoy-authz');
const BUNDLE = 'bench-envoy-authz';
const TOKEN = 'bench-admin-token-0123456789abcdef';
const COMPILE_METRIC = 'portcullis_pap_compile_duration_seconds';

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '30' },
    activations: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '3' },
    out: { type: 'string', default: join(ROOT, 'bench/results/pap.json') },
  },
});
const ITERATIONS = Number(args.iterations);
const ACTIVATIONS = Number(args.activations);
const WARMUP = Number(args.warmup);

interface Stats {
  n: number;
  mean_ms: number;
  p50_ms: number;
  p99_ms: number;
  min_ms: number;
}

function mean(samples: number[]): number {
  return samples.reduce((a, b) => a + b, 0) / samples.length;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  // Nearest rank: p99 of 30 samples is the largest, which is what it is; say n beside it.
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    mean_ms: round(mean(sorted)),
    p50_ms: round(pct(50)),
    p99_ms: round(pct(99)),
    min_ms: round(sorted[0]!),
  };
}

/**
 * CPU milliseconds used so far by this process (the PAP runs in it) and by its reaped children
 * (every opa run, the PAP's and the reference's). Wall time on a shared 2-core machine mostly
 * measures the neighbours; CPU time measures the work. Children's time comes from
 * /proc/self/stat (clock ticks of 10 ms, so only means over many samples are meaningful).
 */
async function cpuMs(): Promise<number> {
  const own = process.cpuUsage();
  const stat = await readFile('/proc/self/stat', 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After `pid (comm)`: state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here.
  const children = (Number(fields[13] ?? 0) + Number(fields[14] ?? 0)) * 10;
  return (own.user + own.system) / 1000 + children;
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number; cpuMs: number }> {
  const cpu = await cpuMs();
  const started = performance.now();
  const value = await work();
  const ms = performance.now() - started;
  return { value, ms, cpuMs: (await cpuMs()) - cpu };
}

function run(cmd: string, argv: string[], cwd: string): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', fail);
    child.once('close', (code) => {
      if (code === 0) done();
      else fail(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

async function compileSeconds(metrics: ServiceMetrics): Promise<number> {
  const metric = metrics.registry.getSingleMetric(COMPILE_METRIC);
  if (!metric) return 0;
  const { values } = await metric.get();
  // A histogram's values carry their series name (`…_sum`, `…_count`, `…_bucket`) beside the value.
  return values
    .filter((v) => (v as { metricName?: string }).metricName === `${COMPILE_METRIC}_sum`)
    .reduce((a, v) => a + v.value, 0);
}

async function main(): Promise<void> {
  const load = { before: loadavg().map((x) => Math.round(x * 100) / 100), cpus: cpus().length };
  if (load.before[0]! > load.cpus) {
    process.stderr.write(
      `warning: load average ${load.before[0]} on ${load.cpus} CPUs: the machine is busy, expect noisy figures\n`,
    );
  }
  const opaBin = await ensureOpa();
  const work = await mkdtemp(join(tmpdir(), 'portcullis-bench-pap-'));
  await chmod(work, 0o755);
  let stopPostgres: (() => Promise<void>) | undefined;
  try {
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      const server = await startPostgres({ dataDir: join(work, 'postgres') });
      stopPostgres = () => server.stop();
      databaseUrl = server.url;
    }
    const metrics = createMetrics('pap');
    const pap = await buildPap({
      config: loadPapConfig({
        DATABASE_URL: databaseUrl,
        OPA_BIN: opaBin,
        PAP_HTTP_PORT: '0',
        PAP_GRPC_PORT: '0',
        PAP_ADMIN_TOKEN: TOKEN,
        PAP_ADMIN_TOKEN_FILE: join(work, 'admin-token'),
      }),
      logger: createLogger('pap', 'silent'),
      metrics,
      health: new Health(),
    });
    try {
      const { httpUrl } = await pap.listen();
      const result = await measure({ httpUrl, opaBin, work, metrics });
      const report = {
        benchmark: 'pap',
        date: new Date().toISOString(),
        command: 'npm run bench:pap',
        machine: { ...load, after: loadavg().map((x) => Math.round(x * 100) / 100), node: process.version },
        opa: OPA_VERSION,
        bundle: 'policies/envoy-authz',
        ...result,
      };
      await mkdir(resolve(args.out, '..'), { recursive: true });
      await writeFile(args.out, `${JSON.stringify(report, null, 2)}\n`);
      print(report);
      process.stdout.write(`\nwrote ${args.out}\n`);
    } finally {
      await pap.close();
    }
  } finally {
    await stopPostgres?.();
    await rm(work, { recursive: true, force: true });
  }
}

async function measure({
  httpUrl,
  opaBin,
  work,
  metrics,
}: {
  httpUrl: string;
  opaBin: string;
  work: string;
  metrics: ServiceMetrics;
}) {
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const descriptor = JSON.parse(await readFile(join(BUNDLE_DIR, 'bundle.json'), 'utf8')) as {
    entrypoints: string[];
  };
  const modules: Record<string, string> = {};
  for (const file of ['policy.rego', 'policy_test.rego']) {
    modules[file] = await readFile(join(BUNDLE_DIR, file), 'utf8');
  }
  const data = JSON.parse(await readFile(join(BUNDLE_DIR, 'data.json'), 'utf8')) as Record<string, unknown>;
  const plainDir = join(work, 'plain');
  await cp(BUNDLE_DIR, plainDir, { recursive: true });
  const entrypointArgs = descriptor.entrypoints.flatMap((e) => ['-e', e]);

  let nonce = 0;
  const createRevision = async () => {
    nonce += 1;
    // A different data value each time: the same content would be answered from the idempotency check.
    const body = JSON.stringify({
      modules,
      data: { ...data, bench: { nonce } },
      entrypoints: descriptor.entrypoints,
    });
    const compiledBefore = await compileSeconds(metrics);
    const {
      value: res,
      ms,
      cpuMs: cpu,
    } = await timed(async () => {
      const res = await fetch(`${httpUrl}/v1/bundles/${BUNDLE}/revisions`, { method: 'POST', headers, body });
      return { status: res.status, body: (await res.json()) as { revision: number } };
    });
    if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body)}`);
    const compileMs = ((await compileSeconds(metrics)) - compiledBefore) * 1000;
    return { ms, cpuMs: cpu, compileMs, revision: res.body.revision };
  };
  // The reference: what a user runs by hand (policies/envoy-authz/README.md), on the same files.
  const steps = {
    opa_build: () =>
      timed(() =>
        run(
          opaBin,
          ['build', '-t', 'wasm', ...entrypointArgs, '-o', join(work, 'plain.tar.gz'), '.'],
          plainDir,
        ),
      ),
    opa_check_strict: () => timed(() => run(opaBin, ['check', '--strict', '-b', '.'], plainDir)),
    opa_test: () => timed(() => run(opaBin, ['test', '-b', '.'], plainDir)),
  };

  for (let i = 0; i < WARMUP; i += 1) {
    await createRevision();
    await steps.opa_build();
  }

  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const push = (into: Record<string, number[]>, what: string, value: number) => {
    into[what] = [...(into[what] ?? []), value];
  };
  const record = (what: string, ms: number, cpuMs?: number) => {
    push(wall, what, ms);
    if (cpuMs !== undefined) push(cpu, what, cpuMs);
  };
  let lastRevision = 0;
  for (let i = 0; i < ITERATIONS; i += 1) {
    // Alternate the order, so neither side always runs right after the other on a warm cache.
    const order = i % 2 === 0 ? ['create', 'opa_build'] : ['opa_build', 'create'];
    for (const what of order) {
      if (what === 'create') {
        const created = await createRevision();
        record('create', created.ms, created.cpuMs);
        record('pap_compile', created.compileMs);
        record('pap_other', created.ms - created.compileMs);
        lastRevision = created.revision;
      } else {
        const built = await steps.opa_build();
        record('opa_build', built.ms, built.cpuMs);
      }
    }
    // The pipeline's other steps alone, for the breakdown (fewer samples are enough).
    if (i % 3 === 0) {
      for (const step of ['opa_check_strict', 'opa_test'] as const) {
        const done = await steps[step]();
        record(step, done.ms, done.cpuMs);
      }
    }
  }

  // Activation: flip between two revisions under If-Match, each answer's ETag feeding the next call.
  const bundle = (await (await fetch(`${httpUrl}/v1/bundles/${BUNDLE}`, { headers })).json()) as {
    etag: string;
  };
  let etag = bundle.etag;
  for (let i = 0; i < ACTIVATIONS; i += 1) {
    const revision = i % 2 === 0 ? lastRevision : lastRevision - 1;
    const { value: res, ms } = await timed(async () => {
      const res = await fetch(`${httpUrl}/v1/bundles/${BUNDLE}/active`, {
        method: 'PUT',
        headers: { ...headers, 'if-match': etag },
        body: JSON.stringify({ revision }),
      });
      return { status: res.status, body: (await res.json()) as { etag: string } };
    });
    if (res.status !== 200) throw new Error(`activate answered ${res.status}: ${JSON.stringify(res.body)}`);
    record('activation', ms);
    etag = res.body.etag;
  }

  const create = stats(wall.create!);
  const opaBuild = stats(wall.opa_build!);
  const meanCpu = (what: string) => Math.round(mean(cpu[what]!) * 10) / 10;
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  return {
    iterations: ITERATIONS,
    revision_creation: { ...create, per_second: Math.round((1000 / create.mean_ms) * 100) / 100 },
    opa_build_wasm: { ...opaBuild, per_second: Math.round((1000 / opaBuild.mean_ms) * 100) / 100 },
    ratio: {
      p50: ratio(create.p50_ms, opaBuild.p50_ms),
      mean: ratio(create.mean_ms, opaBuild.mean_ms),
      cpu: ratio(meanCpu('create'), meanCpu('opa_build')),
      target: 1.3,
    },
    cpu_ms_mean: {
      revision_creation: meanCpu('create'),
      opa_build_wasm: meanCpu('opa_build'),
      opa_check_strict: meanCpu('opa_check_strict'),
      opa_test: meanCpu('opa_test'),
    },
    activation: stats(wall.activation!),
    breakdown: {
      pap_compile: stats(wall.pap_compile!),
      pap_other: stats(wall.pap_other!),
      opa_check_strict: stats(wall.opa_check_strict!),
      opa_test: stats(wall.opa_test!),
    },
  };
}

function print(
  report: Awaited<ReturnType<typeof measure>> & {
    machine: { before: number[]; after: number[]; cpus: number };
  },
): void {
  const row = (label: string, s: Stats) =>
    `  ${label.padEnd(38)} p50 ${s.p50_ms.toFixed(1).padStart(7)} ms   p99 ${s.p99_ms.toFixed(1).padStart(7)} ms   mean ${s.mean_ms.toFixed(1).padStart(7)} ms   n=${s.n}`;
  const lines = [
    `PAP benchmark (load average ${report.machine.before.join(' ')} → ${report.machine.after.join(' ')}, ${report.machine.cpus} CPUs)`,
    row('revision creation (POST)', report.revision_creation),
    row('opa build -t wasm (reference)', report.opa_build_wasm),
    `  ratio                                  p50 ${report.ratio.p50}×   mean ${report.ratio.mean}×   (target ≤ ${report.ratio.target}×)`,
    `  CPU time, mean                         ${report.cpu_ms_mean.revision_creation} ms vs ${report.cpu_ms_mean.opa_build_wasm} ms: ${report.ratio.cpu}× (PAP process and its opa runs vs the reference)`,
    `  revisions per second                   ${report.revision_creation.per_second} (reference builds: ${report.opa_build_wasm.per_second})`,
    row('activation (PUT …/active)', report.activation),
    'where revision creation goes:',
    row('  opa check+test+build in the PAP', report.breakdown.pap_compile),
    row('  the rest (HTTP, hash, archives, DB)', report.breakdown.pap_other),
    row('  opa check --strict alone', report.breakdown.opa_check_strict),
    row('  opa test alone', report.breakdown.opa_test),
    `    CPU time alone: opa check --strict ${report.cpu_ms_mean.opa_check_strict} ms, opa test ${report.cpu_ms_mean.opa_test} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
