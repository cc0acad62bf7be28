// The PDP's configuration: defaults, and a bad value stops the start with the variable's name.
import { ConfigError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';
import { loadPdpConfig } from '../src/config.ts';

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
});
