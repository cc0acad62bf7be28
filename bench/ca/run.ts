// CA benchmark: certificates issued per second over gRPC (P-256, RSA-2048), beside raw signing with the same CA key in this run.
//
// Run: node --import tsx bench/ca/run.ts [-- --seconds 5 --concurrency 16]   (writes bench/results/ca.json)
// Uses DATABASE_URL if set, else a throwaway embedded Postgres (durable, as a real one would be).
// The CA runs as its own process (as deployed), with TLS; the clients renew over mutual TLS, the
// steady-state path (a bootstrap token adds one ES256 verification per call; measured separately).
import crypto from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  createAuthority,
  createCsr,
  createDevelopmentTokenIssuer,
  generateKeyPair,
  issueServingCertificate,
  type KeyType,
  trustBundleOf,
  validateCsr,
} from '@portcullis/pki';
import { CaClient, fetchTrustBundle } from '@portcullis/pki/ca-client';
import { spawnService, waitFor } from '@portcullis/testkit';
import pg from 'pg';
import { freePorts } from '../../scripts/lib/free-port.mjs';
import { startPostgres } from '../../scripts/lib/postgres.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    channels: { type: 'string', default: '4' },
    // CA_SIGNING_THREADS for the CA under test: 0 is its default (one per CPU but one), -1 signs on the event loop.
    'signing-threads': { type: 'string', default: '0' },
    out: { type: 'string', default: join(ROOT, 'bench/results/ca.json') },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const CHANNELS = Number(args.channels);
const SIGNING_THREADS = Number(args['signing-threads']);
const WARMUP_MS = 3000;

interface Run {
  csr_key: KeyType;
  ca_key: KeyType;
  auth: 'mtls' | 'token';
  issued: number;
  per_second: number;
  p50_ms: number;
  p99_ms: number;
  raw_signs_per_second: number;
  sign_and_csr_verify_per_second: number;
  ratio_to_raw_sign: number;
  ratio_to_sign_and_verify: number;
  /** Against the transport floor with the same caller kind (P-256 only). */
  ratio_to_floor?: number;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Operations per second of `fn`, run for about `ms` on this thread. */
function rate(fn: () => void, ms = 1500): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
  }
  return n / ((performance.now() - start) / 1000);
}

/** The two references for a CA key type: one signature, and one signature plus a CSR's validation. */
async function references(caKey: KeyType, csrKey: KeyType): Promise<{ raw: number; withVerify: number }> {
  const { privateKey } = await generateKeyPair(caKey);
  const tbs = crypto.randomBytes(400);
  const raw = rate(() => crypto.sign('sha256', tbs, privateKey));
  const { privateKey: workload } = await generateKeyPair(csrKey);
  const csr = createCsr(workload, 'spiffe://cluster.local/ns/bench/sa/ref');
  const withVerify = rate(() => {
    validateCsr(csr);
    crypto.sign('sha256', tbs, privateKey);
  });
  return { raw, withVerify };
}

async function csrs(keyType: KeyType, count: number, spiffeId: string): Promise<string[]> {
  // RSA keys take long to make; a handful are reused (the CA does not mind, and it does not change its work).
  const keys = await Promise.all(
    Array.from({ length: keyType === 'ec-p256' ? count : Math.min(count, 8) }, () =>
      generateKeyPair(keyType),
    ),
  );
  return Array.from({ length: count }, (_, i) => createCsr(keys[i % keys.length]!.privateKey, spiffeId));
}

async function measure(
  clients: CaClient[],
  pool: string[],
): Promise<{ issued: number; seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  let stop = false;
  const worker = async (w: number) => {
    const client = clients[w % clients.length]!;
    while (!stop) {
      const csr = pool[next++ % pool.length]!;
      const t0 = performance.now();
      await client.createCertificate(csr);
      latencies.push(performance.now() - t0);
    }
  };
  // Warm-up at full concurrency: connections, the JIT in the CA's event loop and signing threads, the
  // database's caches. One second was not enough: the first run of a fresh CA came out ~25% slower.
  const warmTimer = setTimeout(() => {
    stop = true;
  }, WARMUP_MS);
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  clearTimeout(warmTimer);
  stop = false;
  latencies.length = 0;
  const started = performance.now();
  const timer = setTimeout(() => {
    stop = true;
  }, SECONDS * 1000);
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  clearTimeout(timer);
  return { issued: latencies.length, seconds: (performance.now() - started) / 1000, latencies };
}

interface Floor {
  auth: 'mtls' | 'token';
  per_second: number;
  p50_ms: number;
  p99_ms: number;
}

interface Credentials {
  bundle: string[];
  token: string;
  client: { keyPem: string; chainPem: string[] };
}

const clientsFor = (address: string, trust: string[], auth: 'mtls' | 'token', c: Credentials) =>
  Array.from(
    { length: CHANNELS },
    () =>
      new CaClient({
        address,
        trustBundle: () => trust,
        ...(auth === 'token' ? { token: () => c.token } : { clientCertificate: () => c.client }),
      }),
  );

/** The transport floor (bench/ca/constant-server.ts) measured with the same clients and CSRs. */
async function measureFloor(work: string, c: Credentials, pool: string[]): Promise<Floor[]> {
  const secret = 'bench-floor-secret-0123456789abcdef';
  const state = await createAuthority({ trustDomain: 'cluster.local', secret });
  const serving = await generateKeyPair('ec-p256');
  const { chainPem } = await issueServingCertificate(state, {
    secret,
    publicKey: serving.publicKey,
    ttlSeconds: 3600,
    dnsNames: ['localhost'],
  });
  const files = {
    BENCH_TLS_KEY_FILE: String(serving.privateKey.export({ format: 'pem', type: 'pkcs8' })),
    BENCH_TLS_CHAIN_FILE: chainPem.join(''),
    BENCH_CLIENT_CA_FILE: c.bundle.join(''),
    BENCH_ANSWER_FILE: JSON.stringify(c.client.chainPem),
  };
  const env: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    env[name] = join(work, `floor-${name.toLowerCase()}`);
    await writeFile(env[name], content);
  }
  const [port] = await freePorts(1);
  env.BENCH_GRPC_PORT = String(port);
  const floor = await spawnService(
    process.execPath,
    ['--import', 'tsx', 'bench/ca/constant-server.ts'],
    env,
    {
      cwd: ROOT,
    },
  );
  try {
    await waitFor(() => floor.output().includes('listening'), {
      timeoutMs: 30_000,
      message: 'the floor server',
    });
    const rows: Floor[] = [];
    for (const auth of ['mtls', 'token'] as const) {
      const clients = clientsFor(`127.0.0.1:${port}`, trustBundleOf(state), auth, c);
      try {
        const { issued, seconds, latencies } = await measure(clients, pool);
        const sorted = latencies.sort((a, b) => a - b);
        rows.push({
          auth,
          per_second: round(issued / seconds, 0),
          p50_ms: round(pct(sorted, 50)),
          p99_ms: round(pct(sorted, 99)),
        });
      } finally {
        for (const client of clients) client.close();
      }
    }
    return rows;
  } finally {
    await floor.stop();
  }
}

async function runCa(
  databaseUrl: string,
  caKey: KeyType,
  csrKey: KeyType,
  auths: ('mtls' | 'token')[],
  work: string,
): Promise<{ runs: Run[]; floor: Floor[] }> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  admin.on('error', () => {});
  await admin.connect();
  const dbName = `bench_ca_${caKey.replace('-', '_')}_${Date.now()}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(databaseUrl);
  url.pathname = `/${dbName}`;
  const tokens = await createDevelopmentTokenIssuer();
  const jwksFile = join(work, `jwks-${caKey}.json`);
  await writeFile(jwksFile, JSON.stringify(tokens.jwks));
  const [http, grpc] = await freePorts(2);
  const ca = await spawnService(
    process.execPath,
    ['--import', 'tsx', 'services/ca/src/main.ts'],
    {
      DATABASE_URL: url.toString(),
      CA_HTTP_PORT: String(http),
      CA_GRPC_PORT: String(grpc),
      CA_KEY_ENCRYPTION_KEY: 'bench-key-encryption-secret-0123456789',
      CA_SIGNING_KEY_TYPE: caKey,
      CA_BOOTSTRAP_JWKS_FILE: jwksFile,
      CA_SIGNING_THREADS: String(SIGNING_THREADS),
      LOG_LEVEL: 'warn',
    },
    { cwd: ROOT, readyUrl: `http://127.0.0.1:${http}/readyz`, readyTimeoutMs: 60_000 },
  );
  const clients: CaClient[] = [];
  try {
    const address = `127.0.0.1:${grpc}`;
    const bundle = await fetchTrustBundle(`http://127.0.0.1:${http}`);
    const spiffeId = 'spiffe://cluster.local/ns/bench/sa/load';
    const token = await tokens.mint({
      namespace: 'bench',
      serviceAccount: 'load',
      audience: 'istio-ca',
      ttlSeconds: 3600,
    });
    const pool = await csrs(csrKey, csrKey === 'ec-p256' ? 2000 : 200, spiffeId);
    // One certificate by token, then every client renews with it over mutual TLS.
    const { privateKey } = await generateKeyPair('ec-p256');
    const first = new CaClient({ address, trustBundle: () => bundle, token: () => token });
    const chainPem = await first.createCertificate(createCsr(privateKey, spiffeId));
    first.close();
    const keyPem = String(privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const refs = await references(caKey, csrKey);
    const credentials: Credentials = { bundle, token, client: { keyPem, chainPem } };
    const runs: Run[] = [];
    for (const auth of auths) {
      const batch = clientsFor(address, bundle, auth, credentials);
      clients.push(...batch);
      const { issued, seconds, latencies } = await measure(batch, pool);
      const sorted = latencies.sort((a, b) => a - b);
      const perSecond = issued / seconds;
      runs.push({
        csr_key: csrKey,
        ca_key: caKey,
        auth,
        issued,
        per_second: round(perSecond, 0),
        p50_ms: round(pct(sorted, 50)),
        p99_ms: round(pct(sorted, 99)),
        raw_signs_per_second: round(refs.raw, 0),
        sign_and_csr_verify_per_second: round(refs.withVerify, 0),
        ratio_to_raw_sign: round(perSecond / refs.raw, 3),
        ratio_to_sign_and_verify: round(perSecond / refs.withVerify, 3),
      });
      for (const c of batch) c.close();
    }
    // The floor only for P-256, the case the target is about.
    return { runs, floor: csrKey === 'ec-p256' ? await measureFloor(work, credentials, pool) : [] };
  } finally {
    for (const c of clients) c.close();
    await ca.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

async function main(): Promise<void> {
  const load = { before: loadavg().map((x) => round(x)), cpus: cpus().length };
  if ((load.before[0] ?? 0) > load.cpus) {
    process.stderr.write(
      `warning: load average ${load.before[0]} on ${load.cpus} CPUs: expect noisy figures\n`,
    );
  }
  const work = await mkdtemp(join(tmpdir(), 'portcullis-bench-ca-'));
  // As root, Postgres runs as the postgres user, which must be able to traverse into this directory.
  await chmod(work, 0o755);
  let stopPostgres = async () => {};
  try {
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      const server = await startPostgres({ dataDir: join(work, 'postgres') });
      stopPostgres = () => server.stop();
      databaseUrl = server.url;
    }
    const p256 = await runCa(databaseUrl, 'ec-p256', 'ec-p256', ['mtls', 'token'], work);
    const rsa = await runCa(databaseUrl, 'rsa-2048', 'rsa-2048', ['mtls'], work);
    const runs = [...p256.runs, ...rsa.runs];
    const floor = p256.floor;
    for (const run of p256.runs) {
      const same = floor.find((f) => f.auth === run.auth);
      if (same) run.ratio_to_floor = round(run.per_second / same.per_second, 3);
    }
    const header = [
      'CSR key',
      'CA key',
      'auth',
      'issued/s',
      'p50 ms',
      'p99 ms',
      'raw sign/s',
      'sign+verify/s',
      '÷raw',
      '÷sign+verify',
      '÷floor',
    ];
    const rows = runs.map((r) => [
      r.csr_key,
      r.ca_key,
      r.auth,
      String(r.per_second),
      String(r.p50_ms),
      String(r.p99_ms),
      String(r.raw_signs_per_second),
      String(r.sign_and_csr_verify_per_second),
      String(r.ratio_to_raw_sign),
      String(r.ratio_to_sign_and_verify),
      String(r.ratio_to_floor ?? ''),
    ]);
    for (const f of floor) {
      rows.push([
        'floor',
        'none',
        f.auth,
        String(f.per_second),
        String(f.p50_ms),
        String(f.p99_ms),
        '',
        '',
        '',
        '',
        '',
      ]);
    }
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    for (const row of [header, ...rows])
      process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`);
    process.stdout.write(
      `\n${SECONDS}s per run, ${CONCURRENCY} calls in flight over ${CHANNELS} clients (grpc-js may share one HTTP/2 connection between them); floor: the same gRPC/TLS stack answering a constant chain; targets: P-256 issued/s ≥ 0.5 × raw sign/s, p99 < 20 ms\n`,
    );
    const report = {
      benchmark: 'ca',
      settings: {
        seconds: SECONDS,
        concurrency: CONCURRENCY,
        channels: CHANNELS,
        signing_threads: SIGNING_THREADS,
      },
      machine: { ...load, after: loadavg().map((x) => round(x)), node: process.version },
      runs,
      floor,
    };
    await mkdir(resolve(args.out, '..'), { recursive: true });
    await writeFile(args.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`wrote ${args.out}\n`);
  } finally {
    await stopPostgres();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
