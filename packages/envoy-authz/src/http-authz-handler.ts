// Envoy's HTTP authorization service mode on a Node HTTP server: requests under the path prefix are checks, answered before any web framework sees them.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { DEFAULT_MAX_BODY_BYTES } from './check-request-input.ts';
import type { HeaderPair } from './check-response.ts';
import { type AuthzHttpReply, createHttpAuthorizer, type HttpAuthorizerOptions } from './http-service.ts';

/**
 * The authorizer's options (decide, stance, body limit…) with the prefix required: the one prefix
 * both selects which requests are checks and is stripped from the path the policy sees.
 */
export interface HttpAuthzHandlerOptions extends HttpAuthorizerOptions {
  /** Envoy's `http_service.path_prefix`; only requests under it are checks. Must start with `/`. */
  pathPrefix: string;
  /** Told of what a decision asked that this mode cannot do (see decisionToHttpReply). */
  onWarnings?: (warnings: string[], decisionId: string) => void;
}

export interface HttpAuthzHandler {
  /** Whether this request-target is a check (the prefix, then `/`, `?` or nothing). */
  matches(url: string | undefined): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Checks go to `handle`, everything else (metrics, health) to `fallback`. */
  listener(fallback: RequestListener): RequestListener;
}

/** Reply headers that describe our own HTTP exchange with Envoy, never the decision. */
const HOP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/*
 * Why not a route of the service's web framework: Envoy forwards the client's request-target as
 * the client sent it, and the policy must see exactly that. A router decodes it to match routes
 * and refuses what does not decode (`/%ff`, `/%zz`), and a body parser refuses content types it
 * does not know or bodies over its limit: each of those would answer Envoy an error of the
 * framework's choosing instead of a decision. Here every request under the prefix becomes a
 * check — the raw target, the headers, the body capped at `maxBodyBytes` — and gets the
 * authorizer's answer.
 *
 * The prefix is what keeps the service's own routes (`/healthz`, `/metrics`) from answering a
 * client's request for those paths: without it, Envoy's check of `GET /healthz` would get the
 * health endpoint's 200, and pass.
 */
export function createHttpAuthzHandler(options: HttpAuthzHandlerOptions): HttpAuthzHandler {
  const { pathPrefix, onWarnings } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const idHeader = (options.decisionIdHeader ?? 'x-decision-id').toLowerCase();
  if (!/^\/[^?#]*[^/?#]$/.test(pathPrefix)) {
    throw new TypeError(
      `pathPrefix ${JSON.stringify(pathPrefix)} must start with / and not end with /, ? or #`,
    );
  }
  // Validates the rest (decide, onError, denyStatus, maxBodyBytes) and strips the prefix from paths.
  const authorize = createHttpAuthorizer(options);

  const matches = (url: string | undefined): boolean => {
    if (url === undefined || !url.startsWith(pathPrefix)) return false;
    const next = url.charCodeAt(pathPrefix.length);
    return Number.isNaN(next) || next === 0x2f || next === 0x3f;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const controller = new AbortController();
    // The response closing before it was sent means Envoy gave up (its timeout) or the socket broke.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new Error('the authorization request went away'));
    });
    readCapped(req, maxBodyBytes + 1)
      .then((body) =>
        authorize(
          { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body },
          { signal: controller.signal },
        ),
      )
      .then(
        (reply) => {
          if (reply.warnings.length > 0) onWarnings?.(reply.warnings, headerValue(reply, idHeader));
          send(req, res, reply);
        },
        // authorize never rejects; a request stream error lands here: nothing to answer on.
        () => res.destroy(),
      );
  };

  return {
    matches,
    handle,
    listener: (fallback) => (req, res) => {
      if (matches(req.url)) handle(req, res);
      else fallback(req, res);
    },
  };
}

/**
 * The first `keep` bytes of the body; the rest is read and dropped so the connection stays usable.
 * Keeping one byte more than the parse limit is what marks an over-limit body as truncated.
 */
function readCapped(req: IncomingMessage, keep: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    req.on('data', (chunk: Buffer) => {
      if (kept >= keep) return;
      const part = chunk.length <= keep - kept ? chunk : chunk.subarray(0, keep - kept);
      chunks.push(part);
      kept += part.length;
    });
    req.once('end', () => resolve(Buffer.concat(chunks, kept)));
    req.once('error', reject);
  });
}

function send(req: IncomingMessage, res: ServerResponse, reply: AuthzHttpReply): void {
  if (res.destroyed || res.headersSent) return;
  const grouped = new Map<string, string[]>();
  for (const [name, value] of reply.headers) {
    const key = name.toLowerCase();
    if (HOP_HEADERS.has(key)) continue;
    const list = grouped.get(key);
    if (list) list.push(value);
    else grouped.set(key, [value]);
  }
  const body = Buffer.from(reply.body, 'utf8');
  try {
    for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0]! : values);
  } catch {
    // A header name or value Node refuses (control characters from a policy): deny rather than fail open.
    for (const name of grouped.keys()) res.removeHeader(name);
    res.statusCode = reply.status === 200 ? 403 : reply.status;
    res.setHeader('content-length', 0);
    res.end();
    return;
  }
  res.statusCode = reply.status;
  if (body.length > 0 && !grouped.has('content-type'))
    res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', body.length);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function headerValue(reply: AuthzHttpReply, name: string): string {
  const pair: HeaderPair | undefined = reply.headers.find(([key]) => key.toLowerCase() === name);
  return pair?.[1] ?? '';
}
