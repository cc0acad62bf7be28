// docker-compose.yml without Docker: each Node service's environment against its config spec, then the PAP, PDP,
// PIP, CA and the examples job run as processes with compose's commands and settings (hosts, ports and paths rewritten).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { CA_CONFIG, loadCaConfig } from '@portcullis/ca';
import { DEMO_APP_CONFIG, loadDemoAppConfig } from '@portcullis/demo-app';
import { EXT_AUTHZ_CONFIG, loadExtAuthzConfig } from '@portcullis/ext-authz';
import { loadPapConfig, PAP_CONFIG } from '@portcullis/pap';
import { loadPdpConfig, PDP_CONFIG } from '@portcullis/pdp';
import { loadPipConfig, PIP_CONFIG } from '@portcullis/pip';
import {
  createTestDatabase,
  freePorts,
  opaBin,
  type Service,
  spawnService,
  startTestKafka,
  type TestDatabase,
  type TestKafka,
  TMP_ENV,
  waitFor,
} from '@portcullis/testkit';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
/** Starting a service compiles its TypeScript; generous, for a loaded machine. */
const START_MS = 90_000;

interface ComposeService {
  command?: string[];
  environment?: Record<string, string | number | boolean>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const COMPOSE_TEXT = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const compose = yaml.load(COMPOSE_TEXT) as {
  services: Record<string, ComposeService>;
};

/** Each Node service of the compose file: its settings, and the loader its main.ts validates them with. */
const NODE_SERVICES: Record<string, { spec: object; load: (env: NodeJS.ProcessEnv) => object }> = {
  pap: { spec: PAP_CONFIG, load: loadPapConfig },
  pdp: { spec: PDP_CONFIG, load: loadPdpConfig },
  pip: { spec: PIP_CONFIG, load: loadPipConfig },
  ca: { spec: CA_CONFIG, load: loadCaConfig },
  'ext-authz': { spec: EXT_AUTHZ_CONFIG, load: loadExtAuthzConfig },
  'demo-app': { spec: DEMO_APP_CONFIG, load: loadDemoAppConfig },
};

function service(name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

/** `${VAR:-default}` as compose resolves it with VAR unset: the default. Anything else with a `$` is refused. */
function interpolate(value: string | number | boolean): string {
  const text = String(value).replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, (_, fallback: string) => fallback);
  if (text.includes('$')) throw new Error(`unsupported interpolation in ${JSON.stringify(value)}`);
  return text;
}

/** The environment compose gives a service, interpolated. */
function composeEnv(name: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, interpolate(v)]),
  );
}

/** The service's port settings with the values it runs with under compose: `{ PDP_HTTP_PORT: 8181, … }`. */
function portSettings(name: string): Record<string, number> {
  const { spec, load } = NODE_SERVICES[name]!;
  const config = load(composeEnv(name)) as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(spec)
      .filter((key) => key.endsWith('_PORT'))
      .map((key) => [key, config[key] as number]),
  );
}

/** The URL the healthcheck fetches inside the container. */
function healthUrl(name: string): URL {
  const test = service(name).healthcheck?.test.join(' ') ?? '';
  const match = test.match(/fetch\('(http:\/\/[^']+)'\)/);
  if (!match?.[1]) throw new Error(`${name}: no node fetch healthcheck`);
  return new URL(match[1]);
}

describe('docker-compose.yml settings', () => {
  it('runs each Node service from its own entry point, as the compose services named after it', () => {
    const running = Object.entries(compose.services)
      .filter(([, s]) => s.command?.join(' ').match(/services\/[\w-]+\/src\/main\.ts/))
      .map(([name]) => name);
    expect(running.sort()).toEqual(Object.keys(NODE_SERVICES).sort());
    for (const name of running) {
      expect(service(name).command).toEqual(['node', '--import', 'tsx', `services/${name}/src/main.ts`]);
    }
  });

  describe.each(Object.keys(NODE_SERVICES))('%s', (name) => {
    it('sets only variables its config declares', () => {
      const declared = Object.keys(NODE_SERVICES[name]!.spec);
      const unknown = Object.keys(composeEnv(name)).filter((key) => !declared.includes(key));
      expect(unknown).toEqual([]);
    });

    it('has an environment its config accepts, binding every address', () => {
      const env = composeEnv(name);
      expect(() => NODE_SERVICES[name]!.load(env)).not.toThrow();
      const hosts = Object.keys(NODE_SERVICES[name]!.spec).filter((key) => key.endsWith('_HOST'));
      expect(hosts.length).toBeGreaterThan(0);
      for (const key of hosts) expect(env[key]).toBe('0.0.0.0');
    });

    it('publishes only ports it listens on, and its healthcheck asks one of them', () => {
      const listening = Object.values(portSettings(name));
      for (const mapping of service(name).ports ?? []) {
        const [published, inside] = mapping.split(':').map(Number);
        expect(published).toBe(inside);
        expect(listening).toContain(inside);
      }
      const health = healthUrl(name);
      expect(health.hostname).toBe('127.0.0.1');
      expect(listening).toContain(Number(health.port));
      expect(health.pathname).toMatch(/^\/(healthz|readyz|health)$/);
    });
  });
});

describe('docker-compose.yml run as processes', () => {
  const RUN = ['pap', 'pdp', 'pip', 'ca'];
  let db: TestDatabase;
  let kafka: TestKafka;
  let tmp: string;
  const running = new Map<string, Service>();
  /** Compose address → local address, for every service started and each one's ports. */
  const addresses: Record<string, string> = {};
  /** Per service, where its container paths are on this machine, longest first. */
  const paths = new Map<string, [string, string][]>();

  /** The local base URL of the port a service's healthcheck asks (its HTTP port). */
  function http(name: string): string {
    return `http://${addresses[`${name}:${healthUrl(name).port}`]}`;
  }

  /** A compose value with its hosts, addresses and container paths made this machine's. */
  function rewrite(name: string, value: string): string {
    if (/^postgres:\/\/[^@/]*@postgres:5432\//.test(value)) return db.url;
    let out = value.replace(/\bkafka:9092\b/g, kafka.brokers.join(','));
    out = out.replace(/\b([a-z][\w-]*):(\d+)\b/g, (whole) => addresses[whole] ?? whole);
    for (const [inside, outside] of paths.get(name) ?? []) {
      if (out === inside || out.startsWith(`${inside}/`)) return outside + out.slice(inside.length);
    }
    return out;
  }

  /** The container paths of a service's volumes, mapped to the checkout, the opa directory or a temp dir. */
  async function mountPaths(name: string): Promise<[string, string][]> {
    const mounts: [string, string][] = [];
    for (const volume of service(name).volumes ?? []) {
      const [source = '', target = ''] = interpolate(volume).split(':');
      if (source === '.') mounts.push([target, ROOT]);
      else if (source.includes('/opa-')) mounts.push([target, dirname(opaBin())]);
      else if (/^[\w-]+$/.test(source)) mounts.push([target, await mkdtemp(join(tmp, `${source}-`))]);
      else throw new Error(`${name}: unexpected volume ${volume}`);
    }
    return mounts;
  }

  function processEnv(name: string): Record<string, string | undefined> {
    const env: Record<string, string | undefined> = Object.fromEntries(
      Object.entries(composeEnv(name)).map(([k, v]) => [k, rewrite(name, v)]),
    );
    const node = NODE_SERVICES[name];
    if (node) {
      // Only compose's settings: none inherited from the test run (it has a DATABASE_URL, for one).
      for (const key of Object.keys(node.spec)) if (!(key in env)) env[key] = undefined;
      // Free ports instead of the fixed ones, since tests run side by side.
      for (const [key, port] of Object.entries(portSettings(name))) {
        env[key] = addresses[`${name}:${port}`]!.split(':')[1]!;
      }
    }
    // `node` in a command is this Node; the rest of PATH is the machine's.
    env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
    return env;
  }

  async function start(name: string): Promise<void> {
    const [cmd, ...args] = service(name).command!;
    expect(cmd).toBe('node');
    const svc = await spawnService(process.execPath, args, processEnv(name), {
      cwd: ROOT,
      readyUrl: `${http(name)}${healthUrl(name).pathname}`,
      readyTimeoutMs: START_MS,
    });
    running.set(name, svc);
  }

  /** Starts `names` each once what it depends on (that runs here) has started, as compose orders them. */
  async function startInOrder(names: string[]): Promise<void> {
    const started = new Map<string, Promise<void>>();
    const startOne = (name: string): Promise<void> => {
      let promise = started.get(name);
      if (!promise) {
        const deps = Object.keys(service(name).depends_on ?? {}).filter((d) => names.includes(d));
        promise = Promise.all(deps.map(startOne)).then(() => start(name));
        started.set(name, promise);
      }
      return promise;
    };
    // allSettled first, so a failure leaves no start running unawaited behind it.
    const results = await Promise.allSettled(names.map(startOne));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Runs a one-off compose job to completion; resolves with its output, rejects unless it exits 0. */
  async function runJob(name: string): Promise<string> {
    const [cmd, ...args] = service(name).command!;
    const child = spawn(cmd!, args, {
      cwd: ROOT,
      env: { ...process.env, ...processEnv(name) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    const code = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('exit', done);
    });
    if (code !== 0) throw new Error(`${name} exited ${code}:\n${output}`);
    return output;
  }

  async function metric(url: string, pattern: RegExp): Promise<number> {
    const text = await (await fetch(url)).text();
    return text
      .split('\n')
      .filter((line) => pattern.test(line))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  }

  async function decide(path: string, input: unknown): Promise<unknown> {
    const res = await fetch(`${http('pdp')}/v1/data/${path}`, {
      method: 'POST',
      body: JSON.stringify({ input }),
    });
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { result?: unknown }).result;
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(process.env[TMP_ENV] ?? tmpdir(), 'compose-'));
    [db, kafka] = await Promise.all([createTestDatabase(), startTestKafka()]);
    const wanted = RUN.flatMap((name) => Object.values(portSettings(name)).map((port) => `${name}:${port}`));
    const ports = await freePorts(wanted.length);
    wanted.forEach((address, i) => {
      addresses[address] = `127.0.0.1:${ports[i]}`;
    });
    expect(basename(opaBin())).toBe('opa');
    for (const name of [...RUN, 'examples']) {
      paths.set(
        name,
        (await mountPaths(name)).sort(([a], [b]) => b.length - a.length),
      );
    }
    await startInOrder(RUN);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([...running.values()].map((s) => s.stop()));
    await kafka?.dispose();
    await db?.drop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  it('the examples job pushes and activates the example bundles, and the PDP serves them, told over Kafka', async () => {
    const pdpMetrics = `${http('pdp')}/metrics`;
    // Subscribed: the PDP reconciles at start and again once its subscription to policy events is in place.
    await waitFor(
      async () =>
        (await metric(pdpMetrics, /^portcullis_policy_reconciles_total\{(?=[^}]*outcome="ok")/)) >= 2,
      { timeoutMs: 30_000, message: 'the PDP to subscribe to policy events' },
    );

    const output = await runJob('examples');
    expect(output).toMatch(/envoy-authz: revision \d+ is now active/);
    expect(output).toMatch(/rbac: revision \d+ is now active/);

    // The query the comment at the top of docker-compose.yml shows.
    const shown = COMPOSE_TEXT.match(/curl -s localhost:8181\/v1\/data\/(\S+) -d '([^']+)'/);
    expect(shown).not.toBeNull();
    const [, path = '', body = ''] = shown!;
    const alice = (JSON.parse(body) as { input: Record<string, string> }).input;
    expect(path).toBe('rbac/allow');
    await waitFor(async () => (await decide(path, alice)) === true, {
      timeoutMs: 20_000,
      message: `the PDP to answer true to the query of the comment (${path} ${body})`,
    });
    expect(await decide('rbac/allow', { ...alice, action: 'write' })).toBe(false);
    expect(await decide('rbac/decision', { ...alice, subject: 'bob', action: 'write' })).toEqual({
      allow: true,
      roles: ['clerk'],
    });
    const envoy = (method: string, path: string) => ({
      attributes: { request: { http: { method, path, headers: {} } } },
      parsed_path: path.split('/').slice(1),
    });
    await waitFor(async () => (await decide('envoy/authz/allow', envoy('GET', '/productpage'))) === true, {
      timeoutMs: 20_000,
      message: 'the PDP to allow GET /productpage (policies/envoy-authz)',
    });
    expect(await decide('envoy/authz/allow', envoy('GET', '/api/v1/products'))).toBe(false);

    expect(
      await metric(
        pdpMetrics,
        /^portcullis_bundle_loads_total\{(?=[^}]*bundle="rbac")(?=[^}]*source="event")/,
      ),
    ).toBe(1);
    expect((await fetch(`${http('pdp')}/readyz`)).status).toBe(200);
  });

  it('the PIP is ready and takes the admin token compose gives it', async () => {
    expect((await fetch(`${http('pip')}/readyz`)).status).toBe(200);
    const token = composeEnv('pip').PIP_ADMIN_TOKEN;
    expect(token).toBe(composeEnv('examples').PORTCULLIS_TOKEN);
    const list = await fetch(`${http('pip')}/v1/request-authentications`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(list.status).toBe(200);
    const refused = await fetch(`${http('pip')}/v1/request-authentications`, {
      headers: { authorization: 'Bearer not-the-compose-token-at-all' },
    });
    expect(refused.status).toBe(401);
  });

  it('the CA is ready and serves its trust bundle as PEM', async () => {
    expect((await fetch(`${http('ca')}/readyz`)).status).toBe(200);
    const res = await fetch(`${http('ca')}/v1/trust-bundle`);
    expect(res.status).toBe(200);
    const pem = await res.text();
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n?$/);
  });
});
