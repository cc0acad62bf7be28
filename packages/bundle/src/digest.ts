// Content digests of bundle archives: the revision identity the PAP stores and the PDP verifies.
import { createHash } from 'node:crypto';

/** Lower-case hex sha256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}
