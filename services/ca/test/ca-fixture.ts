// Test support: a CA on a fresh database with a development token issuer, real gRPC clients, openssl runs.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCa, type Ca, type CaConfig, loadCaConfig } from '@portcullis/ca';
import {
  createCsr,
  DEFAULT_DEVELOPMENT_ISSUER,
  type KeyType,
  type MintTokenOptions,
  mintBootstrapToken,
} from '@portcullis/pki';
import { CaClient } from '@portcullis/pki/ca-client';
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase } from '@portcullis/testkit';
import { exportJWK, generateKeyPair } from 'jose';

export const TRUST_DOMAIN = 'cluster.local';
export const SECRET = 'ca-test-key-encryption-secret-0123456789';
export const ADMIN_TOKEN = 'ca-test-admin-token-0123456789';
export const AUDIENCE = 'istio-ca';

export const workloadId = (namespace: string, serviceAccount: string) =>
  `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`;

type MintOptions = Omit<MintTokenOptions, 'audience'> & { audience?: string; issuer?: string };

export interface TokenIssuer {
  /** A token for the CA's audience from the trusted issuer, unless told otherwise. */
  mint(options: MintOptions): Promise<string>;
}

export interface Shared {
  readonly dir: string;
  /** The issuer whose keys the CA trusts. */
  readonly tokens: TokenIssuer;
  /** Same issuer name, another key: its tokens must not verify. */
  readonly stranger: TokenIssuer;
  readonly jwksFile: string;
  cleanup(): Promise<void>;
}

async function tokenIssuer(): Promise<{ issuer: TokenIssuer; jwk: object }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const keyId = crypto.randomBytes(6).toString('hex');
  const jwk = { ...(await exportJWK(publicKey)), kid: keyId, alg: 'ES256', use: 'sig' };
  return {
    jwk,
    issuer: {
      mint: ({ audience = AUDIENCE, issuer = DEFAULT_DEVELOPMENT_ISSUER, ...rest }) =>
        mintBootstrapToken(privateKey, { ...rest, audience, issuer, keyId }),
    },
  };
}

/** A temp directory with a development issuer's JWKS in it. */
export async function shared(): Promise<Shared> {
  const dir = await mkdtemp(join(process.env.PORTCULLIS_TEST_TMP ?? tmpdir(), 'ca-test-'));
  const [trusted, stranger] = await Promise.all([tokenIssuer(), tokenIssuer()]);
  const jwksFile = join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: [trusted.jwk] }));
  return {
    dir,
    tokens: trusted.issuer,
    stranger: stranger.issuer,
    jwksFile,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export function caEnv(
  db: TestDatabase,
  s: Shared,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    CA_HTTP_PORT: '0',
    CA_GRPC_PORT: '0',
    CA_KEY_ENCRYPTION_KEY: SECRET,
    CA_BOOTSTRAP_JWKS_FILE: s.jwksFile,
    CA_ADMIN_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

export interface RunningCa {
  readonly ca: Ca;
  readonly config: CaConfig;
  readonly httpUrl: string;
  readonly address: string;
  readonly health: Health;
  /** The current trust bundle, for clients that verify the CA. */
  bundle(): readonly string[];
  /** A client that authenticates with a token for `namespace`/`serviceAccount` (or the given token). */
  tokenClient(namespace: string, serviceAccount: string, options?: { token?: string }): CaClient;
  close(): Promise<void>;
}

export async function startCa(
  db: TestDatabase,
  s: Shared,
  extra: Record<string, string> = {},
  now?: () => number,
): Promise<RunningCa> {
  const config = loadCaConfig(caEnv(db, s, extra));
  const health = new Health();
  const ca = await buildCa({
    config,
    logger: createLogger('ca-test', 'warn'),
    metrics: createMetrics('ca'),
    health,
    ...(now ? { now } : {}),
  });
  const { httpUrl, grpcPort } = await ca.listen();
  const address = `127.0.0.1:${grpcPort}`;
  const clients: CaClient[] = [];
  const bundle = () => ca.authority.current().bundlePem;
  return {
    ca,
    config,
    httpUrl,
    address,
    health,
    bundle,
    tokenClient(namespace, serviceAccount, options = {}) {
      const client = new CaClient({
        address,
        ...(config.CA_GRPC_TLS ? { trustBundle: bundle } : {}),
        token: async () => options.token ?? s.tokens.mint({ namespace, serviceAccount }),
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await ca.close();
    },
  };
}

export function newKey(type: KeyType = 'ec-p256'): crypto.KeyObject {
  if (type === 'ec-p256') return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return crypto.generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) }).privateKey;
}

export function csrFor(spiffeId: string, type: KeyType = 'ec-p256') {
  const key = newKey(type);
  return { key, keyPem: String(key.export({ format: 'pem', type: 'pkcs8' })), csr: createCsr(key, spiffeId) };
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; never rejects for a non-zero exit, so tests can assert on failures. */
export function run(cmd: string, args: readonly string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      [...args],
      { cwd, timeout: 60_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') reject(error);
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
  });
}

export { createTestDatabase };
