// The CA's gRPC client (Istio CSR API and trust bundle), and a WorkloadIdentity wired to it: the one transport of this package.
import tls from 'node:tls';
import { grpc, loadProtos, PortcullisError, serviceClient, unary } from '@portcullis/runtime';
import type { WorkloadIdentityName } from './spiffe-id.ts';
import { parseTrustBundlePem } from './trust-bundle.ts';
import { WorkloadIdentity, type WorkloadIdentityOptions } from './workload-identity.ts';

/** Our copies of the contracts, under the repository's proto/ folder. */
export const CA_PROTOS = ['istio/v1/auth/ca.proto', 'portcullis/ca/v1/trust.proto'];
export const CERTIFICATE_SERVICE = 'istio.v1.auth.IstioCertificateService';
export const TRUST_BUNDLE_SERVICE = 'portcullis.ca.v1.TrustBundle';
export const DEFAULT_CA_ADDRESS = '127.0.0.1:15012';

export interface CaClientOptions {
  /** `host:port` of the CA's gRPC port. */
  readonly address: string;
  /**
   * PEM roots that the CA's serving certificate must chain to, read before each call (they change
   * with a rotation). `undefined` talks plaintext, for a CA started with CA_GRPC_TLS=false.
   */
  readonly trustBundle?: () => readonly string[];
  /** A bootstrap token, sent as `authorization: Bearer …` (what Istio agents send). */
  readonly token?: () => string | undefined | Promise<string | undefined>;
  /** The client certificate for mutual TLS (a renewal needs no token), read before each call. */
  readonly clientCertificate?: () => { keyPem: string; chainPem: readonly string[] } | undefined;
  /**
   * Also accept a CA serving certificate that carries this SPIFFE ID, whatever host name was dialled
   * (the CA's certificate names `localhost` and loopback addresses by default).
   */
  readonly serverSpiffeId?: string;
  /** Per-call deadline; default 10 s. */
  readonly deadlineMs?: number;
}

export interface TrustBundleAnswer {
  readonly trustDomain: string;
  readonly roots: string[];
  readonly sequence: number;
  readonly refreshHintSeconds: number;
}

interface TrustBundleMessage {
  trust_domain: string;
  roots: string[];
  sequence: string;
  refresh_hint_seconds: number;
}

let protos: grpc.GrpcObject | undefined;
function caProtos(): grpc.GrpcObject {
  protos ??= loadProtos(CA_PROTOS);
  return protos;
}

/**
 * Talks to the CA. Channel credentials are fixed per channel, so a channel is kept per
 * (bundle, client certificate) and replaced when either changes: after a renewal the next call
 * authenticates with the new certificate. Safe to use concurrently.
 */
export class CaClient {
  private readonly options: CaClientOptions;
  private channel: { key: string; certificates: grpc.Client; trust: grpc.Client } | undefined;

  constructor(options: CaClientOptions) {
    this.options = options;
  }

  /** Sends a CSR; resolves to the chain, leaf first and root last. */
  async createCertificate(csrPem: string, ttlSeconds = 0): Promise<string[]> {
    const metadata = new grpc.Metadata();
    const token = await this.options.token?.();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    const response = await unary<{ csr: string; validity_duration: string }, { cert_chain: string[] }>(
      this.clients().certificates,
      'CreateCertificate',
      { csr: csrPem, validity_duration: String(ttlSeconds) },
      { metadata, deadlineMs: this.options.deadlineMs ?? 10_000 },
    );
    if (response.cert_chain.length === 0) {
      throw new PortcullisError('internal', 'the CA answered with an empty certificate chain');
    }
    return response.cert_chain;
  }

  async trustBundle(): Promise<TrustBundleAnswer> {
    const answer = await unary<Record<string, never>, TrustBundleMessage>(
      this.clients().trust,
      'GetTrustBundle',
      {},
      { deadlineMs: this.options.deadlineMs ?? 10_000 },
    );
    return {
      trustDomain: answer.trust_domain,
      roots: parseTrustBundlePem(answer.roots.join('')),
      sequence: Number(answer.sequence),
      refreshHintSeconds: answer.refresh_hint_seconds,
    };
  }

  close(): void {
    this.channel?.certificates.close();
    this.channel?.trust.close();
    this.channel = undefined;
  }

  private clients(): { certificates: grpc.Client; trust: grpc.Client } {
    const bundle = this.options.trustBundle?.();
    const identity = bundle === undefined ? undefined : this.options.clientCertificate?.();
    const key = JSON.stringify([bundle ?? null, identity?.chainPem[0] ?? null]);
    if (this.channel?.key === key) return this.channel;
    this.close();
    const credentials =
      bundle === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(
            Buffer.from(bundle.join('')),
            identity ? Buffer.from(identity.keyPem) : null,
            identity ? Buffer.from(identity.chainPem.join('')) : null,
            { checkServerIdentity: this.checkServer() },
          );
    const pkg = caProtos();
    const options = channelOptions(this.options.address, bundle !== undefined);
    const certificates = new (serviceClient(pkg, CERTIFICATE_SERVICE))(
      this.options.address,
      credentials,
      options,
    );
    // The two services share one connection: grpc-js pools channels with equal targets and options.
    const trust = new (serviceClient(pkg, TRUST_BUNDLE_SERVICE))(this.options.address, credentials, options);
    this.channel = { key, certificates, trust };
    return this.channel;
  }

  private checkServer(): (host: string, cert: tls.PeerCertificate) => Error | undefined {
    const expected = this.options.serverSpiffeId;
    return (host, cert) => {
      if (expected !== undefined && subjectAltUris(cert).includes(expected)) return undefined;
      return tls.checkServerIdentity(host, cert);
    };
  }
}

/**
 * TLS forbids an IP address as the server name (SNI), and Node warns when grpc-js sends one: a
 * loopback address is dialled under the name `localhost` instead, which the CA's certificate carries.
 */
function channelOptions(address: string, secure: boolean): grpc.ChannelOptions {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const loopback = /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1';
  return secure && loopback ? { 'grpc.ssl_target_name_override': 'localhost' } : {};
}

function subjectAltUris(cert: tls.PeerCertificate): string[] {
  return (cert.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice('URI:'.length));
}

/**
 * Reads the trust bundle from the CA's HTTP port (`GET /v1/trust-bundle`). This is how a workload
 * learns its first roots on a one-machine stack; in a cluster they come with the deployment (as
 * Istio's `istio-ca-root-cert` ConfigMap does), since an unauthenticated fetch is trust on first use.
 */
export async function fetchTrustBundle(baseUrl: string, fetchImpl: typeof fetch = fetch): Promise<string[]> {
  const response = await fetchImpl(new URL('/v1/trust-bundle', baseUrl), {
    headers: { accept: 'application/x-pem-file' },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new PortcullisError('unavailable', `GET ${baseUrl}/v1/trust-bundle answered ${response.status}`);
  }
  return parseTrustBundlePem(text);
}

type WorkloadSettings = Omit<
  Extract<WorkloadIdentityOptions, { readonly spiffeId: string }>,
  'spiffeId' | 'request' | 'trustBundle'
>;

export type CaWorkloadIdentityOptions = ({ readonly spiffeId: string } | WorkloadIdentityName) &
  WorkloadSettings & {
    readonly ca: Omit<CaClientOptions, 'trustBundle' | 'clientCertificate'> & {
      /** Roots to trust the CA with until the identity holds a bundle of its own; omit for plaintext. */
      readonly initialBundle?: readonly string[];
    };
  };

/**
 * A WorkloadIdentity that obtains its certificates from the CA: the first one with the token, each
 * renewal over mutual TLS with the certificate it still holds (the token is sent too when there is
 * one, and the CA prefers the certificate). The trust bundle is refreshed over the same channel.
 */
export function caWorkloadIdentity(options: CaWorkloadIdentityOptions): {
  identity: WorkloadIdentity;
  client: CaClient;
} {
  const { ca, ...rest } = options;
  const { initialBundle, ...clientOptions } = ca;
  let identity: WorkloadIdentity | undefined;
  const held = () => {
    try {
      return identity?.pem();
    } catch {
      // No valid certificate (yet, or any more): fall back to the token and the initial bundle.
      return undefined;
    }
  };
  const client = new CaClient({
    ...clientOptions,
    ...(initialBundle === undefined ? {} : { trustBundle: () => held()?.bundlePem ?? initialBundle }),
    clientCertificate: held,
  });
  identity = new WorkloadIdentity({
    ...rest,
    request: (csrPem, ttlSeconds) => client.createCertificate(csrPem, ttlSeconds),
    trustBundle: async () => (await client.trustBundle()).roots,
  } as WorkloadIdentityOptions);
  return { identity, client };
}
