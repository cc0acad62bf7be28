// Assembles the PAP from its parts: migrations, first admin token, REST app and gRPC server (no listening).
import { fileURLToPath } from 'node:url';
import { unsupportedBuiltins } from '@portcullis/engine';
import {
  createHttpApp,
  createPool,
  GrpcServer,
  type Health,
  hostPort,
  type Logger,
  listen,
  migrate,
  type Pool,
  PortcullisError,
  type ServiceMetrics,
} from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';
import { registerAuditRoutes } from './audit-routes.ts';
import { registerBundleRoutes } from './bundle-routes.ts';
import { BundleStore } from './bundle-store.ts';
import { type BundleUploadOptions, compileBundle, readBundleUpload } from './compile/index.ts';
import type { PapConfig } from './config.ts';
import { addDistributionService } from './distribution-service.ts';
import { RevisionEvaluator } from './evaluation.ts';
import { createPapMetrics, type PapMetrics } from './pap-metrics.ts';
import type { CompileFn, RevisionCreationDeps, RevisionSource } from './revision-creation.ts';
import { registerRevisionRoutes } from './revision-routes.ts';
import { registerTokenRoutes } from './token-routes.ts';
import { TokenStore } from './token-store.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export type UploadReader = (
  body: Buffer,
  contentType: string,
  options: BundleUploadOptions,
) => Promise<Omit<RevisionSource, 'strict'>>;

/** What the routes use; built once per PAP. */
export interface PapServices {
  config: PapConfig;
  pool: Pool;
  store: BundleStore;
  tokens: TokenStore;
  evaluator: RevisionEvaluator;
  creation: RevisionCreationDeps;
  readUpload: UploadReader;
  metrics: PapMetrics;
}

export interface PapDeps {
  config: PapConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  /** A pool to use (the caller closes it); by default one is made from DATABASE_URL and closed by `close()`. */
  pool?: Pool;
  /** Replaces the opa pipeline (fault-injection tests only). */
  compile?: CompileFn;
  /** Which builtins the engine cannot provide; by default the engine's own answer. */
  unsupported?: (builtins: string[]) => string[];
}

export interface Pap {
  app: FastifyInstance;
  grpc: GrpcServer;
  pool: Pool;
  services: PapServices;
  /** Listens on PAP_HOST at PAP_HTTP_PORT and PAP_GRPC_PORT (0 picks free ports). */
  listen(): Promise<{ httpUrl: string; grpcPort: number }>;
  /** Stops both servers and closes the pool it made; idempotent. */
  close(): Promise<void>;
}

/** The REST app over `services`: every route, the OpenAPI document at /openapi.json and /docs. */
export async function createPapApp(
  services: PapServices,
  ctx: { logger: Logger; metrics: ServiceMetrics; health: Health },
): Promise<FastifyInstance> {
  const app = await createHttpApp({
    logger: ctx.logger,
    metrics: ctx.metrics,
    health: ctx.health,
    bodyLimit: services.config.PAP_MAX_BODY,
    openapi: {
      title: 'Portcullis PAP',
      version: '1',
      description:
        'Policy administration point: author, test, version, activate and distribute Rego bundles. ' +
        'Every /v1 call takes `Authorization: Bearer <token>`; roles are ordered ' +
        'viewer < author < publisher < admin, each allowed what the ones below it are.',
    },
  });
  app.decorateRequest('principal', null);
  await app.register(async (api) => {
    // Rethrown errors go on to the runtime's handler, which answers with the stable error body.
    api.setErrorHandler((err) => {
      throw databaseUnavailable(err) ?? err;
    });
    await registerBundleRoutes(api, services);
    await registerRevisionRoutes(api, services);
    await registerAuditRoutes(api, services);
    await registerTokenRoutes(api, services);
  });
  return app;
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
export function databaseUnavailable(err: unknown): PortcullisError | undefined {
  if (err instanceof PortcullisError || typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : '';
  const down =
    (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.test(code) || UNAVAILABLE_NET_CODES.has(code))) ||
    /Connection terminated|timeout exceeded when trying to connect/.test(message);
  return down
    ? new PortcullisError('unavailable', 'the PAP database is not available', { cause: err })
    : undefined;
}

/**
 * Builds a PAP on its database: applies migrations (under the advisory lock, so replicas may
 * start together), makes sure an admin token exists, and builds the REST app and gRPC server
 * without listening, so tests can use `app.inject` and a real Postgres.
 */
export async function buildPap(deps: PapDeps): Promise<Pap> {
  const { config, logger } = deps;
  const ownPool = deps.pool === undefined;
  const pool =
    deps.pool ?? createPool(config.DATABASE_URL, { max: config.PAP_DB_POOL_MAX, applicationName: 'pap' });
  try {
    const applied = await migrate(pool, 'pap', MIGRATIONS_DIR);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const tokens = new TokenStore(pool);
    await tokens.bootstrap({
      tokenFile: config.PAP_ADMIN_TOKEN_FILE,
      logger,
      ...(config.PAP_ADMIN_TOKEN === undefined ? {} : { seedToken: config.PAP_ADMIN_TOKEN }),
    });
    const store = new BundleStore(pool);
    const metrics = createPapMetrics(deps.metrics.registry);
    const services: PapServices = {
      config,
      pool,
      store,
      tokens,
      evaluator: new RevisionEvaluator(config.PAP_EVAL_CACHE_SIZE),
      creation: {
        store,
        compile: deps.compile ?? compileBundle,
        opaBin: config.OPA_BIN,
        compileTimeoutMs: config.PAP_COMPILE_TIMEOUT,
        unsupported: deps.unsupported ?? unsupportedBuiltins,
        metrics,
      },
      readUpload: readBundleUpload,
      metrics,
    };
    const app = await createPapApp(services, deps);
    const grpc = new GrpcServer({ logger, metrics: deps.metrics });
    addDistributionService(grpc, store);
    deps.health.register('pap', () => ({ state: 'OK' }));

    let closing: Promise<void> | undefined;
    return {
      app,
      grpc,
      pool,
      services,
      async listen() {
        const http = await listen(app, config.PAP_HTTP_PORT, config.PAP_HOST);
        const grpcPort = await grpc.bind(hostPort(config.PAP_HOST, config.PAP_GRPC_PORT));
        logger.info({ http: http.url, grpc: hostPort(config.PAP_HOST, grpcPort) }, 'pap listening');
        return { httpUrl: http.url, grpcPort };
      },
      close() {
        closing ??= (async () => {
          await Promise.allSettled([app.close(), grpc.shutdown()]);
          if (ownPool) await pool.end();
        })();
        return closing;
      },
    };
  } catch (err) {
    if (ownPool) await pool.end().catch(() => {});
    throw err;
  }
}
