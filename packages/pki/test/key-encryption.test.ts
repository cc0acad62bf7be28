// Encrypted private keys: round trips, wrong secrets, tampering and unknown formats.
import { describe, expect, it } from 'vitest';
import {
  decryptPrivateKey,
  ENCRYPTED_KEY_FORMAT,
  type EncryptedKey,
  encryptPrivateKey,
  parseKeyEncryptionSecret,
} from '../src/key-encryption.ts';
import { keyPairSync, SECRET } from './fixtures.ts';

const flip = (base64: string, at = 0) => {
  const bytes = Buffer.from(base64, 'base64');
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  return bytes.toString('base64');
};

describe('private keys encrypted at rest', () => {
  it.each(['ec-p256', 'rsa-2048'] as const)('round-trips a %s key through JSON', async (type) => {
    const { privateKey } = keyPairSync(type);
    const encrypted = await encryptPrivateKey(privateKey, SECRET);
    const stored = JSON.parse(JSON.stringify(encrypted));
    expect(stored.format).toBe(ENCRYPTED_KEY_FORMAT);
    expect(JSON.stringify(stored)).not.toMatch(/PRIVATE KEY/);
    const decrypted = await decryptPrivateKey(stored, SECRET);
    expect(decrypted.equals(privateKey)).toBe(true);
  });

  it('uses a fresh salt and IV each time', async () => {
    const { privateKey } = keyPairSync('ec-p256');
    const [a, b] = await Promise.all([
      encryptPrivateKey(privateKey, SECRET),
      encryptPrivateKey(privateKey, SECRET),
    ]);
    expect(a.kdf.salt).not.toBe(b.kdf.salt);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  it.each<[string, (key: EncryptedKey) => unknown, string, string]>([
    ['another secret', (key) => key, 'another-secret-of-sufficient-length', 'key_secret_mismatch'],
    [
      'an altered ciphertext',
      (key) => ({ ...key, ciphertext: flip(key.ciphertext, 10) }),
      SECRET,
      'key_corrupted',
    ],
    ['an altered tag', (key) => ({ ...key, tag: flip(key.tag) }), SECRET, 'key_corrupted'],
    [
      'a truncated tag',
      (key) => ({ ...key, tag: Buffer.from(key.tag, 'base64').subarray(0, 8).toString('base64') }),
      SECRET,
      'key_corrupted',
    ],
    ['an altered IV', (key) => ({ ...key, iv: flip(key.iv) }), SECRET, 'key_corrupted'],
    [
      'a different salt',
      (key) => ({ ...key, kdf: { ...key.kdf, salt: flip(key.kdf.salt) } }),
      SECRET,
      'key_secret_mismatch',
    ],
    [
      'an unknown format version',
      (key) => ({ ...key, format: 'portcullis.encrypted-key/v9' }),
      SECRET,
      'key_format_unsupported',
    ],
    [
      'an unknown KDF',
      (key) => ({ ...key, kdf: { ...key.kdf, name: 'pbkdf2' } }),
      SECRET,
      'key_format_unsupported',
    ],
    [
      'an absurd scrypt cost',
      (key) => ({ ...key, kdf: { ...key.kdf, N: 2 ** 30 } }),
      SECRET,
      'key_format_unsupported',
    ],
    ['a missing ciphertext', ({ ciphertext: _, ...rest }) => rest, SECRET, 'key_corrupted'],
    ['not an object', () => 'PRIVATE KEY', SECRET, 'key_format_unsupported'],
  ])('refuses %s', async (_name, change, secret, code) => {
    const encrypted = await encryptPrivateKey(keyPairSync('ec-p256').privateKey, SECRET);
    await expect(decryptPrivateKey(change(encrypted), secret)).rejects.toMatchObject({ code });
  });

  it('says which variable holds a missing or short secret, without its value', () => {
    expect(() => parseKeyEncryptionSecret(undefined, 'PORTCULLIS_CA_KEY_SECRET')).toThrow(
      expect.objectContaining({
        code: 'key_secret_invalid',
        message: expect.stringContaining('PORTCULLIS_CA_KEY_SECRET'),
      }),
    );
    try {
      parseKeyEncryptionSecret('short-secret', 'PORTCULLIS_CA_KEY_SECRET');
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'key_secret_invalid' });
      expect(String(error)).not.toContain('short-secret');
    }
    expect(parseKeyEncryptionSecret(SECRET, 'X')).toEqual(Buffer.from(SECRET));
  });

  it('refuses to encrypt under a short secret', async () => {
    await expect(encryptPrivateKey(keyPairSync('ec-p256').privateKey, 'short')).rejects.toMatchObject({
      code: 'key_secret_invalid',
    });
  });
});
