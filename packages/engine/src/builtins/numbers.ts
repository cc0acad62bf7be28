// semver.*, units.parse_bytes and numbers.range_step, with the Go implementations' exact rules.
import { BuiltinError, type BuiltinTable, int, intValue, str } from './builtin-types.ts';

// ---------------------------------------------------------------------------------------------------------
// Semantic versions as OPA 1.x accepts them: semver.org 2.0 syntax, an optional "v", int64 components.

interface Version {
  nums: [bigint, bigint, bigint];
  pre: string[];
}

const NUM = '(0|[1-9]\\d*)';
const PRE_ID = '(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)';
const SEMVER = new RegExp(
  `^v?${NUM}\\.${NUM}\\.${NUM}(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+[0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*)?$`,
);
const MAX_INT64 = 2n ** 63n - 1n;

function parseVersion(input: string): Version {
  const m = SEMVER.exec(input);
  if (m === null) throw new BuiltinError(`string ${input} is not a valid SemVer`);
  const nums = [BigInt(m[1]!), BigInt(m[2]!), BigInt(m[3]!)] as [bigint, bigint, bigint];
  if (nums.some((n) => n > MAX_INT64)) throw new BuiltinError(`string ${input} is not a valid SemVer`);
  return { nums, pre: m[4] === undefined ? [] : m[4].split('.') };
}

const DECIMALS = /^\d+$/;

function comparePre(a: string[], b: string[]): number {
  for (let i = 0; ; i++) {
    if (i >= a.length) return i >= b.length ? 0 : -1;
    if (i >= b.length) return 1;
    const x = a[i]!;
    const y = b[i]!;
    const xi = DECIMALS.test(x);
    const yi = DECIMALS.test(y);
    if (xi && !yi) return -1;
    if (!xi && yi) return 1;
    if (xi && yi) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d > 0n ? 1 : -1;
    } else if (x !== y) return x > y ? 1 : -1;
  }
}

function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a.nums[i] !== b.nums[i]) return a.nums[i]! > b.nums[i]! ? 1 : -1;
  if (a.pre.length === 0 && b.pre.length > 0) return 1;
  if (b.pre.length === 0 && a.pre.length > 0) return -1;
  return comparePre(a.pre, b.pre);
}

// ---------------------------------------------------------------------------------------------------------
// units.parse_bytes: OPA multiplies in big.Float with 64-bit mantissas and truncates; emulated exactly here.

const BYTE_UNITS: Record<string, bigint> = {
  '': 1n,
  k: 1000n,
  kb: 1000n,
  ki: 1024n,
  kib: 1024n,
  m: 1000n ** 2n,
  mb: 1000n ** 2n,
  mi: 1024n ** 2n,
  mib: 1024n ** 2n,
  g: 1000n ** 3n,
  gb: 1000n ** 3n,
  gi: 1024n ** 3n,
  gib: 1024n ** 3n,
  t: 1000n ** 4n,
  tb: 1000n ** 4n,
  ti: 1024n ** 4n,
  tib: 1024n ** 4n,
  p: 1000n ** 5n,
  pb: 1000n ** 5n,
  pi: 1024n ** 5n,
  pib: 1024n ** 5n,
  e: 1000n ** 6n,
  eb: 1000n ** 6n,
  ei: 1024n ** 6n,
  eib: 1024n ** 6n,
};

const bitLength = (n: bigint): number => (n === 0n ? 0 : n.toString(2).length);

/** Rounds num/den (positive) to a 64-bit mantissa, half to even: returns [mantissa, exponent]. */
function roundTo64(num: bigint, den: bigint): [bigint, number] {
  let e = bitLength(num) - bitLength(den) - 64;
  let q: bigint;
  let r: bigint;
  let d: bigint;
  for (;;) {
    const n = e < 0 ? num << BigInt(-e) : num;
    d = e > 0 ? den << BigInt(e) : den;
    q = n / d;
    r = n % d;
    if (q >= 1n << 64n) e++;
    else if (q < 1n << 63n) e--;
    else break;
  }
  if (2n * r > d || (2n * r === d && (q & 1n) === 1n)) q++;
  if (q === 1n << 64n) {
    q >>= 1n;
    e++;
  }
  return [q, e];
}

function parseBytes(raw: string): bigint {
  const s = raw.replaceAll('"', '').toLowerCase();
  if (s.includes(' ')) throw new BuiltinError('spaces not allowed in resource strings');
  const m = /^[0-9.]*/.exec(s)![0];
  if (m === '') throw new BuiltinError('no byte amount provided');
  const unit = BYTE_UNITS[s.slice(m.length)];
  if (unit === undefined) throw new BuiltinError(`byte unit ${s.slice(m.length)} not recognized`);
  if (!/^(\d+\.?\d*|\.\d+)$/.test(m)) throw new BuiltinError('could not parse byte amount to a number');
  const [ip, fp = ''] = m.split('.');
  const num = BigInt((ip ?? '') + fp || '0');
  if (num === 0n) return 0n;
  const den = 10n ** BigInt(fp.length);
  // The amount as big.Float (prec 64), times the unit, rounded to 64 bits again, truncated to an integer.
  const [mant, exp] = roundTo64(num, den);
  const [prod, pexp] = roundTo64(mant * unit, 1n);
  const e = exp + pexp;
  return e >= 0 ? prod << BigInt(e) : prod >> BigInt(-e);
}

function rangeStep(a: unknown, b: unknown, step: unknown): (number | bigint)[] {
  const from = int(a, 1);
  const to = int(b, 2);
  const s = int(step, 3);
  if (s <= 0n) throw new BuiltinError('numbers.range_step: step must be a positive number above zero');
  const out: (number | bigint)[] = [];
  if (from <= to) for (let i = from; i <= to; i += s) out.push(intValue(i));
  else for (let i = from; i >= to; i -= s) out.push(intValue(i));
  return out;
}

export const numberBuiltins: BuiltinTable = {
  'semver.is_valid': {
    fn: ([v]) => {
      if (typeof v !== 'string') return false;
      try {
        parseVersion(v);
        return true;
      } catch {
        return false;
      }
    },
  },
  'semver.compare': { fn: ([a, b]) => compareVersions(parseVersion(str(a, 1)), parseVersion(str(b, 2))) },
  'units.parse_bytes': { fn: ([x]) => intValue(parseBytes(str(x, 1))) },
  'numbers.range_step': { fn: ([a, b, step]) => rangeStep(a, b, step) },
};
