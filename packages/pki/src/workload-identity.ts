// The workload side of the CA: keep a key, an X.509-SVID and the trust bundle current, on disk and as TLS contexts.
import crypto, { type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { type CertificateInfo, isIssuedBy, readCertificate } from './certificate-info.ts';
import { createCsr } from './csr.ts';
import { generateKeyPair } from './key-algorithms.ts';
import { type SpiffeIdAllowList, spiffeServerIdentityCheck } from './peer-identity.ts';
import { decodePemCertificates, encodePem } from './pem.ts';
import { PkiError } from './pki-error.ts';
import { formatWorkloadSpiffeId, parseWorkloadSpiffeId, type WorkloadIdentityName } from './spiffe-id.ts';

export type WorkloadKeyType = 'ec-p256' | 'rsa-2048';

/** OPA's plugin states: NOT_READY before the first certificate (or after stop), WARN while a valid one is kept despite failures. */
export type WorkloadState = 'NOT_READY' | 'OK' | 'ERROR' | 'WARN';

/** Time and timers, injectable so tests can move time instead of waiting. */
export interface Clock {
  now(): number;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

/** Real time; timers are unref'd so a pending renewal never keeps a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export type WorkloadIdentityOptions = ({ readonly spiffeId: string } | WorkloadIdentityName) & {
  readonly keyType?: WorkloadKeyType;
  /** Sends the CSR to the CA; resolves to the chain, leaf first. */
  readonly request: (csrPem: string, ttlSeconds: number) => Promise<string[]>;
  /** The current trust bundle (PEM roots). */
  readonly trustBundle: () => Promise<string[]>;
  /** Where key.pem (0600), cert-chain.pem and root-cert.pem are kept across restarts. */
  readonly dir?: string;
  /** Requested lifetime; default 24 h. */
  readonly ttlSeconds?: number;
  /** Renewal happens at this fraction of the lifetime, minus jitter; default 0.5. */
  readonly renewFraction?: number;
  /** Up to this fraction of the lifetime is subtracted at random, so a fleet does not renew in lockstep; default 0.1. */
  readonly jitterFraction?: number;
  /** How often the trust bundle is fetched between renewals; default 5 minutes. */
  readonly bundleRefreshSeconds?: number;
  /** Backoff after a failed renewal: doubles from `initialMs` up to `maxMs`; default 1 s to 60 s. */
  readonly retry?: { readonly initialMs?: number; readonly maxMs?: number };
  readonly clock?: Clock;
  readonly random?: () => number;
};

export interface WorkloadIdentityStatus {
  readonly state: WorkloadState;
  readonly spiffeId: string;
  readonly serial?: string;
  readonly notAfter?: Date;
  readonly renewAt?: Date;
  /** Why the state is not OK. */
  readonly message?: string;
}

export interface RotatedEvent {
  readonly reason: 'certificate' | 'bundle';
  readonly serial: string;
  readonly notAfter: Date;
}

interface Material {
  readonly keyPem: string;
  readonly chain: readonly CertificateInfo[];
  readonly bundlePem: readonly string[];
  readonly context: tls.SecureContext;
  readonly renewAt: number;
}

/** What `tlsOptions()` returns: usable for `tls.createServer`, `server.setSecureContext` and `tls.connect`. */
export type WorkloadTlsOptions = tls.SecureContextOptions &
  Pick<tls.TlsOptions, 'requestCert' | 'rejectUnauthorized'> &
  Pick<tls.ConnectionOptions, 'checkServerIdentity'>;

const MAX_TIMER_MS = 2 ** 31 - 1;
const FILES = { key: 'key.pem', chain: 'cert-chain.pem', bundle: 'root-cert.pem' } as const;

/**
 * Keeps one workload's identity current. Contract: `start()` resolves after the first attempt and never
 * rejects for CA or network failures (see `status()`, `whenReady()`); renewals are single-flight; the
 * `rotated` event fires after the new material is on disk and in `secureContext()`/`tlsOptions()`.
 * A server built from `tlsOptions()` keeps its options until `server.setSecureContext(tlsOptions())`
 * is called, typically from a `rotated` listener.
 */
export class WorkloadIdentity extends EventEmitter<{ rotated: [RotatedEvent]; failed: [Error] }> {
  readonly spiffeId: string;
  readonly keyType: WorkloadKeyType;
  private readonly options: WorkloadIdentityOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private material: Material | undefined;
  private running = false;
  private renewal: Promise<void> | undefined;
  private renewTimer: unknown;
  private bundleTimer: unknown;
  private failures = 0;
  private lastError: Error | undefined;
  private bundleError: Error | undefined;
  private readyWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  constructor(options: WorkloadIdentityOptions) {
    super();
    this.options = options;
    this.spiffeId =
      'spiffeId' in options
        ? parseWorkloadSpiffeId(options.spiffeId).spiffeId
        : formatWorkloadSpiffeId(options);
    this.keyType = options.keyType ?? 'ec-p256';
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const loaded = await this.loadFromDisk().catch(() => undefined);
    if (!this.running) return;
    if (
      loaded !== undefined &&
      loaded.chain[0] !== undefined &&
      loaded.chain[0].notAfter.getTime() > this.clock.now()
    ) {
      this.install(loaded, 'certificate');
      this.scheduleRenewal(loaded.renewAt);
    } else {
      await this.renewNow();
    }
    this.scheduleBundleRefresh();
  }

  stop(): void {
    this.running = false;
    this.clock.clearTimer(this.renewTimer);
    this.clock.clearTimer(this.bundleTimer);
    this.renewTimer = undefined;
    this.bundleTimer = undefined;
    for (const waiter of this.readyWaiters.splice(0)) {
      waiter.reject(
        new PkiError('workload_not_ready', 'the workload identity was stopped before it was ready'),
      );
    }
  }

  /** Resolves once a certificate is held. */
  whenReady(): Promise<void> {
    if (this.material !== undefined) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  status(): WorkloadIdentityStatus {
    const leaf = this.material?.chain[0];
    const base = { spiffeId: this.spiffeId };
    if (!this.running) return { ...base, state: 'NOT_READY', message: 'stopped' };
    if (this.material === undefined || leaf === undefined) {
      return this.lastError
        ? { ...base, state: 'ERROR', message: this.lastError.message }
        : { ...base, state: 'NOT_READY', message: 'no certificate yet' };
    }
    const held = {
      ...base,
      serial: leaf.serialHex,
      notAfter: leaf.notAfter,
      renewAt: new Date(this.material.renewAt),
    };
    if (this.clock.now() >= leaf.notAfter.getTime()) {
      return {
        ...held,
        state: 'ERROR',
        message: `the certificate expired${this.lastError ? `: ${this.lastError.message}` : ''}`,
      };
    }
    const problem = this.lastError ?? this.bundleError;
    return problem ? { ...held, state: 'WARN', message: problem.message } : { ...held, state: 'OK' };
  }

  /** The current key, chain and bundle as one context (for `tls.connect({ secureContext })` or an SNICallback). */
  secureContext(): tls.SecureContext {
    return this.current().context;
  }

  /**
   * Options for a server or a client that presents this identity and requires a peer certificate
   * chaining to the bundle. With `allowedServers`, clients also check the server's SPIFFE ID during
   * the handshake; without it, any server holding a certificate under the bundle is accepted (the
   * default hostname check is replaced either way: SVIDs carry no DNS names).
   */
  tlsOptions(allowedServers?: SpiffeIdAllowList): WorkloadTlsOptions {
    const material = this.current();
    return {
      key: material.keyPem,
      cert: presentedChain(material.chain)
        .map((c) => c.pem)
        .join(''),
      ca: [...material.bundlePem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      checkServerIdentity:
        allowedServers === undefined ? () => undefined : spiffeServerIdentityCheck(allowedServers),
    };
  }

  /** PEM: key, chain (leaf first) and trust bundle, for callers that write them elsewhere. */
  pem(): { keyPem: string; chainPem: string[]; bundlePem: string[] } {
    const material = this.current();
    return {
      keyPem: material.keyPem,
      chainPem: material.chain.map((c) => c.pem),
      bundlePem: [...material.bundlePem],
    };
  }

  /** Obtains a new key and certificate now; concurrent calls share one attempt. Failures go to `status()`. */
  renewNow(): Promise<void> {
    this.renewal ??= this.renewOnce().finally(() => {
      this.renewal = undefined;
    });
    return this.renewal;
  }

  private current(): Material {
    const material = this.material;
    const leaf = material?.chain[0];
    if (material === undefined || leaf === undefined || this.clock.now() >= leaf.notAfter.getTime()) {
      throw new PkiError('workload_not_ready', `${this.spiffeId} has no valid certificate yet`);
    }
    return material;
  }

  private async renewOnce(): Promise<void> {
    try {
      const { privateKey } = await generateKeyPair(this.keyType);
      const ttlSeconds = this.options.ttlSeconds ?? 24 * 60 * 60;
      const chainPem = await this.options.request(createCsr(privateKey, this.spiffeId), ttlSeconds);
      const bundlePem = await this.options.trustBundle();
      const keyPem = String(privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const material = this.validate(privateKey, keyPem, chainPem, bundlePem);
      if (!this.running) return;
      await this.saveToDisk(material);
      this.failures = 0;
      this.lastError = undefined;
      this.bundleError = undefined;
      this.install(material, 'certificate');
      this.scheduleRenewal(material.renewAt);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.lastError = failure;
      this.failures++;
      this.emit('failed', failure);
      if (!this.running) return;
      const { initialMs = 1000, maxMs = 60_000 } = this.options.retry ?? {};
      const backoff = Math.min(maxMs, initialMs * 2 ** (this.failures - 1));
      this.scheduleRenewal(this.clock.now() + backoff * (0.8 + 0.4 * this.random()));
    }
  }

  /** The CA's answer must be for our key and ID, currently valid, and chain to the bundle. */
  private validate(
    privateKey: KeyObject,
    keyPem: string,
    chainPem: readonly string[],
    bundlePem: readonly string[],
  ): Material {
    const invalid = (why: string, cause?: unknown) =>
      new PkiError('workload_chain_invalid', `the CA returned an unusable chain: ${why}`, { cause });
    let chain: CertificateInfo[];
    let roots: CertificateInfo[];
    try {
      chain = chainPem.map((pem) => readCertificate(pem, 'workload_chain_invalid'));
      roots = bundlePem.map((pem) => readCertificate(pem, 'workload_chain_invalid'));
    } catch (error) {
      throw invalid('a certificate cannot be read', error);
    }
    const leaf = chain[0];
    if (leaf === undefined) throw invalid('it is empty');
    if (!leaf.x509.checkPrivateKey(privateKey)) throw invalid('the leaf is not for the key we sent');
    if (leaf.subjectAltNames.uris.length !== 1 || leaf.subjectAltNames.uris[0] !== this.spiffeId) {
      throw invalid(`the leaf is not for ${this.spiffeId}`);
    }
    const now = this.clock.now();
    if (leaf.notAfter.getTime() <= now) throw invalid('the leaf has already expired');
    for (let i = 1; i < chain.length; i++) {
      const child = chain[i - 1];
      const parent = chain[i];
      if (child === undefined || parent === undefined || !isIssuedBy(child, parent)) {
        throw invalid(`certificate ${i - 1} is not signed by certificate ${i}`);
      }
    }
    if (!chainsTo(chain, roots)) throw invalid('it does not chain to a root of the trust bundle');
    const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    const renewFraction = this.options.renewFraction ?? 0.5;
    const jitter = (this.options.jitterFraction ?? 0.1) * this.random();
    const renewAt = leaf.notBefore.getTime() + lifetime * Math.max(0, renewFraction - jitter);
    return {
      keyPem,
      chain,
      bundlePem: roots.map((r) => r.pem),
      context: secureContextOf(
        keyPem,
        chain,
        roots.map((r) => r.pem),
      ),
      renewAt,
    };
  }

  private install(material: Material, reason: RotatedEvent['reason']): void {
    this.material = material;
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
    const leaf = material.chain[0];
    if (leaf !== undefined) this.emit('rotated', { reason, serial: leaf.serialHex, notAfter: leaf.notAfter });
  }

  private scheduleRenewal(at: number): void {
    this.clock.clearTimer(this.renewTimer);
    if (!this.running) return;
    // setTimeout overflows above 2^31-1 ms (24.8 days) and fires at once; long waits are taken in steps.
    const delay = Math.max(0, Math.min(at - this.clock.now(), MAX_TIMER_MS));
    this.renewTimer = this.clock.setTimer(() => {
      if (this.clock.now() < at) this.scheduleRenewal(at);
      else void this.renewNow();
    }, delay);
  }

  private scheduleBundleRefresh(): void {
    this.clock.clearTimer(this.bundleTimer);
    if (!this.running) return;
    const intervalMs = (this.options.bundleRefreshSeconds ?? 300) * 1000;
    this.bundleTimer = this.clock.setTimer(() => {
      void this.refreshBundle().finally(() => this.scheduleBundleRefresh());
    }, intervalMs);
  }

  /** Picks up roots added or removed between renewals (a root rotation), without a new certificate. */
  private async refreshBundle(): Promise<void> {
    const material = this.material;
    if (material === undefined) return;
    try {
      const bundlePem = await this.options.trustBundle();
      const roots = bundlePem.map((pem) => readCertificate(pem, 'bundle_invalid'));
      const rootsPem = roots.map((root) => root.pem);
      if (rootsPem.join('') === material.bundlePem.join('') || this.material !== material || !this.running)
        return;
      const updated: Material = {
        ...material,
        bundlePem: rootsPem,
        context: secureContextOf(material.keyPem, material.chain, rootsPem),
      };
      await this.saveToDisk(updated);
      this.bundleError = undefined;
      this.install(updated, 'bundle');
      // Our own root left the bundle (a finished rotation we slept through): peers will reject us now.
      if (!chainsTo(material.chain, roots)) void this.renewNow();
    } catch (error) {
      this.bundleError = error instanceof Error ? error : new Error(String(error));
    }
  }

  private async loadFromDisk(): Promise<Material | undefined> {
    const { dir } = this.options;
    if (dir === undefined) return undefined;
    const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
    const [keyPem, chainText, bundleText] = await Promise.all([
      read(FILES.key),
      read(FILES.chain),
      read(FILES.bundle),
    ]);
    const key = crypto.createPrivateKey(keyPem);
    const split = (text: string) => decodePemCertificates(text).map((der) => encodePem(der, 'CERTIFICATE'));
    // A key of another type than configured means the configuration changed: get a new certificate.
    if ((key.asymmetricKeyType === 'ec') !== (this.keyType === 'ec-p256')) return undefined;
    return this.validate(key, keyPem, split(chainText), split(bundleText));
  }

  /** Each file is written to a temporary name and renamed, so a crash never leaves a half-written file. */
  private async saveToDisk(material: Material): Promise<void> {
    const { dir } = this.options;
    if (dir === undefined) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const write = async (name: string, content: string, mode: number) => {
      const target = path.join(dir, name);
      const temporary = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
      await fs.writeFile(temporary, content, { mode });
      await fs.chmod(temporary, mode);
      await fs.rename(temporary, target);
    };
    // The key goes first; a reader that sees a new key with an old chain rejects the pair on load (checkPrivateKey).
    await write(FILES.key, material.keyPem, 0o600);
    await write(FILES.chain, material.chain.map((c) => c.pem).join(''), 0o644);
    await write(FILES.bundle, material.bundlePem.join(''), 0o644);
  }
}

function chainsTo(chain: readonly CertificateInfo[], roots: readonly CertificateInfo[]): boolean {
  const top = chain[chain.length - 1];
  return top !== undefined && roots.some((root) => root.der.equals(top.der) || isIssuedBy(top, root));
}

/** The chain a peer needs from us: the leaf and intermediates, without the self-signed root it already trusts. */
function presentedChain(chain: readonly CertificateInfo[]): readonly CertificateInfo[] {
  const last = chain[chain.length - 1];
  return chain.length > 1 && last?.selfIssued ? chain.slice(0, -1) : chain;
}

function secureContextOf(
  keyPem: string,
  chain: readonly CertificateInfo[],
  bundlePem: readonly string[],
): tls.SecureContext {
  return tls.createSecureContext({
    key: keyPem,
    cert: presentedChain(chain)
      .map((c) => c.pem)
      .join(''),
    ca: [...bundlePem],
    minVersion: 'TLSv1.2',
  });
}
