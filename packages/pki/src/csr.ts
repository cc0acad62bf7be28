// PKCS#10 certificate signing requests: strict validation of what workloads send, and building one for a workload.
import crypto, { type KeyObject } from 'node:crypto';
import {
  Asn1ShapeError,
  bitStringOf,
  childrenOf,
  decode,
  der,
  encode,
  integerBytes,
  isContextTag,
  oidOf,
  primitiveBytes,
  rawChildren,
  sequenceOf,
  setOf,
} from './asn1.ts';
import {
  ACCEPTED_SIGNATURE_ALGORITHMS,
  createSigner,
  describeKeyShape,
  KEY_TYPES,
  type KeyType,
  keyShape,
  publicKeyFromSpki,
  readSpki,
  type SpkiContent,
  spkiDer,
} from './key-algorithms.ts';
import { OID } from './oids.ts';
import { decodePemBlocks, encodePem } from './pem.ts';
import { PkiError } from './pki-error.ts';
import { parseWorkloadSpiffeId, type WorkloadSpiffeId } from './spiffe-id.ts';
import { uriSubjectAltNameExtension } from './x509-builder.ts';

export const DEFAULT_MAX_CSR_BYTES = 64 * 1024;

export interface CsrValidationOptions {
  /** Input size limit in bytes (PEM/base64 text or DER); default 64 KiB. */
  readonly maxBytes?: number;
  /** When set, the SPIFFE ID must be in this trust domain. */
  readonly trustDomain?: string;
}

export interface ValidatedCsr {
  readonly identity: WorkloadSpiffeId;
  readonly publicKey: KeyObject;
  readonly keyType: KeyType;
  /** The SubjectPublicKeyInfo exactly as the CSR carried it (what the certificate will carry). */
  readonly spkiDer: Buffer;
}

const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
// Checked after whitespace is removed: a pattern that also allowed whitespace around '=' would backtrack quadratically.
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const CURVE_NAMES: Record<string, string> = {
  [OID.prime256v1]: 'P-256',
  [OID.secp384r1]: 'P-384',
  [OID.secp256k1]: 'secp256k1',
};

const malformed = (why: string, cause?: unknown) =>
  new PkiError('csr_malformed', `the CSR is not a PKCS#10 request: ${why}`, { cause });

function csrDer(input: string | Uint8Array, maxBytes: number): Buffer {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > maxBytes)
    throw new PkiError('csr_too_large', `the CSR is ${size} bytes, above the ${maxBytes}-byte limit`);
  // A DER CertificationRequest starts with a SEQUENCE tag; anything else given as bytes is text.
  if (typeof input !== 'string' && input[0] === 0x30) return Buffer.from(input);
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  if (text.includes('-----BEGIN')) {
    let blocks: ReturnType<typeof decodePemBlocks>;
    try {
      blocks = decodePemBlocks(text);
    } catch (error) {
      throw malformed(error instanceof Error ? error.message : 'bad PEM', error);
    }
    const [block] = blocks;
    if (blocks.length !== 1 || block === undefined) throw malformed('expected exactly one PEM block');
    if (!CSR_LABELS.has(block.label))
      throw malformed(`the PEM block is a ${block.label}, not a CERTIFICATE REQUEST`);
    return block.der;
  }
  const compact = text.replace(/\s+/g, '');
  if (BASE64.test(compact)) return Buffer.from(compact, 'base64');
  throw malformed('neither PEM, base64 DER nor DER bytes');
}

interface ParsedRequest {
  readonly info: Buffer;
  readonly spki: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly attributes: ReturnType<typeof setOf> | undefined;
}

function parseRequest(derBytes: Buffer): ParsedRequest {
  const parts = rawChildren(derBytes);
  const [info, algorithm, signature] = parts;
  if (parts.length !== 3 || info === undefined || algorithm === undefined || signature === undefined) {
    throw new Asn1ShapeError('CertificationRequest must have exactly three fields');
  }
  const infoFields = sequenceOf(decode(info), 'certificationRequestInfo');
  const version = integerBytes(infoFields[0], 'version');
  if (version.length !== 1 || version[0] !== 0) throw new Asn1ShapeError('only version 1 (0) requests exist');
  sequenceOf(infoFields[1], 'subject');
  const spki = rawChildren(info)[2];
  if (spki === undefined) throw new Asn1ShapeError('no subjectPKInfo');
  const attributesNode = infoFields[3];
  if (attributesNode !== undefined && !isContextTag(attributesNode, 0)) {
    throw new Asn1ShapeError('attributes must be [0] IMPLICIT SET OF Attribute');
  }
  if (infoFields.length > 4) throw new Asn1ShapeError('certificationRequestInfo has extra fields');
  const sig = bitStringOf(decode(signature), 'signature');
  if (sig.unusedBits !== 0) throw new Asn1ShapeError('the signature BIT STRING has unused bits');
  return {
    info,
    spki,
    signatureAlgorithm: oidOf(sequenceOf(decode(algorithm), 'signatureAlgorithm')[0], 'signatureAlgorithm'),
    signature: sig.bytes,
    attributes: attributesNode === undefined ? undefined : childrenOf(attributesNode, 'attributes'),
  };
}

/** The CSR key under the CA's policy, checked on the parsed numbers; messages name the key type, never the key. */
function acceptedKey(spki: Buffer): { publicKey: KeyObject; keyType: KeyType } {
  let content: SpkiContent;
  try {
    content = readSpki(spki);
  } catch (error) {
    throw malformed('the subjectPKInfo is not well formed', error);
  }
  let keyType: KeyType;
  if (content.kind === 'ec') {
    if (content.curve !== OID.prime256v1) {
      throw new PkiError(
        'csr_unsupported_key',
        `the CSR key is ECDSA on ${CURVE_NAMES[content.curve] ?? content.curve}; only P-256 is accepted`,
      );
    }
    keyType = 'ec-p256';
  } else if (content.kind === 'rsa') {
    const exponent = BigInt(`0x${content.exponent.toString('hex') || '0'}`);
    if (content.bits < 2048) {
      throw new PkiError(
        'csr_weak_key',
        `the CSR key is RSA-${content.bits}; at least 2048 bits are required`,
      );
    }
    if (exponent < 65537n || exponent % 2n === 0n) {
      throw new PkiError('csr_weak_key', 'the CSR RSA key has a public exponent that is even or below 65537');
    }
    const type = KEY_TYPES.find((t) => t === `rsa-${content.bits}`);
    if (type === undefined) {
      throw new PkiError(
        'csr_unsupported_key',
        `the CSR key is RSA-${content.bits}; RSA-2048, 3072 or 4096 are accepted`,
      );
    }
    keyType = type;
  } else {
    throw new PkiError(
      'csr_unsupported_key',
      `the CSR key algorithm ${content.algorithm} is not accepted (RSA-2048/3072/4096 or ECDSA P-256)`,
    );
  }
  try {
    return { publicKey: publicKeyFromSpki(spki, content), keyType };
  } catch (error) {
    throw malformed('the public key is not valid (for EC: the point is not on the curve)', error);
  }
}

function verifySignature(request: ParsedRequest, publicKey: KeyObject): void {
  const algorithm = ACCEPTED_SIGNATURE_ALGORITHMS.get(request.signatureAlgorithm);
  const keyKind = publicKey.asymmetricKeyType === 'ec' ? 'ec' : 'rsa';
  if (algorithm === undefined || algorithm.keyKind !== keyKind) {
    throw new PkiError(
      'csr_unsupported_signature',
      `the CSR signature algorithm ${request.signatureAlgorithm} is not accepted for this key (SHA-2 with RSA PKCS #1 v1.5 or ECDSA)`,
    );
  }
  let valid = false;
  try {
    valid = crypto.verify(algorithm.digest, request.info, publicKey, request.signature);
  } catch {
    // A malformed ECDSA signature makes OpenSSL error rather than answer false; both mean "does not verify".
    valid = false;
  }
  if (!valid)
    throw new PkiError('csr_bad_signature', 'the CSR signature does not verify with the CSR public key');
}

function requestedSpiffeId(attributes: ParsedRequest['attributes'], trustDomain: string | undefined) {
  const badSan = (why: string) =>
    new PkiError('csr_bad_san', `the CSR subject alternative names are not acceptable: ${why}`);
  const extensionRequests = (attributes ?? []).filter(
    (attribute) => oidOf(sequenceOf(attribute, 'attribute')[0], 'attribute type') === OID.extensionRequest,
  );
  if (extensionRequests.length > 1) throw malformed('more than one extensionRequest attribute');
  const [request] = extensionRequests;
  const values =
    request === undefined ? [] : setOf(sequenceOf(request, 'extensionRequest')[1], 'extensionRequest');
  if (values.length > 1) throw malformed('the extensionRequest attribute has more than one value');
  const sans = (values[0] === undefined ? [] : sequenceOf(values[0], 'extensions')).filter((ext) => {
    return oidOf(sequenceOf(ext, 'extension')[0], 'extension id') === OID.subjectAltName;
  });
  if (sans.length === 0) throw badSan('there is no subjectAltName; exactly one SPIFFE ID URI is required');
  if (sans.length > 1) throw badSan('more than one subjectAltName extension');
  // Every other requested extension is ignored on purpose: the CA, not the workload, decides usages and constraints.
  const sanParts = sequenceOf(sans[0], 'subjectAltName');
  const names = sequenceOf(
    decode(primitiveBytes(sanParts[sanParts.length - 1], 'subjectAltName')),
    'GeneralNames',
  );
  const uris: string[] = [];
  for (const name of names) {
    if (isContextTag(name, 6) && !name.constructed) uris.push(primitiveBytes(name, 'URI').toString('latin1'));
    else if (isContextTag(name, 2)) throw badSan('DNS names are not allowed in an X.509-SVID request');
    else if (isContextTag(name, 7)) throw badSan('IP addresses are not allowed in an X.509-SVID request');
    else if (isContextTag(name, 1)) throw badSan('email addresses are not allowed in an X.509-SVID request');
    else throw badSan(`a GeneralName of tag [${name.type}] is not allowed in an X.509-SVID request`);
  }
  const [uri] = uris;
  if (uris.length !== 1 || uri === undefined) throw badSan(`expected exactly one URI, found ${uris.length}`);
  const identity = parseWorkloadSpiffeId(uri, 'csr_bad_san');
  if (trustDomain !== undefined && identity.trustDomain !== trustDomain) {
    throw badSan(`the SPIFFE ID is in trust domain "${identity.trustDomain}", not "${trustDomain}"`);
  }
  return identity;
}

/**
 * Validates a CSR (PEM text, base64 DER, or DER/PEM bytes) for an X.509-SVID: strict DER, an accepted key,
 * a verifying self-signature, and exactly one workload SPIFFE ID URI SAN. Throws PkiError with a `csr_*` code.
 * The CSR subject and any requested extension other than subjectAltName are ignored.
 */
export function validateCsr(input: string | Uint8Array, options: CsrValidationOptions = {}): ValidatedCsr {
  const derBytes = csrDer(input, options.maxBytes ?? DEFAULT_MAX_CSR_BYTES);
  let request: ParsedRequest;
  try {
    request = parseRequest(derBytes);
  } catch (error) {
    throw malformed(error instanceof Error ? error.message : 'bad structure', error);
  }
  const { publicKey, keyType } = acceptedKey(request.spki);
  verifySignature(request, publicKey);
  try {
    return {
      identity: requestedSpiffeId(request.attributes, options.trustDomain),
      publicKey,
      keyType,
      spkiDer: request.spki,
    };
  } catch (error) {
    if (error instanceof PkiError) throw error;
    throw malformed(error instanceof Error ? error.message : 'bad attributes', error);
  }
}

/** A PEM CSR for `spiffeId` signed by `privateKey` (RSA or P-256): empty subject, one critical URI SAN. */
export function createCsr(privateKey: KeyObject, spiffeId: string): string {
  const signer = createSigner(privateKey);
  if (signer === undefined) {
    throw new PkiError(
      'csr_unsupported_key',
      `a ${describeKeyShape(keyShape(privateKey))} private key cannot sign a CSR here`,
    );
  }
  const { spiffeId: id } = parseWorkloadSpiffeId(spiffeId);
  const extensionRequest = der.seq([
    der.oid(OID.extensionRequest),
    der.set([der.seq([uriSubjectAltNameExtension([id], true)])]),
  ]);
  const info = encode(
    der.seq([
      der.smallInt(0),
      der.seq([]),
      der.preEncoded(spkiDer(privateKey)),
      der.implicitConstructed(0, [extensionRequest]),
    ]),
  );
  const request = der.seq([
    der.preEncoded(info),
    der.preEncoded(signer.algorithmIdentifierDer),
    der.bitString(signer.sign(info)),
  ]);
  return encodePem(encode(request), 'CERTIFICATE REQUEST');
}
