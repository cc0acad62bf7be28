// The Envoy bootstraps in deploy/envoy, checked against Envoy's protos (no Envoy binary here) and against the adapter's defaults.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadEnvoyProtos } from '@portcullis/envoy-authz';
import yaml from 'js-yaml';
import type protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXT_AUTHZ_CONFIG } from '../src/config.ts';
import { type ConfigProblem, checkMessage } from './envoy-proto-check.ts';

const DEPLOY = fileURLToPath(new URL('../../../deploy/envoy/', import.meta.url));
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const EXT_AUTHZ = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';

/** Every message an Any in our bootstraps names, so `@type` resolves. */
const PROTOS = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
];

type Json = Record<string, unknown>;

let root: protobuf.Root;
beforeAll(() => {
  root = loadEnvoyProtos(PROTOS);
});

function load(file: string): Json {
  return yaml.load(readFileSync(`${DEPLOY}${file}`, 'utf8')) as Json;
}

function problemsOf(typeName: string, value: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  checkMessage(root, root.lookupType(typeName), value, typeName.split('.').pop()!, problems);
  return problems;
}

interface Listener {
  filter_chains: { filters: { typed_config: { http_filters: { name: string; typed_config: Json }[] } }[] }[];
}
interface Cluster {
  name: string;
  typed_extension_protocol_options?: Json;
  load_assignment: {
    endpoints: {
      lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[];
    }[];
  };
}

function httpFilters(bootstrap: Json): { name: string; typed_config: Json }[] {
  const listeners = (bootstrap.static_resources as { listeners: Listener[] }).listeners;
  return listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters;
}

function extAuthzOf(bootstrap: Json): Json {
  const filter = httpFilters(bootstrap).find((f) => f.name === 'envoy.filters.http.ext_authz');
  if (!filter) throw new Error('no ext_authz filter');
  return filter.typed_config;
}

function cluster(bootstrap: Json, name: string): Cluster {
  const found = (bootstrap.static_resources as { clusters: Cluster[] }).clusters.find((c) => c.name === name);
  if (!found) throw new Error(`no cluster ${name}`);
  return found;
}

function endpointOf(c: Cluster): { address: string; port_value: number } {
  return c.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address;
}

describe.each(['envoy-grpc.yaml', 'envoy-http.yaml'])('%s', (file) => {
  it("is a Bootstrap Envoy's protos accept: no unknown or deprecated fields, valid types, enums and required fields", () => {
    expect(problemsOf(BOOTSTRAP, load(file))).toEqual([]);
  });

  it('enforces before routing, fails closed, sends bodies, and speaks V3', () => {
    const bootstrap = load(file);
    const names = httpFilters(bootstrap).map((f) => f.name);
    expect(names).toEqual(['envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    expect(extAuthzOf(bootstrap)).toMatchObject({
      '@type': `type.googleapis.com/${EXT_AUTHZ}`,
      transport_api_version: 'V3',
      failure_mode_allow: false,
      with_request_body: { max_request_bytes: expect.any(Number) },
    });
  });

  it('routes to the demo app', () => {
    expect(endpointOf(cluster(load(file), 'demo_app'))).toEqual({ address: 'demo-app', port_value: 8000 });
  });
});

describe('the gRPC variant', () => {
  it("points at the adapter's gRPC port over HTTP/2", () => {
    const bootstrap = load('envoy-grpc.yaml');
    const grpc = extAuthzOf(bootstrap).grpc_service as { envoy_grpc: { cluster_name: string } };
    const c = cluster(bootstrap, grpc.envoy_grpc.cluster_name);
    expect(endpointOf(c)).toEqual({
      address: 'ext-authz',
      port_value: EXT_AUTHZ_CONFIG.EXT_AUTHZ_GRPC_PORT.default,
    });
    expect(JSON.stringify(c.typed_extension_protocol_options)).toContain('http2_protocol_options');
  });
});

describe('the HTTP variant', () => {
  it("points at the adapter's HTTP port under its path prefix, forwarding what policies read", () => {
    const bootstrap = load('envoy-http.yaml');
    const config = extAuthzOf(bootstrap);
    const service = config.http_service as {
      server_uri: { uri: string; cluster: string };
      path_prefix: string;
    };
    expect(service.path_prefix).toBe(EXT_AUTHZ_CONFIG.EXT_AUTHZ_PATH_PREFIX.default);
    const c = cluster(bootstrap, service.server_uri.cluster);
    const port = EXT_AUTHZ_CONFIG.EXT_AUTHZ_HTTP_PORT.default;
    expect(endpointOf(c)).toEqual({ address: 'ext-authz', port_value: port });
    expect(service.server_uri.uri).toBe(`http://ext-authz:${port}`);
    const allowed = JSON.stringify(config.allowed_headers);
    for (const header of ['authorization', 'content-type', 'traceparent']) expect(allowed).toContain(header);
    expect(JSON.stringify(service)).toContain('x-decision-id');
  });
});

describe('the checker itself', () => {
  const base = (): Json => structuredClone(extAuthzOf(load('envoy-http.yaml')));
  it.each<[string, (c: Json) => void, RegExp]>([
    ['a misspelt field', (c) => Object.assign(c, { failure_mode_alow: true }), /unknown field/],
    [
      'a wrong enum value',
      (c) => Object.assign(c, { transport_api_version: 'V4' }),
      /not a value of ApiVersion/,
    ],
    ['a wrong scalar type', (c) => Object.assign(c, { failure_mode_allow: 'no' }), /true or false/],
    [
      'a deprecated field',
      (c) =>
        Object.assign(c.http_service as Json, {
          authorization_request: { allowed_headers: { patterns: [{ exact: 'x' }] } },
        }),
      /deprecated field/,
    ],
    [
      'a missing required field',
      (c) => delete (c.http_service as { server_uri: Json }).server_uri.timeout,
      /required/,
    ],
    [
      'a bad duration',
      (c) => Object.assign((c.http_service as { server_uri: Json }).server_uri, { timeout: '250ms' }),
      /duration/,
    ],
    [
      'two members of a oneof',
      (c) => Object.assign(c, { grpc_service: { envoy_grpc: { cluster_name: 'x' } } }),
      /oneof services/,
    ],
    [
      'a zero body limit',
      (c) => Object.assign(c, { with_request_body: { max_request_bytes: 0 } }),
      /must be > 0/,
    ],
    [
      'an unknown Any type',
      (c) => Object.assign(c, { '@type': 'type.googleapis.com/envoy.Nope' }),
      /unknown type/,
    ],
  ])('finds %s', (_name, mutate, expected) => {
    const config = base();
    mutate(config);
    const problems = problemsOf('google.protobuf.Any', config);
    expect(problems.map((p) => p.message).join('\n')).toMatch(expected);
  });
});

describe('docker-compose.yml', () => {
  interface ComposeService {
    image?: string;
    command?: string[];
    environment?: Record<string, string | number>;
    volumes?: string[];
    ports?: string[];
  }
  const compose = yaml.load(
    readFileSync(fileURLToPath(new URL('../../../docker-compose.yml', import.meta.url)), 'utf8'),
  ) as {
    services: Record<string, ComposeService>;
  };

  it.each([
    ['envoy', 'envoy-grpc.yaml'],
    ['envoy-http', 'envoy-http.yaml'],
  ])('%s runs the official image with deploy/envoy/%s', (name, file) => {
    const service = compose.services[name]!;
    expect(service.image).toMatch(/^envoyproxy\/envoy:/);
    expect(service.volumes).toContain(`./deploy/envoy/${file}:/etc/envoy/envoy.yaml:ro`);
  });

  it('runs what the Envoy configs point at, on the ports they use', () => {
    const adapter = compose.services['ext-authz']!;
    expect(adapter.command).toContain('services/ext-authz/src/main.ts');
    expect(adapter.environment).toMatchObject({ EXT_AUTHZ_HOST: '0.0.0.0' });
    expect(adapter.environment?.EXT_AUTHZ_GRPC_PORT ?? EXT_AUTHZ_CONFIG.EXT_AUTHZ_GRPC_PORT.default).toBe(
      9191,
    );
    expect(adapter.environment?.EXT_AUTHZ_HTTP_PORT ?? EXT_AUTHZ_CONFIG.EXT_AUTHZ_HTTP_PORT.default).toBe(
      8191,
    );
    expect(adapter.environment?.EXT_AUTHZ_PATH_PREFIX ?? EXT_AUTHZ_CONFIG.EXT_AUTHZ_PATH_PREFIX.default).toBe(
      '/envoy-authz',
    );
    const demo = compose.services['demo-app']!;
    expect(demo.command).toContain('services/demo-app/src/main.ts');
    expect(demo.environment).toMatchObject({ DEMO_APP_HOST: '0.0.0.0', DEMO_APP_PORT: 8000 });
  });
});
