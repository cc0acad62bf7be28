// The fastify side of the PDP's HTTP API: `/v1/data` through DataApi, OPA's default decision `POST /`, and `/health`.
import type { Health } from '@portcullis/runtime';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, LogLevel } from 'fastify';
import type { ConcurrencyLimit } from './concurrency-limit.ts';
import {
  DATA_PREFIX,
  type DataApi,
  type DataApiResponse,
  decisionError,
  inflate,
  opaError,
  parseJson,
  tooLargeMessage,
  tooManyRequests,
} from './data-api.ts';
import type { Decider, DecisionResponse } from './decider.ts';
import type { PdpMetrics } from './pdp-metrics.ts';

export interface DataApiRoutesOptions {
  api: DataApi;
  decider: Decider;
  limiter: ConcurrencyLimit;
  metrics: PdpMetrics;
  health: Health;
  maxInputBytes: number;
  /** The path `POST /` evaluates (PDP_DEFAULT_DECISION). */
  defaultDecision: string;
  /** Whether every bundle the PDP follows serves a revision (`/health?bundles`). */
  bundlesActivated: () => boolean;
}

/** Request in the concurrency limit, to release it exactly once whether the response is sent or the client goes away. */
const holding = new WeakSet<FastifyRequest>();

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * Decisions go to the decision log; an info line per decision request would only repeat them. The
 * level is raised to `warn`, never lowered below what the service was configured with.
 */
function quietLevel(app: FastifyInstance): LogLevel {
  const current = app.log.level as LogLevel;
  return LEVELS.indexOf(current) > LEVELS.indexOf('warn') ? current : 'warn';
}

function send(reply: FastifyReply, res: DataApiResponse): FastifyReply {
  if (res.location !== undefined) return reply.redirect(res.location, res.status as 301 | 307);
  return reply.status(res.status).type('application/json').send(res.body);
}

/** OPA's boolean query flag on a fastify-parsed query. */
function queryFlag(request: FastifyRequest, name: string): boolean {
  const v = (request.query as Record<string, unknown>)[name];
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  return last === '' || last === 'true';
}

/**
 * Registers the routes. The `/v1/data` routes here serve `app.inject` and any request the fast
 * path (data-api-fast-path.ts) hands over; both go through the same DataApi.
 */
export async function registerDataApiRoutes(app: FastifyInstance, opts: DataApiRoutesOptions): Promise<void> {
  const { api, decider, limiter, metrics, maxInputBytes } = opts;
  const defaultSegments = opts.defaultDecision.split('/').filter((s) => s !== '');
  const level = quietLevel(app);

  await app.register(async (scope) => {
    // The body is read raw: OPA accepts any content type and answers malformed JSON in its own shape.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxInputBytes }, (_req, body, done) =>
      done(null, body),
    );

    scope.setErrorHandler((err: FastifyError, request, reply) => {
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) {
        metrics.rejected.inc({ reason: 'input_too_large' });
        const size = Number(request.headers['content-length'] ?? maxInputBytes + 1);
        return send(
          reply,
          opaError(413, { code: 'invalid_parameter', message: tooLargeMessage(size, maxInputBytes) }),
        );
      }
      if (err.statusCode !== undefined && err.statusCode < 500) {
        return send(reply, opaError(err.statusCode, { code: 'invalid_parameter', message: err.message }));
      }
      request.log.error({ err }, 'request failed');
      return send(reply, opaError(500, { code: 'internal_error', message: err.message }));
    });

    const admit = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
      if (!limiter.tryAcquire()) {
        metrics.rejected.inc({ reason: 'too_many_requests' });
        send(reply, tooManyRequests(limiter.max));
        return;
      }
      holding.add(request);
      done();
    };
    const release = (request: FastifyRequest): void => {
      if (holding.delete(request)) limiter.release();
    };
    const route = {
      logLevel: level,
      onRequest: admit,
      onResponse: (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
        release(request);
        done();
      },
      onRequestAbort: (request: FastifyRequest, done: () => void) => {
        release(request);
        done();
      },
    };

    const handleData = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      const res = await api.handle({
        method: request.method as 'GET' | 'POST',
        url: request.url,
        ...(request.headers['content-encoding']
          ? { contentEncoding: request.headers['content-encoding'] }
          : {}),
        ...(Buffer.isBuffer(request.body) ? { body: request.body } : {}),
      });
      if (res.rejected) metrics.rejected.inc({ reason: res.rejected });
      if (res.status >= 500) request.log.error({ response: res.body }, 'decision failed');
      return send(reply, res);
    };

    for (const url of [DATA_PREFIX, `${DATA_PREFIX}/*`]) {
      scope.get(url, route, handleData);
      scope.post(url, route, handleData);
      for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
        scope.route({
          method,
          url,
          logLevel: level,
          handler: async (_request, reply) =>
            send(
              reply,
              opaError(405, {
                code: 'invalid_operation',
                message: 'data is read-only on a Portcullis PDP: publish and activate a revision at the PAP',
              }),
            ),
        });
      }
    }

    /** OPA's default decision: the whole body is the input and the bare result is the response. */
    scope.post('/', route, async (request, reply) => {
      let input: unknown;
      try {
        const bytes = inflate(
          Buffer.isBuffer(request.body) ? request.body : undefined,
          request.headers['content-encoding'],
          maxInputBytes,
        );
        input = bytes === undefined ? {} : parseJson(bytes.toString('utf8'), 'body');
      } catch (err) {
        const status = (err as { status?: number }).status ?? 400;
        metrics.rejected.inc({ reason: status === 413 ? 'input_too_large' : 'bad_input' });
        return send(reply, opaError(status, { code: 'invalid_parameter', message: (err as Error).message }));
      }
      let res: DecisionResponse;
      try {
        res = await decider.decide({ segments: defaultSegments, input });
      } catch (err) {
        return send(reply, decisionError(err));
      }
      if (res.resultJson === undefined) {
        return send(
          reply,
          opaError(404, {
            code: 'undefined_document',
            message: `document missing: data.${defaultSegments.join('.')}`,
          }),
        );
      }
      const body = queryFlag(request, 'pretty')
        ? JSON.stringify(JSON.parse(res.resultJson), null, 2)
        : res.resultJson;
      return reply.type('application/json').send(`${body}\n`);
    });
  });

  /** OPA's health check: `?bundles` waits for every bundle, `?plugins` for every component to be OK. */
  app.get('/health', { logLevel: level, schema: { hide: true } }, async (request, reply) => {
    if (queryFlag(request, 'bundles') && !opts.bundlesActivated()) {
      return reply.status(500).send({ error: 'not all configured bundles have been activated' });
    }
    if (queryFlag(request, 'plugins')) {
      const raw = (request.query as Record<string, unknown>)['exclude-plugin'];
      const excluded = new Set(
        (Array.isArray(raw) ? raw : [raw]).filter((x): x is string => typeof x === 'string'),
      );
      const { components } = opts.health.report();
      const down = Object.entries(components).some(([name, s]) => !excluded.has(name) && s.state !== 'OK');
      if (down) return reply.status(500).send({ error: 'not all plugins in OK state' });
    }
    return reply.send({});
  });
}
