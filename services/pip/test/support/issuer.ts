// A real token issuer for tests: signing keys, signed tokens, and its JWKS served over HTTP on 127.0.0.1.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function makeKey(alg = 'ES256', kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** Signs `claims`; header members override (kid: null drops the kid). */
export function sign(
  key: SigningKey,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const protectedHeader: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'JWT', ...header };
  if (protectedHeader['kid'] === null) delete protectedHeader['kid'];
  return new SignJWT(claims).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
}

/** An issuer whose JWKS is served at `${url}/jwks`; `keys` and `up` can change while it runs. */
export class TestIssuer {
  keys: SigningKey[] = [];
  /** false: /jwks answers 503 (the issuer is down but reachable). */
  up = true;
  cacheControl: string | undefined;
  jwksRequests = 0;
  private server: Server | undefined;
  url = '';

  static async start(...keys: SigningKey[]): Promise<TestIssuer> {
    const issuer = new TestIssuer();
    issuer.keys = keys;
    const server = createServer((req, res) => {
      if (req.url !== '/jwks') {
        res.writeHead(404).end();
        return;
      }
      issuer.jwksRequests++;
      if (!issuer.up) {
        res.writeHead(503).end();
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (issuer.cacheControl !== undefined) headers['cache-control'] = issuer.cacheControl;
      res.writeHead(200, headers).end(JSON.stringify({ keys: issuer.keys.map((k) => k.publicJwk) }));
    });
    issuer.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    issuer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return issuer;
  }

  get jwksUri(): string {
    return `${this.url}/jwks`;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
