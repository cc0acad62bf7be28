// Test support: authorities, issued certificates and a manual clock shared by the pki tests.
import crypto from 'node:crypto';
import {
  type AuthorityState,
  type CreateAuthorityOptions,
  createAuthority,
  openAuthority,
} from '../src/authority.ts';
import { createCsr } from '../src/csr.ts';
import type { Issuer } from '../src/issuer.ts';
import type { KeyType } from '../src/key-algorithms.ts';
import type { Clock } from '../src/workload-identity.ts';

export const SECRET = 'test-key-encryption-secret-0123456789';
export const TRUST_DOMAIN = 'cluster.local';

export const workloadId = (namespace: string, serviceAccount: string, trustDomain = TRUST_DOMAIN) =>
  `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;

export interface TestAuthority {
  readonly state: AuthorityState;
  readonly issuer: Issuer;
  readonly rootPem: string;
  readonly bundlePem: readonly string[];
}

export async function testAuthority(
  options: Partial<CreateAuthorityOptions> & { now?: number } = {},
): Promise<TestAuthority> {
  const state = await createAuthority({ trustDomain: TRUST_DOMAIN, secret: SECRET, ...options });
  return openTestAuthority(state, options.now === undefined ? {} : { now: () => options.now ?? Date.now() });
}

export async function openTestAuthority(
  state: AuthorityState,
  options: { now?: () => number; maxTtlSeconds?: number } = {},
): Promise<TestAuthority> {
  const opened = await openAuthority(state, { secret: SECRET, ...options });
  const rootPem = opened.issuer.caChainPem[opened.issuer.caChainPem.length - 1] ?? '';
  return { state, issuer: opened.issuer, rootPem, bundlePem: opened.trustBundlePem };
}

export function keyPairSync(
  type: KeyType | 'rsa-1024' | 'ec-p384' | 'ec-secp256k1',
): crypto.KeyPairKeyObjectResult {
  if (type.startsWith('rsa-'))
    return crypto.generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) });
  const curve = { 'ec-p256': 'prime256v1', 'ec-p384': 'secp384r1', 'ec-secp256k1': 'secp256k1' }[
    type as string
  ];
  return crypto.generateKeyPairSync('ec', { namedCurve: curve ?? 'prime256v1' });
}

/** A leaf for `spiffeId`, issued through the CSR path; returns its key too. */
export function issueLeaf(
  issuer: Issuer,
  spiffeId: string,
  keyType: KeyType = 'ec-p256',
  ttlSeconds?: number,
) {
  const { privateKey } = keyPairSync(keyType);
  const issued = issuer.issue({
    csr: createCsr(privateKey, spiffeId),
    ...(ttlSeconds ? { ttlSeconds } : {}),
  });
  return { ...issued, keyPem: String(privateKey.export({ format: 'pem', type: 'pkcs8' })), privateKey };
}

/** Time that moves only when told to; timers fire in order during `advance`. */
export class ManualClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  readonly delays: number[] = [];

  constructor(start = Date.now()) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.delays.push(delayMs);
    this.timers.set(id, { at: this.time + delayMs, callback });
    return id;
  }

  clearTimer(handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** The earliest pending timer's due time. */
  nextDue(): number | undefined {
    return Math.min(...[...this.timers.values()].map((t) => t.at));
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
    }
    this.time = until;
  }

  /** Moves to `at` (no-op if already past). */
  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.time));
  }
}
