// Which keys and signature algorithms the CA accepts, key generation, and signing with node:crypto.
import crypto, { type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import {
  type Asn1Node,
  Asn1ShapeError,
  Asn1Type,
  bitStringOf,
  decode,
  der,
  encode,
  integerBytes,
  isUniversalType,
  oidOf,
  sequenceOf,
} from './asn1.ts';
import { OID } from './oids.ts';

/** The key types a workload or CA key may have. */
export type KeyType = 'ec-p256' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'rsa-2048', 'rsa-3072', 'rsa-4096'];

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

const generateKeyPairAsync = promisify(crypto.generateKeyPair);

/** Generates on the libuv pool: RSA-4096 takes about a second and must not stall a server's event loop. */
export async function generateKeyPair(type: KeyType): Promise<KeyPair> {
  if (type === 'ec-p256') return generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const modulusLength = Number(type.slice('rsa-'.length));
  return generateKeyPairAsync('rsa', { modulusLength, publicExponent: 0x10001 });
}

export type KeyShape =
  | { readonly kind: 'rsa'; readonly bits: number; readonly exponent: bigint }
  | { readonly kind: 'ec'; readonly curve: string }
  | { readonly kind: 'other'; readonly type: string };

/** Works on public and private keys. `curve` uses OpenSSL's names (`prime256v1` is P-256). */
export function keyShape(key: KeyObject): KeyShape {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    return { kind: 'rsa', bits: details.modulusLength ?? 0, exponent: details.publicExponent ?? 0n };
  }
  if (key.asymmetricKeyType === 'ec') return { kind: 'ec', curve: details.namedCurve ?? 'unknown' };
  return { kind: 'other', type: key.asymmetricKeyType ?? key.type };
}

/** The supported key type of `key`, or undefined (weak, unusual size, other curve or algorithm). */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  const shape = keyShape(key);
  if (shape.kind === 'ec') return shape.curve === 'prime256v1' ? 'ec-p256' : undefined;
  if (shape.kind === 'rsa' && shape.exponent >= 65537n) {
    const type = `rsa-${shape.bits}`;
    return KEY_TYPES.find((t) => t === type);
  }
  return undefined;
}

export function describeKeyShape(shape: KeyShape): string {
  if (shape.kind === 'rsa') return `RSA-${shape.bits}`;
  if (shape.kind === 'ec') return `EC ${shape.curve}`;
  return shape.type;
}

export type Digest = 'sha256' | 'sha384' | 'sha512';

export interface SignatureAlgorithm {
  readonly oid: string;
  readonly keyKind: 'rsa' | 'ec';
  readonly digest: Digest;
}

/** Signature algorithms accepted on CSRs; SHA-1, MD5 and RSASSA-PSS are refused. */
export const ACCEPTED_SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map(
  (
    [
      [OID.sha256WithRSAEncryption, 'rsa', 'sha256'],
      [OID.sha384WithRSAEncryption, 'rsa', 'sha384'],
      [OID.sha512WithRSAEncryption, 'rsa', 'sha512'],
      [OID.ecdsaWithSha256, 'ec', 'sha256'],
      [OID.ecdsaWithSha384, 'ec', 'sha384'],
      [OID.ecdsaWithSha512, 'ec', 'sha512'],
    ] as const
  ).map(([oid, keyKind, digest]) => [oid, { oid, keyKind, digest }]),
);

/** AlgorithmIdentifier for a signature: RSA PKCS #1 carries an explicit NULL, ECDSA no parameters (RFC 5758). */
export function algorithmIdentifier(algorithm: SignatureAlgorithm): Asn1Node {
  return der.seq(
    algorithm.keyKind === 'rsa' ? [der.oid(algorithm.oid), der.null()] : [der.oid(algorithm.oid)],
  );
}

/** A private key ready to sign: its algorithm and the DER of its AlgorithmIdentifier, computed once. */
export interface Signer {
  readonly algorithm: SignatureAlgorithm;
  readonly algorithmIdentifierDer: Buffer;
  sign(data: Uint8Array): Buffer;
}

/** SHA-256 with the key's own scheme; undefined for keys that are not RSA or P-256. */
export function createSigner(privateKey: KeyObject): Signer | undefined {
  const shape = keyShape(privateKey);
  const algorithm =
    shape.kind === 'rsa'
      ? ACCEPTED_SIGNATURE_ALGORITHMS.get(OID.sha256WithRSAEncryption)
      : shape.kind === 'ec' && shape.curve === 'prime256v1'
        ? ACCEPTED_SIGNATURE_ALGORITHMS.get(OID.ecdsaWithSha256)
        : undefined;
  if (algorithm === undefined || privateKey.type !== 'private') return undefined;
  return {
    algorithm,
    algorithmIdentifierDer: encode(algorithmIdentifier(algorithm)),
    // ECDSA signatures come out DER-encoded (node's default dsaEncoding), which is what X.509 wants.
    sign: (data) => crypto.sign(algorithm.digest, data, privateKey),
  };
}

// OpenSSL 3 encodes and decodes keys through its provider framework, which costs ~110 µs per SPKI either
// way; the JWK route takes 4 µs (RSA, and EC export) or the one scalar multiplication that validating
// an EC point needs. Issuance does this per request, so keys cross the node:crypto boundary as JWK.

const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function jwkPart(value: unknown): Buffer {
  if (typeof value !== 'string') throw new Asn1ShapeError('key export lacks a component');
  return Buffer.from(value, 'base64url');
}

/** The SubjectPublicKeyInfo DER of a public or private RSA or EC P-256 key. */
export function spkiDer(key: KeyObject): Buffer {
  const shape = keyShape(key);
  if (shape.kind === 'ec' && shape.curve === 'prime256v1') {
    const jwk = key.export({ format: 'jwk' });
    return Buffer.concat([P256_SPKI_PREFIX, Buffer.of(4), jwkPart(jwk.x), jwkPart(jwk.y)]);
  }
  if (shape.kind === 'rsa') {
    const jwk = key.export({ format: 'jwk' });
    const rsaPublicKey = encode(der.seq([der.uint(jwkPart(jwk.n)), der.uint(jwkPart(jwk.e))]));
    return encode(der.seq([der.seq([der.oid(OID.rsaEncryption), der.null()]), der.bitString(rsaPublicKey)]));
  }
  const publicKey = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return publicKey.export({ format: 'der', type: 'spki' });
}

/** What a SubjectPublicKeyInfo holds, read without OpenSSL. */
export type SpkiContent =
  | { readonly kind: 'rsa'; readonly modulus: Buffer; readonly exponent: Buffer; readonly bits: number }
  | { readonly kind: 'ec'; readonly curve: string; readonly point: Buffer }
  | { readonly kind: 'other'; readonly algorithm: string };

function stripZeros(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/** Throws Asn1ShapeError when the structure is not an SPKI. */
export function readSpki(spki: Buffer): SpkiContent {
  const [algorithmNode, keyNode] = sequenceOf(decode(spki), 'subjectPublicKeyInfo');
  const algorithm = sequenceOf(algorithmNode, 'algorithm');
  const oid = oidOf(algorithm[0], 'key algorithm');
  const { bytes, unusedBits } = bitStringOf(keyNode, 'subjectPublicKey');
  if (unusedBits !== 0) throw new Asn1ShapeError('subjectPublicKey has unused bits');
  if (oid === OID.rsaEncryption) {
    const [n, e] = sequenceOf(decode(bytes), 'RSAPublicKey');
    const modulus = stripZeros(integerBytes(n, 'modulus'));
    const exponent = stripZeros(integerBytes(e, 'publicExponent'));
    const top = modulus[0] ?? 0;
    const bits = (modulus.length - 1) * 8 + (top === 0 ? 0 : Math.floor(Math.log2(top)) + 1);
    return { kind: 'rsa', modulus, exponent, bits };
  }
  if (oid === OID.ecPublicKey) {
    const params = algorithm[1];
    const curve = isUniversalType(params, Asn1Type.OID) ? oidOf(params, 'namedCurve') : 'explicit parameters';
    return { kind: 'ec', curve, point: bytes };
  }
  return { kind: 'other', algorithm: oid };
}

/** Imports a parsed SPKI; OpenSSL validates the RSA numbers or that the EC point is on the curve. */
export function publicKeyFromSpki(spki: Buffer, content: SpkiContent): KeyObject {
  if (content.kind === 'rsa') {
    const b64 = (bytes: Buffer) => bytes.toString('base64url');
    return crypto.createPublicKey({
      key: { kty: 'RSA', n: b64(content.modulus), e: b64(content.exponent) },
      format: 'jwk',
    });
  }
  if (
    content.kind === 'ec' &&
    content.curve === OID.prime256v1 &&
    content.point.length === 65 &&
    content.point[0] === 4
  ) {
    return crypto.createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: content.point.subarray(1, 33).toString('base64url'),
        y: content.point.subarray(33).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  // Compressed points and anything unusual take the slow, general path.
  return crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
}
