// The one error type of @portcullis/pki and the registry of its stable codes.

/**
 * How a transport should present an error: `invalid_argument` is the caller's input,
 * `unauthenticated`/`permission_denied` are about who the caller is, `failed_precondition`
 * is state the caller cannot fix by retrying, `internal` is ours.
 */
export type PkiErrorKind =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'failed_precondition'
  | 'unavailable'
  | 'internal';

/** Every code this package throws, what it means and how to present it. Codes are a stable contract. */
export const PKI_ERROR_CODES = {
  csr_too_large: { kind: 'invalid_argument', description: 'the CSR is larger than the configured limit' },
  csr_malformed: {
    kind: 'invalid_argument',
    description: 'the CSR is not a PEM or DER PKCS#10 certification request',
  },
  csr_bad_signature: {
    kind: 'invalid_argument',
    description: 'the CSR self-signature does not verify with its public key',
  },
  csr_unsupported_signature: {
    kind: 'invalid_argument',
    description: 'the CSR is signed with an algorithm this CA does not accept (SHA-1, MD5, PSS, ...)',
  },
  csr_weak_key: {
    kind: 'invalid_argument',
    description: 'the CSR key is too weak (RSA below 2048 bits or a small exponent)',
  },
  csr_unsupported_key: {
    kind: 'invalid_argument',
    description: 'the CSR key type is not RSA-2048/3072/4096 or ECDSA P-256',
  },
  csr_bad_san: {
    kind: 'invalid_argument',
    description:
      'the CSR subject alternative names are not exactly one SPIFFE ID URI of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa> in this trust domain',
  },
  identity_mismatch: {
    kind: 'permission_denied',
    description: 'the SPIFFE ID requested is not the authenticated caller’s identity',
  },
  ttl_too_long: {
    kind: 'invalid_argument',
    description: 'the requested lifetime is above the configured maximum',
  },
  ttl_invalid: {
    kind: 'invalid_argument',
    description: 'the requested lifetime is not a positive whole number of seconds',
  },
  spiffe_id_invalid: { kind: 'invalid_argument', description: 'the string is not a valid SPIFFE ID' },
  ca_certificate_invalid: {
    kind: 'failed_precondition',
    description: 'a CA certificate cannot sign: not a CA, no keyCertSign, expired, or not parseable',
  },
  ca_key_invalid: {
    kind: 'failed_precondition',
    description: 'a CA private key is unsupported or does not match its certificate',
  },
  ca_chain_invalid: {
    kind: 'failed_precondition',
    description: 'the CA certificate chain does not link the signing certificate to the root',
  },
  authority_state_invalid: {
    kind: 'failed_precondition',
    description: 'the serialized authority state does not have the expected shape or version',
  },
  rotation_not_prepared: {
    kind: 'failed_precondition',
    description: 'a root rotation was activated before one was prepared',
  },
  rotation_in_progress: {
    kind: 'failed_precondition',
    description: 'a root rotation is already prepared and must be activated before another starts',
  },
  key_secret_invalid: {
    kind: 'failed_precondition',
    description: 'the key-encryption secret is missing or shorter than 16 bytes',
  },
  key_secret_mismatch: {
    kind: 'failed_precondition',
    description: 'a private key was encrypted with a different key-encryption secret',
  },
  key_corrupted: {
    kind: 'failed_precondition',
    description: 'an encrypted private key failed authentication: it was altered or truncated',
  },
  key_format_unsupported: {
    kind: 'failed_precondition',
    description: 'an encrypted private key has an unknown format version or KDF',
  },
  bundle_invalid: {
    kind: 'invalid_argument',
    description: 'a trust bundle (PEM or SPIFFE bundle JSON) is malformed or holds a non-CA certificate',
  },
  token_too_large: {
    kind: 'unauthenticated',
    description: 'the bootstrap token is larger than the configured limit',
  },
  token_invalid: {
    kind: 'unauthenticated',
    description:
      'the bootstrap token is malformed, uses a disallowed algorithm, or its signature does not verify',
  },
  token_expired: { kind: 'unauthenticated', description: 'the bootstrap token has expired' },
  token_not_yet_valid: {
    kind: 'unauthenticated',
    description: 'the bootstrap token is not valid yet (nbf/iat)',
  },
  token_wrong_issuer: {
    kind: 'unauthenticated',
    description: 'the bootstrap token comes from another issuer',
  },
  token_wrong_audience: {
    kind: 'unauthenticated',
    description: 'the bootstrap token is not meant for this audience',
  },
  token_bad_claims: {
    kind: 'unauthenticated',
    description:
      'the bootstrap token does not name a valid namespace and service account, or its claims disagree',
  },
  peer_unauthenticated: {
    kind: 'unauthenticated',
    description: 'the TLS peer presented no certificate, or one the handshake did not authorize',
  },
  peer_identity_invalid: {
    kind: 'unauthenticated',
    description: 'the peer certificate does not carry exactly one workload SPIFFE ID of the trust domain',
  },
  peer_not_allowed: {
    kind: 'permission_denied',
    description: 'the peer SPIFFE ID is not in the allowed set',
  },
  workload_not_ready: {
    kind: 'unavailable',
    description: 'the workload has no valid certificate yet (or it expired)',
  },
  workload_chain_invalid: {
    kind: 'internal',
    description: 'the CA returned a chain that does not match the workload key, identity or trust bundle',
  },
} as const satisfies Record<string, { kind: PkiErrorKind; description: string }>;

export type PkiErrorCode = keyof typeof PKI_ERROR_CODES;

/** An error with a stable snake_case `code`. Messages name the problem and never echo keys or tokens. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  readonly code: PkiErrorCode;
  readonly kind: PkiErrorKind;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.kind = PKI_ERROR_CODES[code].kind;
  }
}

export function isPkiError(error: unknown, code?: PkiErrorCode): error is PkiError {
  return error instanceof PkiError && (code === undefined || error.code === code);
}
