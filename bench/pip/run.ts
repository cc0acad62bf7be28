// PIP benchmark: JWT verification beside raw jose, attribute BatchGet warm and cold, and enrichment beside a plain evaluation.
//
// Run: node --import tsx bench/pip/run.ts [-- --rounds 60 --block 250 --evaluations 20000]  (writes bench/results/pip.json)
// Uses DATABASE_URL if set, else a throwaway embedded Postgres.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AttributeCache, Enricher, GrpcAttributeSource } from '@portcullis/attributes';
import { compileWasm, PolicyEngine } from '@portcullis/engine';
import {
  JwksCache,
  JwtAuthenticator,
  type JwtRule,
  PolicySet,
  parseRequestAuthentication,
} from '@portcullis/identity';
import { buildPip, loadPipConfig } from '@portcullis/pip';
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import { startPostgres } from '../../scripts/lib/postgres.mjs';
import { ensureOpa } from '../../scripts/tools.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'bench-pip-admin-token-0123456789';
const ISS = 'https://bench.example';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '60' },
    block: { type: 'string', default: '250' },
    records: { type: 'string', default: '100000' },
    lookups: { type: 'string', default: '1000' },
    evaluations: { type: 'string', default: '20000' },
    out: { type: 'string', default: join(ROOT, 'bench/results/pip.json') },
  },
});
const ROUNDS = Number(args.rounds);
const BLOCK = Number(args.block);
const RECORDS = Number(args.records);
const LOOKUPS = Number(args.lookups);
const EVALUATIONS = Number(args.evaluations);

interface Stats {
  n: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
}

function stats(samplesMs: number[]): Stats {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  const us = (ms: number) => Math.round(ms * 1000 * 10) / 10;
  return {
    n: sorted.length,
    p50_us: us(pct(50)),
    p99_us: us(pct(99)),
    mean_us: us(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Verifications per second of `subject` and `reference`. Short blocks alternate (subject first, then
 * reference first), and the ratio reported is the median of each adjacent pair's ratio: a burst of
 * load from a neighbour then spoils a pair or two, not the figure.
 */
async function throughput(
  subject: () => Promise<unknown>,
  reference: () => Promise<unknown>,
): Promise<{ subject_per_s: number; reference_per_s: number; time_ratio: number; pairs: number }> {
  for (let i = 0; i < 300; i++) {
    await subject();
    await reference();
  }
  const block = async (fn: () => Promise<unknown>): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < BLOCK; i++) await fn();
    return performance.now() - started;
  };
  let subjectMs = 0;
  let referenceMs = 0;
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const first = r % 2 === 0;
    const a = first ? await block(subject) : 0;
    const b = await block(reference);
    const c = first ? a : await block(subject);
    subjectMs += c;
    referenceMs += b;
    ratios.push(c / b);
  }
  ratios.sort((x, y) => x - y);
  const n = ROUNDS * BLOCK;
  return {
    subject_per_s: Math.round((n / subjectMs) * 1000),
    reference_per_s: Math.round((n / referenceMs) * 1000),
    time_ratio: round2(ratios[Math.floor(ratios.length / 2)]!),
    pairs: ROUNDS,
  };
}

async function jwtBench(alg: 'RS256' | 'ES256') {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: `${alg}-1`, alg, use: 'sig' };
  const token = await new SignJWT({
    iss: ISS,
    sub: 'alice',
    aud: 'api',
    exp: Math.floor(Date.now() / 1000) + 3600,
  })
    .setProtectedHeader({ alg, kid: jwk.kid })
    .sign(privateKey);
  const rule: JwtRule = parseRequestAuthentication({
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'bench', namespace: 'bench' },
    spec: { jwtRules: [{ issuer: ISS, audiences: ['api'], jwks: JSON.stringify({ keys: [jwk] }) }] },
  }).jwtRules[0]!;
  const jwks = new JwksCache();
  const authenticator = new JwtAuthenticator({ jwks });
  const rules = [rule];
  const key = await importJWK(jwk, alg);
  // The reference does what a hand-written verifier does with a key already imported: jose alone.
  const options = { issuer: ISS, audience: 'api', algorithms: [alg] };
  const result = await throughput(
    () => authenticator.verify(token, rules),
    () => jwtVerify(token, key, options),
  );
  await jwks.stop();
  return result;
}

const POLICY = `package authz

default allow := false

allow if {
	input.identity.claims.role == "editor"
	input.subject.attributes.team == input.resource.attributes.team
}
`;

async function main(): Promise<void> {
  const load = { before: loadavg().map(round2), cpus: cpus().length };
  if (load.before[0]! > load.cpus) {
    process.stderr.write(
      `warning: load average ${load.before[0]} on ${load.cpus} CPUs: expect noisy figures\n`,
    );
  }
  const report: Record<string, unknown> = {};
  process.stderr.write('jwt: RS256…\n');
  const rs = await jwtBench('RS256');
  process.stderr.write('jwt: ES256…\n');
  const es = await jwtBench('ES256');
  report['jwt'] = { RS256: rs, ES256: es, target_time_ratio: 1.2 };

  const opaBin = await ensureOpa();
  const work = await mkdtemp(join(tmpdir(), 'portcullis-bench-pip-'));
  await chmod(work, 0o755);
  let stopPostgres: (() => Promise<void>) | undefined;
  try {
    let databaseUrl = process.env.DATABASE_URL;
    if (!databaseUrl) {
      process.stderr.write('postgres: starting…\n');
      const server = await startPostgres({ dataDir: join(work, 'postgres') });
      stopPostgres = () => server.stop();
      databaseUrl = server.url;
    }
    const pip = await buildPip({
      config: loadPipConfig({
        DATABASE_URL: databaseUrl,
        PIP_ADMIN_TOKEN: TOKEN,
        PIP_HTTP_PORT: '0',
        PIP_GRPC_PORT: '0',
      }),
      logger: createLogger('pip', 'silent'),
      metrics: createMetrics('pip'),
      health: new Health(),
    });
    try {
      const { grpcPort } = await pip.listen();
      process.stderr.write(`attributes: importing ${RECORDS} records…\n`);
      const lines = Array.from({ length: RECORDS }, (_, i) =>
        JSON.stringify({
          kind: 'user',
          id: `u${i}`,
          attributes: { team: i % 2 === 0 ? 'red' : 'blue', n: i },
        }),
      ).join('\n');
      const importStarted = performance.now();
      const imported = await pip.app.inject({
        method: 'POST',
        url: '/v1/attributes:import',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' },
        payload: lines,
      });
      const importMs = performance.now() - importStarted;
      if (imported.statusCode !== 200) throw new Error(`import failed: ${imported.body}`);
      report['import'] = {
        rows: RECORDS,
        seconds: round2(importMs / 1000),
        rows_per_s: Math.round((RECORDS / importMs) * 1000),
      };
      await pip.app.inject({
        method: 'PUT',
        url: '/v1/attributes/document/plan',
        headers: { authorization: `Bearer ${TOKEN}` },
        payload: { attributes: { team: 'red' } },
      });

      const source = new GrpcAttributeSource({ address: `127.0.0.1:${grpcPort}` });
      const cache = new AttributeCache({ source, maxEntries: RECORDS * 2, ttlMs: 3_600_000 });
      const BATCH = 10;
      const keysAt = (start: number) =>
        Array.from({ length: BATCH }, (_, i) => ({ kind: 'user', id: `u${(start + i) % RECORDS}` }));
      // Warm up the channel and the database's plans before any sample counts.
      for (let i = 0; i < 50; i++) await source.batchGet(keysAt(i * BATCH));
      process.stderr.write('attributes: BatchGet cold and warm…\n');
      const cold: number[] = [];
      const direct: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < LOOKUPS; i++) {
        // Cold: keys this cache never saw, so every lookup is a miss and goes to the PIP over gRPC.
        const keys = keysAt((i * BATCH) % RECORDS);
        const c = performance.now();
        await cache.getMany(keys);
        cold.push(performance.now() - c);
        const d = performance.now();
        await source.batchGet(keysAt(((i + LOOKUPS) * BATCH) % RECORDS));
        direct.push(performance.now() - d);
        const w = performance.now();
        await cache.getMany(keys);
        warm.push(performance.now() - w);
      }
      report['batch_get'] = {
        keys_per_call: BATCH,
        cold_cache_miss: stats(cold),
        grpc_batch_get: stats(direct),
        warm_cache_hit: stats(warm),
      };

      process.stderr.write('enrichment: compiling the policy…\n');
      const compiled = await compileWasm({
        opaBin,
        modules: { 'authz.rego': POLICY },
        entrypoints: ['authz/allow'],
      });
      const engine = new PolicyEngine();
      await engine.load({
        bundle: 'authz',
        revision: 1,
        digest: compiled.digest,
        wasm: compiled.wasm,
        data: compiled.data,
        entrypoints: compiled.entrypoints,
      });
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
      const jwks = new JwksCache();
      const policies = new PolicySet({ authenticator: new JwtAuthenticator({ jwks }) });
      policies.put(
        parseRequestAuthentication({
          apiVersion: 'security.istio.io/v1',
          kind: 'RequestAuthentication',
          metadata: { name: 'jwt', namespace: 'docs' },
          spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [jwk] }) }] },
        }),
      );
      const jwt = await new SignJWT({
        iss: ISS,
        sub: 'u0',
        role: 'editor',
        exp: Math.floor(Date.now() / 1000) + 3600,
      })
        .setProtectedHeader({ alg: 'ES256', kid: 'k' })
        .sign(privateKey);
      const input = {
        attributes: {
          request: {
            http: {
              method: 'PUT',
              path: '/documents/plan',
              host: 'docs.example',
              headers: {
                ':authority': 'docs.example',
                authorization: `Bearer ${jwt}`,
                'user-agent': 'bench',
                'x-request-id': 'r-1',
              },
            },
          },
        },
        parsed_path: ['documents', 'plan'],
        parsed_query: {},
      };
      const enricher = new Enricher({
        config: {
          namespace: 'docs',
          subject: { kind: 'user', id: { claim: 'sub' } },
          resource: { kind: 'document', id: { path: '/documents/{doc}', param: 'doc' } },
        },
        attributes: cache,
        identity: policies,
      });
      const outcome = await policies.authenticate({
        namespace: 'docs',
        headers: input.attributes.request.http.headers,
      });
      const check = (await enricher.enrich(input)) as object;
      if (engine.evaluate('authz/allow', check).result !== true)
        throw new Error('the enriched input should be allowed');

      process.stderr.write('enrichment: measuring…\n');
      const precomputed = await enricher.enrich(input, { identity: outcome });
      const series = {
        precomputed: [] as number[],
        plain: [] as number[],
        enriched: [] as number[],
        plain_with_jwt: [] as number[],
        enriched_with_jwt: [] as number[],
      };
      const run = async (name: keyof typeof series, fn: () => Promise<unknown> | unknown) => {
        const s = performance.now();
        await fn();
        series[name].push(performance.now() - s);
      };
      for (let i = 0; i < EVALUATIONS; i++) {
        // Identity already known (as when ext-authz ran the JWT step itself): attributes from the cache only.
        await run('plain', () => engine.evaluate('authz/allow', input));
        // The same decision with the enriched input built once: what the evaluation itself costs.
        await run('precomputed', () => engine.evaluate('authz/allow', precomputed));
        await run('enriched', async () =>
          engine.evaluate('authz/allow', await enricher.enrich(input, { identity: outcome })),
        );
        if (i % 4 === 0) {
          // With the JWT step in both: verification dominates, so the ratio shows the attribute share of a full check.
          await run('plain_with_jwt', async () => {
            await policies.authenticate({
              namespace: 'docs',
              headers: input.attributes.request.http.headers,
            });
            return engine.evaluate('authz/allow', input);
          });
          await run('enriched_with_jwt', async () =>
            engine.evaluate('authz/allow', await enricher.enrich(input)),
          );
        }
      }
      const plain = stats(series.plain);
      const pre = stats(series.precomputed);
      const enriched = stats(series.enriched);
      const plainJwt = stats(series.plain_with_jwt);
      const enrichedJwt = stats(series.enriched_with_jwt);
      report['enrichment'] = {
        plain_evaluation: plain,
        precomputed_input_evaluation: pre,
        enriched_evaluation: enriched,
        p50_ratio: round2(enriched.p50_us / plain.p50_us),
        p50_ratio_vs_precomputed: round2(enriched.p50_us / pre.p50_us),
        plain_with_jwt: plainJwt,
        enriched_with_jwt: enrichedJwt,
        p50_ratio_with_jwt: round2(enrichedJwt.p50_us / plainJwt.p50_us),
        cache: cache.stats(),
        target_p50_ratio: 1.2,
      };
      await jwks.stop();
      source.close();
    } finally {
      await pip.close();
    }
  } finally {
    await stopPostgres?.();
    await rm(work, { recursive: true, force: true });
  }
  report['machine'] = { ...load, after: loadavg().map(round2), node: process.version };
  await mkdir(dirname(args.out), { recursive: true });
  await writeFile(args.out, `${JSON.stringify(report, null, 2)}\n`);
  print(report);
}

function print(r: Record<string, unknown>): void {
  const jwt = r['jwt'] as Record<
    'RS256' | 'ES256',
    { subject_per_s: number; reference_per_s: number; time_ratio: number }
  >;
  const b = r['batch_get'] as Record<string, Stats>;
  const e = r['enrichment'] as Record<string, Stats & number>;
  const imp = r['import'] as { rows: number; seconds: number; rows_per_s: number };
  const rows: [string, string, string, string][] = [
    [
      'JWT RS256 verify',
      `${jwt.RS256.subject_per_s}/s`,
      `jose ${jwt.RS256.reference_per_s}/s`,
      `${jwt.RS256.time_ratio}× time (target < 1.2)`,
    ],
    [
      'JWT ES256 verify',
      `${jwt.ES256.subject_per_s}/s`,
      `jose ${jwt.ES256.reference_per_s}/s`,
      `${jwt.ES256.time_ratio}× time (target < 1.2)`,
    ],
    [
      'BatchGet 10 keys, cache miss',
      `p50 ${b['cold_cache_miss']!.p50_us} µs`,
      `p99 ${b['cold_cache_miss']!.p99_us} µs`,
      `gRPC alone p50 ${b['grpc_batch_get']!.p50_us} µs`,
    ],
    [
      'BatchGet 10 keys, cache hit',
      `p50 ${b['warm_cache_hit']!.p50_us} µs`,
      `p99 ${b['warm_cache_hit']!.p99_us} µs`,
      '',
    ],
    [
      'Evaluation, plain',
      `p50 ${(e['plain_evaluation'] as Stats).p50_us} µs`,
      `p99 ${(e['plain_evaluation'] as Stats).p99_us} µs`,
      '',
    ],
    [
      'Evaluation, enriched (hits)',
      `p50 ${(e['enriched_evaluation'] as Stats).p50_us} µs`,
      `p99 ${(e['enriched_evaluation'] as Stats).p99_us} µs`,
      `${e['p50_ratio']}× plain, ${e['p50_ratio_vs_precomputed']}× pre-enriched p50`,
    ],
    [
      'JWT + evaluation, plain',
      `p50 ${(e['plain_with_jwt'] as Stats).p50_us} µs`,
      `p99 ${(e['plain_with_jwt'] as Stats).p99_us} µs`,
      '',
    ],
    [
      'JWT + evaluation, enriched',
      `p50 ${(e['enriched_with_jwt'] as Stats).p50_us} µs`,
      `p99 ${(e['enriched_with_jwt'] as Stats).p99_us} µs`,
      `${e['p50_ratio_with_jwt']}× p50 (target < 1.2)`,
    ],
    ['Import (JSON lines)', `${imp.rows} rows`, `${imp.seconds} s`, `${imp.rows_per_s} rows/s`],
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const machine = r['machine'] as { before: number[]; after: number[] };
  process.stdout.write(`\nPIP benchmark (load ${machine.before[0]} → ${machine.after[0]})\n`);
  for (const row of rows) {
    process.stdout.write(`  ${row.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ')}\n`);
  }
  process.stdout.write(`\nwritten: ${args.out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench/pip failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
