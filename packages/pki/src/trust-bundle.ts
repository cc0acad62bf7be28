// Trust bundle formats: concatenated PEM, and the SPIFFE bundle JSON (a JWK set with x509-svid keys).
import type { JsonWebKey } from 'node:crypto';
import { readCertificate } from './certificate-info.ts';
import { decodePemCertificates } from './pem.ts';
import { PkiError } from './pki-error.ts';

export const DEFAULT_MAX_BUNDLE_BYTES = 1024 * 1024;

/** One root in a SPIFFE bundle (SPIFFE Trust Domain and Bundle spec §4). */
export interface SpiffeBundleKey {
  readonly use: 'x509-svid';
  readonly kty: string;
  readonly crv?: string;
  readonly x?: string;
  readonly y?: string;
  readonly n?: string;
  readonly e?: string;
  /** Exactly one base64 (not base64url) DER certificate. */
  readonly x5c: readonly [string];
}

export interface SpiffeBundleDocument {
  readonly keys: readonly SpiffeBundleKey[];
  readonly spiffe_sequence?: number;
  /** Seconds a consumer should wait before fetching the bundle again. */
  readonly spiffe_refresh_hint?: number;
}

export interface ParsedSpiffeBundle {
  /** X.509 roots as PEM, in document order; keys of other uses (jwt-svid) are skipped. */
  readonly rootsPem: string[];
  readonly sequence: number | undefined;
  readonly refreshHintSeconds: number | undefined;
}

const invalid = (why: string, cause?: unknown) =>
  new PkiError('bundle_invalid', `the trust bundle is invalid: ${why}`, { cause });

function checkedRoot(input: string | Buffer, where: string) {
  const cert = readCertificate(input, 'bundle_invalid');
  if (!cert.isCa) throw invalid(`${where} is not a CA certificate`);
  return cert;
}

/** The roots as one PEM text (re-encoded, so stray text between blocks is dropped). */
export function trustBundlePem(rootsPem: readonly string[]): string {
  return rootsPem.map((pem, i) => checkedRoot(pem, `root ${i}`).pem).join('');
}

/** Every certificate of a PEM bundle; each must be a CA. */
export function parseTrustBundlePem(text: string, maxBytes = DEFAULT_MAX_BUNDLE_BYTES): string[] {
  if (Buffer.byteLength(text) > maxBytes) throw invalid(`it is larger than ${maxBytes} bytes`);
  let ders: Buffer[];
  try {
    ders = decodePemCertificates(text);
  } catch (error) {
    throw invalid(error instanceof Error ? error.message : 'bad PEM', error);
  }
  if (ders.length === 0) throw invalid('it holds no certificate');
  return ders.map((bytes, i) => checkedRoot(bytes, `certificate ${i}`).pem);
}

function publicJwk(jwk: JsonWebKey): Omit<SpiffeBundleKey, 'use' | 'x5c'> {
  const kty = String(jwk.kty);
  if (kty === 'EC') return { kty, crv: String(jwk.crv), x: String(jwk.x), y: String(jwk.y) };
  if (kty === 'RSA') return { kty, n: String(jwk.n), e: String(jwk.e) };
  return { kty };
}

export function spiffeBundleDocument(
  rootsPem: readonly string[],
  options: { readonly sequence?: number; readonly refreshHintSeconds?: number } = {},
): SpiffeBundleDocument {
  const keys = rootsPem.map((pem, i): SpiffeBundleKey => {
    const cert = checkedRoot(pem, `root ${i}`);
    return {
      use: 'x509-svid',
      ...publicJwk(cert.publicKey.export({ format: 'jwk' })),
      x5c: [cert.der.toString('base64')],
    };
  });
  return {
    keys,
    ...(options.sequence === undefined ? {} : { spiffe_sequence: options.sequence }),
    ...(options.refreshHintSeconds === undefined ? {} : { spiffe_refresh_hint: options.refreshHintSeconds }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalCount(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || Number(value) < 0)
    throw invalid(`${name} is not a non-negative integer`);
  return Number(value);
}

/**
 * Reads a SPIFFE bundle (JSON text or parsed value). Each x509-svid key must carry exactly one CA
 * certificate whose public key equals the JWK's, so the two views of a root cannot disagree.
 */
export function parseSpiffeBundleDocument(
  input: string | unknown,
  maxBytes = DEFAULT_MAX_BUNDLE_BYTES,
): ParsedSpiffeBundle {
  let value: unknown = input;
  if (typeof input === 'string') {
    if (Buffer.byteLength(input) > maxBytes) throw invalid(`it is larger than ${maxBytes} bytes`);
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw invalid('it is not JSON', error);
    }
  }
  if (!isRecord(value) || !Array.isArray(value.keys)) throw invalid('"keys" is not a list');
  const rootsPem: string[] = [];
  value.keys.forEach((key: unknown, i) => {
    if (!isRecord(key)) throw invalid(`keys[${i}] is not an object`);
    if (key.use !== 'x509-svid') return;
    const { x5c } = key;
    if (!Array.isArray(x5c) || x5c.length !== 1 || typeof x5c[0] !== 'string') {
      throw invalid(`keys[${i}].x5c must hold exactly one certificate`);
    }
    const cert = checkedRoot(Buffer.from(x5c[0], 'base64'), `keys[${i}]`);
    const expected = publicJwk(cert.publicKey.export({ format: 'jwk' }));
    for (const [field, want] of Object.entries(expected)) {
      if (key[field] !== want) throw invalid(`keys[${i}].${field} does not match its certificate`);
    }
    rootsPem.push(cert.pem);
  });
  return {
    rootsPem,
    sequence: optionalCount(value.spiffe_sequence, 'spiffe_sequence'),
    refreshHintSeconds: optionalCount(value.spiffe_refresh_hint, 'spiffe_refresh_hint'),
  };
}
