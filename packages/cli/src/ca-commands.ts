// `portcullis ca token|issue`: bootstrap tokens from the stack's development issuer, and workload certificates from the CA.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  DEFAULT_DEVELOPMENT_ISSUER,
  formatWorkloadSpiffeId,
  mintBootstrapToken,
  parseTrustBundlePem,
  readCertificate,
} from '@portcullis/pki';
import {
  CaClient,
  caWorkloadIdentity,
  DEFAULT_CA_ADDRESS,
  fetchTrustBundle,
} from '@portcullis/pki/ca-client';
import { parseDurationMs } from '@portcullis/runtime';
import { importJWK, type JWK } from 'jose';
import type { CliIO } from './main.ts';

/** Names shared with scripts/stack/ca-secrets.mjs, which creates these files on the stack's first start. */
export const DEV_ISSUER_KEY_FILE = 'ca-dev-issuer.jwk';
export const DEFAULT_CA_URL = 'http://127.0.0.1:8383';
const DEFAULT_AUDIENCE = 'istio-ca';

/** The CA-related environment variables of the CLI, `{ doc, defaultDoc }` each (scripts/config-docs.mjs). */
export const CA_CLI_SETTINGS = {
  PORTCULLIS_CA_ADDR: {
    defaultDoc: `\`${DEFAULT_CA_ADDRESS}\``,
    doc: 'gRPC address of the CA that `portcullis ca issue` asks.',
  },
  PORTCULLIS_CA_URL: {
    defaultDoc: `\`${DEFAULT_CA_URL}\``,
    doc: 'HTTP address of the CA, where `portcullis ca issue` fetches the trust bundle it verifies the CA with.',
  },
  PORTCULLIS_CA_BUNDLE: {
    defaultDoc: '(unset)',
    doc: 'A PEM file of roots to verify the CA with, instead of fetching them from PORTCULLIS_CA_URL.',
  },
  PORTCULLIS_CA_TLS: {
    defaultDoc: '`true`',
    doc: '`false` when the CA serves plaintext gRPC (CA_GRPC_TLS=false).',
  },
} as const;

export const CA_USAGE = [
  '  ca token --namespace NS --service-account SA [--ttl 1h] [--audience istio-ca]',
  '  ca issue --namespace NS --service-account SA --out DIR [--key-type ec-p256|rsa-2048] [--ttl 24h]',
];

/** parseArgs options of the `ca` commands. */
export const CA_OPTIONS = {
  namespace: { type: 'string' },
  'service-account': { type: 'string' },
  ttl: { type: 'string' },
  audience: { type: 'string' },
  'key-type': { type: 'string' },
} as const;

export interface CaFlags {
  namespace?: string;
  'service-account'?: string;
  ttl?: string;
  audience?: string;
  'key-type'?: string;
  out?: string;
  json?: boolean;
}

/** A mistake in how the command was called: the CLI prints the usage and exits 2. */
export class CaUsageError extends Error {}

function workload(args: string[], flags: CaFlags): { namespace: string; serviceAccount: string } {
  if (args.length > 0) throw new CaUsageError(`unexpected argument ${args[0]}`);
  const { namespace, 'service-account': serviceAccount } = flags;
  if (!namespace) throw new CaUsageError('missing --namespace');
  if (!serviceAccount) throw new CaUsageError('missing --service-account');
  return { namespace, serviceAccount };
}

function ttlSeconds(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDurationMs(raw);
  } catch (error) {
    throw new CaUsageError(`--ttl: ${(error as Error).message}`);
  }
  if (ms < 1000 || ms % 1000 !== 0)
    throw new CaUsageError('--ttl must be a whole number of seconds, at least 1s');
  return ms / 1000;
}

const home = (io: CliIO) => resolve(io.cwd, io.env.PORTCULLIS_HOME || '.portcullis');

/** A token signed by the stack's development issuer, whose private JWK is in $PORTCULLIS_HOME. */
async function devToken(
  io: CliIO,
  who: { namespace: string; serviceAccount: string },
  options: { ttlSeconds: number; audience: string },
): Promise<string> {
  const file = join(home(io), DEV_ISSUER_KEY_FILE);
  let jwk: JWK;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
  } catch (error) {
    throw new Error(
      `no development token issuer key at ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): ` +
        '`npm start` creates it on its first start',
    );
  }
  const key = await importJWK(jwk, jwk.alg ?? 'ES256');
  if (key instanceof Uint8Array) throw new Error(`${file} holds a symmetric key, not an ES256 private key`);
  return mintBootstrapToken(key, {
    ...who,
    audience: options.audience,
    ttlSeconds: options.ttlSeconds,
    issuer: DEFAULT_DEVELOPMENT_ISSUER,
    ...(jwk.kid ? { keyId: jwk.kid } : {}),
    algorithm: jwk.alg ?? 'ES256',
  });
}

async function caBundle(io: CliIO): Promise<string[] | undefined> {
  if (io.env.PORTCULLIS_CA_TLS === 'false') return undefined;
  const file = io.env.PORTCULLIS_CA_BUNDLE;
  if (file) {
    return parseTrustBundlePem(await readFile(resolve(io.cwd, file), 'utf8'));
  }
  return fetchTrustBundle(io.env.PORTCULLIS_CA_URL || DEFAULT_CA_URL, io.fetch);
}

type CaHandler = (args: string[], flags: CaFlags, api: unknown, io: CliIO) => Promise<void>;

export const CA_COMMANDS: Record<string, CaHandler> = {
  async 'ca token'(args, flags, _api, io) {
    const who = workload(args, flags);
    const token = await devToken(io, who, {
      ttlSeconds: ttlSeconds(flags.ttl, 3600),
      audience: flags.audience ?? DEFAULT_AUDIENCE,
    });
    io.out(flags.json ? JSON.stringify({ token }) : token);
  },

  async 'ca issue'(args, flags, _api, io) {
    const who = workload(args, flags);
    if (!flags.out) throw new CaUsageError('missing --out');
    const keyType = flags['key-type'] ?? 'ec-p256';
    if (keyType !== 'ec-p256' && keyType !== 'rsa-2048') {
      throw new CaUsageError(`--key-type must be ec-p256 or rsa-2048, got ${JSON.stringify(keyType)}`);
    }
    const dir = resolve(io.cwd, flags.out);
    const address = io.env.PORTCULLIS_CA_ADDR || DEFAULT_CA_ADDRESS;
    const bundle = await caBundle(io);
    const token = await devToken(io, who, { ttlSeconds: 600, audience: DEFAULT_AUDIENCE });
    // The trust domain is the CA's: ask it rather than make the user repeat it.
    const probe = new CaClient({ address, ...(bundle ? { trustBundle: () => bundle } : {}) });
    let trustDomain: string;
    try {
      trustDomain = (await probe.trustBundle()).trustDomain;
    } finally {
      probe.close();
    }
    const { identity, client } = caWorkloadIdentity({
      spiffeId: formatWorkloadSpiffeId({ trustDomain, ...who }),
      keyType,
      dir,
      ttlSeconds: ttlSeconds(flags.ttl, 24 * 3600),
      retry: { initialMs: 60_000 },
      ca: { address, token: () => token, ...(bundle ? { initialBundle: bundle } : {}) },
    });
    try {
      await identity.start();
      const status = identity.status();
      if (status.state !== 'OK')
        throw new Error(status.message ?? `the CA did not issue a certificate (${status.state})`);
      const { chainPem } = identity.pem();
      const leaf = readCertificate(chainPem[0] ?? '', 'workload_chain_invalid');
      const result = {
        spiffe_id: identity.spiffeId,
        serial: leaf.serialHex,
        not_after: leaf.notAfter.toISOString(),
        files: ['key.pem', 'cert-chain.pem', 'root-cert.pem'].map((name) => join(dir, name)),
      };
      io.out(
        flags.json
          ? JSON.stringify(result, null, 2)
          : `${result.spiffe_id}: serial ${result.serial}, valid until ${result.not_after}\nwrote ${result.files.join(', ')}`,
      );
    } finally {
      identity.stop();
      client.close();
    }
  },
};
