// Assembles the CA from its parts: migrations, the authority, the serving identity, HTTP and gRPC (listening is separate).
import { fileURLToPath } from 'node:url';
import { CA_PROTOS } from '@portcullis/pki/ca-client';
import {
  ConfigError,
  createHttpApp,
  createPool,
  GrpcServer,
  grpc,
  type Health,
  hostPort,
  type Logger,
  listen,
  loadProtos,
  migrate,
  type Pool,
  type ServiceMetrics,
} from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';
import { AuthorityStore } from './authority-store.ts';
import { CaAuthority } from './ca-authority.ts';
import { type CaMetrics, createCaMetrics } from './ca-metrics.ts';
import { registerCaRoutes } from './ca-routes.ts';
import { bootstrapTokenVerifier, CallerAuthenticator } from './caller-auth.ts';
import { addCaServices } from './certificate-service.ts';
import type { CaConfig } from './config.ts';
import { IssuanceLog } from './issuance-log.ts';
import { ServingIdentity } from './serving-identity.ts';
import { type CertificateSigner, eventLoopSigner, threadSigner } from './signing.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export interface CaDeps {
  config: CaConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  /** A pool to use (the caller closes it); by default one is made from DATABASE_URL and closed by `close()`. */
  pool?: Pool;
  /** Milliseconds since the epoch, for the authority's rotation and pruning decisions (tests). */
  now?: () => number;
}

export interface Ca {
  app: FastifyInstance;
  grpc: GrpcServer;
  pool: Pool;
  authority: CaAuthority;
  serving: ServingIdentity | undefined;
  log: IssuanceLog;
  metrics: CaMetrics;
  /** Listens on CA_HOST at CA_HTTP_PORT and CA_GRPC_PORT (0 picks free ports). */
  listen(): Promise<{ httpUrl: string; grpcPort: number }>;
  /** Stops both servers and the authority's timers, and closes the pool it made; idempotent. */
  close(): Promise<void>;
}

/**
 * Builds a CA on its database. Migrations and the first authority are made under advisory locks,
 * so replicas may start together and agree on one root; a restart finds the stored root.
 */
export async function buildCa(deps: CaDeps): Promise<Ca> {
  const { config, logger } = deps;
  const secret = config.CA_KEY_ENCRYPTION_KEY;
  if (secret === undefined) throw new ConfigError('CA_KEY_ENCRYPTION_KEY', 'must be set');
  const ownPool = deps.pool === undefined;
  const pool =
    deps.pool ?? createPool(config.DATABASE_URL, { max: config.CA_DB_POOL_MAX, applicationName: 'ca' });
  const stops: (() => Promise<void>)[] = [];
  try {
    const applied = await migrate(pool, 'ca', MIGRATIONS_DIR);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const metrics = createCaMetrics(deps.metrics);
    const authority = new CaAuthority({
      config,
      store: new AuthorityStore(pool),
      logger,
      ...(deps.now ? { now: deps.now } : {}),
    });
    await authority.start();
    stops.push(() => authority.stop());
    deps.health.add(authority);
    const observeBundle = () => {
      const { state } = authority.current();
      metrics.bundleRoots.set(state.roots.length);
      metrics.bundleSequence.set(state.bundleSequence);
    };
    observeBundle();
    authority.on('changed', observeBundle);

    let serving: ServingIdentity | undefined;
    if (config.CA_GRPC_TLS) {
      serving = new ServingIdentity({
        authority,
        secret,
        trustDomain: config.CA_TRUST_DOMAIN,
        hosts: config.CA_SERVING_HOSTS,
        ttlSeconds: Math.floor(config.CA_DEFAULT_TTL / 1000),
        logger,
      });
      await serving.start();
      const started = serving;
      stops.push(() => started.stop());
      deps.health.add(serving);
    }

    const verifyToken = await bootstrapTokenVerifier(config);
    if (verifyToken === undefined) {
      logger.warn('no bootstrap token keys configured: only mutual-TLS renewals can be served');
    }
    // An injected clock is the authority's, which threads cannot share: tests that move time sign here.
    const signer: CertificateSigner =
      config.CA_SIGNING_THREADS < 0 || deps.now !== undefined
        ? eventLoopSigner(authority)
        : await threadSigner(authority, config.CA_SIGNING_THREADS, logger);
    stops.push(() => signer.close());
    const log = new IssuanceLog(pool);
    const refreshHintSeconds = Math.max(1, Math.floor(config.CA_BUNDLE_REFRESH_HINT / 1000));
    const grpcServer = new GrpcServer({
      logger,
      metrics: deps.metrics,
      // A message much larger than a CSR is refused before it is read; the CSR limit names the problem below that.
      options: { 'grpc.max_receive_message_length': config.CA_MAX_CSR_BYTES + 64 * 1024 },
    });
    addCaServices(grpcServer, loadProtos(CA_PROTOS), {
      authority,
      signer,
      authenticator: new CallerAuthenticator(config.CA_TRUST_DOMAIN, verifyToken),
      log,
      metrics,
      logger,
      refreshHintSeconds,
    });

    const app = await createHttpApp({
      logger,
      metrics: deps.metrics,
      health: deps.health,
      bodyLimit: 64 * 1024,
      openapi: {
        title: 'Portcullis CA',
        version: '1',
        description:
          'SPIFFE workload certificate authority. Certificates are requested over gRPC (Istio `IstioCertificateService`); ' +
          'this API serves the trust bundle and, with `Authorization: Bearer <CA_ADMIN_TOKEN>`, root rotation and records.',
      },
    });
    await registerCaRoutes(app, { authority, pool, refreshHintSeconds, adminToken: config.CA_ADMIN_TOKEN });

    let closing: Promise<void> | undefined;
    return {
      app,
      grpc: grpcServer,
      pool,
      authority,
      serving,
      log,
      metrics,
      async listen() {
        const { url } = await listen(app, config.CA_HTTP_PORT, config.CA_HOST);
        const grpcPort = await grpcServer.bind(
          hostPort(config.CA_HOST, config.CA_GRPC_PORT),
          serving?.credentials() ?? grpc.ServerCredentials.createInsecure(),
        );
        logger.info({ http: url, grpcPort, tls: config.CA_GRPC_TLS }, 'CA listening');
        return { httpUrl: url, grpcPort };
      },
      close() {
        closing ??= (async () => {
          await grpcServer.shutdown();
          await app.close();
          for (const stop of stops.reverse()) await stop();
          if (ownPool) await pool.end();
        })();
        return closing;
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (ownPool) await pool.end().catch(() => {});
    throw error;
  }
}
