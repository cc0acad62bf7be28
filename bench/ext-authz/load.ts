// Load generators of the ext-authz benchmark: timed in-process loops, ghz (Go) over gRPC, and a grpc-js fallback with several channels.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AuthorizationClient,
  type CheckRequest,
  ENVOY_PROTO_INCLUDE_DIRS,
  EXTERNAL_AUTH_PROTO,
} from '@portcullis/envoy-authz';
import { grpc } from '@portcullis/runtime';

export interface Throughput {
  /** Checks (or evaluations) per second. */
  rps: number;
  p50_us: number;
  p99_us: number;
  n: number;
  errors: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarize(samplesUs: number[], elapsedMs: number, errors = 0): Throughput {
  const sorted = Float64Array.from(samplesUs).sort();
  return {
    rps: Math.round((samplesUs.length / elapsedMs) * 1000),
    p50_us: Math.round(percentile(sorted, 50) * 10) / 10,
    p99_us: Math.round(percentile(sorted, 99) * 10) / 10,
    n: samplesUs.length,
    errors,
  };
}

/** A synchronous call back to back for `durationMs` after a warm-up, each call timed (one thread, no transport). */
export function timeSync(fn: (i: number) => void, durationMs: number, warmupMs = 1000): Throughput {
  const warmEnd = performance.now() + warmupMs;
  for (let i = 0; performance.now() < warmEnd; i++) fn(i);
  const samples: number[] = [];
  const started = performance.now();
  const end = started + durationMs;
  for (let i = 0; ; i++) {
    const t0 = performance.now();
    fn(i);
    const t1 = performance.now();
    samples.push((t1 - t0) * 1000);
    if (t1 >= end) break;
  }
  return summarize(samples, performance.now() - started);
}

/** An async call awaited back to back (one in flight), each call timed. */
export async function timeSequential(
  fn: (i: number) => Promise<unknown>,
  durationMs: number,
  warmupMs = 1000,
): Promise<Throughput> {
  const warmEnd = performance.now() + warmupMs;
  for (let i = 0; performance.now() < warmEnd; i++) await fn(i);
  const samples: number[] = [];
  const started = performance.now();
  const end = started + durationMs;
  for (let i = 0; ; i++) {
    const t0 = performance.now();
    await fn(i);
    const t1 = performance.now();
    samples.push((t1 - t0) * 1000);
    if (t1 >= end) break;
  }
  return summarize(samples, performance.now() - started);
}

export interface LoadOptions {
  durationS: number;
  /** Calls in flight at once. */
  concurrency: number;
  /** TCP connections (HTTP/2 channels) the calls are spread over. */
  connections: number;
  warmupS?: number;
}

interface GhzReport {
  count: number;
  total: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
}

function runGhz(ghz: string, args: string[]): Promise<GhzReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(ghz, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as GhzReport);
      } catch {
        reject(new Error(`ghz exited ${code}: ${err || out}`));
      }
    });
  });
}

/**
 * ghz (Go): `concurrency` workers over `connections` connections cycling through `requests`, after
 * a warm-up run. Errors exclude the calls ghz itself cancels when the duration ends (at most one
 * per worker, reported as Canceled or Unavailable "use of closed network connection").
 */
export async function ghzLoad(
  ghz: string,
  address: string,
  requests: CheckRequest[],
  dir: string,
  opts: LoadOptions,
): Promise<Throughput> {
  const dataFile = join(dir, 'ghz-requests.json');
  await writeFile(dataFile, JSON.stringify(requests));
  const common = [
    '--insecure',
    '--proto',
    EXTERNAL_AUTH_PROTO,
    '--import-paths',
    ENVOY_PROTO_INCLUDE_DIRS.join(','),
    '--call',
    'envoy.service.auth.v3.Authorization/Check',
    '--data-file',
    dataFile,
    '--concurrency',
    String(opts.concurrency),
    '--connections',
    String(opts.connections),
    '--format',
    'json',
  ];
  await runGhz(ghz, [...common, '--duration', `${opts.warmupS ?? 2}s`, address]);
  const report = await runGhz(ghz, [...common, '--duration', `${opts.durationS}s`, address]);
  const byPct = new Map((report.latencyDistribution ?? []).map((l) => [l.percentage, l.latency / 1000]));
  const failed = Object.entries(report.statusCodeDistribution ?? {})
    .filter(([code]) => code !== 'OK')
    .reduce((sum, [, n]) => sum + n, 0);
  const ok = report.statusCodeDistribution?.['OK'] ?? 0;
  return {
    rps: Math.round(ok / (report.total / 1e9)),
    p50_us: Math.round((byPct.get(50) ?? 0) * 10) / 10,
    p99_us: Math.round((byPct.get(99) ?? 0) * 10) / 10,
    n: ok,
    errors: Math.max(0, failed - opts.concurrency),
  };
}

type CheckMethod = (
  request: CheckRequest,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null) => void,
) => void;

/**
 * The fallback when ghz is not available: grpc-js clients on `connections` channels, calls spread
 * round-robin, `concurrency` in flight. It shares this process's CPU with nothing else, but the
 * machine's cores with the adapter: ghz is lighter, so prefer it.
 */
export async function grpcJsLoad(
  address: string,
  requests: CheckRequest[],
  opts: LoadOptions,
): Promise<Throughput> {
  const clients = Array.from(
    { length: opts.connections },
    // A distinct option per client keeps grpc-js from sharing one subchannel between them.
    (_, i) => new AuthorizationClient(address, grpc.credentials.createInsecure(), { 'bench.channel': i }),
  );
  const call = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const client = clients[i % clients.length]!;
      (client['Check'] as unknown as CheckMethod).call(
        client,
        requests[i % requests.length]!,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  const run = async (durationMs: number, samples: number[] | undefined): Promise<number> => {
    const until = performance.now() + durationMs;
    let errors = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (performance.now() < until) {
          const t0 = performance.now();
          try {
            await call(next++);
            samples?.push((performance.now() - t0) * 1000);
          } catch {
            errors++;
          }
        }
      }),
    );
    return errors;
  };
  try {
    await run((opts.warmupS ?? 2) * 1000, undefined);
    const samples: number[] = [];
    const started = performance.now();
    const errors = await run(opts.durationS * 1000, samples);
    return summarize(samples, performance.now() - started, errors);
  } finally {
    for (const c of clients) c.close();
  }
}
