// A real JWKS (and OpenID discovery) HTTP server on 127.0.0.1 for tests, with knobs for faults and a request count.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface JwksServerState {
  /** The JSON document served at /jwks (or raw text). */
  body: unknown;
  status: number;
  cacheControl: string | undefined;
  /** Never answer /jwks (the connection stays open until the client gives up or the server closes). */
  hang: boolean;
  /** Send the body in two chunks without Content-Length (chunked transfer encoding). */
  chunked: boolean;
}

export class JwksServer {
  readonly state: JwksServerState = {
    body: { keys: [] },
    status: 200,
    cacheControl: undefined,
    hang: false,
    chunked: false,
  };
  /** Requests per path. */
  readonly hits = new Map<string, number>();
  private server: Server | undefined;
  private base = '';

  static async start(body: unknown = { keys: [] }): Promise<JwksServer> {
    const server = new JwksServer();
    server.state.body = body;
    await server.listen();
    return server;
  }

  get url(): string {
    return this.base;
  }

  get jwksUri(): string {
    return `${this.base}/jwks`;
  }

  /** GETs of /jwks so far. */
  get jwksRequests(): number {
    return this.hits.get('/jwks') ?? 0;
  }

  private listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    if (path === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: this.base, jwks_uri: this.jwksUri }));
      return;
    }
    if (path !== '/jwks') {
      res.writeHead(404).end();
      return;
    }
    if (this.state.hang) return;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.state.cacheControl !== undefined) headers['cache-control'] = this.state.cacheControl;
    res.writeHead(this.state.status, headers);
    const text = typeof this.state.body === 'string' ? this.state.body : JSON.stringify(this.state.body);
    if (this.state.chunked) {
      res.write(text.slice(0, text.length >> 1));
      res.end(text.slice(text.length >> 1));
    } else res.end(text);
  }

  /** Stops listening and drops open connections: afterwards the port refuses connections. */
  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
