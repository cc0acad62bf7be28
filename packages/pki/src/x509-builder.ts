// Building X.509 v3 certificates: names, the extensions this CA writes, the TBSCertificate and its signature.
import crypto from 'node:crypto';
import net from 'node:net';
import { type Asn1Node, der, encode } from './asn1.ts';
import { KEY_USAGE_BITS, type KeyUsage } from './certificate-info.ts';
import type { Signer } from './key-algorithms.ts';
import { OID } from './oids.ts';

export interface NameAttributes {
  readonly organization?: string;
  readonly commonName?: string;
}

/** A distinguished name of O then CN (UTF8String); no attributes gives the empty name SVIDs use. */
export function encodeName(attributes: NameAttributes): Buffer {
  const rdns: Asn1Node[] = [];
  const add = (oid: string, value: string | undefined) => {
    if (value !== undefined) rdns.push(der.set([der.seq([der.oid(oid), der.utf8(value)])]));
  };
  add(OID.organization, attributes.organization);
  add(OID.commonName, attributes.commonName);
  return encode(der.seq(rdns));
}

export function extension(oid: string, critical: boolean, value: Asn1Node): Asn1Node {
  // DER omits a FALSE `critical`, since it is the default.
  const parts = critical ? [der.oid(oid), der.bool(true)] : [der.oid(oid)];
  return der.seq([...parts, der.octets(encode(value))]);
}

export function basicConstraintsExtension(ca: boolean, pathLength?: number): Asn1Node {
  const fields: Asn1Node[] = [];
  // cA FALSE is the DEFAULT, so a leaf's basicConstraints is an empty SEQUENCE (OpenSSL prints CA:FALSE).
  if (ca) fields.push(der.bool(true));
  if (ca && pathLength !== undefined) fields.push(der.smallInt(pathLength));
  return extension(OID.basicConstraints, true, der.seq(fields));
}

/** A named BIT STRING: DER drops trailing zero bits (X.690 §11.2.2), so the length depends on the last usage. */
export function keyUsageExtension(usages: readonly KeyUsage[]): Asn1Node {
  const bits = usages.map((usage) => KEY_USAGE_BITS.indexOf(usage));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc((last >> 3) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  return extension(OID.keyUsage, true, der.bitString(bytes, 7 - (last & 7)));
}

export function extendedKeyUsageExtension(purposes: readonly string[]): Asn1Node {
  return extension(OID.extKeyUsage, false, der.seq(purposes.map((oid) => der.oid(oid))));
}

export function subjectKeyIdentifierExtension(keyId: Uint8Array): Asn1Node {
  return extension(OID.subjectKeyIdentifier, false, der.octets(keyId));
}

export function authorityKeyIdentifierExtension(keyId: Uint8Array): Asn1Node {
  return extension(OID.authorityKeyIdentifier, false, der.seq([der.implicitPrimitive(0, keyId)]));
}

/** URI SANs; `critical` must be true when the subject is empty (RFC 5280 §4.2.1.6). */
export function uriSubjectAltNameExtension(uris: readonly string[], critical: boolean): Asn1Node {
  return extension(OID.subjectAltName, critical, der.seq(uris.map((uri) => der.implicitPrimitive(6, uri))));
}

/** Names for a TLS server certificate that is not an SVID (the CA's own serving certificate). */
export interface ServerNames {
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  /** Dotted IPv4 or IPv6 text. */
  readonly ipAddresses?: readonly string[];
}

/** URI, DNS and IP SANs in one extension; critical only when the subject is empty. */
export function serverSubjectAltNameExtension(names: ServerNames, critical: boolean): Asn1Node {
  return extension(
    OID.subjectAltName,
    critical,
    der.seq([
      ...(names.uris ?? []).map((uri) => der.implicitPrimitive(6, uri)),
      ...(names.dnsNames ?? []).map((name) => der.implicitPrimitive(2, name)),
      ...(names.ipAddresses ?? []).map((ip) => der.implicitPrimitive(7, ipAddressBytes(ip))),
    ]),
  );
}

/** The 4 or 16 octets of an iPAddress GeneralName. */
export function ipAddressBytes(ip: string): Buffer {
  const version = net.isIP(ip);
  if (version === 4) return Buffer.from(ip.split('.').map(Number));
  if (version !== 6) throw new Error(`${JSON.stringify(ip)} is not an IP address`);
  const [head = '', tail] = ip.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const expand = (list: string[]) =>
    list.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const l = expand(left);
  const r = expand(right);
  const all = tail === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/**
 * Permitted URI subtrees: a host ("td") matches exactly, ".td" matches its subdomains (RFC 5280 §4.2.1.10).
 * A SPIFFE ID's host is its trust domain, so permitting the trust domain confines what the CA can sign.
 */
export function uriNameConstraintsExtension(permittedHosts: readonly string[]): Asn1Node {
  const subtrees = permittedHosts.map((host) => der.seq([der.implicitPrimitive(6, host)]));
  return extension(OID.nameConstraints, true, der.seq([der.implicitConstructed(0, subtrees)]));
}

export interface TbsFields {
  readonly serial: Uint8Array;
  /** AlgorithmIdentifier of the signature; must equal the one `signCertificate` writes. */
  readonly signatureAlgorithm: Asn1Node;
  readonly issuer: Asn1Node;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Asn1Node;
  readonly subjectPublicKeyInfo: Asn1Node;
  readonly extensions: readonly Asn1Node[];
}

const VERSION_3 = der.preEncoded(encode(der.explicit(0, der.smallInt(2))));

export function buildTbsCertificate(fields: TbsFields): Asn1Node {
  return der.seq([
    VERSION_3,
    der.uint(fields.serial),
    fields.signatureAlgorithm,
    fields.issuer,
    der.seq([der.time(fields.notBefore), der.time(fields.notAfter)]),
    fields.subject,
    fields.subjectPublicKeyInfo,
    der.explicit(3, der.seq([...fields.extensions])),
  ]);
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }; returns DER. */
export function signCertificate(tbs: Asn1Node, signer: Signer): Buffer {
  const tbsDer = encode(tbs);
  const signature = signer.sign(tbsDer);
  return encode(
    der.seq([
      der.preEncoded(tbsDer),
      der.preEncoded(signer.algorithmIdentifierDer),
      der.bitString(signature),
    ]),
  );
}

const serialPool = Buffer.alloc(4096);
let serialPoolOffset = serialPool.length;

/**
 * 128 bits with the top bit set: always 16 octets of magnitude (17 in DER with the sign octet), 127 random
 * bits, comfortably above the 64 bits of entropy CAs are asked for and under RFC 5280's 20-octet limit.
 */
export function randomSerial(): Buffer {
  if (serialPoolOffset + 16 > serialPool.length) {
    // One CSPRNG call per 256 serials: a 16-byte randomBytes call costs more than the rest of a TBS build.
    crypto.randomFillSync(serialPool);
    serialPoolOffset = 0;
  }
  const serial = Buffer.from(serialPool.subarray(serialPoolOffset, serialPoolOffset + 16));
  serialPool.fill(0, serialPoolOffset, serialPoolOffset + 16);
  serialPoolOffset += 16;
  serial[0] = (serial[0] ?? 0) | 0x80;
  return serial;
}

/** Times in certificates have whole seconds; truncate so what we return equals what we wrote. */
export function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}
