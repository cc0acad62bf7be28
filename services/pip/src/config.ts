// Every setting of the PIP, declared once: environment name, type, default and meaning.
import { BUS_SETTINGS, ConfigError, type ConfigOf, env, loadConfig, type Setting } from '@portcullis/runtime';

/** A bearer token from the environment: optional, and long enough not to be guessed. */
function apiToken(doc: string): Setting<string | undefined> {
  return {
    ...env.optionalString({ doc }),
    defaultDoc: '(unset)',
    parse: (raw: string): string | undefined => {
      if (raw.length < 16) throw new Error(`must be at least 16 characters, got ${raw.length}`);
      return raw;
    },
  };
}

export const PIP_CONFIG = {
  PIP_HTTP_PORT: env.port({
    default: 8282,
    doc: 'PIP REST API, /openapi.json, /docs, /metrics, /healthz, /readyz.',
  }),
  PIP_GRPC_PORT: env.port({ default: 9282, doc: 'PIP gRPC `Identity` and `Attributes`.' }),
  PIP_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address the PIP binds both ports to (`0.0.0.0` in containers).',
  }),
  DATABASE_URL: env.url({ doc: 'Postgres connection URL of the PIP database (resources and attributes).' }),
  PIP_DB_POOL_MAX: env.int({
    default: 10,
    min: 1,
    max: 1000,
    doc: 'Largest number of Postgres connections.',
  }),
  PIP_MAX_BODY: env.bytes({
    default: 1024 * 1024,
    defaultDoc: '`1MiB`',
    doc: 'Largest accepted request body except imports; larger ones get 413.',
  }),
  PIP_MAX_IMPORT: env.bytes({
    default: 512 * 1024 * 1024,
    defaultDoc: '`512MiB`',
    doc: 'Largest body of `POST /v1/attributes:import` (JSON lines, streamed).',
  }),
  PIP_MAX_ATTRIBUTES: env.bytes({
    default: 64 * 1024,
    defaultDoc: '`64KiB`',
    doc: 'Largest attributes object of one record, as JSON text (also per import line).',
  }),
  PIP_ROOT_NAMESPACE: env.string({
    default: 'istio-system',
    doc: "Istio's root namespace: its RequestAuthentication resources apply in every namespace.",
  }),
  PIP_JWKS_MIN_REFRESH: env.duration({
    default: 5 * 60_000,
    defaultDoc: '`5m`',
    doc: 'Shortest time a fetched JWKS is used before refetching (lower bound on Cache-Control max-age).',
  }),
  PIP_JWKS_MAX_REFRESH: env.duration({
    default: 24 * 3_600_000,
    defaultDoc: '`24h`',
    doc: 'Longest time a fetched JWKS is used before refetching (upper bound on Cache-Control max-age).',
  }),
  PIP_JWKS_UNKNOWN_KID_REFRESH: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'A token with an unknown kid refetches its issuer keys at most once per this interval.',
  }),
  PIP_JWKS_MAX_BYTES: env.bytes({
    default: 256 * 1024,
    defaultDoc: '`256KiB`',
    doc: 'Largest JWKS (or OpenID configuration) response accepted.',
  }),
  PIP_JWT_CLOCK_SKEW: env.duration({
    default: 60_000,
    defaultDoc: '`60s`',
    doc: 'Clock skew allowed when checking exp, nbf and iat.',
  }),
  PIP_JWT_MAX_TOKEN_BYTES: env.bytes({
    default: 8 * 1024,
    defaultDoc: '`8KiB`',
    doc: 'Longest token accepted; longer ones are refused as `token_too_large`.',
  }),
  PIP_RECONCILE_INTERVAL: env.duration({
    default: 60_000,
    defaultDoc: '`60s`',
    doc: 'Backstop reload of all RequestAuthentication resources from the database (besides bus events).',
  }),
  PIP_ADMIN_TOKEN: apiToken(
    'Bearer token with the admin role (the same value as PAP_ADMIN_TOKEN gives one token for both).',
  ),
  PIP_AUTHOR_TOKEN: apiToken('Bearer token with the author role: writes resources and attributes.'),
  PIP_VIEWER_TOKEN: apiToken('Bearer token with the viewer role: reads resources and attributes.'),
  // The outbox relay publishes changes, and replicas hear each other's, on this bus.
  ...BUS_SETTINGS,
};

export type PipConfig = ConfigOf<typeof PIP_CONFIG>;

/** Reads and validates the PIP's settings; throws ConfigError naming the first bad variable. */
export function loadPipConfig(source: NodeJS.ProcessEnv = process.env): PipConfig {
  const config = loadConfig(PIP_CONFIG, source);
  if (config.PIP_JWKS_MIN_REFRESH > config.PIP_JWKS_MAX_REFRESH) {
    throw new ConfigError('PIP_JWKS_MIN_REFRESH', 'must not exceed PIP_JWKS_MAX_REFRESH');
  }
  return config;
}
