// The processes the PDP benchmark runs: Postgres, Kafka, a PAP, PDPs and a stock `opa run --server`.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePorts, type Service, spawnService } from '@portcullis/testkit';
import { type KafkaServer, startKafka } from '../../scripts/lib/kafka.mjs';
import { type PostgresServer, startPostgres } from '../../scripts/lib/postgres.mjs';

export const ROOT = resolve(import.meta.dirname, '../..');
export const ADMIN_TOKEN = 'bench-pdp-admin-token-0123456789abcdef';
const START_MS = 120_000;

function tsx(entry: string): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', entry]];
}

/** Resident set size of a process, in MiB (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

export async function startBenchPostgres(dir: string): Promise<PostgresServer> {
  return startPostgres({ dataDir: join(dir, 'postgres'), durable: false, maxConnections: 200 });
}

export async function startBenchKafka(dir: string): Promise<KafkaServer> {
  return startKafka({ dataDir: join(dir, 'kafka') });
}

export class Pap {
  private constructor(
    readonly service: Service,
    readonly url: string,
    readonly grpc: string,
  ) {}

  static async start(env: Record<string, string>): Promise<Pap> {
    const [http, grpc] = await freePorts(2);
    const url = `http://127.0.0.1:${http}`;
    const [cmd, args] = tsx('services/pap/src/main.ts');
    const service = await spawnService(
      cmd,
      args,
      {
        PAP_HTTP_PORT: String(http),
        PAP_GRPC_PORT: String(grpc),
        PAP_ADMIN_TOKEN: ADMIN_TOKEN,
        LOG_LEVEL: 'warn',
        ...env,
      },
      { cwd: ROOT, readyUrl: `${url}/readyz`, readyTimeoutMs: START_MS },
    );
    return new Pap(service, url, `127.0.0.1:${grpc}`);
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res;
  }

  /** Posts a revision; returns its number. */
  async post(
    bundle: string,
    content: { modules: Record<string, string>; data: unknown; entrypoints: string[] },
  ): Promise<number> {
    const res = await this.call('POST', `/v1/bundles/${bundle}/revisions`, content);
    return ((await res.json()) as { revision: number }).revision;
  }

  private readonly etags = new Map<string, string>();

  /** Activates under If-Match, reusing the ETag of the previous activation when it has one. */
  async activate(bundle: string, revision: number): Promise<void> {
    let etag = this.etags.get(bundle);
    if (etag === undefined)
      etag = (await this.call('GET', `/v1/bundles/${bundle}`)).headers.get('etag') ?? '';
    const res = await this.call('PUT', `/v1/bundles/${bundle}/active`, { revision }, { 'if-match': etag });
    this.etags.set(bundle, res.headers.get('etag') ?? '');
    await res.body?.cancel();
  }

  async regoArchive(bundle: string): Promise<Buffer> {
    const res = await this.call('GET', `/v1/bundles/${bundle}/bundle.tar.gz?target=rego`);
    return Buffer.from(await res.arrayBuffer());
  }

  stop(): Promise<unknown> {
    return this.service.stop();
  }
}

export class PdpProcess {
  private constructor(
    readonly service: Service,
    readonly http: string,
    readonly grpc: string,
  ) {}

  static async start(env: Record<string, string>): Promise<PdpProcess> {
    const [http, grpc] = await freePorts(2);
    const url = `http://127.0.0.1:${http}`;
    const [cmd, args] = tsx('services/pdp/src/main.ts');
    const service = await spawnService(
      cmd,
      args,
      {
        PDP_HTTP_PORT: String(http),
        PDP_GRPC_PORT: String(grpc),
        PDP_CACHE_DIR: 'off',
        LOG_LEVEL: 'warn',
        ...env,
      },
      { cwd: ROOT, readyUrl: `${url}/healthz`, readyTimeoutMs: START_MS },
    );
    return new PdpProcess(service, url, `127.0.0.1:${grpc}`);
  }

  /** Resolves once every named bundle serves (`/health?bundles` with PDP_BUNDLES, else polled per bundle). */
  async ready(bundles: string[], timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await fetch(`${this.http}/v1/data/bench/probe?provenance`);
      const body = (await res.json()) as { provenance?: { bundles?: Record<string, unknown> } };
      const served = Object.keys(body.provenance?.bundles ?? {});
      if (bundles.every((b) => served.includes(b))) return;
      if (Date.now() > deadline)
        throw new Error(`PDP did not load ${bundles.join(', ')}: ${this.service.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): Promise<unknown> {
    return this.service.stop();
  }
}

export async function startOpa(
  opaBin: string,
  archives: string[],
): Promise<{ service: Service; url: string }> {
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}`;
  const service = await spawnService(
    opaBin,
    ['run', '--server', '--addr', `127.0.0.1:${port}`, '--log-level', 'error', '--bundle', ...archives],
    {},
    { readyUrl: `${url}/health?bundles`, readyTimeoutMs: START_MS },
  );
  return { service, url };
}

export function version(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}
