// Who is asking for a certificate: a client certificate of this CA (renewal) or a bootstrap token, and why a request is refused.
import { readFile } from 'node:fs/promises';
import type { PeerCertificate } from 'node:tls';
import {
  type CallerIdentity,
  createTokenVerifier,
  identityFromPeerCertificate,
  isPkiError,
  PkiError,
  type PkiErrorKind,
  type WorkloadSpiffeId,
} from '@portcullis/pki';
import { ConfigError, type ErrorCode, PortcullisError } from '@portcullis/runtime';
import { createRemoteJWKSet, type JSONWebKeySet } from 'jose';
import type { CaConfig } from './config.ts';

export interface AuthenticatedCaller extends CallerIdentity {
  readonly method: 'token' | 'mtls';
  /** For records: `token:<ns>/<sa>` or `mtls:<spiffe id>`. */
  readonly label: string;
}

export interface CallCredentials {
  /** The `authorization` metadata value, if any. */
  readonly authorization?: string | undefined;
  /** The client certificate, present only when the TLS handshake verified it against the bundle. */
  readonly peerCertificate?: PeerCertificate | undefined;
}

export type TokenVerifier = (token: string) => Promise<CallerIdentity>;

/**
 * A refused request: the stable reason (a `@portcullis/pki` code, or `no_credentials`) for metrics
 * and the audit trail, and the error the caller gets.
 */
export class Refusal extends Error {
  constructor(
    readonly reason: string,
    readonly error: PortcullisError,
  ) {
    super(error.message);
  }
}

const BY_KIND: Record<PkiErrorKind, ErrorCode> = {
  invalid_argument: 'validation_failed',
  unauthenticated: 'unauthenticated',
  permission_denied: 'forbidden',
  // CA-side state (an expired CA certificate, a key that does not decrypt): not the caller's fault.
  failed_precondition: 'internal',
  unavailable: 'unavailable',
  internal: 'internal',
};

/**
 * Maps a failure of authentication or issuance to a Refusal. The message names the problem and
 * ends with the reason code in brackets, since a gRPC status carries no details; it never echoes
 * the token or the key.
 */
export function refusalOf(error: unknown, field?: string): Refusal | undefined {
  if (error instanceof Refusal) return error;
  if (!isPkiError(error)) return undefined;
  const code = BY_KIND[error.kind];
  if (code === 'internal') return undefined;
  return new Refusal(
    error.code,
    new PortcullisError(code, `${error.message} [${error.code}]`, {
      details: [{ ...(field ? { field } : {}), reason: error.code, message: error.message }],
      cause: error,
    }),
  );
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** Client certificates seen recently: a renewing workload's certificate is parsed once, not per call. */
const PEER_CACHE_ENTRIES = 4096;
/** Verified bootstrap tokens remembered, and for how long at most (see `createTokenVerifier`). */
const TOKEN_CACHE = { entries: 10_000, maxAgeSeconds: 60 };

/**
 * Contract: a verified client certificate wins over a token (Istio's order: client certificate, then
 * JWT), so a workload renewing over mutual TLS needs no token; without either, `no_credentials`.
 */
export class CallerAuthenticator {
  private readonly peers = new Map<string, { id: WorkloadSpiffeId; notAfter: number }>();

  constructor(
    private readonly trustDomain: string,
    private readonly verifyToken: TokenVerifier | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(credentials: CallCredentials): Promise<AuthenticatedCaller> {
    try {
      if (credentials.peerCertificate !== undefined) {
        const id = this.peerIdentity(credentials.peerCertificate);
        return {
          method: 'mtls',
          namespace: id.namespace,
          serviceAccount: id.serviceAccount,
          label: `mtls:${id.spiffeId}`,
        };
      }
      if (credentials.authorization !== undefined) return await this.fromToken(credentials.authorization);
    } catch (error) {
      const refusal = refusalOf(error, credentials.peerCertificate ? 'peer certificate' : 'authorization');
      if (refusal) throw refusal;
      throw error;
    }
    throw new Refusal(
      'no_credentials',
      new PortcullisError(
        'unauthenticated',
        'no credentials: send a bootstrap token as `authorization: Bearer <token>`, or a client certificate of this CA [no_credentials]',
        { details: [{ reason: 'no_credentials' }] },
      ),
    );
  }

  /**
   * The handshake verified the chain and validity when the connection opened; a connection can
   * outlive its client certificate, so expiry is checked again on every call.
   */
  private peerIdentity(peer: PeerCertificate): WorkloadSpiffeId {
    const fingerprint = typeof peer.fingerprint256 === 'string' ? peer.fingerprint256 : '';
    let known = this.peers.get(fingerprint);
    if (known === undefined) {
      known = {
        id: identityFromPeerCertificate(peer, { trustDomain: this.trustDomain }),
        notAfter: Date.parse(peer.valid_to),
      };
      if (this.peers.size >= PEER_CACHE_ENTRIES) this.peers.delete(this.peers.keys().next().value as string);
      if (fingerprint !== '') this.peers.set(fingerprint, known);
    }
    if (!(this.now() < known.notAfter)) {
      throw new PkiError('peer_unauthenticated', 'the client certificate has expired');
    }
    return known.id;
  }

  private async fromToken(header: string): Promise<AuthenticatedCaller> {
    const match = BEARER.exec(header);
    if (match?.[1] === undefined) {
      throw new Refusal(
        'token_invalid',
        new PortcullisError(
          'unauthenticated',
          'the authorization metadata must be `Bearer <token>` [token_invalid]',
          {
            details: [{ field: 'authorization', reason: 'token_invalid' }],
          },
        ),
      );
    }
    if (this.verifyToken === undefined) {
      throw new Refusal(
        'token_not_accepted',
        new PortcullisError(
          'unauthenticated',
          'this CA accepts no bootstrap tokens (no CA_BOOTSTRAP_JWKS_FILE or CA_BOOTSTRAP_JWKS_URL); renew over mutual TLS [token_not_accepted]',
          { details: [{ field: 'authorization', reason: 'token_not_accepted' }] },
        ),
      );
    }
    const caller = await this.verifyToken(match[1]);
    return { method: 'token', ...caller, label: `token:${caller.namespace}/${caller.serviceAccount}` };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The bootstrap-token verifier the configuration asks for, or undefined when tokens are not accepted. */
export async function bootstrapTokenVerifier(config: CaConfig): Promise<TokenVerifier | undefined> {
  const common = {
    issuer: config.CA_BOOTSTRAP_ISSUER,
    audience: config.CA_BOOTSTRAP_AUDIENCE,
    cache: TOKEN_CACHE,
  };
  if (config.CA_BOOTSTRAP_JWKS_URL !== undefined) {
    return createTokenVerifier({
      ...common,
      keys: createRemoteJWKSet(new URL(config.CA_BOOTSTRAP_JWKS_URL)),
    });
  }
  if (config.CA_BOOTSTRAP_JWKS_FILE === undefined) return undefined;
  const file = config.CA_BOOTSTRAP_JWKS_FILE;
  let jwks: unknown;
  try {
    jwks = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(
      'CA_BOOTSTRAP_JWKS_FILE',
      `${file} is not a readable JSON file: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) {
    throw new ConfigError('CA_BOOTSTRAP_JWKS_FILE', `${file} is not a JWKS ({"keys": [...]})`);
  }
  return createTokenVerifier({ ...common, keys: jwks as unknown as JSONWebKeySet });
}
