// The two ways an ext_authz check fails before a decision can be enforced: the request cannot be made into an input, or the policy's result is not a valid decision.
import { PortcullisError } from '@portcullis/runtime';

/**
 * The CheckRequest (or HTTP authorization request) could not be made into an input document:
 * a bad percent-escape in the path or query, an unparsable body of a parsed content type.
 * OPA-Envoy answers these with a 400 denial whose body is `request_parse_error: <message>`.
 */
export class RequestParseError extends PortcullisError {
  /** OPA-Envoy's error code for this case, used in status messages and bodies. */
  readonly reason = 'request_parse_error';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super('bad_request', message, options);
    this.name = 'RequestParseError';
  }

  /** `request_parse_error: <message>`, as OPA-Envoy words it. */
  describe(): string {
    return `${this.reason}: ${this.message}`;
  }
}

/**
 * The policy returned something that is not a decision (not a boolean, no boolean `allowed`,
 * a field of the wrong type, an HTTP status Envoy does not know). Enforcement points turn this
 * into a fail-closed denial (or an allow where the listener is configured to fail open).
 */
export class DecisionResultError extends PortcullisError {
  /** OPA-Envoy's error code for this case. */
  readonly reason = 'envoyauth_result_error';
  /** The decision field at fault (`allowed`, `headers`, …), or undefined for the whole result. */
  readonly field: string | undefined;

  constructor(message: string, field?: string) {
    super('evaluation_error', message, { details: field === undefined ? [] : [{ field }] });
    this.name = 'DecisionResultError';
    this.field = field;
  }

  describe(): string {
    return `${this.reason}: ${this.message}`;
  }
}
