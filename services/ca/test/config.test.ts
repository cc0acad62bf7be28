// The CA's settings: defaults, and a bad value stops the start with the variable's name.
import { loadCaConfig } from '@portcullis/ca';
import { ConfigError } from '@portcullis/runtime';
import { describe, expect, it } from 'vitest';

const BASE = {
  DATABASE_URL: 'postgres://localhost/ca',
  CA_KEY_ENCRYPTION_KEY: 'sixteen-bytes-or-more-secret',
};

describe('CA configuration', () => {
  it('has the documented defaults', () => {
    const config = loadCaConfig(BASE);
    expect(config).toMatchObject({
      CA_HTTP_PORT: 8383,
      CA_GRPC_PORT: 15012,
      CA_TRUST_DOMAIN: 'cluster.local',
      CA_SIGNING_KEY_TYPE: 'ec-p256',
      CA_DEFAULT_TTL: 86_400_000,
      CA_MAX_TTL: 90 * 86_400_000,
      CA_MAX_CSR_BYTES: 65_536,
      CA_GRPC_TLS: true,
      CA_BOOTSTRAP_AUDIENCE: ['istio-ca'],
      CA_SERVING_HOSTS: ['localhost', '127.0.0.1', '::1'],
    });
  });

  it.each([
    ['CA_KEY_ENCRYPTION_KEY', { CA_KEY_ENCRYPTION_KEY: '' }],
    ['CA_KEY_ENCRYPTION_KEY', { CA_KEY_ENCRYPTION_KEY: 'short' }],
    ['CA_SIGNING_KEY_TYPE', { CA_SIGNING_KEY_TYPE: 'ed25519' }],
    ['CA_DEFAULT_TTL', { CA_DEFAULT_TTL: 'a day' }],
    ['CA_DEFAULT_TTL', { CA_DEFAULT_TTL: '100d' }],
    ['CA_MAX_TTL', { CA_MAX_TTL: '4000d' }],
    ['CA_ROTATION_OVERLAP', { CA_ROTATION_OVERLAP: '10ms' }],
    ['CA_MAX_CSR_BYTES', { CA_MAX_CSR_BYTES: 'lots' }],
    ['CA_GRPC_PORT', { CA_GRPC_PORT: '70000' }],
    ['CA_ADMIN_TOKEN', { CA_ADMIN_TOKEN: 'guessable' }],
    ['CA_BOOTSTRAP_JWKS_URL', { CA_BOOTSTRAP_JWKS_URL: 'file:///etc/jwks' }],
    [
      'CA_BOOTSTRAP_JWKS_URL',
      { CA_BOOTSTRAP_JWKS_FILE: 'a.json', CA_BOOTSTRAP_JWKS_URL: 'https://k8s/jwks' },
    ],
    ['DATABASE_URL', { DATABASE_URL: '' }],
  ])('%s: %j is refused', (variable, env) => {
    let error: unknown;
    try {
      loadCaConfig({ ...BASE, ...env });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
  });
});
