// PDP benchmark: evaluation in-process, over HTTP and gRPC beside a real `opa run --server`, in-thread vs worker pool,
// propagation over both buses, and memory across revision swaps.
//
// Run: node --import tsx bench/pdp/run.ts [--duration 10] [--connections 64] [--activations 100] [--swaps 200]
//      [--skip inprocess,serving,propagation,kafka,memory]   (writes bench/results/pdp.json)
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compileWasm, PolicyEngine } from '@portcullis/engine';
import { InThreadEvaluator, WorkerPoolEvaluator } from '@portcullis/pdp';
import pg from 'pg';
import { ensureOpa, OPA_VERSION } from '../../scripts/tools.mjs';
import { grpcLoad, httpLoad, summarize, type Throughput, timeAsync, timeSync } from './load.ts';
import { Pap, PdpProcess, ROOT, startBenchKafka, startBenchPostgres, startOpa } from './processes.ts';
import { measurePropagation, measureSwapMemory } from './propagation.ts';
import { envoyWorkload, rbacWorkload, type Workload } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    activations: { type: 'string', default: '100' },
    swaps: { type: 'string', default: '200' },
    skip: { type: 'string', default: '' },
    out: { type: 'string', default: join(ROOT, 'bench/results/pdp.json') },
  },
});
const DURATION_S = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const ACTIVATIONS = Number(args.activations);
const SWAPS = Number(args.swaps);
const SKIP = new Set(args.skip.split(',').filter(Boolean));

const results: Record<string, unknown> = {
  started_at: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, opa: OPA_VERSION },
  settings: { duration_s: DURATION_S, connections: CONNECTIONS, activations: ACTIVATIONS, swaps: SWAPS },
  load_before: loadavg(),
};
const rows: [string, string, string, string, string, string][] = [];

function say(line: string): void {
  process.stderr.write(`[bench:pdp] ${line}\n`);
}

function row(what: string, t: Throughput, ratio = ''): void {
  rows.push([
    what,
    t.rps.toLocaleString('en'),
    t.p50_us.toFixed(1),
    t.p99_us.toFixed(1),
    t.server_cpu_us === undefined ? '' : t.server_cpu_us.toFixed(1),
    ratio,
  ]);
}

function ratio(a: number, b: number): string {
  return b === 0 ? '' : `${(a / b).toFixed(2)}×`;
}

async function inProcess(workloads: Workload[], opaBin: string): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const w of workloads) {
    say(`in-process: compiling ${w.bundle}`);
    const compiled = await compileWasm({
      opaBin,
      modules: w.modules,
      data: w.data,
      entrypoints: w.entrypoints,
    });
    const rev = {
      bundle: w.bundle,
      revision: 1,
      digest: compiled.digest,
      wasm: compiled.wasm,
      data: compiled.data,
      entrypoints: w.entrypoints,
    };
    const engine = new PolicyEngine();
    await engine.load(rev);
    const inputs = w.inputs.map((i) => JSON.stringify(i));
    say(`in-process: ${w.bundle} single-threaded evaluation`);
    const single = timeSync((i) => engine.evaluateJson(w.path, inputs[i % inputs.length]), DURATION_S * 1000);
    row(`${w.bundle}: engine in-process (1 thread)`, single);

    // Concurrent callers: the in-thread evaluator against a pool of worker threads, same calls.
    const inThread = new InThreadEvaluator();
    await inThread.load(rev);
    const pool = new WorkerPoolEvaluator(cpus().length);
    await pool.load(rev);
    const concurrency = CONNECTIONS;
    say(
      `in-process: ${w.bundle} in-thread vs worker pool (${pool.size} threads), ${concurrency} concurrent callers`,
    );
    const threadResult = await timeAsync(async (i) => inThread.evaluate(w.path, inputs[i % inputs.length]), {
      durationMs: DURATION_S * 1000,
      concurrency,
    });
    const poolResult = await timeAsync((i) => pool.evaluate(w.path, inputs[i % inputs.length]), {
      durationMs: DURATION_S * 1000,
      concurrency,
    });
    await pool.close();
    row(`${w.bundle}: evaluator in-thread, ${concurrency} callers`, threadResult);
    row(
      `${w.bundle}: evaluator worker pool ×${pool.size}, ${concurrency} callers`,
      poolResult,
      ratio(poolResult.rps, threadResult.rps),
    );
    out[w.bundle] = {
      single_thread: single,
      in_thread_concurrent: threadResult,
      worker_pool_concurrent: poolResult,
      pool_threads: pool.size,
    };
  }
  results.in_process = out;
}

async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function serving(workloads: Workload[], opaBin: string, adminUrl: string, dir: string): Promise<void> {
  const databaseUrl = await createDatabase(adminUrl, 'bench_serving');
  const pap = await Pap.start({ DATABASE_URL: databaseUrl, BUS: 'postgres', OPA_BIN: opaBin });
  const archives: string[] = [];
  try {
    for (const w of workloads) {
      say(`serving: posting ${w.bundle} to the PAP`);
      const revision = await pap.post(w.bundle, {
        modules: w.modules,
        data: w.data,
        entrypoints: w.entrypoints,
      });
      await pap.activate(w.bundle, revision);
      const file = join(dir, `${w.bundle}-rego.tar.gz`);
      await writeFile(file, await pap.regoArchive(w.bundle));
      archives.push(file);
    }
    const out: Record<string, Record<string, unknown>> = {};
    for (const w of workloads) out[w.bundle] = {};
    const bodies = (w: Workload) => w.inputs.map((input) => JSON.stringify({ input }));

    // The reference: a stock OPA server with the same policies and data (rego target: this opa has no WASM runtime).
    say('serving: opa run --server');
    const opa = await startOpa(opaBin, archives);
    try {
      for (const w of workloads) {
        say(`serving: OPA HTTP ${w.bundle}`);
        out[w.bundle]!.opa_http = await httpLoad(opa.url, `/v1/data/${w.path}`, bodies(w), {
          durationS: DURATION_S,
          connections: CONNECTIONS,
          pid: opa.service.pid,
        });
      }
    } finally {
      await opa.service.stop();
    }

    const variants: { key: string; label: string; env: Record<string, string>; grpc: boolean }[] = [
      {
        key: 'in_thread',
        label: 'in-thread',
        env: { PDP_EVALUATOR: 'in-thread', PDP_DECISION_LOG: 'off' },
        grpc: true,
      },
      {
        key: 'worker_pool',
        label: `worker pool ×${cpus().length}`,
        env: { PDP_EVALUATOR: 'worker-pool', PDP_WORKERS: String(cpus().length), PDP_DECISION_LOG: 'off' },
        grpc: true,
      },
      {
        key: 'worker_pool_decision_log',
        label: 'worker pool, decision log on',
        env: { PDP_EVALUATOR: 'worker-pool', PDP_WORKERS: String(cpus().length), PDP_DECISION_LOG: 'on' },
        grpc: false,
      },
    ];
    for (const v of variants) {
      say(`serving: PDP ${v.label}`);
      const pdp = await PdpProcess.start({
        ...v.env,
        BUS: 'postgres',
        DATABASE_URL: databaseUrl,
        PAP_GRPC_ADDR: pap.grpc,
      });
      try {
        await pdp.ready(workloads.map((w) => w.bundle));
        for (const w of workloads) {
          say(`serving: PDP ${v.label} HTTP ${w.bundle}`);
          out[w.bundle]![`pdp_http_${v.key}`] = await httpLoad(pdp.http, `/v1/data/${w.path}`, bodies(w), {
            durationS: DURATION_S,
            connections: CONNECTIONS,
            pid: pdp.service.pid,
          });
          if (v.grpc) {
            say(`serving: PDP ${v.label} gRPC ${w.bundle}`);
            out[w.bundle]![`pdp_grpc_${v.key}`] = await grpcLoad(
              pdp.grpc,
              w.path,
              w.inputs.map((i) => JSON.stringify(i)),
              {
                durationMs: DURATION_S * 1000,
                concurrency: CONNECTIONS,
                pid: pdp.service.pid,
              },
            );
          }
        }
      } finally {
        await pdp.stop();
      }
    }
    for (const w of workloads) {
      const r = out[w.bundle] as Record<string, Throughput>;
      const opaRps = r.opa_http!.rps;
      row(`${w.bundle}: opa run --server, HTTP (reference)`, r.opa_http!, '1.00×');
      for (const v of variants) {
        row(
          `${w.bundle}: PDP HTTP, ${v.label}`,
          r[`pdp_http_${v.key}`]!,
          ratio(r[`pdp_http_${v.key}`]!.rps, opaRps),
        );
        if (v.grpc)
          row(
            `${w.bundle}: PDP gRPC, ${v.label}`,
            r[`pdp_grpc_${v.key}`]!,
            ratio(r[`pdp_grpc_${v.key}`]!.rps, opaRps),
          );
      }
      // The shipped default (PDP_EVALUATOR=worker-pool) against OPA.
      r.pdp_http_vs_opa = Number((r.pdp_http_worker_pool!.rps / opaRps).toFixed(2)) as never;
    }
    results.serving = out;
  } finally {
    await pap.stop();
  }
}

function latencyStats(samples: number[]): { p50_ms: number; p99_ms: number; max_ms: number; n: number } {
  const s = summarize(
    samples.map((ms) => ms * 1000),
    1,
  );
  const max = Math.max(...samples);
  return {
    p50_ms: Math.round(s.p50_us / 10) / 100,
    p99_ms: Math.round(s.p99_us / 10) / 100,
    max_ms: Math.round(max * 100) / 100,
    n: s.n,
  };
}

async function propagation(
  transport: 'postgres' | 'kafka',
  opaBin: string,
  adminUrl: string,
  dir: string,
  rbacPolicy: string,
): Promise<void> {
  const databaseUrl = await createDatabase(adminUrl, `bench_propagation_${transport}`);
  const kafka = transport === 'kafka' ? await startBenchKafka(dir) : undefined;
  const bus: Record<string, string> = kafka
    ? { BUS: 'kafka', KAFKA_BROKERS: kafka.brokers.join(',') }
    : { BUS: 'postgres', DATABASE_URL: databaseUrl };
  try {
    const pap = await Pap.start({ ...bus, DATABASE_URL: databaseUrl, OPA_BIN: opaBin });
    const pdps: PdpProcess[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        pdps.push(
          await PdpProcess.start({
            ...bus,
            PAP_GRPC_ADDR: pap.grpc,
            PDP_DECISION_LOG: 'off',
            PDP_RECONCILE_INTERVAL: '30s',
          }),
        );
      }
      if (!SKIP.has('propagation')) {
        say(`propagation (${transport}): ${ACTIVATIONS} activations, 3 PDPs`);
        const samples = await measurePropagation(pap, pdps, ACTIVATIONS);
        const stats = latencyStats(samples);
        const propagationResults = (results.propagation ?? {}) as Record<string, unknown>;
        propagationResults[transport] = stats;
        results.propagation = propagationResults;
        rows.push([
          `propagation over ${transport}: activation → 3 PDPs serving (n=${stats.n})`,
          '',
          `${stats.p50_ms} ms`,
          `${stats.p99_ms} ms`,
          '',
          `max ${stats.max_ms} ms`,
        ]);
      }
      if (transport === 'postgres' && !SKIP.has('memory')) {
        say(`memory: ${SWAPS} swaps of the RBAC bundle (1,000 roles, 10,000 bindings)`);
        const mem = await measureSwapMemory(pap, pdps, rbacPolicy, SWAPS);
        results.memory = mem;
        rows.push([
          `memory: PDP RSS after ${SWAPS} swaps vs after the first`,
          '',
          `first ${mem.rss_first_mib.join(' / ')} MiB`,
          `last ${mem.rss_last_mib.join(' / ')} MiB`,
          '',
          `${mem.growth_pct.map((g) => `${g > 0 ? '+' : ''}${g}%`).join(' / ')}`,
        ]);
      }
    } finally {
      await Promise.all(pdps.map((p) => p.stop()));
      await pap.stop();
    }
  } finally {
    await kafka?.stop();
  }
}

function printTable(): void {
  const header: [string, string, string, string, string, string] = [
    '',
    'decisions/s',
    'p50 µs',
    'p99 µs',
    'server CPU µs/decision',
    'ratio',
  ];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  process.stdout.write(
    `\nload average before ${(results.load_before as number[]).map((x) => x.toFixed(2)).join(' ')}, after ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (${cpus().length} CPUs)\n`,
  );
}

async function main(): Promise<void> {
  say(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} on ${cpus().length} CPUs`,
  );
  const opaBin = await ensureOpa();
  const workloads = [await envoyWorkload(ROOT), await rbacWorkload(ROOT)];
  const dir = await mkdtemp(join(tmpdir(), 'bench-pdp-'));
  // As root, Postgres runs as the postgres user, which must be able to reach its data directory.
  await chmod(dir, 0o755);
  try {
    if (!SKIP.has('inprocess')) await inProcess(workloads, opaBin);
    // Memory is measured on the PDPs of the postgres propagation run, started even when its timing is skipped
    // (the PDPs then come to the swaps cold, without the 100 activations' warm-up).
    const needsBus = !SKIP.has('propagation') || !SKIP.has('memory');
    const needsPg = !SKIP.has('serving') || needsBus;
    const postgres = needsPg ? await startBenchPostgres(dir) : undefined;
    try {
      if (postgres && !SKIP.has('serving')) await serving(workloads, opaBin, postgres.url, dir);
      if (postgres && needsBus) {
        const rbacPolicy = workloads[1]!.modules['policy.rego']!;
        await propagation('postgres', opaBin, postgres.url, dir, rbacPolicy);
        if (!SKIP.has('kafka') && !SKIP.has('propagation'))
          await propagation('kafka', opaBin, postgres.url, dir, rbacPolicy);
      }
    } finally {
      await postgres?.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
  results.load_after = loadavg();
  printTable();
  await mkdir(join(ROOT, 'bench/results'), { recursive: true });
  await writeFile(args.out, `${JSON.stringify(results, null, 2)}\n`);
  say(`wrote ${args.out}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench:pdp failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
