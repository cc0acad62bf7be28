// Bootstrap tokens: Kubernetes service-account-shaped JWTs that authenticate a workload's first CSR.
import { createHash } from 'node:crypto';
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  type KeyObject,
  SignJWT,
} from 'jose';
import { PkiError } from './pki-error.ts';

export const DEFAULT_MAX_TOKEN_BYTES = 16 * 1024;
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;
export const DEFAULT_DEVELOPMENT_ISSUER = 'https://portcullis.local/bootstrap';

/** Who a token speaks for. */
export interface CallerIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export interface MintTokenOptions extends CallerIdentity {
  readonly audience: string | readonly string[];
  /** Default one hour. */
  readonly ttlSeconds?: number;
  /** Milliseconds since the epoch; default now. */
  readonly now?: number;
}

export interface DevelopmentTokenIssuer {
  readonly issuer: string;
  readonly keyId: string;
  /** The public key, for `verifyBootstrapToken({ keys })` or a JWKS endpoint. */
  readonly jwks: JSONWebKeySet;
  mint(options: MintTokenOptions): Promise<string>;
}

export interface TokenVerifierOptions {
  readonly issuer: string;
  /** The token must name at least one of these. */
  readonly audience: string | readonly string[];
  /** A static key set, or a resolver such as jose's `createRemoteJWKSet` for a cluster's JWKS endpoint. */
  readonly keys: JSONWebKeySet | JWTVerifyGetKey;
  readonly clockToleranceSeconds?: number;
  readonly maxTokenBytes?: number;
  readonly algorithms?: readonly string[];
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now?: () => number;
  /**
   * Remember verified tokens (by SHA-256) so a caller presenting the same token again costs no
   * signature check: at most `entries` of them, each until its `exp` or for `maxAgeSeconds`, whichever
   * is sooner. A key withdrawn from the issuer's set stops admitting a remembered token only then.
   */
  readonly cache?: { readonly entries: number; readonly maxAgeSeconds: number };
}

// Kubernetes object names: namespaces are DNS-1123 labels, service accounts DNS-1123 subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** Signs a token shaped like a projected Kubernetes service-account token (both `sub` and `kubernetes.io`). */
export async function mintBootstrapToken(
  privateKey: CryptoKey | KeyObject,
  options: MintTokenOptions & {
    readonly issuer: string;
    readonly keyId?: string;
    readonly algorithm?: string;
  },
): Promise<string> {
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({
    'kubernetes.io': { namespace: options.namespace, serviceaccount: { name: options.serviceAccount } },
  })
    .setProtectedHeader({
      alg: options.algorithm ?? 'ES256',
      typ: 'JWT',
      ...(options.keyId ? { kid: options.keyId } : {}),
    })
    .setIssuer(options.issuer)
    .setSubject(`system:serviceaccount:${options.namespace}:${options.serviceAccount}`)
    .setAudience(typeof options.audience === 'string' ? options.audience : [...options.audience])
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + (options.ttlSeconds ?? 3600))
    .sign(privateKey);
}

/** A throwaway ES256 issuer for local stacks and tests; production tokens come from the cluster. */
export async function createDevelopmentTokenIssuer(
  options: { readonly issuer?: string; readonly keyId?: string } = {},
): Promise<DevelopmentTokenIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const issuer = options.issuer ?? DEFAULT_DEVELOPMENT_ISSUER;
  const keyId = options.keyId ?? 'portcullis-dev-1';
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: keyId, alg: 'ES256', use: 'sig' };
  return {
    issuer,
    keyId,
    jwks: { keys: [jwk] },
    mint: (mintOptions) => mintBootstrapToken(privateKey, { ...mintOptions, issuer, keyId }),
  };
}

function tokenError(error: unknown): PkiError {
  if (error instanceof errors.JWTExpired)
    return new PkiError('token_expired', 'the bootstrap token has expired', { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss')
      return new PkiError('token_wrong_issuer', 'the bootstrap token comes from another issuer', {
        cause: error,
      });
    if (error.claim === 'aud') {
      return new PkiError('token_wrong_audience', 'the bootstrap token is not meant for this audience', {
        cause: error,
      });
    }
    if (error.claim === 'nbf' || error.claim === 'iat') {
      return new PkiError('token_not_yet_valid', `the bootstrap token is not valid yet (${error.claim})`, {
        cause: error,
      });
    }
    return new PkiError('token_bad_claims', `the bootstrap token claim "${error.claim}" is not valid`, {
      cause: error,
    });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new PkiError(
      'token_invalid',
      'the bootstrap token signature does not verify with the configured keys',
      { cause: error },
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new PkiError(
      'token_invalid',
      'the bootstrap token is signed with an algorithm that is not allowed',
      { cause: error },
    );
  }
  return new PkiError('token_invalid', 'the bootstrap token is not a well-formed signed JWT', {
    cause: error,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The namespace and service account, from `kubernetes.io` and/or `sub`; when both are present they must agree. */
export function callerFromClaims(payload: JWTPayload): CallerIdentity {
  const bad = (why: string) =>
    new PkiError('token_bad_claims', `the bootstrap token does not name a workload: ${why}`);
  let fromKubernetes: CallerIdentity | undefined;
  const kubernetes = payload['kubernetes.io'];
  if (kubernetes !== undefined) {
    const serviceAccount = isRecord(kubernetes) ? kubernetes.serviceaccount : undefined;
    const namespace = isRecord(kubernetes) ? kubernetes.namespace : undefined;
    const name = isRecord(serviceAccount) ? serviceAccount.name : undefined;
    if (typeof namespace !== 'string' || typeof name !== 'string') {
      throw bad('"kubernetes.io" needs "namespace" and "serviceaccount.name" strings');
    }
    fromKubernetes = { namespace, serviceAccount: name };
  }
  let fromSubject: CallerIdentity | undefined;
  const match = typeof payload.sub === 'string' ? SUBJECT.exec(payload.sub) : null;
  if (match?.[1] !== undefined && match[2] !== undefined)
    fromSubject = { namespace: match[1], serviceAccount: match[2] };
  const caller = fromKubernetes ?? fromSubject;
  if (caller === undefined)
    throw bad('neither "kubernetes.io" nor a "system:serviceaccount:<ns>:<sa>" subject');
  if (
    fromKubernetes !== undefined &&
    fromSubject !== undefined &&
    (fromKubernetes.namespace !== fromSubject.namespace ||
      fromKubernetes.serviceAccount !== fromSubject.serviceAccount)
  ) {
    throw bad('"sub" and "kubernetes.io" name different service accounts');
  }
  if (!DNS_LABEL.test(caller.namespace)) throw bad('the namespace is not a Kubernetes namespace name');
  if (!DNS_SUBDOMAIN.test(caller.serviceAccount))
    throw bad('the service account is not a Kubernetes object name');
  return caller;
}

/**
 * Returns a verifier bound to one issuer's keys (a static key set is imported once). Checks signature,
 * issuer, audience, `exp` (required) and `nbf` with the clock tolerance, then the workload claims.
 */
export function createTokenVerifier(
  options: TokenVerifierOptions,
): (token: string) => Promise<CallerIdentity> {
  const keys = typeof options.keys === 'function' ? options.keys : createLocalJWKSet(options.keys);
  const maxBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const audience = typeof options.audience === 'string' ? options.audience : [...options.audience];
  const algorithms = [...(options.algorithms ?? ['ES256', 'RS256'])];
  const now = options.now ?? Date.now;
  const cache = options.cache === undefined ? undefined : new VerifiedTokens(options.cache.entries);
  return async (token) => {
    if (Buffer.byteLength(token) > maxBytes) {
      throw new PkiError('token_too_large', `the bootstrap token is larger than ${maxBytes} bytes`);
    }
    const digest = cache === undefined ? '' : createHash('sha256').update(token).digest('base64');
    const remembered = cache?.get(digest, now());
    if (remembered !== undefined) return remembered;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience,
        algorithms,
        clockTolerance: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
        ...(options.now ? { currentDate: new Date(options.now()) } : {}),
      }));
    } catch (error) {
      throw tokenError(error);
    }
    const caller = callerFromClaims(payload);
    if (cache !== undefined && options.cache !== undefined && typeof payload.exp === 'number') {
      cache.set(digest, caller, Math.min(payload.exp * 1000, now() + options.cache.maxAgeSeconds * 1000));
    }
    return caller;
  };
}

/** Verified callers by token digest, oldest dropped first when full. */
class VerifiedTokens {
  private readonly entries = new Map<string, { caller: CallerIdentity; until: number }>();

  constructor(private readonly max: number) {}

  get(digest: string, now: number): CallerIdentity | undefined {
    const entry = this.entries.get(digest);
    if (entry === undefined) return undefined;
    if (now < entry.until) return entry.caller;
    this.entries.delete(digest);
    return undefined;
  }

  set(digest: string, caller: CallerIdentity, until: number): void {
    if (this.max <= 0) return;
    this.entries.delete(digest);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(digest, { caller, until });
  }
}

/** One-shot form of `createTokenVerifier`. */
export function verifyBootstrapToken(token: string, options: TokenVerifierOptions): Promise<CallerIdentity> {
  return createTokenVerifier(options)(token);
}
