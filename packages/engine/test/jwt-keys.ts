// Keys, certificates and tokens for JWT tests, generated at test time.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type JWTPayload, SignJWT } from 'jose';

const run = promisify(execFile);

export interface KeyMaterial {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM ("PUBLIC KEY"). */
  pem: string;
  /** Public JWK as JSON text (no alg, no kid). */
  jwk: Record<string, unknown>;
}

function material(kind: 'rsa' | 'ec' | 'ed25519', curve?: string): KeyMaterial {
  const { privateKey, publicKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : kind === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: curve! })
        : generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: publicKey.export({ format: 'jwk' }) as Record<string, unknown>,
  };
}

export interface TestKeys {
  rsa: KeyMaterial;
  rsa2: KeyMaterial;
  p256: KeyMaterial;
  p384: KeyMaterial;
  p521: KeyMaterial;
  ed25519: KeyMaterial;
  /** Self-signed PEM certificate for `rsa`. */
  rsaCert: string;
  /** Self-signed PEM certificate for `p256`. */
  p256Cert: string;
}

/** A self-signed certificate made by the `openssl` CLI (node:crypto cannot issue certificates). */
async function selfSigned(key: KeyObject): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-cert-'));
  try {
    await writeFile(join(dir, 'key.pem'), key.export({ type: 'pkcs8', format: 'pem' }));
    await run('openssl', [
      'req',
      '-x509',
      '-new',
      '-key',
      join(dir, 'key.pem'),
      '-subj',
      '/CN=portcullis-test',
      '-days',
      '3650',
      '-out',
      join(dir, 'cert.pem'),
    ]);
    return await readFile(join(dir, 'cert.pem'), 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function generateTestKeys(): Promise<TestKeys> {
  const rsa = material('rsa');
  const p256 = material('ec', 'P-256');
  return {
    rsa,
    rsa2: material('rsa'),
    p256,
    p384: material('ec', 'P-384'),
    p521: material('ec', 'P-521'),
    ed25519: material('ed25519'),
    rsaCert: await selfSigned(rsa.privateKey),
    p256Cert: await selfSigned(p256.privateKey),
  };
}

export function sign(
  payload: JWTPayload,
  alg: string,
  key: KeyObject | Uint8Array,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ ...header, alg }).sign(key);
}

export const b64url = (v: unknown): string =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
