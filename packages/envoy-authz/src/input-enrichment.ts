// The enrichment step of a check: adds identity and stored attributes to the input before evaluation, and turns a refused token into a 401.
import { AuthenticationError } from '@portcullis/identity';
import type { DecideContext } from './authorization-service.ts';
import type { EnvoyAuthzInput } from './check-request-input.ts';

/**
 * An enrichment hook of `createPolicyDecide`: returns the input to evaluate (a new object), or
 * throws `InputRejectedError` to refuse the request without evaluating; any other error is a
 * failure to decide (answered by the fail-closed or fail-open stance).
 */
export type EnrichFn = (input: EnvoyAuthzInput, ctx: DecideContext) => Promise<EnvoyAuthzInput>;

/**
 * The request itself is refused before any policy runs (Istio's RequestAuthentication: a request
 * with an invalid token never reaches authorization). Answered as a denial with `httpStatus`,
 * never failed open: it is a verdict on the request, not a failure of the decision machinery.
 */
export class InputRejectedError extends Error {
  override readonly name = 'InputRejectedError';
  readonly httpStatus: number;
  /** Machine-readable reason (the authentication error code), for logs. */
  readonly code: string;
  /** Sent to the client with the denial. */
  readonly headers: Readonly<Record<string, string>>;
  /** Body of the denial, as Istio's proxy words it. */
  readonly body: string;

  constructor(
    httpStatus: number,
    code: string,
    message: string,
    options: { headers?: Record<string, string>; body?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.httpStatus = httpStatus;
    this.code = code;
    this.headers = options.headers ?? {};
    this.body = options.body ?? message;
  }
}

/** What `enricherHook` needs of `@portcullis/attributes`' Enricher (which fits it). */
export interface InputEnricher {
  enrich(input: EnvoyAuthzInput): Promise<EnvoyAuthzInput>;
}

/**
 * Enrichment by `@portcullis/attributes`' Enricher (configured with `onInvalidToken: 'reject'`):
 * a refused token becomes `InputRejectedError` with the identity package's status (401, or 403
 * for a wrong audience) and a `www-authenticate` challenge, as Istio answers it; a missing token
 * is anonymous and left to the policy.
 */
export function enricherHook(enricher: InputEnricher): EnrichFn {
  return async (input) => {
    try {
      return await enricher.enrich(input);
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      const challenge = error.httpStatus === 401 ? 'invalid_token' : 'insufficient_scope';
      throw new InputRejectedError(error.httpStatus, error.code, error.message, {
        headers: { 'www-authenticate': `Bearer error="${challenge}"` },
        // Istio's proxy answers a refused token with this body; the precise reason stays in the logs.
        body: error.httpStatus === 401 ? 'Jwt verification fails' : 'Audiences in Jwt are not allowed',
        cause: error,
      });
    }
  };
}
