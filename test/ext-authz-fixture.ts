// Test support for the ext-authz adapter: a PAP, adapters, PDPs and the demo app as real processes, and an Authorization client built from Envoy's protos (Envoy, as far as the adapter can tell).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AuthorizationClient,
  type CheckRequest,
  type CheckResponse,
  type HeaderValueOption,
  responseHttpStatus,
  structToJson,
} from '@portcullis/envoy-authz';
import { grpc } from '@portcullis/runtime';
import {
  createTestDatabase,
  freePort,
  opaBin,
  type Service,
  spawnService,
  type TestDatabase,
  waitFor,
} from '@portcullis/testkit';
import type { BundleSource } from './ext-authz-policies.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = join(ROOT, 'node_modules/.bin/tsx');
export const ADMIN_TOKEN = 'ext-authz-test-admin-token-0123456789';
/** Processes start slowly when the machine is busy; a generous bound keeps that from failing tests. */
const READY_TIMEOUT_MS = 90_000;

/** Decisions and processes are logged quietly unless a test fails (spawnService keeps the output). */
const QUIET = { LOG_LEVEL: 'warn' };

export interface PapProcess {
  service: Service;
  url: string;
  grpcAddress: string;
  databaseUrl: string;
  /** Posts a revision (compiled by the real opa) and returns its number. */
  publish(bundle: string, source: BundleSource): Promise<number>;
  /** Activates a revision (reading the bundle's ETag first). */
  activate(bundle: string, revision: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPap(): Promise<PapProcess> {
  const db: TestDatabase = await createTestDatabase();
  const [http, grpcPort] = [await freePort(), await freePort()];
  let service: Service;
  try {
    service = await spawnService(
      TSX,
      [join(ROOT, 'services/pap/src/main.ts')],
      {
        ...QUIET,
        DATABASE_URL: db.url,
        OPA_BIN: opaBin(),
        PAP_ADMIN_TOKEN: ADMIN_TOKEN,
        PAP_HTTP_PORT: String(http),
        PAP_GRPC_PORT: String(grpcPort),
        BUS: 'postgres',
      },
      { cwd: ROOT, readyUrl: `http://127.0.0.1:${http}/readyz`, readyTimeoutMs: READY_TIMEOUT_MS },
    );
  } catch (err) {
    await db.drop();
    throw err;
  }
  const url = `http://127.0.0.1:${http}`;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  return {
    service,
    url,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    databaseUrl: db.url,
    async publish(bundle, source) {
      const res = await fetch(`${url}/v1/bundles/${bundle}/revisions`, {
        method: 'POST',
        headers,
        body: JSON.stringify(source),
      });
      const body = (await res.json()) as { revision?: number };
      if (res.status !== 201) throw new Error(`publishing ${bundle}: ${res.status} ${JSON.stringify(body)}`);
      return body.revision!;
    },
    async activate(bundle, revision) {
      const got = await fetch(`${url}/v1/bundles/${bundle}`, { headers });
      await got.body?.cancel();
      const res = await fetch(`${url}/v1/bundles/${bundle}/active`, {
        method: 'PUT',
        headers: { ...headers, 'if-match': got.headers.get('etag') ?? '"0"' },
        body: JSON.stringify({ revision }),
      });
      if (res.status !== 200)
        throw new Error(`activating ${bundle} r${revision}: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    },
    async stop() {
      await service.stop();
      await db.drop();
    },
  };
}

export interface AdapterProcess {
  service: Service;
  grpcAddress: string;
  httpUrl: string;
  client: CheckClient;
  /** The Prometheus exposition of /metrics. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts `services/ext-authz/src/main.ts` with `env` over test defaults (free ports, no disk cache,
 * BUS=postgres on the PAP's database when given one). Ready when /readyz answers 200, or /healthz
 * with `ready: 'healthz'` (an adapter that has nothing to serve on purpose).
 */
export async function startAdapter(
  env: Record<string, string>,
  opts: { pap?: PapProcess; ready?: 'readyz' | 'healthz' } = {},
): Promise<AdapterProcess> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const service = await spawnService(
    TSX,
    [join(ROOT, 'services/ext-authz/src/main.ts')],
    {
      ...QUIET,
      EXT_AUTHZ_GRPC_PORT: String(grpcPort),
      EXT_AUTHZ_HTTP_PORT: String(httpPort),
      EXT_AUTHZ_CACHE_DIR: 'off',
      ...(opts.pap
        ? { PAP_GRPC_ADDR: opts.pap.grpcAddress, DATABASE_URL: opts.pap.databaseUrl, BUS: 'postgres' }
        : {}),
      ...env,
    },
    { cwd: ROOT, readyUrl: `${httpUrl}/${opts.ready ?? 'readyz'}`, readyTimeoutMs: READY_TIMEOUT_MS },
  );
  const grpcAddress = `127.0.0.1:${grpcPort}`;
  const client = checkClient(grpcAddress);
  return {
    service,
    grpcAddress,
    httpUrl,
    client,
    async metrics() {
      return (await fetch(`${httpUrl}/metrics`)).text();
    },
    async stop() {
      client.close();
      await service.stop();
    },
  };
}

export interface PdpProcess {
  service: Service;
  grpcAddress: string;
  stop(): Promise<void>;
}

/** Starts `services/pdp/src/main.ts` following `bundles` at the PAP. */
export async function startPdp(pap: PapProcess, bundles: string[]): Promise<PdpProcess> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const service = await spawnService(
    TSX,
    [join(ROOT, 'services/pdp/src/main.ts')],
    {
      ...QUIET,
      PDP_GRPC_PORT: String(grpcPort),
      PDP_HTTP_PORT: String(httpPort),
      PDP_CACHE_DIR: 'off',
      PDP_BUNDLES: bundles.join(','),
      PAP_GRPC_ADDR: pap.grpcAddress,
      DATABASE_URL: pap.databaseUrl,
      BUS: 'postgres',
    },
    { cwd: ROOT, readyUrl: `http://127.0.0.1:${httpPort}/readyz`, readyTimeoutMs: READY_TIMEOUT_MS },
  );
  return { service, grpcAddress: `127.0.0.1:${grpcPort}`, stop: async () => void (await service.stop()) };
}

export interface DemoAppProcess {
  service: Service;
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startDemoApp(): Promise<DemoAppProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const service = await spawnService(
    TSX,
    [join(ROOT, 'services/demo-app/src/main.ts')],
    { ...QUIET, DEMO_APP_PORT: String(port) },
    { cwd: ROOT, readyUrl: `${url}/readyz`, readyTimeoutMs: READY_TIMEOUT_MS },
  );
  return { service, url, port, stop: async () => void (await service.stop()) };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), prefix));
}

export interface CheckClient {
  check(
    request: CheckRequest,
    options?: { deadlineMs?: number; metadata?: grpc.Metadata },
  ): Promise<CheckResponse>;
  close(): void;
}

type CheckMethod = (
  request: CheckRequest,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: CheckResponse) => void,
) => grpc.ClientUnaryCall;

/** A client of `envoy.service.auth.v3.Authorization` built from Envoy's own protos, as Envoy calls it. */
export function checkClient(address: string): CheckClient {
  const client = new AuthorizationClient(address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const call = client['Check'] as unknown as CheckMethod;
  return {
    check: (request, opts = {}) =>
      new Promise((resolve, reject) => {
        call.call(
          client,
          request,
          opts.metadata ?? new grpc.Metadata(),
          { deadline: Date.now() + (opts.deadlineMs ?? 10_000) },
          (err, response) => (err ? reject(err) : resolve(response!)),
        );
      }),
    close: () => client.close(),
  };
}

/** A CheckRequest as Envoy builds one for an HTTP request (headers lower-cased, pseudo-headers included). */
export function httpCheck(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): CheckRequest {
  const all: Record<string, string> = {
    ':authority': 'bookinfo.local',
    ':method': method,
    ':path': path,
    ':scheme': 'http',
    'user-agent': 'curl/8.5.0',
    'x-request-id': '7bca5c86-bf55-432c-b212-8c0f1dc999ec',
    ...headers,
  };
  if (body !== undefined) all['content-length'] = String(Buffer.byteLength(body));
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51000 } } },
      destination: { address: { socket_address: { address: '10.0.0.9', port_value: 10000 } } },
      request: {
        http: {
          id: '13519049518330544501',
          method,
          path,
          host: 'bookinfo.local',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: all,
          ...(body === undefined ? {} : { body, size: String(Buffer.byteLength(body)) }),
        },
      },
    },
  };
}

/** Waits until the adapter reports serving `revision` of `bundle` (its loaded-revision info metric). */
export async function untilServing(
  adapter: AdapterProcess,
  bundle: string,
  revision: number,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    async () =>
      metricValue(await adapter.metrics(), 'portcullis_bundle_loaded_info', {
        bundle,
        revision: String(revision),
      }) === 1,
    { timeoutMs, intervalMs: 10, message: `the adapter to serve ${bundle} r${revision}` },
  );
}

/** What Envoy does with a CheckResponse, in a form expectations can read. */
export interface CheckView {
  allowed: boolean;
  /** 200 when allowed; the denial's status otherwise (403 for a bare denial). */
  status: number;
  /** Upstream headers (allow) or client headers (deny). */
  headers: [string, string][];
  headersToRemove: string[];
  responseHeadersToAdd: [string, string][];
  queryParametersToSet: [string, string][];
  queryParametersToRemove: string[];
  body: string;
  metadata: Record<string, unknown>;
  message: string;
}

/**
 * Header and query parameter pairs are sorted by name (values of one name keep their order): a
 * policy's objects have no order, and OPA-Envoy walks them as Go maps, in random order.
 */
export function view(response: CheckResponse): CheckView {
  const byName = (a: [string, string], b: [string, string]): number =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
  const pairs = (options: readonly HeaderValueOption[] | undefined): [string, string][] =>
    (options ?? []).map((o): [string, string] => [o.header?.key ?? '', o.header?.value ?? '']).sort(byName);
  const allowed = response.status?.code === 0;
  const denied = response.denied_response;
  const ok = response.ok_response;
  return {
    allowed,
    status: responseHttpStatus(response),
    headers: pairs(allowed ? ok?.headers : denied?.headers),
    headersToRemove: ok?.headers_to_remove ?? [],
    responseHeadersToAdd: pairs(ok?.response_headers_to_add),
    queryParametersToSet: (ok?.query_parameters_to_set ?? [])
      .map((q): [string, string] => [q.key, q.value])
      .sort(byName),
    queryParametersToRemove: ok?.query_parameters_to_remove ?? [],
    body: denied?.body ?? '',
    metadata: response.dynamic_metadata
      ? (structToJson(response.dynamic_metadata) as Record<string, unknown>)
      : {},
    message: response.status?.message ?? '',
  };
}

/** The value of one sample of a Prometheus metric whose labels include all of `labels`; 0 when absent. */
export function metricValue(exposition: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const wanted = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (wanted) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
