// Signing X.509-SVIDs (SPIFFE X.509-SVID spec) from validated CSRs with a CA key held as a KeyObject.
import type { KeyObject } from 'node:crypto';
import { type Asn1Node, der, encode } from './asn1.ts';
import { type CertificateInfo, isIssuedBy, keyIdentifier, readCertificate } from './certificate-info.ts';
import { DEFAULT_MAX_CSR_BYTES, validateCsr } from './csr.ts';
import {
  createSigner,
  describeKeyShape,
  type KeyType,
  keyShape,
  keyTypeOf,
  type Signer,
  spkiDer,
} from './key-algorithms.ts';
import { OID } from './oids.ts';
import { encodePem } from './pem.ts';
import { PkiError } from './pki-error.ts';
import { assertTrustDomain, parseWorkloadSpiffeId } from './spiffe-id.ts';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  buildTbsCertificate,
  extendedKeyUsageExtension,
  keyUsageExtension,
  randomSerial,
  signCertificate,
  subjectKeyIdentifierExtension,
  uriSubjectAltNameExtension,
  wholeSeconds,
} from './x509-builder.ts';

export const DEFAULT_TTL_SECONDS = 24 * 60 * 60;
export const DEFAULT_MAX_TTL_SECONDS = 90 * 24 * 60 * 60;
/** NotBefore is set this far in the past so peers with a slightly slow clock accept a fresh certificate. */
export const BACKDATE_SECONDS = 120;

export interface IssuerOptions {
  /** PEM certificates: the signing CA first, then its issuers, the self-signed root last (a root alone is fine). */
  readonly caChainPem: readonly string[];
  /** The signing CA's private key (RSA-2048+ or P-256). */
  readonly signingKey: KeyObject;
  readonly trustDomain: string;
  readonly defaultTtlSeconds?: number;
  readonly maxTtlSeconds?: number;
  readonly maxCsrBytes?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now?: () => number;
}

export interface IssueRequest {
  /** PEM, base64 DER or DER bytes. */
  readonly csr: string | Uint8Array;
  readonly ttlSeconds?: number;
  /** The authenticated caller; when given, the CSR's SPIFFE ID must name this namespace and service account. */
  readonly caller?: { readonly namespace: string; readonly serviceAccount: string };
}

export interface IssuedCertificate {
  readonly certPem: string;
  /** Leaf first, root last. */
  readonly chainPem: string[];
  /** Upper-case hex, as OpenSSL prints it. */
  readonly serial: string;
  readonly spiffeId: string;
  /** The certified key's type. */
  readonly keyType: KeyType;
  readonly notBefore: Date;
  /** now + ttl, or the signing CA's own notAfter when that comes first. */
  readonly notAfter: Date;
}

/**
 * Signs leaf X.509-SVIDs. Everything that does not depend on the request (the CA name, key, algorithm,
 * AKI and the constant extensions) is encoded once here, so an issuance is one CSR verification,
 * a small DER build and one signature. Instances are immutable; `issue` is synchronous and re-entrant.
 */
export class Issuer {
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly maxCsrBytes: number;
  /** The CA chain, signing CA first, root last (a leaf's chain is the leaf followed by this). */
  readonly caChainPem: readonly string[];
  readonly signingCertificate: CertificateInfo;
  readonly rootCertificate: CertificateInfo;

  private readonly signer: Signer;
  private readonly signingKey: KeyObject;
  private readonly now: () => number;
  private readonly notAfterLimit: number;
  private readonly fixed: {
    readonly signatureAlgorithm: Asn1Node;
    readonly issuer: Asn1Node;
    readonly subject: Asn1Node;
    readonly basicConstraints: Asn1Node;
    readonly keyUsageEc: Asn1Node;
    readonly keyUsageRsa: Asn1Node;
    readonly extendedKeyUsage: Asn1Node;
    readonly authorityKeyId: Asn1Node;
  };

  constructor(options: IssuerOptions) {
    this.trustDomain = assertTrustDomain(options.trustDomain);
    this.now = options.now ?? Date.now;
    this.maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    // An explicit default above the maximum is a configuration error; the built-in one yields to a lower maximum.
    this.defaultTtlSeconds = options.defaultTtlSeconds ?? Math.min(DEFAULT_TTL_SECONDS, this.maxTtlSeconds);
    this.maxCsrBytes = options.maxCsrBytes ?? DEFAULT_MAX_CSR_BYTES;
    if (!(Number.isInteger(this.maxTtlSeconds) && this.maxTtlSeconds > 0)) {
      throw new PkiError('ttl_invalid', 'maxTtlSeconds must be a positive whole number of seconds');
    }
    this.checkTtl(this.defaultTtlSeconds);

    const chain = options.caChainPem.map((pem) => readCertificate(pem, 'ca_certificate_invalid'));
    const signing = chain[0];
    const root = chain[chain.length - 1];
    if (signing === undefined || root === undefined) {
      throw new PkiError('ca_chain_invalid', 'the CA chain is empty');
    }
    checkSigningCertificate(signing, this.now());
    chain.forEach((cert, i) => {
      const parent = chain[i + 1] ?? cert;
      if (!isIssuedBy(cert, parent)) {
        throw new PkiError(
          'ca_chain_invalid',
          i === chain.length - 1
            ? 'the last certificate of the CA chain is not a self-signed root'
            : `CA chain certificate ${i} is not signed by certificate ${i + 1}`,
        );
      }
    });
    const signer = keyTypeOf(options.signingKey) === undefined ? undefined : createSigner(options.signingKey);
    if (signer === undefined || !signing.x509.checkPrivateKey(options.signingKey)) {
      throw new PkiError(
        'ca_key_invalid',
        signer === undefined
          ? `the CA key (${describeKeyShape(keyShape(options.signingKey))}) is not an RSA-2048/3072/4096 or P-256 private key`
          : 'the CA key does not match the signing certificate',
      );
    }
    this.signer = signer;
    this.signingKey = options.signingKey;
    this.signingCertificate = signing;
    this.rootCertificate = root;
    this.caChainPem = Object.freeze(chain.map((cert) => cert.pem));
    this.notAfterLimit = Math.min(...chain.map((cert) => cert.notAfter.getTime()));
    this.fixed = {
      signatureAlgorithm: der.preEncoded(signer.algorithmIdentifierDer),
      issuer: der.preEncoded(signing.subjectDer),
      subject: der.preEncoded(encode(der.seq([]))),
      basicConstraints: der.preEncoded(encode(basicConstraintsExtension(false))),
      keyUsageEc: der.preEncoded(encode(keyUsageExtension(['digitalSignature']))),
      // RSA key transport (TLS 1.2 RSA key exchange) needs keyEncipherment; the SVID spec permits it.
      keyUsageRsa: der.preEncoded(encode(keyUsageExtension(['digitalSignature', 'keyEncipherment']))),
      extendedKeyUsage: der.preEncoded(encode(extendedKeyUsageExtension([OID.serverAuth, OID.clientAuth]))),
      authorityKeyId: der.preEncoded(
        encode(authorityKeyIdentifierExtension(signing.subjectKeyId ?? keyIdentifier(signing.spkiDer))),
      ),
    };
  }

  /**
   * What rebuilds this issuer in another thread (a KeyObject survives structured cloning; a clock
   * function would not, so the copy reads the system clock).
   */
  portableOptions(): IssuerOptions {
    return {
      caChainPem: this.caChainPem,
      signingKey: this.signingKey,
      trustDomain: this.trustDomain,
      defaultTtlSeconds: this.defaultTtlSeconds,
      maxTtlSeconds: this.maxTtlSeconds,
      maxCsrBytes: this.maxCsrBytes,
    };
  }

  /** Validates the CSR (see `validateCsr`), the TTL and the caller, then signs. Throws PkiError. */
  issue(request: IssueRequest): IssuedCertificate {
    const ttlSeconds = request.ttlSeconds ?? this.defaultTtlSeconds;
    this.checkTtl(ttlSeconds);
    const csr = validateCsr(request.csr, { maxBytes: this.maxCsrBytes, trustDomain: this.trustDomain });
    const { caller } = request;
    if (
      caller !== undefined &&
      (csr.identity.namespace !== caller.namespace || csr.identity.serviceAccount !== caller.serviceAccount)
    ) {
      throw new PkiError(
        'identity_mismatch',
        `the CSR asks for ${csr.identity.spiffeId} but the caller is namespace "${caller.namespace}", service account "${caller.serviceAccount}"`,
      );
    }
    return this.sign(csr.spkiDer, csr.keyType, csr.identity.spiffeId, ttlSeconds);
  }

  /** Issues for a public key without a CSR (the caller vouches for possession); same key and ID policy. */
  issueForPublicKey(
    publicKey: KeyObject,
    spiffeId: string,
    ttlSeconds = this.defaultTtlSeconds,
  ): IssuedCertificate {
    this.checkTtl(ttlSeconds);
    const identity = parseWorkloadSpiffeId(spiffeId, 'csr_bad_san');
    if (identity.trustDomain !== this.trustDomain) {
      throw new PkiError('csr_bad_san', `${spiffeId} is not in trust domain "${this.trustDomain}"`);
    }
    const keyType = keyTypeOf(publicKey);
    if (keyType === undefined) {
      throw new PkiError(
        'csr_unsupported_key',
        `a ${describeKeyShape(keyShape(publicKey))} key is not accepted`,
      );
    }
    return this.sign(spkiDer(publicKey), keyType, identity.spiffeId, ttlSeconds);
  }

  private checkTtl(ttlSeconds: number): void {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new PkiError('ttl_invalid', 'the TTL must be a positive whole number of seconds');
    }
    if (ttlSeconds > this.maxTtlSeconds) {
      throw new PkiError(
        'ttl_too_long',
        `a TTL of ${ttlSeconds}s is above the maximum of ${this.maxTtlSeconds}s`,
      );
    }
  }

  private sign(spki: Buffer, keyType: KeyType, spiffeId: string, ttlSeconds: number): IssuedCertificate {
    const rsa = keyType !== 'ec-p256';
    const now = this.now();
    if (now >= this.notAfterLimit) {
      throw new PkiError('ca_certificate_invalid', 'a certificate of the CA chain has expired');
    }
    const serial = randomSerial();
    const notBefore = wholeSeconds(now - BACKDATE_SECONDS * 1000);
    const notAfter = wholeSeconds(Math.min(now + ttlSeconds * 1000, this.notAfterLimit));
    const f = this.fixed;
    const tbs = buildTbsCertificate({
      serial,
      signatureAlgorithm: f.signatureAlgorithm,
      issuer: f.issuer,
      notBefore,
      notAfter,
      subject: f.subject,
      subjectPublicKeyInfo: der.preEncoded(spki),
      extensions: [
        f.basicConstraints,
        rsa ? f.keyUsageRsa : f.keyUsageEc,
        f.extendedKeyUsage,
        subjectKeyIdentifierExtension(keyIdentifier(spki)),
        f.authorityKeyId,
        // The subject is empty, so the SAN must be critical (RFC 5280 §4.2.1.6); Istio does the same.
        uriSubjectAltNameExtension([spiffeId], true),
      ],
    });
    const certPem = encodePem(signCertificate(tbs, this.signer), 'CERTIFICATE');
    return {
      certPem,
      chainPem: [certPem, ...this.caChainPem],
      serial: serial.toString('hex').toUpperCase(),
      spiffeId,
      keyType,
      notBefore,
      notAfter,
    };
  }
}

/** A certificate may sign leaves if it is a CA, allows keyCertSign and is currently valid. */
export function checkSigningCertificate(cert: CertificateInfo, now: number): void {
  if (!cert.isCa)
    throw new PkiError('ca_certificate_invalid', 'the signing certificate is not a CA (basicConstraints cA)');
  if (cert.keyUsage !== undefined && !cert.keyUsage.has('keyCertSign')) {
    throw new PkiError('ca_certificate_invalid', 'the signing certificate does not allow keyCertSign');
  }
  if (cert.notAfter.getTime() <= now || cert.notBefore.getTime() > now) {
    throw new PkiError('ca_certificate_invalid', 'the signing certificate is not within its validity period');
  }
}
