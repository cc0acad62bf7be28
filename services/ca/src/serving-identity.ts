// The CA's own TLS identity on its gRPC port: a serving certificate from its authority, and the roots client certificates must chain to.
import net from 'node:net';
import { generateKeyPair, issueServingCertificate, type KeyPair } from '@portcullis/pki';
import { type Component, type ComponentStatus, grpc, type Logger } from '@portcullis/runtime';
import type { ActiveAuthority, CaAuthority } from './ca-authority.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface ServingIdentityOptions {
  readonly authority: CaAuthority;
  readonly secret: string;
  readonly trustDomain: string;
  /** DNS names and IP addresses for the certificate. */
  readonly hosts: readonly string[];
  readonly ttlSeconds: number;
  readonly logger: Logger;
}

/** The URI SAN of the CA's serving certificate, for clients that check the CA by SPIFFE ID. */
export function caSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/portcullis/sa/ca`;
}

/**
 * A grpc-js certificate provider: the server's credentials take their key, chain and client roots
 * from here and are swapped in place (`setSecureContext`) when the authority changes or the serving
 * certificate reaches half its lifetime. Client certificates are requested but not required, so
 * token callers connect without one; grpc-js reports a peer certificate to a handler only when the
 * handshake verified it against these roots.
 */
export class ServingIdentity implements grpc.experimental.CertificateProvider, Component {
  readonly name = 'serving-certificate';
  private readonly options: ServingIdentityOptions;
  private key: KeyPair | undefined;
  private ca: grpc.experimental.CaCertificateUpdate | undefined;
  private identity: grpc.experimental.IdentityCertificateUpdate | undefined;
  private notAfter = 0;
  private timer: NodeJS.Timeout | undefined;
  private problem: string | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly onChanged = (active: ActiveAuthority) => {
    void this.refresh(active);
  };

  constructor(options: ServingIdentityOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    this.key = await generateKeyPair('ec-p256');
    await this.refresh(this.options.authority.current());
    this.options.authority.on('changed', this.onChanged);
  }

  async stop(): Promise<void> {
    this.options.authority.off('changed', this.onChanged);
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  status(): ComponentStatus {
    if (this.identity === undefined) return { state: 'NOT_READY', message: 'no serving certificate yet' };
    if (Date.now() >= this.notAfter) return { state: 'ERROR', message: 'the serving certificate expired' };
    return this.problem === undefined ? { state: 'OK' } : { state: 'WARN', message: this.problem };
  }

  /** Credentials for `GrpcServer.bind`; they follow every later change. */
  credentials(): grpc.ServerCredentials {
    // One provider serves both roles; grpc-js's parameter names for the two are easy to swap, a shared object cannot be.
    return grpc.experimental.createCertificateProviderServerCredentials(this, this, false);
  }

  /** The current chain, leaf first (for tests and the status endpoint). */
  chainPem(): string[] {
    return this.identity === undefined ? [] : splitPem(this.identity.certificate.toString());
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.replay(() => this.caListeners.has(listener) && this.ca && listener(this.ca));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.replay(() => this.identityListeners.has(listener) && this.identity && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /**
   * The current value goes to a new listener on the next tick, not at once: grpc-js registers its
   * server's watcher only after adding the listeners, and an update before that would be lost.
   */
  private replay(deliver: () => unknown): void {
    queueMicrotask(() => {
      deliver();
    });
  }

  private async refresh(active: ActiveAuthority): Promise<void> {
    const key = this.key;
    if (key === undefined) return;
    try {
      const { hosts } = this.options;
      const serving = await issueServingCertificate(active.state, {
        secret: this.options.secret,
        publicKey: key.publicKey,
        uris: [caSpiffeId(this.options.trustDomain)],
        dnsNames: hosts.filter((host) => !isIp(host)),
        ipAddresses: hosts.filter(isIp),
        ttlSeconds: this.options.ttlSeconds,
      });
      // A newer authority may have been installed while this one was being signed.
      if (this.options.authority.current().version !== active.version) return;
      this.ca = { caCertificate: Buffer.from(active.bundlePem.join('')) };
      this.identity = {
        // The root goes too: a client may hold it only through an older bundle, and it costs one certificate.
        certificate: Buffer.from(serving.chainPem.join('')),
        privateKey: Buffer.from(String(key.privateKey.export({ format: 'pem', type: 'pkcs8' }))),
      };
      this.notAfter = serving.notAfter.getTime();
      this.problem = undefined;
      for (const listener of this.caListeners) listener(this.ca);
      for (const listener of this.identityListeners) listener(this.identity);
      this.scheduleRenewal();
    } catch (error) {
      this.problem = `serving certificate not renewed: ${error instanceof Error ? error.message : String(error)}`;
      this.options.logger.error({ err: error }, 'could not issue the CA serving certificate');
      this.timer = setTimeout(() => void this.refresh(this.options.authority.current()), 30_000);
      this.timer.unref();
    }
  }

  private scheduleRenewal(): void {
    clearTimeout(this.timer);
    const delay = Math.max(1000, Math.min((this.notAfter - Date.now()) / 2, 2 ** 31 - 1));
    this.timer = setTimeout(() => void this.refresh(this.options.authority.current()), delay);
    this.timer.unref();
  }
}

function isIp(host: string): boolean {
  return net.isIP(host) !== 0;
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
