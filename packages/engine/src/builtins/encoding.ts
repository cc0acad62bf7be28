// Hex, base64url and URL-query encodings, and hashes/HMACs, as OPA's Go builtins define them.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { BuiltinError, type BuiltinTable, isObject, str } from './builtin-types.ts';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** Go's url.QueryEscape: everything but ALPHA / DIGIT / "-" / "_" / "." / "~" is %XX, space becomes "+". */
export function queryEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    if (
      (byte >= 0x30 && byte <= 0x39) ||
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2d ||
      byte === 0x5f ||
      byte === 0x2e ||
      byte === 0x7e
    ) {
      out += String.fromCharCode(byte);
    } else if (byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const isHexDigit = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);

/** Go's url.QueryUnescape. */
export function queryUnescape(s: string): string {
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25) {
      const h = String.fromCharCode(src[i + 1] ?? 0, src[i + 2] ?? 0);
      if (i + 2 >= src.length || !isHexDigit(h[0]) || !isHexDigit(h[1])) {
        throw new BuiltinError(`invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}`);
      }
      bytes.push(Number.parseInt(h, 16));
      i += 2;
    } else if (b === 0x2b) bytes.push(0x20);
    else bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

function encodeObject(v: unknown): string {
  if (!isObject(v)) throw new BuiltinError('operand 1 must be object');
  const parts: string[] = [];
  for (const key of Object.keys(v).sort()) {
    const value = v[key];
    const values =
      typeof value === 'string'
        ? [value]
        : Array.isArray(value) || value instanceof Set
          ? [...value]
          : undefined;
    if (values === undefined)
      throw new BuiltinError('urlquery.encode_object: values must be strings, arrays or sets');
    for (const item of values) {
      if (typeof item !== 'string') throw new BuiltinError('urlquery.encode_object: values must be strings');
      parts.push(`${queryEscape(key)}=${queryEscape(item)}`);
    }
  }
  return parts.join('&');
}

/** Go's url.ParseQuery, failing (as OPA does) on any malformed pair or a semicolon separator. */
function decodeObject(s: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const part of s.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) throw new BuiltinError('invalid semicolon separator in query');
    const eq = part.indexOf('=');
    const key = queryUnescape(eq < 0 ? part : part.slice(0, eq));
    const value = queryUnescape(eq < 0 ? '' : part.slice(eq + 1));
    if (!Object.hasOwn(out, key))
      Object.defineProperty(out, key, { value: [], enumerable: true, writable: true });
    out[key]!.push(value);
  }
  return out;
}

const hash = (algorithm: string): BuiltinTable[string] => ({
  pure: true,
  fn: ([x]) => createHash(algorithm).update(str(x, 1), 'utf8').digest('hex'),
});

const hmac = (algorithm: string): BuiltinTable[string] => ({
  fn: ([x, key]) => createHmac(algorithm, str(key, 2)).update(str(x, 1), 'utf8').digest('hex'),
});

export const encodingBuiltins: BuiltinTable = {
  'hex.encode': { fn: ([x]) => Buffer.from(str(x, 1), 'utf8').toString('hex') },
  'hex.decode': {
    fn: ([x]) => {
      const s = str(x, 1);
      if (!HEX.test(s)) throw new BuiltinError('encoding/hex: invalid byte or odd length');
      return Buffer.from(s, 'hex').toString('utf8');
    },
  },
  'base64url.encode_no_pad': { fn: ([x]) => Buffer.from(str(x, 1), 'utf8').toString('base64url') },
  'urlquery.encode': { fn: ([x]) => queryEscape(str(x, 1)) },
  'urlquery.decode': { fn: ([x]) => queryUnescape(str(x, 1)) },
  'urlquery.encode_object': { sets: true, fn: ([x]) => encodeObject(x) },
  'urlquery.decode_object': { fn: ([x]) => decodeObject(str(x, 1)) },
  'crypto.md5': hash('md5'),
  'crypto.sha1': hash('sha1'),
  'crypto.sha256': hash('sha256'),
  'crypto.hmac.md5': hmac('md5'),
  'crypto.hmac.sha1': hmac('sha1'),
  'crypto.hmac.sha256': hmac('sha256'),
  'crypto.hmac.sha512': hmac('sha512'),
  'crypto.hmac.equal': {
    fn: ([a, b]) => {
      const x = Buffer.from(str(a, 1), 'utf8');
      const y = Buffer.from(str(b, 2), 'utf8');
      return x.length === y.length && timingSafeEqual(x, y);
    },
  },
};
