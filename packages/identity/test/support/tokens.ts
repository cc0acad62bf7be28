// Test keys, signed tokens, hand-crafted hostile tokens, a settable clock and one-rule resources.
import { randomUUID } from 'node:crypto';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import type { JwtAlgorithm } from '../../src/jwt-algorithms.ts';
import { type JwtRule, parseRequestAuthentication } from '../../src/request-authentication.ts';

export interface TestKey {
  readonly kid: string;
  readonly alg: JwtAlgorithm;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function makeKey(alg: JwtAlgorithm = 'ES256', kid: string = randomUUID()): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export function jwksOf(...keys: readonly TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.publicJwk) };
}

/** Signs claims with a key; `header` overrides protected header members (kid: null drops the kid). */
export async function sign(
  key: TestKey,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const protectedHeader: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'JWT', ...header };
  if (protectedHeader['kid'] === null) delete protectedHeader['kid'];
  return new SignJWT(claims).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** A token assembled by hand, signature unchecked: for hostile and malformed input. */
export function craft(header: unknown, payload: unknown, signature = 'c2lnbmF0dXJl'): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

/** A settable clock in epoch milliseconds; starts at a fixed instant so claims are reproducible. */
export class TestClock {
  ms = Date.UTC(2030, 0, 1);
  readonly now = (): number => this.ms;
  get seconds(): number {
    return Math.floor(this.ms / 1000);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** The jwtRules of a resource in namespace `ns` built from rule objects as they would be written in YAML. */
export function rules(
  jwtRules: readonly Record<string, unknown>[],
  name = 'auth',
  namespace = 'ns',
): readonly JwtRule[] {
  return parseRequestAuthentication({
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name, namespace },
    spec: { jwtRules },
  }).jwtRules;
}

export function rule(jwtRule: Record<string, unknown>): JwtRule {
  return rules([jwtRule])[0]!;
}
