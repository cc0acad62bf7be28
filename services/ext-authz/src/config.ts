// Every setting of the Envoy ext_authz adapter, declared once: environment name, type, default and meaning.
import { attributeLookupSetting, type EnrichmentConfig, enrichmentConfig } from '@portcullis/attributes';
import { isHttpDenialStatus } from '@portcullis/envoy-authz';
import {
  BUS_SETTINGS,
  type BusConfig,
  busConfigFromSettings,
  ConfigError,
  type ConfigOf,
  DEFAULT_DECISION_LOG_REDACT,
  env,
  loadConfig,
  parseJsonPointer,
  type Setting,
} from '@portcullis/runtime';

/** Paths the service answers itself on its HTTP port; Envoy's checks must arrive under a prefix distinct from them. */
const OPERATIONAL_PATHS = ['/metrics', '/healthz', '/readyz'];

function pathPrefix(opts: { default: string; doc: string }): Setting<string> {
  return {
    ...env.string(opts),
    parse(raw) {
      if (!/^\/[^?#\s]*[^/?#\s]$/.test(raw)) {
        throw new Error(
          `expected a path such as /envoy-authz (no trailing /, ? or #), got ${JSON.stringify(raw)}`,
        );
      }
      const clash = OPERATIONAL_PATHS.find(
        (p) => raw === p || raw.startsWith(`${p}/`) || p.startsWith(`${raw}/`),
      );
      if (clash) throw new Error(`${JSON.stringify(raw)} overlaps the service's own ${clash}`);
      return raw;
    },
  };
}

function denyStatus(opts: { default: number; doc: string }): Setting<number> {
  const int = env.int({ ...opts, min: 100, max: 599 });
  return {
    ...int,
    parse(raw) {
      const status = int.parse(raw);
      // Envoy's HTTP mode takes 200 as an allow and 5xx as the server failing (then failure_mode_allow
      // decides), so a denial that means the same in both modes is a 2xx-4xx other than 200.
      if (!isHttpDenialStatus(status)) {
        throw new Error(`${status} does not deny in Envoy's ext_authz (use 201-499, e.g. 403 or 401)`);
      }
      return status;
    },
  };
}

function jsonPointers(opts: { default: string[]; doc: string }): Setting<string[]> {
  const list = env.list(opts);
  return {
    ...list,
    parse(raw) {
      const pointers = list.parse(raw);
      for (const p of pointers) parseJsonPointer(p);
      return pointers;
    },
  };
}

export const EXT_AUTHZ_CONFIG = {
  EXT_AUTHZ_GRPC_PORT: env.port({
    default: 9191,
    doc: 'gRPC `envoy.service.auth.v3.Authorization/Check` (the ext_authz filter’s `grpc_service`).',
  }),
  EXT_AUTHZ_HTTP_PORT: env.port({
    default: 8191,
    doc: 'Envoy’s HTTP authorization service mode (under `EXT_AUTHZ_PATH_PREFIX`), plus /metrics, /healthz, /readyz.',
  }),
  EXT_AUTHZ_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address both ports bind to (`0.0.0.0` in containers).',
  }),
  EXT_AUTHZ_DECISION_PATH: env.string({
    default: 'envoy/authz/allow',
    doc: 'The decision evaluated per check (as OPA-Envoy’s `path`): a boolean or an OPA-Envoy decision object.',
  }),
  EXT_AUTHZ_MODE: env.oneOf(['in-process', 'remote'], {
    default: 'in-process',
    doc: '`in-process`: an embedded engine kept current from the PAP like a PDP; `remote`: ask the PDPs in `EXT_AUTHZ_PDP_ADDR`.',
  }),
  EXT_AUTHZ_PDP_ADDR: env.list({
    default: ['127.0.0.1:9181'],
    doc: 'Remote mode: PDP `Decisions` gRPC targets, comma-separated (`host:port` or grpc targets such as `dns:///pdp:9181`); calls rotate over them and fail over.',
  }),
  EXT_AUTHZ_PDP_TIMEOUT: env.duration({
    default: 150,
    defaultDoc: '`150ms`',
    doc: 'Remote mode: deadline of one decision, failover included; keep it under Envoy’s ext_authz `timeout` (200ms by default).',
  }),
  PAP_GRPC_ADDR: env.string({
    default: '127.0.0.1:9080',
    doc: 'In-process mode: the PAP’s `PolicyDistribution` gRPC address (reconcile and bundle fetches).',
  }),
  DATABASE_URL: env.optionalString({
    doc: 'In-process mode with BUS=postgres: the Postgres database the PAP publishes policy events in (the PAP’s).',
  }),
  ...BUS_SETTINGS,
  EXT_AUTHZ_CACHE_DIR: env.string({
    default: '.portcullis/ext-authz/bundles',
    doc: 'In-process mode: where the last good revision of each bundle is kept, served at start while the PAP and bus are down; `off` disables.',
  }),
  EXT_AUTHZ_BUNDLES: env.list({
    default: [],
    defaultDoc: '(all)',
    doc: 'In-process mode: bundles to load, comma-separated; all active bundles when empty.',
  }),
  EXT_AUTHZ_RECONCILE_INTERVAL: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'In-process mode: period of the reconcile with the PAP’s active revisions.',
  }),
  EXT_AUTHZ_FAIL_OPEN: env.bool({
    default: false,
    doc: 'Allow a request when no decision can be made (no policy, evaluation error, PDP timeout). Off: deny (fail closed).',
  }),
  EXT_AUTHZ_DENY_STATUS: denyStatus({
    default: 403,
    doc: 'HTTP status of a fail-closed denial (201-499, not 200).',
  }),
  EXT_AUTHZ_MAX_BODY_BYTES: env.bytes({
    default: 1024 * 1024,
    defaultDoc: '`1MiB`',
    doc: 'Largest request body parsed into `parsed_body`; a larger one leaves it out (`truncated_body: true`) and never fails the check.',
  }),
  EXT_AUTHZ_PATH_PREFIX: pathPrefix({
    default: '/envoy-authz',
    doc: 'HTTP mode: Envoy’s `http_service.path_prefix`; requests under it are checks (it keeps /healthz and /metrics out of reach of clients).',
  }),
  EXT_AUTHZ_DECISION_LOG: env.bool({
    default: true,
    doc: 'In-process mode: ship each decision to the bus’s decision-log topic (remote PDPs log their own).',
  }),
  EXT_AUTHZ_DECISION_LOG_REDACT: jsonPointers({
    default: DEFAULT_DECISION_LOG_REDACT,
    doc: 'JSON pointers into the input erased from decision logs, comma-separated.',
  }),
  EXT_AUTHZ_DECISION_LOG_BUFFER: env.int({
    default: 10_000,
    min: 1,
    max: 10_000_000,
    doc: 'Decision log entries held while the bus is slow or down; beyond, new ones are dropped and counted.',
  }),
  EXT_AUTHZ_PIP_ADDR: env.optionalString({
    doc: 'The PIP’s gRPC address (`host:port`): each check’s input gets `identity` (its JWT authenticated with Istio RequestAuthentication semantics; an invalid token is answered 401, no token is anonymous) and the `EXT_AUTHZ_ENRICH_SUBJECT` / `EXT_AUTHZ_ENRICH_RESOURCE` attributes. Unset: no enrichment.',
  }),
  EXT_AUTHZ_PIP_TIMEOUT: env.duration({
    default: 150,
    defaultDoc: '`150ms`',
    doc: 'Deadline of one PIP call (authentication, or one attribute batch on a cache miss); a failure is answered by `EXT_AUTHZ_FAIL_OPEN`.',
  }),
  EXT_AUTHZ_ENRICH_NAMESPACE: env.string({
    default: 'default',
    doc: 'Namespace of the protected workload: the RequestAuthentications of it (and of the root namespace) authenticate its requests.',
  }),
  EXT_AUTHZ_ENRICH_SUBJECT: attributeLookupSetting({
    doc: '`input.subject`: `<kind>:<selector>[,<selector>…]`, selectors `claim=<name>` (dotted for nested claims), `principal`, `header=<name>`, `path=<template>[:<param>]`; e.g. `user:claim=sub`. Unset: no subject.',
  }),
  EXT_AUTHZ_ENRICH_RESOURCE: attributeLookupSetting({
    doc: '`input.resource`, the syntax of `EXT_AUTHZ_ENRICH_SUBJECT`; a path template matches the whole path, `{name}` captures a segment, `*` matches one, a last `**` any rest; e.g. `product:path=/api/v1/products/{id}/**`. Unset: no resource.',
  }),
  EXT_AUTHZ_ATTRIBUTE_TTL: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'Longest time a cached attribute record is used; change events on the bus (in-process mode) drop entries sooner.',
  }),
  EXT_AUTHZ_ATTRIBUTE_CACHE_SIZE: env.int({
    default: 10_000,
    min: 2,
    max: 10_000_000,
    doc: 'Attribute records cached (LRU); hits add no round trip to the PIP.',
  }),
};

export type ExtAuthzConfig = ConfigOf<typeof EXT_AUTHZ_CONFIG>;

/** Reads and validates the adapter's settings; throws ConfigError naming the first bad variable. */
export function loadExtAuthzConfig(source: NodeJS.ProcessEnv = process.env): ExtAuthzConfig {
  return loadConfig(EXT_AUTHZ_CONFIG, source);
}

/**
 * The bus the in-process engine follows policy events on (and ships decision logs to). With
 * BUS=postgres that is the PAP's database, so DATABASE_URL (or BUS_DATABASE_URL) must name it.
 */
export function extAuthzBusConfig(config: ExtAuthzConfig): BusConfig {
  if (config.BUS === 'postgres' && !config.DATABASE_URL && !config.BUS_DATABASE_URL) {
    throw new ConfigError(
      'DATABASE_URL',
      "must be set in in-process mode with BUS=postgres (the PAP's database)",
    );
  }
  return busConfigFromSettings(config, {
    clientId: 'ext-authz',
    ...(config.DATABASE_URL ? { databaseUrl: config.DATABASE_URL } : {}),
  });
}

/**
 * The Enricher's configuration, or undefined when enrichment is off (no EXT_AUTHZ_PIP_ADDR). A
 * refused token is always rejected (401), as Istio's RequestAuthentication does.
 */
export function extAuthzEnrichment(config: ExtAuthzConfig): EnrichmentConfig | undefined {
  return enrichmentConfig(
    'EXT_AUTHZ',
    {
      pipAddr: config.EXT_AUTHZ_PIP_ADDR,
      namespace: config.EXT_AUTHZ_ENRICH_NAMESPACE,
      subject: config.EXT_AUTHZ_ENRICH_SUBJECT,
      resource: config.EXT_AUTHZ_ENRICH_RESOURCE,
    },
    'reject',
  );
}
