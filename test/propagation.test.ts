// Policy propagation end to end: a PAP and three PDPs as real processes, on the postgres bus and on a real Kafka broker.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sha256Hex } from '@portcullis/bundle';
import { StaticPolicyDistribution } from '@portcullis/policy-sync';
import { createLogger, createMetrics } from '@portcullis/runtime';
import {
  createTestDatabase,
  freePorts,
  opaBin,
  type Service,
  spawnService,
  startTestKafka,
  type TestDatabase,
  type TestKafka,
  waitFor,
} from '@portcullis/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = 'propagation-test-admin-token-0123456789';
const PDP_COUNT = 3;
/** Long enough that only events, bus reconnects and restarts can explain a convergence within a test. */
const RECONCILE_INTERVAL = '10m';
const CONVERGE_MS = 20_000;
/** Starting a service compiles its TypeScript; generous, for a loaded machine. */
const START_MS = 90_000;

const POLICY = `package prop

default allow := false

allow if input.user in data.users

version := data.version
`;

function bundleBody(version: number) {
  return {
    modules: { 'prop/policy.rego': POLICY },
    data: { version, users: ['alice'] },
    entrypoints: ['prop/allow', 'prop/version'],
  };
}

interface Pdp {
  service: Service;
  http: string;
  env: Record<string, string>;
}

function node(entry: string): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', entry]];
}

/** The PAP's REST API as the test drives it. */
class PapApi {
  constructor(readonly url: string) {}

  private async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return { res, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  async post(version: number): Promise<number> {
    const { json } = await this.call('POST', '/v1/bundles/prop/revisions', bundleBody(version));
    return json.revision as number;
  }

  async activate(revision: number): Promise<void> {
    const { res } = await this.call('GET', '/v1/bundles/prop');
    await this.call(
      'PUT',
      '/v1/bundles/prop/active',
      { revision },
      { 'if-match': res.headers.get('etag') ?? '' },
    );
  }

  async archive(): Promise<Buffer> {
    const res = await fetch(`${this.url}/v1/bundles/prop/bundle.tar.gz`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return Buffer.from(await res.arrayBuffer());
  }
}

/** What a PDP answers for `prop/version` (undefined when it cannot answer). */
async function servedVersion(pdp: Pdp): Promise<unknown> {
  const res = await fetch(`${pdp.http}/v1/data/prop/version`, { method: 'POST', body: '{"input":{}}' });
  if (res.status !== 200) return undefined;
  return ((await res.json()) as { result?: unknown }).result;
}

async function converge(pdps: Pdp[], version: number, what: string): Promise<void> {
  await waitFor(async () => (await Promise.all(pdps.map(servedVersion))).every((v) => v === version), {
    timeoutMs: CONVERGE_MS,
    intervalMs: 50,
    message: `${what}: every PDP to serve version ${version}`,
  });
}

async function metric(pdp: Pdp, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${pdp.http}/metrics`)).text();
  const line = text.split('\n').find((l) => pattern.test(l));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe.each(['postgres', 'kafka'] as const)('propagation over the %s bus', (transport) => {
  let db: TestDatabase;
  let kafka: TestKafka | undefined;
  let tmp: string;
  let papEnv: Record<string, string>;
  let pap: Service;
  let api: PapApi;
  const pdps: Pdp[] = [];
  const extra: Service[] = [];
  /** Revision number of each posted version. */
  const rev = new Map<number, number>();
  let pdpBusUrl: string;

  async function startPap(): Promise<void> {
    const [cmd, args] = node('services/pap/src/main.ts');
    pap = await spawnService(cmd, args, papEnv, {
      cwd: ROOT,
      readyUrl: `${api.url}/readyz`,
      readyTimeoutMs: START_MS,
    });
  }

  function busEnv(): Record<string, string> {
    return transport === 'kafka'
      ? { BUS: 'kafka', KAFKA_BROKERS: kafka!.brokers.join(',') }
      : { BUS: 'postgres', DATABASE_URL: pdpBusUrl };
  }

  async function startPdp(env: Record<string, string>): Promise<Pdp> {
    const [cmd, args] = node('services/pdp/src/main.ts');
    const http = `http://127.0.0.1:${env.PDP_HTTP_PORT}`;
    const service = await spawnService(cmd, args, env, {
      cwd: ROOT,
      readyUrl: `${http}/healthz`,
      readyTimeoutMs: START_MS,
    });
    return { service, http, env };
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), `propagation-${transport}-`));
    db = await createTestDatabase();
    // The PDPs reach the postgres bus as their own role, so a test can cut them off the bus alone.
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pdp_bus') THEN
        CREATE ROLE pdp_bus LOGIN SUPERUSER PASSWORD 'pdp_bus';
      END IF; END $$`);
    await admin.end();
    const url = new URL(db.url);
    url.username = 'pdp_bus';
    url.password = 'pdp_bus';
    pdpBusUrl = url.toString();
    if (transport === 'kafka') kafka = await startTestKafka();

    const [papHttp, papGrpc, ...pdpPorts] = await freePorts(2 + 2 * PDP_COUNT);
    api = new PapApi(`http://127.0.0.1:${papHttp}`);
    papEnv = {
      DATABASE_URL: db.url,
      PAP_HTTP_PORT: String(papHttp),
      PAP_GRPC_PORT: String(papGrpc),
      PAP_ADMIN_TOKEN: ADMIN_TOKEN,
      OPA_BIN: opaBin(),
      LOG_LEVEL: 'warn',
      ...(transport === 'kafka'
        ? { BUS: 'kafka', KAFKA_BROKERS: kafka!.brokers.join(',') }
        : { BUS: 'postgres' }),
    };
    await startPap();
    for (const version of [1, 2, 3, 4, 5, 6]) rev.set(version, await api.post(version));
    await api.activate(rev.get(1)!);

    const started = await Promise.all(
      Array.from({ length: PDP_COUNT }, (_, i) =>
        startPdp({
          ...busEnv(),
          PAP_GRPC_ADDR: `127.0.0.1:${papGrpc}`,
          PDP_HTTP_PORT: String(pdpPorts[2 * i]),
          PDP_GRPC_PORT: String(pdpPorts[2 * i + 1]),
          PDP_CACHE_DIR: join(tmp, `pdp-${i}`),
          PDP_RECONCILE_INTERVAL: RECONCILE_INTERVAL,
          LOG_LEVEL: 'warn',
        }),
      ),
    );
    pdps.push(...started);
    await converge(pdps, 1, 'start');
  }, 300_000);

  afterAll(async () => {
    await Promise.all([...pdps.map((p) => p.service.stop()), ...extra.map((s) => s.stop())]);
    await pap?.stop();
    await kafka?.dispose();
    await db?.drop();
    await rm(tmp, { recursive: true, force: true });
  }, 120_000);

  it('an activation reaches all three PDPs', async () => {
    await api.activate(rev.get(2)!);
    await converge(pdps, 2, 'activation');
  });

  it('a rollback (an older revision activated again) reaches all three', async () => {
    await api.activate(rev.get(3)!);
    await converge(pdps, 3, 'activation');
    await api.activate(rev.get(2)!);
    await converge(pdps, 2, 'rollback');
  });

  it('after a bus outage with two activations during it, all converge on the latest', async () => {
    let restore: () => Promise<void>;
    if (transport === 'kafka') {
      await kafka!.stop();
      restore = () => kafka!.start();
    } else {
      // The postgres bus shares its database with the PAP: the outage is the PDPs losing it alone.
      // Refusing their role new logins and dropping their sessions cuts them off; the PAP keeps going.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('ALTER ROLE pdp_bus NOLOGIN');
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pdp_bus'`);
      restore = async () => {
        await admin.query('ALTER ROLE pdp_bus LOGIN');
        await admin.end();
      };
    }
    await waitFor(
      async () => {
        const states = await Promise.all(pdps.map(async (p) => (await fetch(`${p.http}/readyz`)).json()));
        return states.every((s) => JSON.stringify(s).includes('bus disconnected'));
      },
      { timeoutMs: CONVERGE_MS, message: 'every PDP to report the bus outage' },
    );
    await api.activate(rev.get(4)!);
    await api.activate(rev.get(5)!);
    // Still answering, with what they had.
    expect(await Promise.all(pdps.map(servedVersion))).toEqual([2, 2, 2]);
    await restore();
    await converge(pdps, 5, 'bus back');
  });

  it('a PDP that was down during an activation converges by reconcile when it restarts', async () => {
    const victim = pdps[0]!;
    await victim.service.stop();
    await api.activate(rev.get(3)!);
    await converge(pdps.slice(1), 3, 'activation while one PDP is down');
    victim.service = (await startPdp(victim.env)).service;
    await converge(pdps, 3, 'restart');
  });

  it('while the PAP is down the PDPs keep answering, and stay ready', async () => {
    await pap.stop();
    for (const p of pdps) {
      expect(await servedVersion(p)).toBe(3);
      const res = await fetch(`${p.http}/v1/data/prop/allow`, {
        method: 'POST',
        body: '{"input":{"user":"alice"}}',
      });
      expect(await res.json()).toMatchObject({ result: true });
    }
    // A PDP started while the PAP is down serves from its disk cache at once.
    const victim = pdps[1]!;
    await victim.service.stop();
    victim.service = (await startPdp(victim.env)).service;
    expect(await servedVersion(victim)).toBe(3);
    expect((await fetch(`${victim.http}/readyz`)).status).toBe(200);
    await startPap();
    await api.activate(rev.get(6)!);
    await converge(pdps, 6, 'PAP back');
  });

  it('a swap under continuous load fails no decision', async () => {
    const target = pdps[2]!;
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seen = new Set<unknown>();
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const res = await fetch(`${target.http}/v1/data/prop/version`, {
            method: 'POST',
            body: '{"input":{}}',
          });
          const body = (await res.json()) as { result?: unknown };
          if (res.status !== 200 || body.result === undefined)
            failures.push(`${res.status} ${JSON.stringify(body)}`);
          else {
            ok++;
            seen.add(body.result);
          }
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    for (const version of [1, 2, 6]) {
      await api.activate(rev.get(version)!);
      await converge([target], version, 'swap under load');
    }
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect([...seen].sort()).toEqual([1, 2, 6]);
  });

  it('a PDP refuses a bundle whose bytes do not match the digest and keeps serving', async () => {
    // A PolicyDistribution that announces revision 2 with its real digest but serves other bytes.
    const logger = createLogger('fake-pap', 'silent');
    const fake = new StaticPolicyDistribution({ logger, metrics: createMetrics('fake-pap') });
    const good = await api.archive();
    const goodVersion = await servedVersion(pdps[0]!);
    fake.activate(good, { bundle: 'prop', revision: 1 });
    const address = await fake.listen();
    const ownBus = await createTestDatabase();
    try {
      const [http, grpcPort] = await freePorts(2);
      const pdp = await startPdp({
        BUS: 'postgres',
        DATABASE_URL: ownBus.url,
        PAP_GRPC_ADDR: address,
        PDP_HTTP_PORT: String(http),
        PDP_GRPC_PORT: String(grpcPort),
        PDP_CACHE_DIR: 'off',
        PDP_RECONCILE_INTERVAL: '200ms',
        LOG_LEVEL: 'fatal',
      });
      extra.push(pdp.service);
      await converge([pdp], goodVersion as number, 'fake PAP');
      const tampered = Buffer.from(good);
      tampered[tampered.length - 10]! ^= 0xff;
      fake.activate(tampered, {
        bundle: 'prop',
        revision: 2,
        digest: sha256Hex(Buffer.from('the real revision 2')),
      });
      await waitFor(
        async () =>
          (await metric(pdp, /^portcullis_bundle_load_failures_total\{.*reason="digest_mismatch"/)) >= 1,
        {
          timeoutMs: CONVERGE_MS,
          message: 'the digest mismatch to be counted',
        },
      );
      expect(await servedVersion(pdp)).toBe(goodVersion);
      const ready = (await (await fetch(`${pdp.http}/readyz`)).json()) as Record<string, unknown>;
      expect(JSON.stringify(ready)).toContain('digest_mismatch');
      await pdp.service.stop();
    } finally {
      await fake.close();
      await ownBus.drop();
    }
  });
});
