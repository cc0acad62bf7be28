// Who is on the other end of a mutual-TLS connection: the SPIFFE ID of a peer certificate, and allow-list checks.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { type CertificateInfo, readCertificate } from './certificate-info.ts';
import { PkiError } from './pki-error.ts';
import { parseWorkloadSpiffeId, type WorkloadSpiffeId } from './spiffe-id.ts';

export interface PeerIdentityOptions {
  /** The peer's SPIFFE ID must be in this trust domain. */
  readonly trustDomain?: string;
  /**
   * CA certificates (PEM) one of which must have signed the peer certificate directly, for callers that
   * did not get it from a TLS handshake that already verified the chain. Validity is checked at `now`.
   */
  readonly issuersPem?: readonly string[];
  readonly now?: () => number;
}

/** A list of allowed SPIFFE IDs, or a predicate over the parsed ID. */
export type SpiffeIdAllowList = Iterable<string> | ((id: WorkloadSpiffeId) => boolean);

type PeerCertificateInput = PeerCertificate | X509Certificate | string | Uint8Array;

function certificateOf(input: PeerCertificateInput): CertificateInfo {
  if (input instanceof X509Certificate || typeof input === 'string' || input instanceof Uint8Array) {
    return readCertificate(input, 'peer_identity_invalid');
  }
  // node:tls hands an empty object, not undefined, when the peer sent no certificate.
  if (!(input.raw instanceof Uint8Array) || input.raw.length === 0) {
    throw new PkiError('peer_unauthenticated', 'the peer presented no certificate');
  }
  return readCertificate(input.raw, 'peer_identity_invalid');
}

/** The workload SPIFFE ID of a leaf certificate issued by this CA (exactly one URI SAN, not a CA). */
export function identityFromPeerCertificate(
  input: PeerCertificateInput,
  options: PeerIdentityOptions = {},
): WorkloadSpiffeId {
  const cert = certificateOf(input);
  if (options.issuersPem !== undefined) {
    const now = (options.now ?? Date.now)();
    const issued = options.issuersPem.some((pem) => {
      const issuer = readCertificate(pem, 'peer_identity_invalid');
      return cert.x509.checkIssued(issuer.x509) && cert.x509.verify(issuer.publicKey);
    });
    if (!issued) throw new PkiError('peer_unauthenticated', 'the peer certificate was not issued by this CA');
    if (cert.notBefore.getTime() > now || cert.notAfter.getTime() <= now) {
      throw new PkiError('peer_unauthenticated', 'the peer certificate is outside its validity period');
    }
  }
  if (cert.isCa)
    throw new PkiError('peer_identity_invalid', 'the peer certificate is a CA certificate, not a workload');
  const { uris, dnsNames, otherCount } = cert.subjectAltNames;
  const [uri] = uris;
  if (uris.length !== 1 || uri === undefined) {
    throw new PkiError(
      'peer_identity_invalid',
      `the peer certificate has ${uris.length} URI SANs; an SVID has exactly one`,
    );
  }
  if (dnsNames.length + otherCount > 0) {
    // An X.509-SVID may carry DNS SANs in general; ours never do, so a certificate with them is not ours.
    throw new PkiError('peer_identity_invalid', 'the peer certificate has SANs besides its SPIFFE ID');
  }
  const identity = parseWorkloadSpiffeId(uri, 'peer_identity_invalid');
  if (options.trustDomain !== undefined && identity.trustDomain !== options.trustDomain) {
    throw new PkiError(
      'peer_identity_invalid',
      `the peer belongs to trust domain "${identity.trustDomain}", not "${options.trustDomain}"`,
    );
  }
  return identity;
}

function isAllowed(identity: WorkloadSpiffeId, allowed: SpiffeIdAllowList): boolean {
  if (typeof allowed === 'function') return allowed(identity);
  for (const id of allowed) if (id === identity.spiffeId) return true;
  return false;
}

/**
 * For servers, after the handshake: the socket must be authorized (its chain verified against the trust
 * bundle given as `ca`) and the client's SPIFFE ID allowed. Returns the ID, or throws so the caller can
 * destroy the socket.
 */
export function verifyPeerSpiffeId(socket: TLSSocket, allowed: SpiffeIdAllowList): WorkloadSpiffeId {
  if (!socket.authorized) {
    throw new PkiError(
      'peer_unauthenticated',
      `the peer was not authorized by the TLS handshake${socket.authorizationError ? `: ${String(socket.authorizationError)}` : ''}`,
    );
  }
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) throw new PkiError('peer_unauthenticated', 'the peer presented no certificate');
  const identity = identityFromPeerCertificate(peer);
  if (!isAllowed(identity, allowed)) {
    throw new PkiError('peer_not_allowed', `the peer ${identity.spiffeId} is not allowed here`);
  }
  return identity;
}

/**
 * A `checkServerIdentity` for `tls.connect`: SVIDs have no DNS names, so the default hostname check
 * cannot apply; this checks the server's SPIFFE ID instead and fails the handshake when it is not allowed.
 */
export function spiffeServerIdentityCheck(
  allowed: SpiffeIdAllowList,
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    try {
      const identity = identityFromPeerCertificate(cert);
      if (!isAllowed(identity, allowed)) {
        return new PkiError('peer_not_allowed', `the server ${identity.spiffeId} is not allowed here`);
      }
      return undefined;
    } catch (error) {
      return error instanceof Error
        ? error
        : new PkiError('peer_identity_invalid', 'the server certificate is unreadable');
    }
  };
}
