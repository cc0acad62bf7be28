// The HTTP side of every service: fastify with request ids, error mapping, metrics and health routes.
import { randomUUID } from 'node:crypto';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { PortcullisError } from './errors.ts';
import { hostPort } from './grpc.ts';
import type { Health } from './lifecycle.ts';
import type { ServiceMetrics } from './metrics.ts';

export interface HttpAppOptions {
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  /** Largest accepted request body in bytes (fastify's bodyLimit). */
  bodyLimit?: number;
  /** When given, serves the OpenAPI document at /openapi.json and a docs UI at /docs. */
  openapi?: { title: string; version: string; description?: string };
  fastify?: Partial<FastifyServerOptions>;
}

/** Routes every service has; left out of the OpenAPI document and request logs. */
const OPERATIONAL_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);

export async function createHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ajv: { customOptions: { allErrors: true, coerceTypes: false, removeAdditional: false } },
    ...opts.fastify,
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    opts.metrics.httpRequests.inc(labels);
    opts.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    if (!OPERATIONAL_ROUTES.has(route)) {
      request.log.info(
        {
          reqId: request.id,
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms: reply.elapsedTime,
        },
        'request',
      );
    }
  });

  app.setErrorHandler((err: FastifyError | PortcullisError, request, reply) => {
    const mapped = mapHttpError(err);
    if (mapped.httpStatus >= 500) request.log.error({ err, reqId: request.id }, 'request failed');
    void reply.status(mapped.httpStatus).send(mapped.toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const err = new PortcullisError(
      'not_found',
      `no route for ${request.method} ${request.url.split('?')[0]}`,
    );
    void reply.status(404).send(err.toJSON());
  });

  if (opts.openapi) {
    const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([
      import('@fastify/swagger'),
      import('@fastify/swagger-ui'),
    ]);
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: opts.openapi,
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
      transform: ({ schema, url }) =>
        OPERATIONAL_ROUTES.has(url) || url === '/openapi.json'
          ? { schema: { ...schema, hide: true }, url }
          : { schema, url },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  }

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const report = opts.health.report();
    return reply.status(report.ready ? 200 : 503).send(report);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });

  return app;
}

/** Maps fastify's own errors (validation, body parsing, limits) onto our stable codes. */
export function mapHttpError(err: FastifyError | PortcullisError | Error): PortcullisError {
  if (err instanceof PortcullisError) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    const details = fe.validation.map((v) => ({
      field: `${fe.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`,
      message: v.message ?? 'invalid',
      ...(v.params && Object.keys(v.params).length > 0 ? { params: v.params } : {}),
    }));
    return new PortcullisError(
      'validation_failed',
      `${fe.validationContext ?? 'body'} failed validation: ${details.map((d) => `${d.field} ${d.message}`).join('; ')}`,
      { details },
    );
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PortcullisError('payload_too_large', fe.message, { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PortcullisError('unsupported_media_type', fe.message, { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PortcullisError('bad_request', fe.message, { cause: err });
  }
  if (fe.statusCode === 400 || err instanceof SyntaxError) {
    return new PortcullisError('bad_request', `malformed request body: ${fe.message}`, { cause: err });
  }
  if (fe.statusCode === 413) return new PortcullisError('payload_too_large', fe.message, { cause: err });
  if (fe.statusCode === 415) return new PortcullisError('unsupported_media_type', fe.message, { cause: err });
  return new PortcullisError('internal', 'internal error', { cause: err });
}

/** Listens and returns the bound address, so port 0 works in tests. */
export async function listen(
  app: FastifyInstance,
  port: number,
  host = '127.0.0.1',
): Promise<{ port: number; url: string }> {
  await app.listen({ port, host });
  const addr = app.server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  return { port: bound, url: `http://${hostPort(host, bound)}` };
}
