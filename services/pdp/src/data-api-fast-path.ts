// The Data API straight on Node's HTTP server, ahead of fastify: the PDP's hot path pays for no router, hooks or reply pipeline.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Counter, Histogram, ServiceMetrics } from '@portcullis/runtime';
import type { ConcurrencyLimit } from './concurrency-limit.ts';
import {
  DATA_PREFIX,
  type DataApi,
  type DataApiResponse,
  opaError,
  tooLargeMessage,
  tooManyRequests,
} from './data-api.ts';
import type { PdpMetrics } from './pdp-metrics.ts';

/*
 * Why this exists. Measured on the 2-core machine (bench/pdp), a decision through a fastify route
 * with the runtime's hooks cost about 40 µs of CPU more than the same decision on a bare
 * `http.Server` handler — as much as the evaluation itself. The Data API is the PDP's one hot
 * route, so GET and POST `/v1/data…` are answered here; every other request (and anything a test
 * sends with `app.inject`) goes through fastify, where the same DataApi serves `/v1/data` too.
 * What fastify would have done is done here by hand: the request id header (`x-request-id`,
 * echoed or generated), the body limit (413), the concurrency limit (429) and the HTTP metrics
 * (`portcullis_http_requests_total` and `…_duration_seconds`, route `/v1/data/*`).
 */

export interface FastPathOptions {
  api: DataApi;
  limiter: ConcurrencyLimit;
  metrics: ServiceMetrics;
  pdpMetrics: PdpMetrics;
  maxInputBytes: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function isDataRequest(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  if (req.method !== 'POST' && req.method !== 'GET') return false;
  if (!url.startsWith(DATA_PREFIX)) return false;
  const next = url.charCodeAt(DATA_PREFIX.length);
  // `/v1/data`, `/v1/data/…` or `/v1/data?…`, not `/v1/database`.
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */;
}

/** Caches labelled children: hashing label sets on every request costs more than the counting. */
class HttpMetrics {
  private readonly requests = new Map<string, ReturnType<Counter<'method' | 'route' | 'status'>['labels']>>();
  private readonly durations = new Map<
    string,
    ReturnType<Histogram<'method' | 'route' | 'status'>['labels']>
  >();

  constructor(private readonly metrics: ServiceMetrics) {}

  record(method: string, url: string, status: number, seconds: number): void {
    const route =
      url.length === DATA_PREFIX.length || url.charCodeAt(DATA_PREFIX.length) === 63
        ? DATA_PREFIX
        : `${DATA_PREFIX}/*`;
    const key = `${method} ${route} ${status}`;
    let counter = this.requests.get(key);
    let histogram = this.durations.get(key);
    if (!counter || !histogram) {
      const labels = { method, route, status: String(status) };
      counter = this.metrics.httpRequests.labels(labels);
      histogram = this.metrics.httpDuration.labels(labels);
      this.requests.set(key, counter);
      this.durations.set(key, histogram);
    }
    counter.inc();
    histogram.observe(seconds);
  }
}

/**
 * A fastify `serverFactory`: an `http.Server` whose Data API requests are answered by `api`
 * directly and whose other requests go to fastify's handler.
 */
export function dataApiServerFactory(opts: FastPathOptions): (fastify: Handler) => Server {
  const { api, limiter, pdpMetrics, maxInputBytes } = opts;
  const httpMetrics = new HttpMetrics(opts.metrics);

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const method = req.method as 'GET' | 'POST';
    const url = req.url!;
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && given !== '' ? given : randomUUID();
    let done = false;
    const respond = (r: DataApiResponse, close = false): void => {
      if (done) return;
      done = true;
      if (r.rejected) pdpMetrics.rejected.inc({ reason: r.rejected });
      const headers: Record<string, string | number> = { 'x-request-id': requestId };
      if (r.location !== undefined) headers.location = r.location;
      else {
        headers['content-type'] = 'application/json; charset=utf-8';
        headers['content-length'] = Buffer.byteLength(r.body);
      }
      // After refusing a body we did not read, the connection cannot carry another request.
      if (close) headers.connection = 'close';
      res.writeHead(r.status, headers);
      res.end(r.body);
      httpMetrics.record(method, url, r.status, (performance.now() - started) / 1000);
    };

    if (!limiter.tryAcquire()) {
      pdpMetrics.rejected.inc({ reason: 'too_many_requests' });
      req.resume();
      respond(tooManyRequests(limiter.max));
      return;
    }
    // 'close' fires once the response is sent or the client went away, whichever comes first.
    res.once('close', () => limiter.release());

    const answer = (body: Buffer | undefined): void => {
      const encoding = req.headers['content-encoding'];
      api
        .handle({
          method,
          url,
          ...(encoding ? { contentEncoding: encoding } : {}),
          ...(body ? { body } : {}),
        })
        .then(respond, (err: unknown) =>
          respond(
            opaError(500, {
              code: 'internal_error',
              message: err instanceof Error ? err.message : String(err),
            }),
          ),
        );
    };

    if (method === 'GET') {
      req.resume();
      answer(undefined);
      return;
    }
    const refuse = (size: number): void => {
      respond(
        opaError(
          413,
          { code: 'invalid_parameter', message: tooLargeMessage(size, maxInputBytes) },
          'input_too_large',
        ),
        true,
      );
      req.destroy();
    };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxInputBytes) {
      refuse(declared);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxInputBytes) refuse(size);
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done)
        answer(
          chunks.length === 1 ? chunks[0] : chunks.length === 0 ? undefined : Buffer.concat(chunks, size),
        );
    });
    req.on('error', () => {
      done = true;
    });
  };

  return (fastify) =>
    createServer((req, res) => {
      if (isDataRequest(req)) serve(req, res);
      else fastify(req, res);
    });
}
