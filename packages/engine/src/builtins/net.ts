// CIDR builtins the WASM target leaves to the host: validity and containment matching over collections.
import { BuiltinError, type BuiltinTable, isObject } from './builtin-types.ts';

interface Net {
  bytes: Uint8Array;
  /** Prefix length in bits (the full width for a plain address). */
  bits: number;
}

function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // Go rejects empty parts, non-digits, values over 255 and leading zeros.
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0') || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | undefined {
  if (s.includes('%')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(Number.parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function parseIP(s: string): Uint8Array | undefined {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

/** Go's net.ParseCIDR. */
export function parseCIDR(s: string): Net | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIP(s.slice(0, slash));
  const len = s.slice(slash + 1);
  // Go's dtoi takes leading zeros in the prefix length ("/08").
  if (ip === undefined || !/^\d{1,4}$/.test(len)) return undefined;
  const bits = Number(len);
  if (bits > ip.length * 8) return undefined;
  return { bytes: ip, bits };
}

/** A CIDR, or a plain IP as a full-length network (what cidr_contains_matches accepts on its right). */
function parseNetOrIP(s: string): Net | undefined {
  if (s.includes('/')) return parseCIDR(s);
  const ip = parseIP(s);
  return ip === undefined ? undefined : { bytes: ip, bits: ip.length * 8 };
}

/** IPv4 written inside IPv6 (::ffff:a.b.c.d) compares as IPv4, as Go's IP.To4 makes it. */
function canonical(n: Net): Net {
  const b = n.bytes;
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return { bytes: b.subarray(12), bits: Math.max(0, n.bits - 96) };
  }
  return n;
}

function contains(outer: Net, inner: Net): boolean {
  const a = canonical(outer);
  const b = canonical(inner);
  if (a.bytes.length !== b.bytes.length || b.bits < a.bits) return false;
  for (let bit = 0; bit < a.bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a.bytes[bit >> 3]! & mask) !== (b.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** Items of cidr_contains_matches' operands: [key, address], where an item may be [address, …extra]. */
function items(v: unknown, pos: number): [unknown, string][] {
  const addr = (x: unknown): string => {
    if (typeof x === 'string') return x;
    if (Array.isArray(x) && typeof x[0] === 'string') return x[0];
    throw new BuiltinError(`operand ${pos}: expected string or [string, ...]`);
  };
  if (typeof v === 'string') return [[v, v]];
  if (Array.isArray(v)) return v.map((x, i) => [i, addr(x)]);
  if (v instanceof Set) return [...v].map((x) => [x, addr(x)]);
  if (isObject(v)) return Object.entries(v).map(([k, x]) => [k, addr(x)]);
  throw new BuiltinError(`operand ${pos} must be one of {string, array, set, object}`);
}

export const netBuiltins: BuiltinTable = {
  'net.cidr_is_valid': { fn: ([x]) => typeof x === 'string' && parseCIDR(x) !== undefined },
  'net.cidr_contains_matches': {
    sets: true,
    setResult: true,
    fn: ([cidrs, addrs]) => {
      const left = items(cidrs, 1).map(([k, s]) => {
        const n = parseCIDR(s);
        if (n === undefined) throw new BuiltinError(`invalid CIDR address: ${s}`);
        return [k, n] as const;
      });
      const right = items(addrs, 2).map(([k, s]) => {
        const n = parseNetOrIP(s);
        if (n === undefined) throw new BuiltinError(`invalid IP or CIDR: ${s}`);
        return [k, n] as const;
      });
      const out = new Set<unknown>();
      for (const [k1, n1] of left) for (const [k2, n2] of right) if (contains(n1, n2)) out.add([k1, k2]);
      return out;
    },
  },
};
