// The JWS algorithms a rule may accept, and which JWK shapes can verify each of them.

/**
 * Asymmetric algorithms only: a JWKS holds public keys, and accepting HS* with a public key is the
 * classic key-confusion hole; `none` is never a signature.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** The default allow-list of a rule without `x-portcullis-algorithms`: all of them. */
export const DEFAULT_JWT_ALGORITHMS: readonly JwtAlgorithm[] = JWT_ALGORITHMS;

const KNOWN: ReadonlySet<string> = new Set(JWT_ALGORITHMS);

export function isJwtAlgorithm(value: unknown): value is JwtAlgorithm {
  return typeof value === 'string' && KNOWN.has(value);
}

/** The key type (and curve) a JWK must have to verify `alg`; checked before import so a mismatch never reaches jose. */
export function keyFitsAlgorithm(kty: unknown, crv: unknown, alg: JwtAlgorithm): boolean {
  switch (alg) {
    case 'RS256':
    case 'RS384':
    case 'RS512':
    case 'PS256':
    case 'PS384':
    case 'PS512':
      return kty === 'RSA';
    case 'ES256':
      return kty === 'EC' && crv === 'P-256';
    case 'ES384':
      return kty === 'EC' && crv === 'P-384';
    case 'ES512':
      return kty === 'EC' && crv === 'P-521';
    case 'EdDSA':
      // jose (WebCrypto) verifies EdDSA with Ed25519 only.
      return kty === 'OKP' && crv === 'Ed25519';
  }
}
