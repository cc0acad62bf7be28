// JWT verification with Istio RequestAuthentication semantics: rule by issuer, keys from JWKS, claims, precise refusals.
import { errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { AuthenticationError, type AuthenticationErrorCode, quote } from './errors.ts';
import type { JwksCache } from './jwks-cache.ts';
import { isJwtAlgorithm, JWT_ALGORITHMS, type JwtAlgorithm } from './jwt-algorithms.ts';
import type { JwtRule } from './request-authentication.ts';
import type { RuleScope, TokenLocation, TokenRequest } from './token-extraction.ts';

/** A verified token, with the attributes Istio exposes as `request.auth.*`. */
export interface VerifiedJwt {
  /** `request.auth.principal`: `<iss>/<sub>`; undefined when the token has no string `sub`. */
  readonly principal: string | undefined;
  readonly issuer: string;
  readonly subject: string | undefined;
  /** `request.auth.audiences`: the `aud` claim as a list. */
  readonly audiences: readonly string[];
  /** `request.auth.presenter`: the `azp` claim. */
  readonly presenter: string | undefined;
  /** `request.auth.claims`: the whole verified payload. */
  readonly claims: Readonly<JWTPayload>;
  readonly rawToken: string;
  /** The rule that verified the token (its outputs and forwarding apply). */
  readonly rule: JwtRule;
  readonly algorithm: JwtAlgorithm;
  readonly kid: string | undefined;
}

/** A request that carried no token: allowed through as anonymous, as Istio does. */
export interface AnonymousOutcome {
  readonly anonymous: true;
  /** Headers the in-scope rules write; strip client-sent copies (see `upstreamHeaderMutations`). */
  readonly outputHeaders: readonly string[];
}

/** A request whose one token verified. */
export interface AuthenticatedOutcome extends VerifiedJwt {
  readonly anonymous: false;
  /** Every place the token was found (removed upstream unless the rule forwards it). */
  readonly locations: readonly TokenLocation[];
  readonly outputHeaders: readonly string[];
}

export type AuthenticationOutcome = AnonymousOutcome | AuthenticatedOutcome;

/** Counter hooks (e.g. `…_jwt_verifications_total{outcome,code}`); must not throw. */
export interface JwtAuthenticatorHooks {
  readonly onVerified?: (event: { readonly issuer: string }) => void;
  readonly onRejected?: (event: {
    readonly code: AuthenticationErrorCode;
    readonly issuer: string | undefined;
  }) => void;
}

export interface JwtAuthenticatorOptions {
  readonly jwks: JwksCache;
  /** Allowed clock skew for exp, nbf and iat, in seconds (default 60, as Envoy). */
  readonly clockSkewSeconds?: number;
  /** Longest token accepted, in characters (default 8 KiB). */
  readonly maxTokenBytes?: number;
  /** Clock in epoch milliseconds (default `Date.now`). */
  readonly now?: () => number;
  readonly hooks?: JwtAuthenticatorHooks;
}

export const DEFAULT_CLOCK_SKEW_SECONDS = 60;
export const DEFAULT_MAX_TOKEN_BYTES = 8 * 1024;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const MAX_KID_LENGTH = 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });
// jose wants a mutable list; one shared array per algorithm spares an allocation per verification.
const ONLY: Record<JwtAlgorithm, JwtAlgorithm[]> = Object.fromEntries(
  JWT_ALGORITHMS.map((a) => [a, [a]]),
) as Record<JwtAlgorithm, JwtAlgorithm[]>;

/**
 * Verifies JWTs against jwtRules. Stateless apart from the shared JWKS cache: safe for concurrent
 * use. Every refusal is an `AuthenticationError` with a stable code; any other exception is a bug.
 */
export class JwtAuthenticator {
  private readonly jwks: JwksCache;
  private readonly skew: number;
  private readonly maxTokenBytes: number;
  private readonly now: (() => number) | undefined;
  private readonly hooks: JwtAuthenticatorHooks;

  constructor(options: JwtAuthenticatorOptions) {
    this.jwks = options.jwks;
    this.skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    this.maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
    this.now = options.now;
    this.hooks = options.hooks ?? {};
    if (!Number.isFinite(this.skew) || this.skew < 0) {
      throw new RangeError('clockSkewSeconds must be a non-negative number');
    }
    if (!Number.isInteger(this.maxTokenBytes) || this.maxTokenBytes <= 0) {
      throw new RangeError('maxTokenBytes must be a positive integer');
    }
  }

  /**
   * Finds the request's token in the scope's locations and verifies it. No token: anonymous.
   * More than one distinct token: `duplicate_tokens` (Istio leaves such requests undefined; we refuse them).
   */
  async authenticate(request: TokenRequest, scope: RuleScope): Promise<AuthenticationOutcome> {
    const found = scope.extract(request);
    if (found.length === 0) return { anonymous: true, outputHeaders: scope.outputHeaders };
    if (found.length > 1) {
      const where = found.map((f) => f.locations.map(describeLocation).join(' and ')).join('; ');
      throw this.rejected(
        new AuthenticationError(
          'duplicate_tokens',
          `the request carries ${found.length} different tokens (${where})`,
        ),
      );
    }
    const token = found[0]!;
    const verified = await this.verify(token.token, token.rules);
    return {
      anonymous: false,
      principal: verified.principal,
      issuer: verified.issuer,
      subject: verified.subject,
      audiences: verified.audiences,
      presenter: verified.presenter,
      claims: verified.claims,
      rawToken: verified.rawToken,
      rule: verified.rule,
      algorithm: verified.algorithm,
      kid: verified.kid,
      locations: token.locations,
      outputHeaders: scope.outputHeaders,
    };
  }

  /** Verifies one token against the rules that read its location; the rule is chosen by the token's `iss`. */
  async verify(token: string, rules: readonly JwtRule[]): Promise<VerifiedJwt> {
    try {
      const parsed = parse(token, this.maxTokenBytes);
      let firstError: AuthenticationError | undefined;
      for (const rule of rules) {
        if (rule.issuer !== parsed.iss) continue;
        try {
          const verified = await this.verifyWithRule(parsed, rule);
          this.hooks.onVerified?.({ issuer: verified.issuer });
          return verified;
        } catch (error) {
          // Several rules may name one issuer (different audiences or keys): any of them may accept the token.
          if (!(error instanceof AuthenticationError)) throw error;
          firstError ??= error;
        }
      }
      throw (
        firstError ??
        fail('unknown_issuer', `issuer ${quote(parsed.iss)} is not accepted where this token was presented`)
      );
    } catch (error) {
      if (error instanceof AuthenticationError) throw this.rejected(error);
      throw error;
    }
  }

  /** Fetches the rules' keys ahead of traffic; failures are recorded by the JWKS cache, not thrown. */
  async prefetchKeys(rules: readonly JwtRule[]): Promise<void> {
    await Promise.all(rules.map((rule) => this.jwks.prefetch(rule)));
  }

  /** Forgets cached keys no rule in `rules` uses (see `JwksCache.retain`). */
  retainKeys(rules: readonly JwtRule[]): void {
    this.jwks.retain(rules);
  }

  private rejected(error: AuthenticationError): AuthenticationError {
    this.hooks.onRejected?.({ code: error.code, issuer: error.issuer });
    return error;
  }

  private async verifyWithRule(token: ParsedToken, rule: JwtRule): Promise<VerifiedJwt> {
    const { alg, kid } = token;
    const issuer = rule.issuer;
    if (!rule.algorithms.includes(alg)) {
      throw fail('disallowed_algorithm', `alg ${alg} is not allowed for issuer ${quote(issuer)}`, issuer);
    }
    let keys = this.jwks.peek(rule) ?? (await this.jwks.load(rule));
    let found = keys.lookup(alg, kid);
    let refreshed = false;
    if (!found.kidKnown || found.keys.length === 0) {
      keys = await this.jwks.refreshForUnknownKey(rule);
      refreshed = true;
      found = keys.lookup(alg, kid);
      if (found.keys.length === 0) {
        throw fail(
          'unknown_kid',
          kid === undefined
            ? `issuer ${quote(issuer)} has no ${alg} key`
            : `issuer ${quote(issuer)} has no ${alg} key with kid ${quote(kid)}`,
          issuer,
        );
      }
    }
    const nowMs = this.now?.();
    const options: JWTVerifyOptions = {
      algorithms: ONLY[alg],
      issuer,
      audience: rule.audiences.length === 0 ? undefined : (rule.audiences as string[]),
      clockTolerance: this.skew,
      currentDate: nowMs === undefined ? undefined : new Date(nowMs),
    };
    for (;;) {
      let refusal: AuthenticationError | undefined;
      for (const key of found.keys) {
        let claims: JWTPayload;
        try {
          claims = (await jwtVerify(token.text, key, options)).payload;
        } catch (error) {
          refusal = fromJose(error, rule);
          // A signature failure means "try the next candidate key"; a claims failure is final.
          if (refusal.code !== 'bad_signature') throw refusal;
          continue;
        }
        const iat = claims.iat;
        if (iat !== undefined && iat > Math.floor((nowMs ?? Date.now()) / 1000) + this.skew) {
          throw fail('not_yet_valid', `the token was issued in the future (iat ${isoTime(iat)})`, issuer);
        }
        return result(token, claims, rule);
      }
      refusal ??= fail('bad_signature', 'no key verified the signature', issuer);
      // Without a kid a new signing key is invisible to the lookup: refresh (rate-limited) and try once more.
      if (kid !== undefined || refreshed) throw refusal;
      const newer = await this.jwks.refreshForUnknownKey(rule);
      if (newer === keys) throw refusal;
      keys = newer;
      found = keys.lookup(alg, kid);
      refreshed = true;
    }
  }
}

/** What the authenticator reads from a token before choosing a rule and a key; jose re-checks all of it. */
interface ParsedToken {
  readonly text: string;
  readonly alg: JwtAlgorithm;
  readonly kid: string | undefined;
  readonly iss: string;
}

/**
 * Splits and decodes the header and payload just enough to pick the rule (`iss`) and key (`alg`,
 * `kid`); throws precise refusals for shapes jose would only call invalid. The signature segment is
 * left to jose, which decodes it strictly.
 */
function parse(token: string, maxBytes: number): ParsedToken {
  if (typeof token !== 'string') throw fail('malformed', 'the token is not a string');
  if (token.length > maxBytes)
    throw fail('token_too_large', `the token is ${token.length} bytes; the limit is ${maxBytes}`);
  const first = token.indexOf('.');
  const second = first === -1 ? -1 : token.indexOf('.', first + 1);
  if (first === -1 || second === -1 || token.indexOf('.', second + 1) !== -1) {
    const parts = token.split('.').length;
    throw fail(
      'malformed',
      parts === 5
        ? 'encrypted tokens (JWE) are not supported'
        : `a JWT has 3 dot-separated parts, this has ${parts}`,
    );
  }
  const header = decodeObject(token.slice(0, first), 'header');
  const alg = header['alg'];
  if (typeof alg !== 'string') throw fail('malformed', 'the token header has no alg');
  if (!isJwtAlgorithm(alg)) throw fail('disallowed_algorithm', `alg ${quote(alg)} is never accepted`);
  const kid = header['kid'];
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) {
    throw fail('malformed', 'the token header has an invalid kid');
  }
  if (second === token.length - 1) throw fail('malformed', 'the token has no signature');
  const payload = decodeObject(token.slice(first + 1, second), 'payload');
  const iss = payload['iss'];
  if (iss === undefined) throw fail('unknown_issuer', 'the token has no iss claim');
  if (typeof iss !== 'string') throw fail('malformed', 'the iss claim is not a string');
  return { text: token, alg, kid, iss };
}

function result(token: ParsedToken, claims: JWTPayload, rule: JwtRule): VerifiedJwt {
  const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
  const aud = claims.aud;
  return {
    principal: sub === undefined ? undefined : `${rule.issuer}/${sub}`,
    issuer: rule.issuer,
    subject: sub,
    audiences:
      typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [],
    presenter: typeof claims['azp'] === 'string' ? claims['azp'] : undefined,
    claims,
    rawToken: token.text,
    rule,
    algorithm: token.alg,
    kid: token.kid,
  };
}

function fail(
  code: AuthenticationErrorCode,
  message: string,
  issuer?: string,
  cause?: unknown,
): AuthenticationError {
  return new AuthenticationError(code, message, issuer === undefined ? { cause } : { issuer, cause });
}

function decodeObject(segment: string, what: 'header' | 'payload'): Record<string, unknown> {
  // Buffer skips characters outside the alphabet; a strict check keeps garbage from decoding into JSON.
  if (!BASE64URL.test(segment)) throw fail('malformed', `the token ${what} is not base64url text`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')));
  } catch (cause) {
    throw fail('malformed', `the token ${what} is not base64url-encoded JSON`, undefined, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail('malformed', `the token ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function fromJose(error: unknown, rule: JwtRule): AuthenticationError {
  const issuer = rule.issuer;
  if (error instanceof errors.JWTExpired) {
    const exp = (error.payload as JWTPayload).exp;
    return fail(
      'expired',
      `the token expired${typeof exp === 'number' ? ` at ${isoTime(exp)}` : ''}`,
      issuer,
      error,
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' && error.reason === 'check_failed') {
      const nbf = (error.payload as JWTPayload).nbf;
      return fail('not_yet_valid', `the token is not valid before ${isoTime(nbf ?? 0)}`, issuer, error);
    }
    if (error.claim === 'aud') {
      return fail(
        'wrong_audience',
        `the token's audiences include none of ${rule.audiences.map((a) => quote(a)).join(', ')}`,
        issuer,
        error,
      );
    }
    return fail('malformed', `invalid claims: ${error.message}`, issuer, error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return fail('bad_signature', 'the signature does not verify', issuer, error);
  }
  if (error instanceof errors.JOSEAlgNotAllowed)
    return fail('disallowed_algorithm', error.message, issuer, error);
  if (error instanceof errors.JOSEError) return fail('malformed', error.message, issuer, error);
  // Anything else (a TypeError from key handling, …) is a defect here, not a property of the token.
  throw error;
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

function describeLocation(location: TokenLocation): string {
  switch (location.kind) {
    case 'header':
      return `header ${location.name}`;
    case 'param':
      return `query parameter ${location.name}`;
    case 'cookie':
      return `cookie ${location.name}`;
  }
}
