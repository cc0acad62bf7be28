// Typed DER building and reading over node-forge's asn1 module, plus the exact byte spans forge cannot give.
import forge from 'node-forge';

export type Asn1Node = forge.asn1.Asn1;

const { asn1 } = forge;
const UNIVERSAL = asn1.Class.UNIVERSAL;
const CONTEXT = asn1.Class.CONTEXT_SPECIFIC;
const T = asn1.Type;

/** Raised by the readers below; each caller turns it into its own PkiError code. */
export class Asn1ShapeError extends Error {
  override readonly name = 'Asn1ShapeError';
}

const toBinary = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const fromBinary = (bytes: string): Buffer => Buffer.from(bytes, 'latin1');

const oidCache = new Map<string, string>();
function oidBytes(dotted: string): string {
  let bytes = oidCache.get(dotted);
  if (bytes === undefined) {
    bytes = asn1.oidToDer(dotted).getBytes();
    oidCache.set(dotted, bytes);
  }
  return bytes;
}

/** The year range UTCTime can carry (RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after). */
function isUtcTimeYear(year: number): boolean {
  return year >= 1950 && year < 2050;
}

export const der = {
  seq: (children: Asn1Node[]): Asn1Node => asn1.create(UNIVERSAL, T.SEQUENCE, true, children),
  set: (children: Asn1Node[]): Asn1Node => asn1.create(UNIVERSAL, T.SET, true, children),
  oid: (dotted: string): Asn1Node => asn1.create(UNIVERSAL, T.OID, false, oidBytes(dotted)),
  bool: (value: boolean): Asn1Node => asn1.create(UNIVERSAL, T.BOOLEAN, false, value ? '\xff' : '\x00'),
  null: (): Asn1Node => asn1.create(UNIVERSAL, T.NULL, false, ''),
  /** A non-negative INTEGER from its big-endian magnitude; adds the 0x00 a set high bit needs. */
  uint: (magnitude: Uint8Array): Asn1Node => {
    let start = 0;
    while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
    const trimmed = Buffer.from(magnitude.subarray(start));
    const bytes = (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed;
    return asn1.create(UNIVERSAL, T.INTEGER, false, toBinary(bytes.length === 0 ? Buffer.of(0) : bytes));
  },
  smallInt: (value: number): Asn1Node =>
    asn1.create(UNIVERSAL, T.INTEGER, false, asn1.integerToDer(value).getBytes()),
  octets: (bytes: Uint8Array): Asn1Node => asn1.create(UNIVERSAL, T.OCTETSTRING, false, toBinary(bytes)),
  bitString: (bytes: Uint8Array, unusedBits = 0): Asn1Node =>
    asn1.create(UNIVERSAL, T.BITSTRING, false, String.fromCharCode(unusedBits) + toBinary(bytes)),
  utf8: (text: string): Asn1Node =>
    asn1.create(UNIVERSAL, T.UTF8, false, toBinary(Buffer.from(text, 'utf8'))),
  ia5: (text: string): Asn1Node => asn1.create(UNIVERSAL, T.IA5STRING, false, text),
  time: (date: Date): Asn1Node =>
    isUtcTimeYear(date.getUTCFullYear())
      ? asn1.create(UNIVERSAL, T.UTCTIME, false, asn1.dateToUtcTime(date))
      : asn1.create(UNIVERSAL, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date)),
  explicit: (tag: number, child: Asn1Node): Asn1Node => asn1.create(CONTEXT, tag, true, [child]),
  implicitPrimitive: (tag: number, bytes: Uint8Array | string): Asn1Node =>
    asn1.create(CONTEXT, tag, false, typeof bytes === 'string' ? bytes : toBinary(bytes)),
  implicitConstructed: (tag: number, children: Asn1Node[]): Asn1Node =>
    asn1.create(CONTEXT, tag, true, children),
  /**
   * An already-encoded TLV spliced into a tree. forge re-encodes every nested node on each
   * `toDer` (a third of an issuance's cost when the TBSCertificate is rebuilt per call), so the
   * parts that never change are encoded once and carried as one primitive node whose "type" is
   * the whole original tag byte: forge writes `tagClass | type` as the tag, then the content.
   */
  preEncoded: (tlvBytes: Uint8Array): Asn1Node => {
    const buf = Buffer.from(tlvBytes);
    const span = readTlv(buf, 0);
    if (span.end !== buf.length) throw new Asn1ShapeError('pre-encoded value has trailing bytes');
    const node: unknown = {
      tagClass: 0,
      type: span.tag,
      constructed: false,
      composed: false,
      value: toBinary(buf.subarray(span.contentStart, span.end)),
    };
    return node as Asn1Node;
  },
};

export function encode(node: Asn1Node): Buffer {
  return fromBinary(asn1.toDer(node).getBytes());
}

interface ForgeFromDerOptions {
  strict: boolean;
  parseAllBytes: boolean;
  decodeBitStrings: boolean;
  maxDepth: number;
}
// @types/node-forge only declares the boolean `strict` overload; the options object is forge ≥ 1.0.
const fromDer = asn1.fromDer as unknown as (bytes: string, options: ForgeFromDerOptions) => Asn1Node;

/** Strict DER decode of exactly `bytes`; BIT STRING contents stay opaque. */
export function decode(bytes: Uint8Array): Asn1Node {
  try {
    return fromDer(toBinary(bytes), {
      strict: true,
      parseAllBytes: true,
      decodeBitStrings: false,
      maxDepth: 32,
    });
  } catch (error) {
    throw new Asn1ShapeError(error instanceof Error ? error.message : 'not DER', { cause: error });
  }
}

export interface TlvSpan {
  /** The single identifier octet (high tag numbers are refused). */
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads one DER TLV at `offset` without decoding its content; used where the signed bytes must be exact. */
export function readTlv(buf: Uint8Array, offset: number): TlvSpan {
  const tag = buf[offset];
  const first = buf[offset + 1];
  if (tag === undefined || first === undefined) throw new Asn1ShapeError('truncated TLV');
  if ((tag & 0x1f) === 0x1f) throw new Asn1ShapeError('high tag numbers are not used here');
  let length = first;
  let contentStart = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new Asn1ShapeError('indefinite or oversized length');
    length = 0;
    for (let i = 0; i < count; i++) {
      const byte = buf[contentStart + i];
      if (byte === undefined) throw new Asn1ShapeError('truncated length');
      length = length * 256 + byte;
    }
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buf.length) throw new Asn1ShapeError('TLV runs past the end of its buffer');
  return { tag, start: offset, contentStart, end };
}

/** The raw child TLVs of the constructed TLV that fills `buf` exactly. */
export function rawChildren(buf: Buffer): Buffer[] {
  const outer = readTlv(buf, 0);
  if (outer.end !== buf.length) throw new Asn1ShapeError('trailing bytes after the outer TLV');
  if ((outer.tag & 0x20) === 0) throw new Asn1ShapeError('expected a constructed value');
  const out: Buffer[] = [];
  for (let at = outer.contentStart; at < outer.end; ) {
    const span = readTlv(buf, at);
    if (span.end > outer.end) throw new Asn1ShapeError('child TLV runs past its parent');
    out.push(buf.subarray(span.start, span.end));
    at = span.end;
  }
  return out;
}

// Readers: each checks the shape it expects and names `what` when it is not there.

function isUniversal(node: Asn1Node, type: forge.asn1.Type): boolean {
  return node.tagClass === UNIVERSAL && node.type === type;
}

export function childrenOf(node: Asn1Node | undefined, what: string): Asn1Node[] {
  if (node === undefined || !Array.isArray(node.value) || !node.constructed) {
    throw new Asn1ShapeError(`${what}: expected a constructed value`);
  }
  return node.value;
}

export function sequenceOf(node: Asn1Node | undefined, what: string): Asn1Node[] {
  if (node === undefined || !isUniversal(node, T.SEQUENCE))
    throw new Asn1ShapeError(`${what}: expected a SEQUENCE`);
  return childrenOf(node, what);
}

export function setOf(node: Asn1Node | undefined, what: string): Asn1Node[] {
  if (node === undefined || !isUniversal(node, T.SET)) throw new Asn1ShapeError(`${what}: expected a SET`);
  return childrenOf(node, what);
}

export function primitiveBytes(node: Asn1Node | undefined, what: string): Buffer {
  if (node === undefined || typeof node.value !== 'string') {
    throw new Asn1ShapeError(`${what}: expected a primitive value`);
  }
  return fromBinary(node.value);
}

export function oidOf(node: Asn1Node | undefined, what: string): string {
  if (node === undefined || !isUniversal(node, T.OID)) throw new Asn1ShapeError(`${what}: expected an OID`);
  return asn1.derToOid(primitiveBytes(node, what).toString('latin1'));
}

export function booleanOf(node: Asn1Node | undefined, what: string): boolean {
  if (node === undefined || !isUniversal(node, T.BOOLEAN))
    throw new Asn1ShapeError(`${what}: expected a BOOLEAN`);
  return primitiveBytes(node, what)[0] !== 0;
}

export function integerBytes(node: Asn1Node | undefined, what: string): Buffer {
  if (node === undefined || !isUniversal(node, T.INTEGER))
    throw new Asn1ShapeError(`${what}: expected an INTEGER`);
  return primitiveBytes(node, what);
}

export function octetsOf(node: Asn1Node | undefined, what: string): Buffer {
  if (node === undefined || !isUniversal(node, T.OCTETSTRING)) {
    throw new Asn1ShapeError(`${what}: expected an OCTET STRING`);
  }
  return primitiveBytes(node, what);
}

/** BIT STRING content without its unused-bits octet, and that count. */
export function bitStringOf(node: Asn1Node | undefined, what: string): { bytes: Buffer; unusedBits: number } {
  if (node === undefined || !isUniversal(node, T.BITSTRING)) {
    throw new Asn1ShapeError(`${what}: expected a BIT STRING`);
  }
  const raw = primitiveBytes(node, what);
  const unusedBits = raw[0];
  if (unusedBits === undefined || unusedBits > 7) throw new Asn1ShapeError(`${what}: bad unused-bits octet`);
  return { bytes: raw.subarray(1), unusedBits };
}

export function timeOf(node: Asn1Node | undefined, what: string): Date {
  if (node !== undefined && isUniversal(node, T.UTCTIME)) {
    return asn1.utcTimeToDate(primitiveBytes(node, what).toString('latin1'));
  }
  if (node !== undefined && isUniversal(node, T.GENERALIZEDTIME)) {
    return asn1.generalizedTimeToDate(primitiveBytes(node, what).toString('latin1'));
  }
  throw new Asn1ShapeError(`${what}: expected a UTCTime or GeneralizedTime`);
}

export function isContextTag(node: Asn1Node | undefined, tag: number): boolean {
  return node !== undefined && node.tagClass === CONTEXT && node.type === tag;
}

export function isUniversalType(node: Asn1Node | undefined, type: forge.asn1.Type): boolean {
  return node !== undefined && isUniversal(node, type);
}

export const Asn1Type = T;
