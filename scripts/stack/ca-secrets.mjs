// The CA's secrets for the one-machine stack, made on the first start and kept in the stack's home (mode 0600).
//
// File names are shared with the CLI (packages/cli/src/ca-commands.ts): `portcullis ca token` signs
// with ca-dev-issuer.jwk, and the CA verifies with its public half, ca-dev-issuer.jwks.json.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CA_KEY_ENCRYPTION_KEY_FILE = 'ca-key-encryption-key';
export const DEV_ISSUER_KEY_FILE = 'ca-dev-issuer.jwk';
export const DEV_ISSUER_JWKS_FILE = 'ca-dev-issuer.jwks.json';

function writeSecret(file, content) {
  writeFileSync(file, content, { mode: 0o600 });
  // The mode of writeFileSync applies only when it creates the file.
  chmodSync(file, 0o600);
}

/**
 * Returns the key-encryption key and the JWKS path, creating what is missing. Synchronous: the
 * launcher builds each service's environment synchronously. Losing the key-encryption key makes
 * the stored CA keys unreadable, so an existing file is never replaced.
 */
export function ensureCaSecrets(home) {
  mkdirSync(home, { recursive: true });
  const kekFile = join(home, CA_KEY_ENCRYPTION_KEY_FILE);
  if (!existsSync(kekFile)) writeSecret(kekFile, `${randomBytes(32).toString('base64url')}\n`);
  const keyFile = join(home, DEV_ISSUER_KEY_FILE);
  const jwksFile = join(home, DEV_ISSUER_JWKS_FILE);
  if (!existsSync(keyFile) || !existsSync(jwksFile)) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = `portcullis-dev-${randomBytes(4).toString('hex')}`;
    const common = { kid, alg: 'ES256', use: 'sig' };
    writeSecret(keyFile, `${JSON.stringify({ ...privateKey.export({ format: 'jwk' }), ...common })}\n`);
    writeFileSync(
      jwksFile,
      `${JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), ...common }] })}\n`,
    );
  }
  return { keyEncryptionKey: readFileSync(kekFile, 'utf8').trim(), jwksFile };
}
