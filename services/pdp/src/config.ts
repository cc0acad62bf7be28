// Every setting of the PDP, declared once: environment name, type, default and meaning.
import { attributeLookupSetting, type EnrichmentConfig, enrichmentConfig } from '@portcullis/attributes';
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
  PDP_PIP_ADDR: env.optionalString({
    doc: 'The PIP’s gRPC address (`host:port`): each object input gets `identity` (the bearer token of `input.attributes.request.http.headers.authorization`, or `input.token`, authenticated with Istio RequestAuthentication semantics; an invalid token is annotated as `identity.error` `{code, message}` for the policy to decide, no token is anonymous) and the `PDP_ENRICH_SUBJECT` / `PDP_ENRICH_RESOURCE` attributes, before evaluation. Unset: no enrichment.',
  }),
  PDP_PIP_TIMEOUT: env.duration({
    default: 150,
    defaultDoc: '`150ms`',
    doc: 'Deadline of one PIP call (authentication, or one attribute batch on a cache miss); a failure fails the decision (500 / INTERNAL).',
  }),
  PDP_ENRICH_NAMESPACE: env.string({
    default: 'default',
    doc: 'Namespace whose RequestAuthentications (and the root namespace’s) authenticate the inputs’ tokens.',
  }),
  PDP_ENRICH_SUBJECT: attributeLookupSetting({
    doc: '`input.subject`: `<kind>:<selector>[,<selector>…]`, selectors `claim=<name>` (dotted for nested claims), `principal`, `header=<name>` (an Envoy-shaped input’s headers), `path=<template>[:<param>]` (matching `input.attributes.request.http.path`, else `input.path`); e.g. `user:claim=sub`. Unset: no subject.',
  }),
  PDP_ENRICH_RESOURCE: attributeLookupSetting({
    doc: '`input.resource`, the syntax of `PDP_ENRICH_SUBJECT`; a path template matches the whole path, `{name}` captures a segment, `*` matches one, a last `**` any rest; e.g. `product:path=/api/v1/products/{id}/**`. Unset: no resource.',
  }),
  PDP_ATTRIBUTE_TTL: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'Longest time a cached attribute record is used; change events on the bus drop entries sooner.',
  }),
  PDP_ATTRIBUTE_CACHE_SIZE: env.int({
    default: 10_000,
    min: 2,
    max: 10_000_000,
    doc: 'Attribute records cached (LRU); hits add no round trip to the PIP.',
  }),
  ...BUS_SETTINGS,
};

export type PdpConfig = ConfigOf<typeof PDP_CONFIG>;

/** Reads and validates the PDP's settings; throws ConfigError naming the first bad variable. */
export function loadPdpConfig(source: NodeJS.ProcessEnv = process.env): PdpConfig {
  return loadConfig(PDP_CONFIG, source);
}

/**
 * The Enricher's configuration, or undefined when enrichment is off (no PDP_PIP_ADDR). A refused
 * token is annotated, never rejected: the PDP answers decisions, so the policy decides on it.
 */
export function pdpEnrichment(config: PdpConfig): EnrichmentConfig | undefined {
  return enrichmentConfig(
    'PDP',
    {
      pipAddr: config.PDP_PIP_ADDR,
      namespace: config.PDP_ENRICH_NAMESPACE,
      subject: config.PDP_ENRICH_SUBJECT,
      resource: config.PDP_ENRICH_RESOURCE,
    },
    'annotate',
  );
}
