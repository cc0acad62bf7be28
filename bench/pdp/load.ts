// Load generators of the PDP benchmark: in-process evaluation loops, HTTP (autocannon) and gRPC (grpc-js) clients.
import { readFileSync } from 'node:fs';
import { grpc, loadProtos, serviceClient } from '@portcullis/runtime';
import autocannon from 'autocannon';

export interface Throughput {
  /** Decisions per second. */
  rps: number;
  p50_us: number;
  p99_us: number;
  n: number;
  errors: number;
  /** CPU time (user + system, all threads) the server spent per decision: steadier than rps on a shared machine. */
  server_cpu_us?: number;
}

/** CPU time of a process (all its threads), in microseconds, from /proc (Linux). */
export function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function withCpu(t: Throughput, cpuUs: number | undefined): Throughput {
  return cpuUs === undefined || t.n === 0 ? t : { ...t, server_cpu_us: Math.round((cpuUs / t.n) * 10) / 10 };
}

function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Latency percentiles of a sample of microsecond timings. */
export function summarize(samplesUs: number[], elapsedMs: number, errors = 0): Throughput {
  const sorted = Float64Array.from(samplesUs).sort();
  return {
    rps: Math.round((samplesUs.length / elapsedMs) * 1000),
    p50_us: round(percentile(sorted, 50), 2),
    p99_us: round(percentile(sorted, 99), 2),
    n: samplesUs.length,
    errors,
  };
}

/**
 * A synchronous function called back to back for `durationMs` after a warm-up, each call timed:
 * single-threaded latency and throughput of evaluation without any transport.
 */
export function timeSync(fn: (i: number) => void, durationMs: number, warmupMs = 500): Throughput {
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

/** `concurrency` loops of an async call for `durationMs`: throughput under concurrent load, in-process. */
export async function timeAsync(
  fn: (i: number) => Promise<unknown>,
  {
    durationMs,
    concurrency,
    warmupMs = 500,
    onMeasure,
  }: { durationMs: number; concurrency: number; warmupMs?: number; onMeasure?: () => void },
): Promise<Throughput> {
  const run = async (until: number, samples: number[] | undefined): Promise<number> => {
    let errors = 0;
    let i = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, k) => {
        while (performance.now() < until) {
          const t0 = performance.now();
          try {
            await fn(i++ + k);
            samples?.push((performance.now() - t0) * 1000);
          } catch {
            errors++;
          }
        }
      }),
    );
    return errors;
  };
  await run(performance.now() + warmupMs, undefined);
  onMeasure?.();
  const samples: number[] = [];
  const started = performance.now();
  const errors = await run(started + durationMs, samples);
  return summarize(samples, performance.now() - started, errors);
}

/** HTTP load with autocannon: `connections` keep-alive connections cycling through `bodies`. */
export async function httpLoad(
  url: string,
  path: string,
  bodies: string[],
  {
    durationS,
    connections,
    warmupS = 1,
    pid,
  }: { durationS: number; connections: number; warmupS?: number; pid?: number },
): Promise<Throughput> {
  const requests = bodies.map((body) => ({
    method: 'POST' as const,
    path,
    body,
    headers: { 'content-type': 'application/json' },
  }));
  const opts = { url, connections, pipelining: 1, requests };
  await autocannon({ ...opts, duration: warmupS });
  const cpu0 = pid === undefined ? undefined : processCpuUs(pid);
  const result = await autocannon({ ...opts, duration: durationS });
  const cpu = pid === undefined || cpu0 === undefined ? undefined : processCpuUs(pid) - cpu0;
  const errors = result.errors + result.timeouts + result.non2xx;
  return withCpu(
    {
      rps: Math.round(result.requests.total / (result.duration || durationS)),
      p50_us: result.latency.p50 * 1000,
      p99_us: result.latency.p99 * 1000,
      n: result.requests.total,
      errors,
    },
    cpu,
  );
}

/** gRPC load: `concurrency` calls in flight on one channel (HTTP/2 multiplexes them), each timed. */
export async function grpcLoad(
  address: string,
  path: string,
  inputs: string[],
  { durationMs, concurrency, pid }: { durationMs: number; concurrency: number; pid?: number },
): Promise<Throughput> {
  const Client = serviceClient(
    loadProtos(['portcullis/pdp/v1/decisions.proto']),
    'portcullis.pdp.v1.Decisions',
  );
  const client = new Client(address, grpc.credentials.createInsecure());
  const decide = client as unknown as {
    Decide(req: unknown, cb: (err: grpc.ServiceError | null, res?: { result: string }) => void): void;
  };
  try {
    let cpu0: number | undefined;
    const result = await timeAsync(
      (i) =>
        new Promise((resolve, reject) => {
          decide.Decide({ path, input: inputs[i % inputs.length] }, (err, res) =>
            err ? reject(err) : res?.result === '' ? reject(new Error('undefined')) : resolve(res),
          );
        }),
      {
        durationMs,
        concurrency,
        warmupMs: 1000,
        onMeasure: () => (cpu0 = pid === undefined ? undefined : processCpuUs(pid)),
      },
    );
    return withCpu(result, pid === undefined || cpu0 === undefined ? undefined : processCpuUs(pid) - cpu0);
  } finally {
    client.close();
  }
}
