// Every setting of the PAP, declared once: environment name, type, default and meaning.
import { BUS_SETTINGS, type ConfigOf, env, loadConfig } from '@portcullis/runtime';

export const PAP_CONFIG = {
  PAP_HTTP_PORT: env.port({
    default: 8080,
    doc: 'PAP REST API, /openapi.json, /docs, /metrics, /healthz, /readyz.',
  }),
  PAP_GRPC_PORT: env.port({ default: 9080, doc: 'PAP gRPC `PolicyDistribution` (GetActive, FetchBundle).' }),
  PAP_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address the PAP binds both ports to (`0.0.0.0` in containers).',
  }),
  DATABASE_URL: env.url({ doc: 'Postgres connection URL of the PAP database (the system of record).' }),
  PAP_DB_POOL_MAX: env.int({
    default: 10,
    min: 1,
    max: 1000,
    doc: 'Largest number of Postgres connections.',
  }),
  OPA_BIN: env.string({
    default: 'opa',
    doc: 'The `opa` binary (v1.22.3) that checks, tests and compiles Rego.',
  }),
  PAP_MAX_BODY: env.bytes({
    default: 8 * 1024 * 1024,
    defaultDoc: '`8MiB`',
    doc: 'Largest accepted request body (JSON or bundle .tar.gz); larger ones get 413.',
  }),
  PAP_MAX_UNPACKED: env.bytes({
    default: 64 * 1024 * 1024,
    defaultDoc: '`64MiB`',
    doc: 'Largest total of file contents in an uploaded bundle .tar.gz once decompressed (a gzip bomb guard).',
  }),
  PAP_COMPILE_TIMEOUT: env.duration({
    default: 60_000,
    defaultDoc: '`60s`',
    doc: 'Deadline for checking, testing and compiling one revision (all `opa` runs together).',
  }),
  PAP_EVAL_CACHE_SIZE: env.int({
    default: 16,
    min: 1,
    max: 1024,
    doc: 'Revisions kept loaded for the evaluate call (least recently used are dropped).',
  }),
  PAP_ADMIN_TOKEN_FILE: env.string({
    default: '.portcullis/admin-token',
    doc: 'Where the PAP writes the admin token it generates on first start (mode 0600) when no admin token exists.',
  }),
  PAP_ADMIN_TOKEN: {
    defaultDoc: '(unset)',
    ...env.optionalString({
      doc: 'An admin token to accept (stored hashed at start), for CI and tests; no token file is written then.',
    }),
    parse: (raw: string): string | undefined => {
      // A short token could be guessed; generated ones carry 256 bits.
      if (raw.length < 16) throw new Error(`must be at least 16 characters, got ${raw.length}`);
      return raw;
    },
  },
  // The outbox relay publishes activations on this bus (BUS=postgres uses DATABASE_URL by default).
  ...BUS_SETTINGS,
};

export type PapConfig = ConfigOf<typeof PAP_CONFIG>;

/** Reads and validates the PAP's settings; throws ConfigError naming the first bad variable. */
export function loadPapConfig(source: NodeJS.ProcessEnv = process.env): PapConfig {
  return loadConfig(PAP_CONFIG, source);
}
