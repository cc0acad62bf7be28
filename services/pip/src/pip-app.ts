// Assembles the PIP from its parts: migrations, identity (policy set, JWKS cache), attribute store, REST and gRPC, sync and relay.
import { fileURLToPath } from 'node:url';
import {
  AuthenticationError,
  InvalidResourceError,
  JwksCache,
  JwtAuthenticator,
  PolicySet,
} from '@portcullis/identity';
import {
  type Bus,
  createHttpApp,
  createPool,
  GrpcServer,
  type Health,
  hostPort,
  type Logger,
  listen,
  migrate,
  OutboxRelay,
  type Pool,
  PortcullisError,
  type ServiceMetrics,
} from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';
import { ApiTokens } from './api-tokens.ts';
import { registerAttributeRoutes } from './attribute-routes.ts';
import { AttributeSchemas } from './attribute-schemas.ts';
import { AttributeStore } from './attribute-store.ts';
import type { PipConfig } from './config.ts';
import { addPipServices } from './grpc-services.ts';
import { createPipMetrics, type PipMetrics } from './pip-metrics.ts';
import { PIP_OUTBOX_CHANNEL, PIP_OUTBOX_TABLE } from './pip-outbox.ts';
import { registerRequestAuthenticationRoutes } from './request-authentication-routes.ts';
import { RequestAuthenticationStore } from './request-authentication-store.ts';
import { RequestAuthenticationSync } from './request-authentication-sync.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** What the routes use; built once per PIP. */
export interface PipServices {
  config: PipConfig;
  pool: Pool;
  tokens: ApiTokens;
  policies: PolicySet;
  jwks: JwksCache;
  requestAuthentications: RequestAuthenticationStore;
  sync: RequestAuthenticationSync;
  attributes: AttributeStore;
  schemas: AttributeSchemas;
  metrics: PipMetrics;
}

export interface PipDeps {
  config: PipConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  /** Publishes changes (outbox relay) and hears other replicas'; without it changes stay in the outbox. */
  bus?: Bus;
  /** A pool to use (the caller closes it); by default one is made from DATABASE_URL and closed by `close()`. */
  pool?: Pool;
  /** JWKS fetches (tests inject faults); default the global fetch. */
  fetch?: typeof fetch;
}

export interface Pip {
  app: FastifyInstance;
  grpc: GrpcServer;
  pool: Pool;
  services: PipServices;
  relay: OutboxRelay | undefined;
  /** Listens on PIP_HOST at PIP_HTTP_PORT and PIP_GRPC_PORT (0 picks free ports). */
  listen(): Promise<{ httpUrl: string; grpcPort: number }>;
  /** Stops servers, relay, sync and JWKS fetches, and closes the pool it made; idempotent. */
  close(): Promise<void>;
}

/** SQLSTATE classes and codes that mean "the database is not reachable now", not "the request is wrong". */
const UNAVAILABLE_SQLSTATES = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
]);

/** A lost or refused database connection as `unavailable` (503), so clients know to retry. */
function databaseUnavailable(err: unknown): PortcullisError | undefined {
  if (err instanceof PortcullisError || typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : '';
  const down =
    (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.test(code) || UNAVAILABLE_NET_CODES.has(code))) ||
    /Connection terminated|timeout exceeded when trying to connect/.test(message);
  return down
    ? new PortcullisError('unavailable', 'the PIP database is not available', { cause: err })
    : undefined;
}

/** The REST app over `services`: every route, the OpenAPI document at /openapi.json and /docs. */
export async function createPipApp(
  services: PipServices,
  ctx: { logger: Logger; metrics: ServiceMetrics; health: Health },
): Promise<FastifyInstance> {
  const app = await createHttpApp({
    logger: ctx.logger,
    metrics: ctx.metrics,
    health: ctx.health,
    bodyLimit: services.config.PIP_MAX_BODY,
    openapi: {
      title: 'Portcullis PIP',
      version: '1',
      description:
        'Policy information point: RequestAuthentication resources and request authentication with Istio ' +
        'semantics, and subject/resource attributes. Management calls take `Authorization: Bearer <token>`; roles ' +
        'are ordered viewer < author < publisher < admin. Token refusals answer the identity codes ' +
        '(`expired`, `bad_signature`, `unknown_issuer`, …) and invalid resources `invalid_resource`.',
    },
  });
  app.decorateRequest('caller', null);
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_request, body, done) => done(null, body));
  await app.register(async (api) => {
    api.setErrorHandler((err, request, reply) => {
      // The identity package's refusals carry their own code and status (401/403, 400 for resources).
      if (err instanceof AuthenticationError) {
        request.log.info({ code: err.code, issuer: err.issuer, reason: err.message }, 'token rejected');
        return reply.status(err.httpStatus).send(err.toJSON());
      }
      if (err instanceof InvalidResourceError) return reply.status(err.httpStatus).send(err.toJSON());
      throw databaseUnavailable(err) ?? err;
    });
    await registerRequestAuthenticationRoutes(api, services);
    await registerAttributeRoutes(api, services);
  });
  return app;
}

/**
 * Builds a PIP on its database: applies migrations (under the advisory lock, so replicas may start
 * together), loads the RequestAuthentication resources, and builds the REST app and gRPC server
 * without listening, so tests can use `app.inject`. With a bus, starts the outbox relay and
 * listens for other replicas' changes.
 */
export async function buildPip(deps: PipDeps): Promise<Pip> {
  const { config, logger } = deps;
  const ownPool = deps.pool === undefined;
  const pool =
    deps.pool ?? createPool(config.DATABASE_URL, { max: config.PIP_DB_POOL_MAX, applicationName: 'pip' });
  const metrics = createPipMetrics(deps.metrics.registry);
  const jwks = new JwksCache({
    minRefreshMs: config.PIP_JWKS_MIN_REFRESH,
    maxRefreshMs: config.PIP_JWKS_MAX_REFRESH,
    unknownKidRefreshMs: config.PIP_JWKS_UNKNOWN_KID_REFRESH,
    maxResponseBytes: config.PIP_JWKS_MAX_BYTES,
    hooks: metrics.jwksHooks,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  });
  metrics.watchKeyAge(jwks);
  let sync: RequestAuthenticationSync | undefined;
  let relay: OutboxRelay | undefined;
  try {
    const applied = await migrate(pool, 'pip', MIGRATIONS_DIR);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const authenticator = new JwtAuthenticator({
      jwks,
      clockSkewSeconds: config.PIP_JWT_CLOCK_SKEW / 1000,
      maxTokenBytes: config.PIP_JWT_MAX_TOKEN_BYTES,
      hooks: metrics.authenticatorHooks,
    });
    const policies = new PolicySet({ authenticator, rootNamespace: config.PIP_ROOT_NAMESPACE });
    const requestAuthentications = new RequestAuthenticationStore(pool);
    sync = new RequestAuthenticationSync({
      store: requestAuthentications,
      policies,
      logger,
      reconcileIntervalMs: config.PIP_RECONCILE_INTERVAL,
      ...(deps.bus === undefined ? {} : { bus: deps.bus }),
    });
    await sync.start();
    // Keys are fetched ahead of traffic; failures show in the jwks component, they do not stop the start.
    void policies.prefetchKeys();
    const schemas = new AttributeSchemas(pool);
    const tokens = new ApiTokens({
      admin: config.PIP_ADMIN_TOKEN,
      author: config.PIP_AUTHOR_TOKEN,
      viewer: config.PIP_VIEWER_TOKEN,
    });
    if (!tokens.configured) logger.warn('no PIP_*_TOKEN is set: every management call will be refused');
    const services: PipServices = {
      config,
      pool,
      tokens,
      policies,
      jwks,
      requestAuthentications,
      sync,
      attributes: new AttributeStore(pool, schemas, config.PIP_MAX_ATTRIBUTES),
      schemas,
      metrics,
    };
    const app = await createPipApp(services, deps);
    const grpc = new GrpcServer({ logger, metrics: deps.metrics });
    addPipServices(grpc, { policies, attributes: services.attributes, logger });
    deps.health.add(sync);
    // An issuer without keys fails only its own tokens (jwks_unavailable); the PIP still serves every
    // other issuer and the attributes, so that shows as WARN rather than taking the replica out of service.
    deps.health.register('jwks', () => {
      const status = jwks.status();
      return status.state === 'ERROR' ? { ...status, state: 'WARN' } : status;
    });
    if (deps.bus !== undefined) {
      relay = new OutboxRelay({
        pool,
        bus: deps.bus,
        logger,
        metrics: deps.metrics,
        table: PIP_OUTBOX_TABLE,
        notifyChannel: PIP_OUTBOX_CHANNEL,
      });
      deps.health.add(relay);
      await relay.start();
    }

    let closing: Promise<void> | undefined;
    const startedSync = sync;
    const startedRelay = relay;
    return {
      app,
      grpc,
      pool,
      services,
      relay,
      async listen() {
        const http = await listen(app, config.PIP_HTTP_PORT, config.PIP_HOST);
        const grpcPort = await grpc.bind(hostPort(config.PIP_HOST, config.PIP_GRPC_PORT));
        logger.info({ http: http.url, grpc: hostPort(config.PIP_HOST, grpcPort) }, 'pip listening');
        return { httpUrl: http.url, grpcPort };
      },
      close() {
        closing ??= (async () => {
          await Promise.allSettled([app.close(), grpc.shutdown()]);
          await Promise.allSettled([startedRelay?.stop(), startedSync.stop(), jwks.stop()]);
          if (ownPool) await pool.end();
        })();
        return closing;
      },
    };
  } catch (err) {
    await Promise.allSettled([relay?.stop(), sync?.stop(), jwks.stop()]);
    if (ownPool) await pool.end().catch(() => {});
    throw err;
  }
}
