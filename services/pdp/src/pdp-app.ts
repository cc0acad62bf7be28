// Builds a PDP from its config: evaluator, policy sync, decision log, the Data API and the gRPC service.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { AttributeCache, Enricher, GrpcAttributeSource, GrpcIdentitySource } from '@portcullis/attributes';
import { type PolicySource, PolicySync } from '@portcullis/policy-sync';
import {
  type Bus,
  createHttpApp,
  DecisionLogger,
  GrpcServer,
  type Health,
  hostPort,
  type Logger,
  listen,
  type ServiceMetrics,
} from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';
import { ConcurrencyLimit } from './concurrency-limit.ts';
import { type PdpConfig, pdpEnrichment } from './config.ts';
import { DataApi } from './data-api.ts';
import { dataApiServerFactory } from './data-api-fast-path.ts';
import { registerDataApiRoutes } from './data-api-routes.ts';
import { Decider } from './decider.ts';
import { addDecisionsService } from './decisions-service.ts';
import { pdpEnrich } from './input-enrichment.ts';
import { pdpMetrics } from './pdp-metrics.ts';
import { ServedDocuments } from './served-documents.ts';
import { type Evaluator, InThreadEvaluator } from './serving/evaluator.ts';
import { WorkerPoolEvaluator } from './serving/worker-pool.ts';

export interface PdpDeps {
  config: PdpConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  /** Policy events and decision logs; without one, reconcile alone keeps the PDP current and nothing is logged. */
  bus?: Bus;
  /** Replaces the PAP client built from PAP_GRPC_ADDR (tests inject faults with it). */
  distribution?: PolicySource;
}

export interface Pdp {
  app: FastifyInstance;
  grpc: GrpcServer;
  sync: PolicySync;
  decider: Decider;
  documents: ServedDocuments;
  evaluator: Evaluator;
  decisionLog: DecisionLogger | undefined;
  /** Binds both ports (0 picks free ones). */
  listen(): Promise<{ httpUrl: string; grpcPort: number }>;
  close(): Promise<void>;
}

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Builds the parts and starts policy sync (the disk cache is loaded when this resolves); nothing listens yet. */
export async function buildPdp(deps: PdpDeps): Promise<Pdp> {
  const { config, logger, metrics, health, bus } = deps;
  const evaluator: Evaluator =
    config.PDP_EVALUATOR === 'worker-pool'
      ? new WorkerPoolEvaluator(config.PDP_WORKERS || Math.min(4, availableParallelism()))
      : new InThreadEvaluator();
  const documents = new ServedDocuments(evaluator);
  const limiter = new ConcurrencyLimit(config.PDP_MAX_CONCURRENCY);
  const decisionMetrics = pdpMetrics(metrics.registry, () => limiter.inFlight);

  const decisionLog =
    bus && config.PDP_DECISION_LOG
      ? new DecisionLogger({
          bus,
          maxBuffer: config.PDP_DECISION_LOG_BUFFER,
          batchSize: config.PDP_DECISION_LOG_BATCH,
          flushIntervalMs: config.PDP_DECISION_LOG_FLUSH_INTERVAL,
          redact: config.PDP_DECISION_LOG_REDACT,
          metrics,
          logger,
        })
      : undefined;

  const sync = new PolicySync({
    engine: documents,
    ...(bus ? { bus } : {}),
    distribution: deps.distribution ?? config.PAP_GRPC_ADDR,
    ...(config.PDP_CACHE_DIR === 'off' ? {} : { cacheDir: config.PDP_CACHE_DIR }),
    reconcileIntervalMs: config.PDP_RECONCILE_INTERVAL,
    bundles: config.PDP_BUNDLES,
    maxBundleBytes: config.PDP_MAX_BUNDLE_BYTES,
    logger,
    metrics,
  });
  const enrichment = pdpEnrichment(config);
  let pip: { attributes: AttributeCache; close(): Promise<void> } | undefined;
  let enrich: ((input: object) => Promise<object>) | undefined;
  if (enrichment && config.PDP_PIP_ADDR) {
    const pipClient = { address: config.PDP_PIP_ADDR, deadlineMs: config.PDP_PIP_TIMEOUT };
    const identity = new GrpcIdentitySource(pipClient);
    const source = new GrpcAttributeSource(pipClient);
    // With a bus, the PIP's attribute change events drop cached entries before their TTL.
    const attributes = new AttributeCache({
      source,
      ...(bus ? { bus } : {}),
      ttlMs: config.PDP_ATTRIBUTE_TTL,
      maxEntries: config.PDP_ATTRIBUTE_CACHE_SIZE,
    });
    pip = {
      attributes,
      async close() {
        await attributes.stop();
        identity.close();
        source.close();
      },
    };
    enrich = pdpEnrich(new Enricher({ config: enrichment, attributes, identity }));
  }
  const decider = new Decider({
    documents,
    evaluator,
    metrics: decisionMetrics,
    ...(decisionLog ? { decisionLog } : {}),
    ...(enrich ? { enrich } : {}),
  });

  const api = new DataApi({
    decider,
    documents,
    maxInputBytes: config.PDP_MAX_INPUT_BYTES,
    version: VERSION,
  });
  const app = await createHttpApp({
    logger,
    metrics,
    health,
    bodyLimit: config.PDP_MAX_INPUT_BYTES,
    fastify: {
      serverFactory: dataApiServerFactory({
        api,
        limiter,
        metrics,
        pdpMetrics: decisionMetrics,
        maxInputBytes: config.PDP_MAX_INPUT_BYTES,
      }),
    },
  });
  await registerDataApiRoutes(app, {
    api,
    decider,
    limiter,
    metrics: decisionMetrics,
    health,
    maxInputBytes: config.PDP_MAX_INPUT_BYTES,
    defaultDecision: config.PDP_DEFAULT_DECISION,
    bundlesActivated: () => {
      const served = new Set(documents.bundles().map((b) => b.bundle));
      return config.PDP_BUNDLES.length > 0 ? config.PDP_BUNDLES.every((b) => served.has(b)) : served.size > 0;
    },
  });

  const grpc = new GrpcServer({
    logger,
    metrics,
    // An input may be PDP_MAX_INPUT_BYTES; a batch of them larger still, within reason.
    options: { 'grpc.max_receive_message_length': Math.max(4 * 1024 * 1024, 4 * config.PDP_MAX_INPUT_BYTES) },
  });
  addDecisionsService(grpc, {
    decider,
    limiter,
    metrics: decisionMetrics,
    maxInputBytes: config.PDP_MAX_INPUT_BYTES,
    maxBatch: config.PDP_MAX_BATCH,
  });

  if (decisionLog) {
    health.add(decisionLog);
    await decisionLog.start();
  }
  if (pip) {
    health.add(pip.attributes);
    await pip.attributes.start();
  }
  health.add(sync);
  await sync.start();

  let closed: Promise<void> | undefined;
  return {
    app,
    grpc,
    sync,
    decider,
    documents,
    evaluator,
    decisionLog,
    async listen() {
      const { url } = await listen(app, config.PDP_HTTP_PORT, config.PDP_HOST);
      const grpcPort = await grpc.bind(hostPort(config.PDP_HOST, config.PDP_GRPC_PORT));
      logger.info({ http: url, grpcPort, evaluator: evaluator.kind }, 'PDP listening');
      return { httpUrl: url, grpcPort };
    },
    close() {
      closed ??= (async () => {
        // Stop taking requests first, then the parts that feed and record them.
        await Promise.all([app.close(), grpc.shutdown()]);
        await sync.stop();
        await decisionLog?.stop();
        await pip?.close();
        await evaluator.close();
      })();
      return closed;
    },
  };
}
