// Private keys at rest: AES-256-GCM under a key derived with scrypt from a secret, in a versioned JSON format.
import crypto, { type KeyObject } from 'node:crypto';
import { PkiError } from './pki-error.ts';

export const ENCRYPTED_KEY_FORMAT = 'portcullis.encrypted-key/v1';
export const MIN_SECRET_BYTES = 16;

/**
 * scrypt's cost is stored with each key, so it can be raised later without breaking old keys.
 * N=2^15, r=8 is 32 MiB and tens of milliseconds: paid once per key when an authority is opened.
 */
const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const MAX_SCRYPT_N = 2 ** 20;
const CHECK_LABEL = 'portcullis key-encryption check';

export interface EncryptedKey {
  readonly format: typeof ENCRYPTED_KEY_FORMAT;
  readonly kdf: {
    readonly name: 'scrypt';
    readonly N: number;
    readonly r: number;
    readonly p: number;
    readonly salt: string;
  };
  /**
   * A MAC of a fixed label under a second derived key: it tells "wrong secret" apart from
   * "altered ciphertext" (GCM alone cannot) without revealing anything about the secret.
   */
  readonly check: string;
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
}

/** The secret as configured: text (UTF-8) or bytes, at least 16 bytes. */
export type KeyEncryptionSecret = string | Uint8Array;

/** Validates a secret read from the environment; the message names the variable, never the value. */
export function parseKeyEncryptionSecret(value: string | undefined, variable: string): Buffer {
  if (value === undefined || value.length === 0) {
    throw new PkiError(
      'key_secret_invalid',
      `${variable} is not set: it holds the secret that encrypts CA keys`,
    );
  }
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new PkiError('key_secret_invalid', `${variable} must be at least ${MIN_SECRET_BYTES} bytes long`);
  }
  return bytes;
}

function secretBytes(secret: KeyEncryptionSecret): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new PkiError(
      'key_secret_invalid',
      `the key-encryption secret must be at least ${MIN_SECRET_BYTES} bytes long`,
    );
  }
  return bytes;
}

function scrypt(secret: Buffer, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(
      secret,
      salt,
      64,
      { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

async function deriveKeys(secret: KeyEncryptionSecret, kdf: EncryptedKey['kdf']) {
  const material = await scrypt(secretBytes(secret), Buffer.from(kdf.salt, 'base64'), kdf);
  const check = crypto
    .createHmac('sha256', material.subarray(32))
    .update(CHECK_LABEL)
    .digest()
    .subarray(0, 16);
  return { aesKey: material.subarray(0, 32), check: check.toString('base64') };
}

/** Binds the header to the ciphertext, so changing the KDF parameters or check value fails authentication. */
function associatedData(key: Pick<EncryptedKey, 'format' | 'kdf' | 'check'>): Buffer {
  const { name, N, r, p, salt } = key.kdf;
  return Buffer.from(JSON.stringify([key.format, name, N, r, p, salt, key.check]));
}

export async function encryptPrivateKey(
  privateKey: KeyObject,
  secret: KeyEncryptionSecret,
): Promise<EncryptedKey> {
  const kdf = { name: 'scrypt' as const, ...DEFAULT_SCRYPT, salt: crypto.randomBytes(16).toString('base64') };
  const { aesKey, check } = await deriveKeys(secret, kdf);
  const iv = crypto.randomBytes(12);
  const header = { format: ENCRYPTED_KEY_FORMAT, kdf, check } as const;
  const cipher = crypto.createCipheriv('aes-256-gcm', aesKey, iv);
  cipher.setAAD(associatedData(header));
  const plaintext = privateKey.export({ format: 'der', type: 'pkcs8' });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return {
    ...header,
    iv: iv.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Narrows stored JSON to an EncryptedKey of a format this version reads. */
export function parseEncryptedKey(value: unknown): EncryptedKey {
  if (!isRecord(value) || typeof value.format !== 'string') {
    throw new PkiError('key_format_unsupported', 'the encrypted key is not an object with a format');
  }
  if (value.format !== ENCRYPTED_KEY_FORMAT) {
    throw new PkiError(
      'key_format_unsupported',
      `the encrypted key format "${value.format.slice(0, 64)}" is not supported`,
    );
  }
  const { kdf } = value;
  if (
    !isRecord(kdf) ||
    kdf.name !== 'scrypt' ||
    !Number.isInteger(kdf.N) ||
    !Number.isInteger(kdf.r) ||
    !Number.isInteger(kdf.p) ||
    typeof kdf.salt !== 'string'
  ) {
    throw new PkiError(
      'key_format_unsupported',
      'the encrypted key names an unknown key-derivation function',
    );
  }
  const N = Number(kdf.N);
  const r = Number(kdf.r);
  const p = Number(kdf.p);
  // Bounds keep a tampered record from making us allocate gigabytes.
  if (N < 2 || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new PkiError('key_format_unsupported', 'the encrypted key has out-of-range scrypt parameters');
  }
  for (const field of ['check', 'iv', 'ciphertext', 'tag'] as const) {
    if (typeof value[field] !== 'string')
      throw new PkiError('key_corrupted', `the encrypted key has no ${field}`);
  }
  return {
    format: ENCRYPTED_KEY_FORMAT,
    kdf: { name: 'scrypt', N, r, p, salt: kdf.salt },
    check: String(value.check),
    iv: String(value.iv),
    ciphertext: String(value.ciphertext),
    tag: String(value.tag),
  };
}

/** Throws `key_secret_mismatch` for another secret, `key_corrupted` for altered data. */
export async function decryptPrivateKey(encrypted: unknown, secret: KeyEncryptionSecret): Promise<KeyObject> {
  const key = parseEncryptedKey(encrypted);
  const { aesKey, check } = await deriveKeys(secret, key.kdf);
  const checkBytes = Buffer.from(check, 'base64');
  const storedCheck = Buffer.from(key.check, 'base64');
  if (storedCheck.length !== checkBytes.length || !crypto.timingSafeEqual(storedCheck, checkBytes)) {
    throw new PkiError(
      'key_secret_mismatch',
      'the key-encryption secret is not the one this key was encrypted with (was the secret rotated?)',
    );
  }
  let plaintext: Buffer;
  try {
    // A fixed tag length: GCM would otherwise accept a truncated (weaker) tag.
    const decipher = crypto.createDecipheriv('aes-256-gcm', aesKey, Buffer.from(key.iv, 'base64'), {
      authTagLength: 16,
    });
    decipher.setAAD(associatedData(key));
    decipher.setAuthTag(Buffer.from(key.tag, 'base64'));
    plaintext = Buffer.concat([decipher.update(Buffer.from(key.ciphertext, 'base64')), decipher.final()]);
  } catch (error) {
    throw new PkiError(
      'key_corrupted',
      'the encrypted key failed authentication: it was altered or truncated',
      {
        cause: error,
      },
    );
  }
  try {
    return crypto.createPrivateKey({ key: plaintext, format: 'der', type: 'pkcs8' });
  } finally {
    plaintext.fill(0);
  }
}
