// ext-authz benchmark: checks/s and p50/p99 of the example policy over gRPC — adapter with its in-process engine, adapter asking a PDP — beside a direct engine evaluation of the same requests in the same run (and OPA's own Envoy plugin when the Go module proxy serves it).
//
// Run: node --import tsx bench/ext-authz/run.ts [--duration 10] [--concurrency 32] [--connections 4]
//      [--loadgen ghz|grpc-js]        (writes bench/results/ext-authz.json)
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { compileWasm, PolicyEngine } from '@portcullis/engine';
import {
  type CheckRequest,
  checkRequestToInput,
  createAuthorizer,
  createPolicyDecide,
  engineEvaluator,
} from '@portcullis/envoy-authz';
import { freePorts, type Service, spawnService, waitFor } from '@portcullis/testkit';
import pg from 'pg';
import { startPostgres } from '../../scripts/lib/postgres.mjs';
import { cacheRoot, ensureOpa, OPA_VERSION } from '../../scripts/tools.mjs';
import { ghzLoad, grpcJsLoad, type LoadOptions, type Throughput, timeSequential, timeSync } from './load.ts';
import { benchRequests } from './requests.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const ADMIN_TOKEN = 'bench-ext-authz-admin-token-0123456789';
const DECISION_PATH = 'envoy/authz/allow';
const BUNDLE = 'envoy-authz';
const GHZ_VERSION = 'v0.120.0';
const START_MS = 120_000;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '32' },
    connections: { type: 'string', default: '4' },
    loadgen: { type: 'string', default: 'ghz' },
    out: { type: 'string', default: join(ROOT, 'bench/results/ext-authz.json') },
  },
});
const DURATION_S = Number(args.duration);
const saturated: LoadOptions = {
  durationS: DURATION_S,
  concurrency: Number(args.concurrency),
  connections: Number(args.connections),
};
const unloaded: LoadOptions = { durationS: DURATION_S, concurrency: 1, connections: 1 };

function say(line: string): void {
  process.stderr.write(`[bench:ext-authz] ${line}\n`);
}

function run(
  cmd: string,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString('utf8');
    });
    child.once('error', (err) => resolvePromise({ code: -1, output: err.message }));
    child.once('exit', (code) => resolvePromise({ code, output }));
  });
}

/** A Go tool from the per-user cache, installed there with `go install` when missing; why not, otherwise. */
async function goTool(
  name: string,
  module: string,
  version: string,
): Promise<{ bin?: string; why?: string }> {
  const dir = join(cacheRoot(), `${name}-${version}`, 'bin');
  const bin = join(dir, name);
  if (existsSync(bin)) return { bin };
  say(`installing ${module}@${version} with go install (Go module proxy)`);
  await mkdir(dir, { recursive: true });
  const { code, output } = await run('go', ['install', `${module}@${version}`], {
    ...process.env,
    GOBIN: dir,
  });
  if (code === 0 && existsSync(bin)) return { bin };
  await rm(join(dir, '..'), { recursive: true, force: true });
  const reason = /\b(\d{3} [A-Z][\w ]+)/.exec(output)?.[1];
  return {
    why: reason
      ? `the Go module proxy answers ${reason}`
      : output.trim().split('\n').at(-1) || `go install exited ${code}`,
  };
}

function tsx(entry: string): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', join(ROOT, entry)]];
}

async function startService(
  entry: string,
  env: Record<string, string>,
  readyPath: string,
  httpPort: number,
): Promise<Service> {
  const [cmd, argv] = tsx(entry);
  return spawnService(
    cmd,
    argv,
    { LOG_LEVEL: 'warn', ...env },
    { cwd: ROOT, readyUrl: `http://127.0.0.1:${httpPort}${readyPath}`, readyTimeoutMs: START_MS },
  );
}

/** CPU seconds a process has used so far (Linux /proc; utime + stime at 100 ticks per second). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Runs a load and reports, beside it, the checks served per CPU-second the serving processes used:
 * on a shared machine the wall-clock rate depends on what else runs, the CPU cost per check much less.
 */
async function withCpu(
  pids: number[],
  work: () => Promise<Throughput>,
): Promise<Throughput & { checks_per_cpu_s: number }> {
  const before = pids.map(cpuSeconds);
  const t = await work();
  const used = pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - before[i]!, 0);
  // The warm-up's calls are in the CPU time too: count them in proportion to its length.
  const calls = t.n * (1 + 2 / DURATION_S);
  return { ...t, checks_per_cpu_s: used > 0 ? Math.round(calls / used) : 0 };
}

const rows: string[][] = [];
function row(
  what: string,
  t: (Throughput & { checks_per_cpu_s?: number }) | undefined,
  ratio = '',
  note = '',
): void {
  if (!t) rows.push([what, '—', '—', '—', '—', note]);
  else {
    const perCpu = t.checks_per_cpu_s === undefined ? '' : t.checks_per_cpu_s.toLocaleString('en');
    rows.push([
      what,
      t.rps.toLocaleString('en'),
      t.p50_us.toFixed(1),
      t.p99_us.toFixed(1),
      perCpu,
      ratio || note,
    ]);
  }
}
const times = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '');

async function main(): Promise<void> {
  const results: Record<string, unknown> = {
    started_at: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, opa: OPA_VERSION },
    settings: {
      duration_s: DURATION_S,
      saturated,
      unloaded,
      decision_path: DECISION_PATH,
      loadgen: args.loadgen,
    },
    load_before: loadavg(),
  };
  const dir = await mkdtemp(join(tmpdir(), 'bench-ext-authz-'));
  // As root, Postgres runs as the postgres user, which must be able to traverse into this directory.
  await chmod(dir, 0o755);
  const services: Service[] = [];
  let postgres: Awaited<ReturnType<typeof startPostgres>> | undefined;
  try {
    const opaBin = await ensureOpa();
    const requests = benchRequests();
    const checks: CheckRequest[] = requests.map((r) => r.request);

    let ghz: string | undefined;
    if (args.loadgen === 'ghz') {
      const tool = await goTool('ghz', 'github.com/bojand/ghz/cmd/ghz', GHZ_VERSION);
      ghz = tool.bin;
      if (!ghz) say(`ghz not available (${tool.why}); using the grpc-js load generator`);
    }
    const load = (address: string, opts: LoadOptions): Promise<Throughput> =>
      ghz ? ghzLoad(ghz, address, checks, dir, opts) : grpcJsLoad(address, checks, opts);
    results.loadgen = ghz ? `ghz ${GHZ_VERSION}` : 'grpc-js';

    say('starting Postgres, the PAP, a PDP and two adapters');
    postgres = await startPostgres({ dataDir: join(dir, 'postgres'), durable: false, maxConnections: 100 });
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    await admin.query('CREATE DATABASE bench');
    await admin.end();
    const databaseUrl = postgres.url.replace(/\/postgres$/, '/bench');

    const [papHttp, papGrpc, pdpHttp, pdpGrpc, inHttp, inGrpc, reHttp, reGrpc] = await freePorts(8);
    services.push(
      await startService(
        'services/pap/src/main.ts',
        {
          DATABASE_URL: databaseUrl,
          OPA_BIN: opaBin,
          PAP_ADMIN_TOKEN: ADMIN_TOKEN,
          PAP_HTTP_PORT: String(papHttp),
          PAP_GRPC_PORT: String(papGrpc),
          BUS: 'postgres',
        },
        '/readyz',
        papHttp!,
      ),
    );
    const pap = `http://127.0.0.1:${papHttp}`;
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const policyDir = join(ROOT, 'policies/envoy-authz');
    const source = {
      modules: { 'policy.rego': readFileSync(join(policyDir, 'policy.rego'), 'utf8') },
      data: JSON.parse(readFileSync(join(policyDir, 'data.json'), 'utf8')) as unknown,
      entrypoints: ['envoy/authz/allow', 'envoy/authz/result'],
    };
    const posted = await fetch(`${pap}/v1/bundles/${BUNDLE}/revisions`, {
      method: 'POST',
      headers,
      body: JSON.stringify(source),
    });
    if (posted.status !== 201) throw new Error(`posting the bundle: ${posted.status} ${await posted.text()}`);
    const { revision } = (await posted.json()) as { revision: number };
    const activated = await fetch(`${pap}/v1/bundles/${BUNDLE}/active`, {
      method: 'PUT',
      headers: { ...headers, 'if-match': '"0"' },
      body: JSON.stringify({ revision }),
    });
    if (activated.status !== 200)
      throw new Error(`activating: ${activated.status} ${await activated.text()}`);

    const common = { PAP_GRPC_ADDR: `127.0.0.1:${papGrpc}`, DATABASE_URL: databaseUrl, BUS: 'postgres' };
    const [pdp, inProcess] = await Promise.all([
      startService(
        'services/pdp/src/main.ts',
        {
          ...common,
          PDP_HTTP_PORT: String(pdpHttp),
          PDP_GRPC_PORT: String(pdpGrpc),
          PDP_CACHE_DIR: 'off',
          PDP_BUNDLES: BUNDLE,
        },
        '/readyz',
        pdpHttp!,
      ),
      startService(
        'services/ext-authz/src/main.ts',
        {
          ...common,
          EXT_AUTHZ_HTTP_PORT: String(inHttp),
          EXT_AUTHZ_GRPC_PORT: String(inGrpc),
          EXT_AUTHZ_CACHE_DIR: 'off',
          EXT_AUTHZ_DECISION_PATH: DECISION_PATH,
        },
        '/readyz',
        inHttp!,
      ),
    ]);
    services.push(pdp, inProcess);
    const remote = await startService(
      'services/ext-authz/src/main.ts',
      {
        EXT_AUTHZ_MODE: 'remote',
        EXT_AUTHZ_PDP_ADDR: `127.0.0.1:${pdpGrpc}`,
        // Under saturation, queueing alone takes milliseconds: a budget that measures throughput, not timeouts.
        EXT_AUTHZ_PDP_TIMEOUT: '2s',
        EXT_AUTHZ_HTTP_PORT: String(reHttp),
        EXT_AUTHZ_GRPC_PORT: String(reGrpc),
        EXT_AUTHZ_DECISION_PATH: DECISION_PATH,
      },
      '/readyz',
      reHttp!,
    );
    services.push(remote);

    // The transport floor: the adapter's gRPC stack answering a constant, so transport and adapter costs separate.
    const [floorPort] = await freePorts(1);
    const [floorCmd, floorArgv] = tsx('bench/ext-authz/constant-server.ts');
    const floor = await spawnService(
      floorCmd,
      floorArgv,
      { BENCH_GRPC_PORT: String(floorPort) },
      { cwd: ROOT },
    );
    services.push(floor);
    await waitFor(() => floor.output().includes('listening'), {
      timeoutMs: START_MS,
      message: 'the floor server',
    });

    // The reference: the same policy compiled by the same opa, evaluated directly on the inputs the adapter builds.
    say('compiling the reference engine');
    const compiled = await compileWasm({
      opaBin,
      modules: source.modules,
      data: source.data,
      entrypoints: source.entrypoints,
    });
    const engine = new PolicyEngine();
    await engine.load({
      bundle: BUNDLE,
      revision: 1,
      digest: compiled.digest,
      wasm: compiled.wasm,
      data: compiled.data,
      entrypoints: source.entrypoints,
    });
    const inputs = checks.map((c) => {
      const built = checkRequestToInput(c);
      if (!built.ok) throw built.error;
      return built.input;
    });
    for (const [i, r] of requests.entries()) {
      if (engine.evaluate(DECISION_PATH, inputs[i]).result !== r.allowed)
        throw new Error(`unexpected decision for ${r.name}`);
    }
    const authorize = createAuthorizer({
      decide: createPolicyDecide({ path: DECISION_PATH, evaluator: engineEvaluator(engine) }),
      onError: () => {},
      onInvalidBody: 'ignore',
    });
    const signal = new AbortController().signal;

    say(`measuring (${DURATION_S}s each; load generator: ${results.loadgen})`);
    const engineDirect = timeSync(
      (i) => engine.evaluate(DECISION_PATH, inputs[i % inputs.length]),
      DURATION_S * 1000,
    );
    const adapterLogic = await timeSequential(
      (i) => authorize(checks[i % checks.length], { signal }),
      DURATION_S * 1000,
    );
    const floorUnloaded = await load(`127.0.0.1:${floorPort}`, unloaded);
    const inProcessUnloaded = await load(`127.0.0.1:${inGrpc}`, unloaded);
    const remoteUnloaded = await load(`127.0.0.1:${reGrpc}`, unloaded);
    const floorSaturated = await withCpu([floor.pid], () => load(`127.0.0.1:${floorPort}`, saturated));
    const inProcessSaturated = await withCpu([inProcess.pid], () => load(`127.0.0.1:${inGrpc}`, saturated));
    const remoteSaturated = await withCpu([remote.pid, pdp.pid], () =>
      load(`127.0.0.1:${reGrpc}`, saturated),
    );

    // OPA's Envoy plugin, on the same policy (as a rego bundle) and requests, when it can be had.
    let opaEnvoy: { unloaded: Throughput; saturated: Throughput & { checks_per_cpu_s: number } } | undefined;
    const plugin = await goTool(
      'opa-envoy-plugin',
      'github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin',
      'latest',
    );
    if (plugin.bin) {
      const archive = await fetch(`${pap}/v1/bundles/${BUNDLE}/bundle.tar.gz?target=rego`, { headers });
      const bundlePath = join(dir, 'bundle-rego.tar.gz');
      await writeFile(bundlePath, Buffer.from(await archive.arrayBuffer()));
      const [opaHttp, opaGrpc] = await freePorts(2);
      const opaEnvoyService = await spawnService(
        plugin.bin,
        [
          'run',
          '--server',
          '--addr',
          `127.0.0.1:${opaHttp}`,
          '--log-level',
          'error',
          '--set',
          `plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${opaGrpc}`,
          '--set',
          `plugins.envoy_ext_authz_grpc.path=${DECISION_PATH}`,
          '--bundle',
          bundlePath,
        ],
        {},
        { readyUrl: `http://127.0.0.1:${opaHttp}/health?plugins`, readyTimeoutMs: START_MS },
      );
      services.push(opaEnvoyService);
      opaEnvoy = {
        unloaded: await load(`127.0.0.1:${opaGrpc}`, unloaded),
        saturated: await withCpu([opaEnvoyService.pid], () => load(`127.0.0.1:${opaGrpc}`, saturated)),
      };
    }

    results.grpc_floor_constant_answer = { unloaded: floorUnloaded, saturated: floorSaturated };
    results.engine_direct = engineDirect;
    results.adapter_logic_in_process = adapterLogic;
    results.ext_authz_in_process = { unloaded: inProcessUnloaded, saturated: inProcessSaturated };
    results.ext_authz_remote_pdp = { unloaded: remoteUnloaded, saturated: remoteSaturated };
    results.opa_envoy_plugin = opaEnvoy ?? { unavailable: plugin.why };
    results.ratios = {
      in_process_p50_over_engine_p50: inProcessUnloaded.p50_us / engineDirect.p50_us,
      in_process_p50_over_floor_p50: inProcessUnloaded.p50_us / floorUnloaded.p50_us,
      engine_checks_per_cpu_s_over_in_process: engineDirect.rps / inProcessSaturated.checks_per_cpu_s,
      floor_checks_per_cpu_s_over_in_process:
        floorSaturated.checks_per_cpu_s / inProcessSaturated.checks_per_cpu_s,
      engine_rps_over_in_process_rps: engineDirect.rps / inProcessSaturated.rps,
      remote_p50_over_in_process_p50: remoteUnloaded.p50_us / inProcessUnloaded.p50_us,
      in_process_rps_over_remote_rps: inProcessSaturated.rps / remoteSaturated.rps,
      ...(opaEnvoy
        ? {
            in_process_rps_over_opa_envoy_rps: inProcessSaturated.rps / opaEnvoy.saturated.rps,
            in_process_p99_over_opa_envoy_p99: inProcessSaturated.p99_us / opaEnvoy.saturated.p99_us,
          }
        : {}),
    };
    results.load_after = loadavg();

    const c = `c=${saturated.concurrency}`;
    row(
      'engine evaluation, direct (reference)',
      { ...engineDirect, checks_per_cpu_s: engineDirect.rps },
      '1.00×',
    );
    row(
      'adapter logic, no transport (input → engine → response)',
      { ...adapterLogic, checks_per_cpu_s: adapterLogic.rps },
      `p50 ${times(adapterLogic.p50_us, engineDirect.p50_us)} engine`,
    );
    row('gRPC floor (same server stack, constant answer), c=1', floorUnloaded);
    row(
      'ext-authz in-process, gRPC, c=1',
      inProcessUnloaded,
      `p50 ${times(inProcessUnloaded.p50_us, floorUnloaded.p50_us)} floor`,
    );
    row(
      'ext-authz → PDP (remote), gRPC, c=1',
      remoteUnloaded,
      `p50 ${times(remoteUnloaded.p50_us, inProcessUnloaded.p50_us)} in-process`,
    );
    row(`gRPC floor, ${c}`, floorSaturated);
    row(
      `ext-authz in-process, gRPC, ${c}`,
      inProcessSaturated,
      `CPU/check ${times(engineDirect.rps, inProcessSaturated.checks_per_cpu_s)} engine, ${times(floorSaturated.checks_per_cpu_s, inProcessSaturated.checks_per_cpu_s)} floor`,
    );
    row(
      `ext-authz → PDP (remote), gRPC, ${c}`,
      remoteSaturated,
      `rps ${times(remoteSaturated.rps, inProcessSaturated.rps)} in-process`,
    );
    if (opaEnvoy) {
      row(
        'opa-envoy-plugin, gRPC, c=1',
        opaEnvoy.unloaded,
        `ours/theirs p50 ${times(inProcessUnloaded.p50_us, opaEnvoy.unloaded.p50_us)}`,
      );
      row(
        `opa-envoy-plugin, gRPC, ${c}`,
        opaEnvoy.saturated,
        `ours/theirs rps ${times(inProcessSaturated.rps, opaEnvoy.saturated.rps)}, p99 ${times(inProcessSaturated.p99_us, opaEnvoy.saturated.p99_us)}`,
      );
    } else {
      row('opa-envoy-plugin', undefined, '', `not run: ${plugin.why}`);
    }
    const errors = [inProcessUnloaded, remoteUnloaded, inProcessSaturated, remoteSaturated].reduce(
      (n, t) => n + t.errors,
      0,
    );
    const header = ['', 'checks/s', 'p50 µs', 'p99 µs', 'checks/CPU-s', 'ratio'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
    process.stdout.write(`${line(header)}\n${rows.map(line).join('\n')}\n`);
    process.stdout.write(
      `load generator: ${results.loadgen}; errors: ${errors}; load average before ${(results.load_before as number[]).map((l) => l.toFixed(2)).join(' ')}, after ${(results.load_after as number[]).map((l) => l.toFixed(2)).join(' ')} (${cpus().length} CPUs)\n`,
    );
    await mkdir(join(args.out, '..'), { recursive: true });
    await writeFile(args.out, `${JSON.stringify(results, null, 2)}\n`);
    say(`wrote ${args.out}`);
  } finally {
    for (const s of services.reverse()) await s.stop();
    await postgres?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:ext-authz failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
