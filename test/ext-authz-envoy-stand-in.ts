// A stand-in for Envoy in tests (there is no Envoy binary here): a front proxy that behaves like Envoy's ext_authz filter in HTTP service mode, as configured in deploy/envoy/envoy-http.yaml.
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';

export interface EnvoyStandInOptions {
  /** The adapter's HTTP base URL (`http_service.server_uri`). */
  authzUrl: string;
  /** `http_service.path_prefix`. */
  pathPrefix: string;
  /** The upstream (the demo app) base URL. */
  upstreamUrl: string;
  /** `with_request_body.max_request_bytes` (with `allow_partial_message: true`). */
  maxRequestBytes: number;
  /** `http_service.server_uri.timeout`. */
  timeoutMs: number;
  /** `allowed_headers`: client headers sent to the authorization server (besides host, method, path, content-length). */
  allowedHeaders: (name: string) => boolean;
  /** `authorization_response.allowed_upstream_headers`: on 200, set on the upstream request. */
  allowedUpstreamHeaders: (name: string) => boolean;
  /** `authorization_response.allowed_client_headers_on_success`: on 200, added to the client's response. */
  allowedClientHeadersOnSuccess: (name: string) => boolean;
  /** `authorization_response.allowed_client_headers`: on a denial, passed to the client. */
  allowedClientHeaders: (name: string) => boolean;
}

/** One request as the stand-in saw it: what an Envoy access log line would say. */
export interface AccessLogEntry {
  method: string;
  path: string;
  status: number;
  /** `%DYNAMIC_METADATA(envoy.filters.http.ext_authz:x-decision-id)%` (dynamic_metadata_from_headers). */
  decisionId: string | undefined;
  /** Set when the check itself failed (5xx, timeout, connection error) and `status_on_error` answered. */
  authzError?: string;
}

export interface EnvoyStandIn {
  url: string;
  accessLog: AccessLogEntry[];
  close(): Promise<void>;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function send(
  url: string,
  method: string,
  headers: Record<string, string | string[]>,
  body: Buffer,
  timeoutMs: number,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** Header values as a list, whatever Node made of them. */
function values(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host']);

/**
 * What it does, after Envoy's ext_authz HTTP client (source/extensions/filters/common/ext_authz/
 * ext_authz_http_impl.cc):
 * - buffers the client's body; past `maxRequestBytes` it sends the first bytes and marks them
 *   with `x-envoy-auth-partial-body: true`;
 * - sends the client's method and `pathPrefix` + path (query included, bytes untouched) to the
 *   authorization server, with Host, Content-Length and the allowed headers;
 * - 200: sets the allowed upstream headers on the client's request (replacing same-named ones),
 *   removes those named in `x-envoy-auth-headers-to-remove`, forwards it upstream, and adds the
 *   allowed success headers to the upstream's response;
 * - 5xx, a timeout or a connection error: the check failed; `failure_mode_allow: false` answers
 *   `status_on_error` (403) with an empty body;
 * - any other status: the denial goes to the client with its status, allowed headers and body.
 */
export async function startEnvoyStandIn(opts: EnvoyStandInOptions): Promise<EnvoyStandIn> {
  const accessLog: AccessLogEntry[] = [];
  const server: Server = createServer((clientReq, clientRes) => {
    void (async () => {
      const method = clientReq.method ?? 'GET';
      const path = clientReq.url ?? '/';
      const body = await readAll(clientReq);
      const partial = body.length > opts.maxRequestBytes;
      const sent = partial ? body.subarray(0, opts.maxRequestBytes) : body;

      const authzHeaders: Record<string, string | string[]> = { host: clientReq.headers.host ?? 'localhost' };
      for (const [name, value] of Object.entries(clientReq.headers)) {
        if (value !== undefined && name !== 'host' && !HOP_BY_HOP.has(name) && opts.allowedHeaders(name)) {
          authzHeaders[name] = value;
        }
      }
      if (partial) authzHeaders['x-envoy-auth-partial-body'] = 'true';
      authzHeaders['content-length'] = String(sent.length);

      let check: Reply;
      try {
        check = await send(
          `${opts.authzUrl}${opts.pathPrefix}${path}`,
          method,
          authzHeaders,
          sent,
          opts.timeoutMs,
        );
      } catch (err) {
        accessLog.push({
          method,
          path,
          status: 403,
          decisionId: undefined,
          authzError: (err as Error).message,
        });
        clientRes.writeHead(403, { 'content-length': '0' }).end();
        return;
      }
      const decisionId = values(check.headers['x-decision-id'])[0];
      if (check.status >= 500) {
        accessLog.push({
          method,
          path,
          status: 403,
          decisionId,
          authzError: `authorization server answered ${check.status}`,
        });
        clientRes.writeHead(403, { 'content-length': '0' }).end();
        return;
      }
      if (check.status !== 200) {
        const headers: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(check.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name) && opts.allowedClientHeaders(name))
            headers[name] = value;
        }
        accessLog.push({ method, path, status: check.status, decisionId });
        clientRes
          .writeHead(check.status, { ...headers, 'content-length': String(check.body.length) })
          .end(check.body);
        return;
      }

      const upstreamHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(clientReq.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) upstreamHeaders[name] = value;
      }
      for (const [name, value] of Object.entries(check.headers)) {
        if (value !== undefined && opts.allowedUpstreamHeaders(name)) upstreamHeaders[name] = value;
      }
      for (const name of values(check.headers['x-envoy-auth-headers-to-remove']).flatMap((v) =>
        v.split(','),
      )) {
        delete upstreamHeaders[name.trim().toLowerCase()];
      }
      const upstream = await send(`${opts.upstreamUrl}${path}`, method, upstreamHeaders, body, 10_000);
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstream.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      }
      for (const [name, value] of Object.entries(check.headers)) {
        if (value !== undefined && opts.allowedClientHeadersOnSuccess(name)) headers[name] = value;
      }
      accessLog.push({ method, path, status: upstream.status, decisionId });
      clientRes
        .writeHead(upstream.status, { ...headers, 'content-length': String(upstream.body.length) })
        .end(upstream.body);
    })().catch((err: unknown) => {
      clientRes.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    accessLog,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
