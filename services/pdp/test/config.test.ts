// The PDP's configuration: defaults, and a bad value stops the start with the variable's name.
import { ConfigError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import { loadPdpConfig, pdpEnrichment } from '../src/config.ts';

describe('PDP config', () => {
  it('has the documented defaults', () => {
    expect(loadPdpConfig({})).toMatchObject({
      PDP_HTTP_PORT: 8181,
      PDP_GRPC_PORT: 9181,
      PAP_GRPC_ADDR: '127.0.0.1:9080',
      PDP_RECONCILE_INTERVAL: 30_000,
      PDP_EVALUATOR: 'worker-pool',
      PDP_DECISION_LOG: true,
      PDP_BUNDLES: [],
      PDP_DECISION_LOG_REDACT: [
        '/attributes/request/http/headers/authorization',
        '/attributes/request/http/headers/cookie',
        '/token',
      ],
    });
  });

  it.each([
    ['PDP_HTTP_PORT', '70000'],
    ['PDP_MAX_CONCURRENCY', '0'],
    ['PDP_MAX_INPUT_BYTES', 'lots'],
    ['PDP_RECONCILE_INTERVAL', 'soon'],
    ['PDP_EVALUATOR', 'gpu'],
    ['PDP_DECISION_LOG', 'maybe'],
    ['PDP_DECISION_LOG_REDACT', 'headers/authorization'],
    ['BUS', 'carrier-pigeon'],
    ['PDP_PIP_TIMEOUT', 'quick'],
    ['PDP_ENRICH_SUBJECT', 'claim=sub'],
    ['PDP_ENRICH_SUBJECT', 'user:cookie=sid'],
    ['PDP_ENRICH_RESOURCE', 'product:path=/api/{a}/{b}'],
    ['PDP_ATTRIBUTE_TTL', 'forever'],
    ['PDP_ATTRIBUTE_CACHE_SIZE', '1'],
  ])('%s=%s is refused, naming the variable', (name, value) => {
    expect(() => loadPdpConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadPdpConfig({ [name]: value })).toThrow(name);
  });

  it('reads lists, sizes and durations', () => {
    expect(
      loadPdpConfig({
        PDP_BUNDLES: 'envoy-authz, rbac',
        PDP_MAX_INPUT_BYTES: '64KiB',
        PDP_RECONCILE_INTERVAL: '5s',
        PDP_DECISION_LOG: 'off',
      }),
    ).toMatchObject({
      PDP_BUNDLES: ['envoy-authz', 'rbac'],
      PDP_MAX_INPUT_BYTES: 65536,
      PDP_RECONCILE_INTERVAL: 5000,
      PDP_DECISION_LOG: false,
    });
  });

  it('has enrichment off by default', () => {
    const config = loadPdpConfig({});
    expect(config).toMatchObject({ PDP_PIP_TIMEOUT: 150, PDP_ATTRIBUTE_TTL: 30_000 });
    expect(pdpEnrichment(config)).toBeUndefined();
  });

  it('reads enrichment with the adapter’s selector syntax, annotating invalid tokens', () => {
    const config = loadPdpConfig({
      PDP_PIP_ADDR: 'pip:9292',
      PDP_ENRICH_NAMESPACE: 'shop',
      PDP_ENRICH_SUBJECT: 'user:claim=sub,principal',
      PDP_ENRICH_RESOURCE: 'product:path=/api/v1/products/{id}/**',
    });
    expect(pdpEnrichment(config)).toEqual({
      namespace: 'shop',
      onInvalidToken: 'annotate',
      subject: { kind: 'user', id: [{ claim: 'sub' }, { principal: true }] },
      resource: { kind: 'product', id: { path: '/api/v1/products/{id}/**', param: 'id' } },
    });
  });

  it('refuses a lookup without PDP_PIP_ADDR, naming it', () => {
    const config = loadPdpConfig({ PDP_ENRICH_SUBJECT: 'user:claim=sub' });
    expect(() => pdpEnrichment(config)).toThrow(ConfigError);
    expect(() => pdpEnrichment(config)).toThrow('PDP_PIP_ADDR');
  });
});
