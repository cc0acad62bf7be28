// ext-authz entry point: wiring only — Envoy's Authorization service on gRPC and HTTP, decisions from an in-process engine or remote PDPs.
import { createServer } from 'node:http';
import { AttributeCache, Enricher, GrpcAttributeSource, GrpcIdentitySource } from '@portcullis/attributes';
import { PolicyEngine } from '@portcullis/engine';
import {
  authorizationHandlers,
  authorizationServiceDefinition,
  checkMetrics,
  checkObservers,
  createHttpAuthzHandler,
  createPolicyDecide,
  type DecisionLogSink,
  type EnrichFn,
  engineEvaluator,
  enricherHook,
  PdpEvaluator,
  type PolicyEvaluator,
} from '@portcullis/envoy-authz';
import { PolicySync } from '@portcullis/policy-sync';
import {
  type Bus,
  createBus,
  createHttpApp,
  createServiceContext,
  DecisionLogger,
  GrpcServer,
  hostPort,
  listen,
  runMain,
  tracer,
} from '@portcullis/runtime';
import { extAuthzBusConfig, extAuthzEnrichment, loadExtAuthzConfig } from './config.ts';

const MAX_HTTP_HEADER_BYTES = 1024 * 1024;

runMain('ext-authz', async () => {
  const config = loadExtAuthzConfig();
  const busConfig = config.EXT_AUTHZ_MODE === 'in-process' ? extAuthzBusConfig(config) : undefined;
  const enrichment = extAuthzEnrichment(config);
  const { logger, metrics, health, shutdown } = await createServiceContext('ext-authz');

  // Shutdown runs in reverse order of registration: servers stop first, then logs flush, then sync and bus.
  let evaluator: PolicyEvaluator;
  let decisionLog: DecisionLogSink | undefined;
  let bus: Bus | undefined;
  if (busConfig) {
    const engine = new PolicyEngine();
    const policyBus = createBus(busConfig, logger);
    shutdown.add('bus', () => policyBus.close());
    // Also the attribute cache's source of change events (below).
    bus = policyBus;
    const sync = new PolicySync({
      engine,
      bus,
      distribution: config.PAP_GRPC_ADDR,
      ...(config.EXT_AUTHZ_CACHE_DIR === 'off' ? {} : { cacheDir: config.EXT_AUTHZ_CACHE_DIR }),
      reconcileIntervalMs: config.EXT_AUTHZ_RECONCILE_INTERVAL,
      bundles: config.EXT_AUTHZ_BUNDLES,
      logger,
      metrics,
    });
    health.add(sync);
    await sync.start();
    shutdown.add('policy-sync', () => sync.stop());
    if (config.EXT_AUTHZ_DECISION_LOG) {
      const decisionLogger = new DecisionLogger({
        bus,
        redact: config.EXT_AUTHZ_DECISION_LOG_REDACT,
        maxBuffer: config.EXT_AUTHZ_DECISION_LOG_BUFFER,
        metrics,
        logger,
      });
      health.add(decisionLogger);
      await decisionLogger.start();
      shutdown.add('decision-logger', () => decisionLogger.stop());
      decisionLog = decisionLogger;
    }
    evaluator = engineEvaluator(engine);
  } else {
    const pdp = new PdpEvaluator({
      targets: config.EXT_AUTHZ_PDP_ADDR,
      timeoutMs: config.EXT_AUTHZ_PDP_TIMEOUT,
    });
    health.add(pdp);
    await pdp.start();
    shutdown.add('pdp-client', () => pdp.stop());
    evaluator = pdp;
  }

  let enrich: EnrichFn | undefined;
  if (enrichment && config.EXT_AUTHZ_PIP_ADDR) {
    const pipClient = { address: config.EXT_AUTHZ_PIP_ADDR, deadlineMs: config.EXT_AUTHZ_PIP_TIMEOUT };
    const identity = new GrpcIdentitySource(pipClient);
    const source = new GrpcAttributeSource(pipClient);
    // With a bus (in-process mode), the PIP's change events drop entries before their TTL.
    const attributes = new AttributeCache({
      source,
      ...(bus ? { bus } : {}),
      ttlMs: config.EXT_AUTHZ_ATTRIBUTE_TTL,
      maxEntries: config.EXT_AUTHZ_ATTRIBUTE_CACHE_SIZE,
    });
    health.add(attributes);
    await attributes.start();
    shutdown.add('pip-clients', async () => {
      await attributes.stop();
      identity.close();
      source.close();
    });
    enrich = enricherHook(new Enricher({ config: enrichment, attributes, identity }));
  }

  const checks = checkMetrics(metrics.registry);
  const common = {
    decide: createPolicyDecide({
      path: config.EXT_AUTHZ_DECISION_PATH,
      evaluator,
      ...(decisionLog ? { decisionLog } : {}),
      labels: { service: 'ext-authz' },
      ...(enrich ? { enrich } : {}),
    }),
    failOpen: config.EXT_AUTHZ_FAIL_OPEN,
    denyStatus: config.EXT_AUTHZ_DENY_STATUS,
    maxBodyBytes: config.EXT_AUTHZ_MAX_BODY_BYTES,
    // A body that does not parse leaves parsed_body out rather than failing the check (OPA-Envoy answers 400).
    onInvalidBody: 'ignore' as const,
    tracer: tracer('ext-authz'),
  };
  const grpcServer = new GrpcServer({ logger, metrics });
  grpcServer.addService(
    authorizationServiceDefinition,
    authorizationHandlers({ ...common, ...checkObservers(checks, logger, 'grpc') }),
  );
  const httpAuthz = createHttpAuthzHandler({
    ...common,
    ...checkObservers(checks, logger, 'http'),
    pathPrefix: config.EXT_AUTHZ_PATH_PREFIX,
    onWarnings: (warnings, decisionId) =>
      logger.warn({ warnings, decisionId }, 'decision not fully applicable in HTTP mode'),
  });
  // Checks under the prefix bypass fastify (see createHttpAuthzHandler); /metrics, /healthz, /readyz are fastify's.
  // Envoy forwards request headers up to its max_request_headers_kb (60 KiB by default); Node's
  // own limit (16 KiB) would answer larger ones 431, a denial of Node's making, not the policy's.
  const app = await createHttpApp({
    logger,
    metrics,
    health,
    fastify: {
      serverFactory: (handler) =>
        createServer({ maxHeaderSize: MAX_HTTP_HEADER_BYTES }, httpAuthz.listener(handler)),
    },
  });

  const http = await listen(app, config.EXT_AUTHZ_HTTP_PORT, config.EXT_AUTHZ_HOST);
  shutdown.add('http', () => app.close());
  const grpcPort = await grpcServer.bind(hostPort(config.EXT_AUTHZ_HOST, config.EXT_AUTHZ_GRPC_PORT));
  shutdown.add('grpc', () => grpcServer.shutdown());
  logger.info(
    {
      mode: config.EXT_AUTHZ_MODE,
      path: config.EXT_AUTHZ_DECISION_PATH,
      grpcPort,
      httpPort: http.port,
      pathPrefix: config.EXT_AUTHZ_PATH_PREFIX,
    },
    'ext-authz serving',
  );
});
