// sha256 digests of bundle archives, and their constant-time verification.
import { createHash, timingSafeEqual } from 'node:crypto';
import { EngineError } from './engine-error.ts';

const HEX_SHA256 = /^[0-9a-f]{64}$/;

export { sha256Hex } from '@portcullis/bundle';

/**
 * Throws `digest_mismatch` unless sha256(bytes) equals `expected` (64 lowercase hex digits; upper case is
 * accepted). The comparison is constant-time so a remote peer cannot probe a digest byte by byte.
 */
export function verifyDigest(bytes: Uint8Array, expected: string): void {
  const want = expected.toLowerCase();
  if (!HEX_SHA256.test(want)) {
    throw new EngineError('digest_mismatch', 'expected digest is not a sha256 hex string', {
      details: { expected },
    });
  }
  const actual = createHash('sha256').update(bytes).digest();
  if (!timingSafeEqual(actual, Buffer.from(want, 'hex'))) {
    throw new EngineError('digest_mismatch', 'bundle digest does not match', {
      details: { expected: want, actual: actual.toString('hex') },
    });
  }
}
