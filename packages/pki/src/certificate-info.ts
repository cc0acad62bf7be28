// Reading X.509 certificates: the fields this package relies on, with the exact DER of names and keys.
import crypto, { type KeyObject, X509Certificate } from 'node:crypto';
import {
  type Asn1Node,
  Asn1ShapeError,
  Asn1Type,
  bitStringOf,
  booleanOf,
  childrenOf,
  decode,
  integerBytes,
  isContextTag,
  isUniversalType,
  octetsOf,
  oidOf,
  primitiveBytes,
  rawChildren,
  sequenceOf,
  timeOf,
} from './asn1.ts';
import { OID } from './oids.ts';
import { decodePemCertificates, encodePem } from './pem.ts';
import { PkiError, type PkiErrorCode } from './pki-error.ts';

export const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsage = (typeof KEY_USAGE_BITS)[number];

export interface SubjectAltNames {
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** rfc822Name, iPAddress, otherName, directoryName…: SVIDs carry none of them. */
  readonly otherCount: number;
}

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Buffer;
}

export interface CertificateInfo {
  readonly der: Buffer;
  readonly pem: string;
  readonly x509: X509Certificate;
  readonly publicKey: KeyObject;
  /** Upper-case hex without leading zero octets, as OpenSSL prints it. */
  readonly serialHex: string;
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly spkiDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly CertificateExtension[];
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  /** Undefined when the certificate has no keyUsage extension (then every usage is allowed). */
  readonly keyUsage: ReadonlySet<KeyUsage> | undefined;
  readonly extendedKeyUsage: readonly string[] | undefined;
  readonly subjectAltNames: SubjectAltNames;
  readonly subjectKeyId: Buffer | undefined;
  readonly authorityKeyId: Buffer | undefined;
  readonly selfIssued: boolean;
}

function parseKeyUsage(value: Buffer): Set<KeyUsage> {
  const { bytes } = bitStringOf(decode(value), 'keyUsage');
  const usages = new Set<KeyUsage>();
  KEY_USAGE_BITS.forEach((name, bit) => {
    if (((bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) usages.add(name);
  });
  return usages;
}

function parseSubjectAltNames(value: Buffer): SubjectAltNames {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  let otherCount = 0;
  for (const name of sequenceOf(decode(value), 'subjectAltName')) {
    if (isContextTag(name, 6) && !name.constructed)
      uris.push(primitiveBytes(name, 'URI SAN').toString('latin1'));
    else if (isContextTag(name, 2) && !name.constructed) {
      dnsNames.push(primitiveBytes(name, 'DNS SAN').toString('latin1'));
    } else otherCount++;
  }
  return { uris, dnsNames, otherCount };
}

function parseBasicConstraints(value: Buffer): { isCa: boolean; pathLength: number | undefined } {
  const [first, second] = sequenceOf(decode(value), 'basicConstraints');
  const isCa = isUniversalType(first, Asn1Type.BOOLEAN) ? booleanOf(first, 'cA') : false;
  const lengthNode = isUniversalType(first, Asn1Type.INTEGER) ? first : second;
  const lengthBytes = lengthNode === undefined ? undefined : integerBytes(lengthNode, 'pathLen');
  const pathLength =
    lengthBytes === undefined ? undefined : lengthBytes.readUIntBE(0, Math.min(lengthBytes.length, 6));
  return { isCa, pathLength };
}

function parseExtensions(node: Asn1Node | undefined): CertificateExtension[] {
  if (node === undefined) return [];
  const [list] = childrenOf(node, 'extensions');
  return sequenceOf(list, 'extensions').map((ext) => {
    const parts = sequenceOf(ext, 'extension');
    const critical = parts.length === 3 ? booleanOf(parts[1], 'extension critical') : false;
    return {
      oid: oidOf(parts[0], 'extension id'),
      critical,
      value: octetsOf(parts[parts.length - 1], 'extension value'),
    };
  });
}

/** A certificate from PEM (the first block), DER bytes or an X509Certificate; failures are PkiError(`code`). */
export function readCertificate(
  input: string | Uint8Array | X509Certificate,
  code: PkiErrorCode,
): CertificateInfo {
  try {
    let derBytes: Buffer;
    if (input instanceof X509Certificate) derBytes = input.raw;
    else if (typeof input === 'string') {
      const [first] = decodePemCertificates(input);
      if (first === undefined) throw new Error('no CERTIFICATE PEM block');
      derBytes = first;
    } else derBytes = Buffer.from(input);
    const x509 = input instanceof X509Certificate ? input : new X509Certificate(derBytes);
    const [tbsRaw] = rawChildren(derBytes);
    if (tbsRaw === undefined) throw new Asn1ShapeError('no TBSCertificate');
    const tbsRawFields = rawChildren(tbsRaw);
    const tbs = sequenceOf(decode(tbsRaw), 'TBSCertificate');
    // The optional [0] version shifts every later field by one.
    const base = isContextTag(tbs[0], 0) ? 1 : 0;
    const field = (i: number): Buffer => {
      const raw = tbsRawFields[base + i];
      if (raw === undefined) throw new Asn1ShapeError('TBSCertificate is too short');
      return raw;
    };
    const validity = sequenceOf(tbs[base + 3], 'validity');
    const extensions = parseExtensions(tbs.slice(base + 6).find((n) => isContextTag(n, 3)));
    const ext = (oid: string) => extensions.find((e) => e.oid === oid);
    const basic = ext(OID.basicConstraints);
    const { isCa, pathLength } = basic
      ? parseBasicConstraints(basic.value)
      : { isCa: false, pathLength: undefined };
    const keyUsage = ext(OID.keyUsage);
    const eku = ext(OID.extKeyUsage);
    const san = ext(OID.subjectAltName);
    const ski = ext(OID.subjectKeyIdentifier);
    const aki = ext(OID.authorityKeyIdentifier);
    const akiKeyId = aki
      ? sequenceOf(decode(aki.value), 'authorityKeyIdentifier').find((n) => isContextTag(n, 0))
      : undefined;
    const subjectDer = field(4);
    const issuerDer = field(2);
    return {
      der: derBytes,
      pem: encodePem(derBytes, 'CERTIFICATE'),
      x509,
      publicKey: x509.publicKey,
      serialHex: x509.serialNumber.toUpperCase(),
      subjectDer,
      issuerDer,
      spkiDer: field(5),
      notBefore: timeOf(validity[0], 'notBefore'),
      notAfter: timeOf(validity[1], 'notAfter'),
      extensions,
      isCa,
      pathLength,
      keyUsage: keyUsage ? parseKeyUsage(keyUsage.value) : undefined,
      extendedKeyUsage: eku
        ? sequenceOf(decode(eku.value), 'extKeyUsage').map((n) => oidOf(n, 'EKU'))
        : undefined,
      subjectAltNames: san ? parseSubjectAltNames(san.value) : { uris: [], dnsNames: [], otherCount: 0 },
      subjectKeyId: ski ? octetsOf(decode(ski.value), 'subjectKeyIdentifier') : undefined,
      authorityKeyId: akiKeyId ? primitiveBytes(akiKeyId, 'keyIdentifier') : undefined,
      selfIssued: subjectDer.equals(issuerDer),
    };
  } catch (error) {
    if (error instanceof PkiError) throw error;
    const why = error instanceof Error ? error.message : 'unreadable';
    throw new PkiError(code, `the certificate cannot be read: ${why}`, { cause: error });
  }
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING content (without its unused-bits octet). */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, subjectPublicKey] = rawChildren(spki);
  if (subjectPublicKey === undefined) throw new Asn1ShapeError('SubjectPublicKeyInfo has no key');
  const { bytes } = bitStringOf(decode(subjectPublicKey), 'subjectPublicKey');
  return crypto.createHash('sha1').update(bytes).digest();
}

/** `subject` signed `cert`: names chain and the signature verifies. */
export function isIssuedBy(cert: CertificateInfo, issuer: CertificateInfo): boolean {
  return cert.issuerDer.equals(issuer.subjectDer) && cert.x509.verify(issuer.publicKey);
}
