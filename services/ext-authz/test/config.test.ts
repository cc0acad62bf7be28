// Configuration: the documented defaults, and a bad value stops `main.ts` at start with a message naming the variable.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAttributeLookup } from '@portcullis/attributes';
import { ConfigError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import { extAuthzBusConfig, extAuthzEnrichment, loadExtAuthzConfig } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'services/ext-authz/src/main.ts');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

function runMain(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('loadExtAuthzConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadExtAuthzConfig({})).toMatchObject({
      EXT_AUTHZ_GRPC_PORT: 9191,
      EXT_AUTHZ_HTTP_PORT: 8191,
      EXT_AUTHZ_HOST: '127.0.0.1',
      EXT_AUTHZ_DECISION_PATH: 'envoy/authz/allow',
      EXT_AUTHZ_MODE: 'in-process',
      EXT_AUTHZ_PDP_ADDR: ['127.0.0.1:9181'],
      EXT_AUTHZ_PDP_TIMEOUT: 150,
      PAP_GRPC_ADDR: '127.0.0.1:9080',
      BUS: 'postgres',
      EXT_AUTHZ_BUNDLES: [],
      EXT_AUTHZ_FAIL_OPEN: false,
      EXT_AUTHZ_DENY_STATUS: 403,
      EXT_AUTHZ_MAX_BODY_BYTES: 1024 * 1024,
      EXT_AUTHZ_PATH_PREFIX: '/envoy-authz',
      EXT_AUTHZ_DECISION_LOG: true,
      EXT_AUTHZ_DECISION_LOG_REDACT: [
        '/attributes/request/http/headers/authorization',
        '/attributes/request/http/headers/cookie',
        '/token',
      ],
    });
  });

  it.each<[Record<string, string>, string, unknown]>([
    [{ EXT_AUTHZ_PDP_ADDR: 'pdp-1:9181, pdp-2:9181' }, 'EXT_AUTHZ_PDP_ADDR', ['pdp-1:9181', 'pdp-2:9181']],
    [{ EXT_AUTHZ_PDP_TIMEOUT: '1s' }, 'EXT_AUTHZ_PDP_TIMEOUT', 1000],
    [{ EXT_AUTHZ_DENY_STATUS: '401' }, 'EXT_AUTHZ_DENY_STATUS', 401],
    [{ EXT_AUTHZ_MAX_BODY_BYTES: '64KiB' }, 'EXT_AUTHZ_MAX_BODY_BYTES', 65536],
    [{ EXT_AUTHZ_PATH_PREFIX: '/authz/v1' }, 'EXT_AUTHZ_PATH_PREFIX', '/authz/v1'],
    [{ EXT_AUTHZ_FAIL_OPEN: 'yes' }, 'EXT_AUTHZ_FAIL_OPEN', true],
    [{ EXT_AUTHZ_MODE: 'remote' }, 'EXT_AUTHZ_MODE', 'remote'],
  ])('parses %j', (env, key, value) => {
    expect(loadExtAuthzConfig(env)[key as keyof ReturnType<typeof loadExtAuthzConfig>]).toEqual(value);
  });

  it.each<[string, string]>([
    ['EXT_AUTHZ_GRPC_PORT', 'ninety'],
    ['EXT_AUTHZ_HTTP_PORT', '70000'],
    ['EXT_AUTHZ_MODE', 'sidecar'],
    ['EXT_AUTHZ_PDP_TIMEOUT', 'soon'],
    ['EXT_AUTHZ_FAIL_OPEN', 'maybe'],
    // 200 would allow and 5xx would be a failure (then failure_mode_allow decides) in HTTP mode.
    ['EXT_AUTHZ_DENY_STATUS', '200'],
    ['EXT_AUTHZ_DENY_STATUS', '503'],
    ['EXT_AUTHZ_DENY_STATUS', '418'],
    ['EXT_AUTHZ_DENY_STATUS', 'forbidden'],
    ['EXT_AUTHZ_MAX_BODY_BYTES', 'big'],
    // The prefix keeps clients' /healthz and /metrics from reaching the service's own routes.
    ['EXT_AUTHZ_PATH_PREFIX', '/'],
    ['EXT_AUTHZ_PATH_PREFIX', 'envoy-authz'],
    ['EXT_AUTHZ_PATH_PREFIX', '/envoy-authz/'],
    ['EXT_AUTHZ_PATH_PREFIX', '/healthz'],
    ['EXT_AUTHZ_PATH_PREFIX', '/metrics/authz'],
    ['EXT_AUTHZ_DECISION_LOG_REDACT', 'attributes/request'],
    ['BUS', 'rabbitmq'],
  ])('refuses %s=%j, naming it', (variable, value) => {
    expect(() => loadExtAuthzConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadExtAuthzConfig({ [variable]: value })).toThrow(variable);
  });

  it('needs the PAP’s database for the postgres bus in in-process mode', () => {
    expect(() => extAuthzBusConfig(loadExtAuthzConfig({}))).toThrow(/DATABASE_URL/);
    expect(extAuthzBusConfig(loadExtAuthzConfig({ DATABASE_URL: 'postgres://h/db' }))).toMatchObject({
      transport: 'postgres',
      url: 'postgres://h/db',
    });
    expect(extAuthzBusConfig(loadExtAuthzConfig({ BUS: 'kafka', KAFKA_BROKERS: 'k:9092' }))).toMatchObject({
      transport: 'kafka',
      brokers: ['k:9092'],
      clientId: 'ext-authz',
    });
  });
});

describe('enrichment settings', () => {
  it.each([
    ['user:claim=sub', { kind: 'user', id: { claim: 'sub' } }],
    ['user:claim=org.id', { kind: 'user', id: { claim: 'org.id' } }],
    ['user:principal', { kind: 'user', id: { principal: true } }],
    ['tenant:header=X-Tenant', { kind: 'tenant', id: { header: 'x-tenant' } }],
    [
      'product:path=/api/v1/products/{id}:id',
      { kind: 'product', id: { path: '/api/v1/products/{id}', param: 'id' } },
    ],
    [
      'product:path=/api/v1/products/{id}/**',
      { kind: 'product', id: { path: '/api/v1/products/{id}/**', param: 'id' } },
    ],
    [
      'doc:path=/t/{tenant}/docs/{doc}:doc',
      { kind: 'doc', id: { path: '/t/{tenant}/docs/{doc}', param: 'doc' } },
    ],
    ['user:claim=sub, header=x-user', { kind: 'user', id: [{ claim: 'sub' }, { header: 'x-user' }] }],
  ])('parses %s', (raw, lookup) => {
    expect(parseAttributeLookup(raw)).toEqual(lookup);
  });

  it.each([
    ['EXT_AUTHZ_ENRICH_SUBJECT', 'user'],
    ['EXT_AUTHZ_ENRICH_SUBJECT', ':claim=sub'],
    ['EXT_AUTHZ_ENRICH_SUBJECT', 'user:email'],
    ['EXT_AUTHZ_ENRICH_SUBJECT', 'user:claim='],
    ['EXT_AUTHZ_ENRICH_SUBJECT', 'user:claim=sub,'],
    ['EXT_AUTHZ_ENRICH_RESOURCE', 'product:path=api/{id}'],
    ['EXT_AUTHZ_ENRICH_RESOURCE', 'product:path=/api/products'],
    ['EXT_AUTHZ_ENRICH_RESOURCE', 'product:path=/t/{t}/p/{id}'],
    ['EXT_AUTHZ_ENRICH_RESOURCE', 'product:path=/api/{id}:other'],
    ['EXT_AUTHZ_ENRICH_RESOURCE', 'product:path=/api/p-{id}'],
    ['EXT_AUTHZ_ATTRIBUTE_TTL', 'soon'],
    ['EXT_AUTHZ_ATTRIBUTE_CACHE_SIZE', '0'],
  ])('refuses %s=%j, naming it', (variable, value) => {
    expect(() => loadExtAuthzConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadExtAuthzConfig({ [variable]: value })).toThrow(variable);
  });

  it('is off without a PIP, and lookups without one are refused', () => {
    expect(extAuthzEnrichment(loadExtAuthzConfig({}))).toBeUndefined();
    expect(() =>
      extAuthzEnrichment(loadExtAuthzConfig({ EXT_AUTHZ_ENRICH_SUBJECT: 'user:claim=sub' })),
    ).toThrow(/EXT_AUTHZ_PIP_ADDR/);
  });

  it('makes the Enricher’s configuration', () => {
    const config = loadExtAuthzConfig({
      EXT_AUTHZ_PIP_ADDR: 'pip:9282',
      EXT_AUTHZ_ENRICH_NAMESPACE: 'shop',
      EXT_AUTHZ_ENRICH_SUBJECT: 'user:claim=sub',
      EXT_AUTHZ_ENRICH_RESOURCE: 'product:path=/api/v1/products/{id}',
      EXT_AUTHZ_ATTRIBUTE_TTL: '5s',
    });
    expect(config).toMatchObject({ EXT_AUTHZ_ATTRIBUTE_TTL: 5000, EXT_AUTHZ_ATTRIBUTE_CACHE_SIZE: 10_000 });
    expect(extAuthzEnrichment(config)).toEqual({
      namespace: 'shop',
      onInvalidToken: 'reject',
      subject: { kind: 'user', id: { claim: 'sub' } },
      resource: { kind: 'product', id: { path: '/api/v1/products/{id}', param: 'id' } },
    });
    expect(extAuthzEnrichment(loadExtAuthzConfig({ EXT_AUTHZ_PIP_ADDR: 'pip:9282' }))).toEqual({
      namespace: 'default',
      onInvalidToken: 'reject',
    });
  });
});

describe('main.ts', () => {
  it.each<[Record<string, string>, string]>([
    [{ EXT_AUTHZ_DENY_STATUS: '200' }, 'EXT_AUTHZ_DENY_STATUS'],
    [{ EXT_AUTHZ_MODE: 'sidecar' }, 'EXT_AUTHZ_MODE'],
    [{}, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://h/db', EXT_AUTHZ_ENRICH_SUBJECT: 'user:claim=sub' }, 'EXT_AUTHZ_PIP_ADDR'],
  ])('stops with exit 78 naming the variable: %j', async (env, variable) => {
    const { code, stderr } = await runMain(env);
    expect(code).toBe(78);
    expect(stderr).toMatch(new RegExp(`^ext-authz: invalid configuration: ${variable}: `));
  });
});
