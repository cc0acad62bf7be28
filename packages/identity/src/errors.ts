// The identity package's error registry: every stable code, what it means, and how it maps to HTTP and gRPC.

/**
 * Why a request's token was refused. Each code is stable (clients and dashboards key on it) and is
 * documented in this package's README; a test keeps the two in step.
 */
export const AUTHENTICATION_ERROR_CODES = {
  malformed: 'the token is not a well-formed compact JWS carrying a JSON claims object',
  bad_signature: 'no key of the issuer verifies the signature',
  expired: 'the exp claim lies in the past (beyond the allowed clock skew)',
  not_yet_valid: 'the nbf or iat claim lies in the future (beyond the allowed clock skew)',
  wrong_audience: 'the rule lists audiences and the aud claim names none of them',
  unknown_issuer: 'no rule for the location the token came from names its iss claim',
  unknown_kid: "the issuer's key set has no key for the token's kid and alg, even after a refresh",
  disallowed_algorithm: "the token's alg is not in the rule's allow-list (none and HS* never are)",
  token_too_large: 'the token is longer than the configured limit',
  duplicate_tokens: 'the request carries more than one distinct token',
  jwks_unavailable: "the issuer's key set could not be fetched and no earlier copy is cached",
} as const;

export type AuthenticationErrorCode = keyof typeof AUTHENTICATION_ERROR_CODES;

/** gRPC status codes used here (google.rpc.Code). */
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;

/**
 * A token was presented and refused. Callers answer 401 (403 for `wrong_audience`, as Envoy's
 * jwt_authn filter does); the message is safe to return to the client: values taken from the token
 * are quoted and truncated.
 */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
  readonly code: AuthenticationErrorCode;
  readonly httpStatus: 401 | 403;
  readonly grpcStatus: number;
  /** The token's issuer when it was known (metrics label); never set from an unverified value that no rule names. */
  readonly issuer: string | undefined;

  constructor(
    code: AuthenticationErrorCode,
    message: string,
    options: { cause?: unknown; issuer?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.httpStatus = code === 'wrong_audience' ? 403 : 401;
    this.grpcStatus = code === 'wrong_audience' ? GRPC_PERMISSION_DENIED : GRPC_UNAUTHENTICATED;
    this.issuer = options.issuer;
  }

  /** The body shape of Portcullis API errors. */
  toJSON(): { code: AuthenticationErrorCode; message: string; details: [] } {
    return { code: this.code, message: this.message, details: [] };
  }
}

/** One problem found in a resource: the field path (`spec.jwtRules[0].issuer`) and the reason. */
export interface ResourceProblem {
  readonly path: string;
  readonly reason: string;
}

/** A RequestAuthentication resource failed parsing or validation; `details` lists every problem found. */
export class InvalidResourceError extends Error {
  override readonly name = 'InvalidResourceError';
  readonly code = 'invalid_resource';
  readonly httpStatus = 400;
  readonly grpcStatus = GRPC_INVALID_ARGUMENT;
  readonly details: readonly ResourceProblem[];

  constructor(details: readonly ResourceProblem[], options: { cause?: unknown } = {}) {
    super(
      details.map((d) => (d.path === '' ? d.reason : `${d.path}: ${d.reason}`)).join('; '),
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.details = details;
  }

  /** The body shape of Portcullis API errors; each detail names a field path and the reason. */
  toJSON(): { code: 'invalid_resource'; message: string; details: readonly ResourceProblem[] } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Quotes a value taken from a request for an error message: JSON-escaped (no control characters) and bounded. */
export function quote(value: unknown, max = 80): string {
  // String() on a parsed object can throw (an own "toString" that is not a function), so describe it instead.
  const text =
    typeof value === 'string'
      ? value
      : typeof value === 'number' || typeof value === 'boolean' || value === null
        ? String(value)
        : `<${Array.isArray(value) ? 'array' : typeof value}>`;
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}
