// Every setting of the PDP, declared once: environment name, type, default and meaning.
import {
  BUS_SETTINGS,
  type ConfigOf,
  DEFAULT_DECISION_LOG_REDACT,
  env,
  loadConfig,
  parseJsonPointer,
} from '@portcullis/runtime';

export const PDP_CONFIG = {
  PDP_HTTP_PORT: env.port({
    default: 8181,
    doc: 'OPA-compatible Data API (`/v1/data`), `/health`, `/metrics`, `/healthz`, `/readyz`.',
  }),
  PDP_GRPC_PORT: env.port({
    default: 9181,
    doc: 'gRPC `portcullis.pdp.v1.Decisions` (Decide, DecideBatch).',
  }),
  PDP_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address the PDP binds both ports to (`0.0.0.0` in containers).',
  }),
  PAP_GRPC_ADDR: env.string({
    default: '127.0.0.1:9080',
    doc: 'The PAP’s gRPC `PolicyDistribution` (`host:port`): GetActive for reconcile, FetchBundle for bundles.',
  }),
  DATABASE_URL: env.optionalString({
    doc: 'Postgres URL of the bus when `BUS=postgres` (the PAP’s database); not used otherwise.',
  }),
  PDP_CACHE_DIR: env.string({
    default: '.portcullis/pdp-cache',
    doc: 'Where the last good revision of each bundle is kept, to serve at start while the PAP and bus are down; `off` disables.',
  }),
  PDP_BUNDLES: env.list({
    default: [],
    defaultDoc: '(all)',
    doc: 'Bundles to follow, comma-separated; every active bundle when empty.',
  }),
  PDP_RECONCILE_INTERVAL: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'How often the PDP asks the PAP for the active revisions (besides at start and after every bus reconnect).',
  }),
  PDP_MAX_INPUT_BYTES: env.bytes({
    default: 1024 * 1024,
    defaultDoc: '`1MiB`',
    doc: 'Largest decision input (HTTP request body or `?input=`, gRPC `input`); larger gets 413 / INVALID_ARGUMENT.',
  }),
  PDP_MAX_CONCURRENCY: env.int({
    default: 1024,
    min: 1,
    doc: 'Decisions in progress at once (HTTP and gRPC together); beyond, 429 / RESOURCE_EXHAUSTED `too_many_requests`.',
  }),
  PDP_MAX_BATCH: env.int({ default: 1000, min: 1, doc: 'Largest number of requests in one `DecideBatch`.' }),
  PDP_EVALUATOR: env.oneOf(['worker-pool', 'in-thread'], {
    default: 'worker-pool',
    doc: 'Where policies are evaluated: in a pool of worker threads, each with its own engine (`worker-pool`: more decisions/s on 2+ cores, and a slow policy or a large revision swap never stalls the event loop), or on the event loop (`in-thread`: lower p99, better with one CPU). bench/pdp measures both.',
  }),
  PDP_WORKERS: env.int({
    default: 0,
    min: 0,
    max: 64,
    defaultDoc: '0 (one per CPU, at most 4)',
    doc: 'Evaluation threads when `PDP_EVALUATOR=worker-pool`.',
  }),
  PDP_DEFAULT_DECISION: env.string({
    default: '/system/main',
    doc: 'The decision `POST /` evaluates, with the request body as the input (OPA’s default decision).',
  }),
  PDP_DECISION_LOG: env.bool({
    default: true,
    defaultDoc: '`on`',
    doc: 'Send every decision to the bus topic `portcullis.decision.logs` (batched, bounded buffer; dropped and counted when full).',
  }),
  PDP_DECISION_LOG_REDACT: {
    ...env.list({
      default: DEFAULT_DECISION_LOG_REDACT,
      doc: 'JSON pointers into the input erased from decision logs, comma-separated.',
    }),
    parse: (raw: string): string[] => {
      const pointers = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      for (const p of pointers) parseJsonPointer(p);
      return pointers;
    },
  },
  PDP_DECISION_LOG_BUFFER: env.int({
    default: 10_000,
    min: 1,
    doc: 'Decision log entries held while waiting for the bus; beyond, new entries are dropped and counted.',
  }),
  PDP_DECISION_LOG_BATCH: env.int({ default: 500, min: 1, doc: 'Decision log entries per bus publish.' }),
  PDP_DECISION_LOG_FLUSH_INTERVAL: env.duration({
    default: 1000,
    defaultDoc: '`1s`',
    doc: 'A partial batch of decision logs is sent after at most this long.',
  }),
  PDP_MAX_BUNDLE_BYTES: env.bytes({
    default: 256 * 1024 * 1024,
    defaultDoc: '`256MiB`',
    doc: 'Largest bundle archive fetched from the PAP, and largest total once unpacked.',
  }),
  ...BUS_SETTINGS,
};

export type PdpConfig = ConfigOf<typeof PDP_CONFIG>;

/** Reads and validates the PDP's settings; throws ConfigError naming the first bad variable. */
export function loadPdpConfig(source: NodeJS.ProcessEnv = process.env): PdpConfig {
  return loadConfig(PDP_CONFIG, source);
}
