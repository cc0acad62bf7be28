// Go's fmt.Sprintf over the argument kinds OPA's sprintf passes (int, *big.Int, float64, string), and Go's
// string quoting and Rego's text form of composite values, which sprintf prints for non-scalar arguments.

/** Go's strconv.Quote (for valid UTF-8 input). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 0x07) out += '\\a';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0b) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (!isPrintable(c)) {
      out += c < 0x10000 ? `\\u${c.toString(16).padStart(4, '0')}` : `\\U${c.toString(16).padStart(8, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

// Go's unicode.IsPrint, approximated by the Unicode general categories it excludes (controls, format,
// separators other than the ASCII space, unassigned and private use).
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\p{Zs}]/u;
function isPrintable(c: number): boolean {
  if (c === 0x20) return true;
  return !NOT_PRINTABLE.test(String.fromCodePoint(c));
}

/** Rego's text form of a value (`ast.Term.String()`): sets and object keys sorted, strings Go-quoted. */
export function regoText(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return goQuote(v);
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      break;
  }
  if (Array.isArray(v)) return `[${v.map(regoText).join(', ')}]`;
  if (v instanceof Set) {
    if (v.size === 0) return 'set()';
    return `{${[...v].sort(compareValues).map(regoText).join(', ')}}`;
  }
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj).sort(compareStrings);
  return `{${keys.map((k) => `${goQuote(k)}: ${regoText(obj[k])}`).join(', ')}}`;
}

function compareStrings(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

// Rego's total order: null < boolean < number < string < array < object < set.
function rank(v: unknown): number {
  if (v === null) return 0;
  if (typeof v === 'boolean') return 1;
  if (typeof v === 'number' || typeof v === 'bigint') return 2;
  if (typeof v === 'string') return 3;
  if (Array.isArray(v)) return 4;
  if (v instanceof Set) return 6;
  return 5;
}

export function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 1:
      return Number(a) - Number(b);
    case 2:
      return a! < b! ? -1 : a! > b! ? 1 : 0;
    case 3:
      return compareStrings(a as string, b as string);
    case 4: {
      const x = a as unknown[];
      const y = b as unknown[];
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareValues(x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
    default:
      return compareStrings(regoText(a), regoText(b));
  }
}

type Arg =
  | { kind: 'int'; v: bigint }
  | { kind: 'big'; v: bigint }
  | { kind: 'float'; v: number }
  | { kind: 'string'; v: string };

/** How OPA's sprintf hands a Rego value to Go's fmt. */
export function toArg(v: unknown): Arg {
  if (typeof v === 'bigint') {
    return v >= -(2n ** 63n) && v < 2n ** 63n ? { kind: 'int', v } : { kind: 'big', v };
  }
  // Integers beyond int64 that arrive as JS numbers were written in float form (1e21): Go sees a float64.
  if (typeof v === 'number') {
    return Number.isInteger(v) && Math.abs(v) < 2 ** 63
      ? { kind: 'int', v: BigInt(v) }
      : { kind: 'float', v };
  }
  if (typeof v === 'string') return { kind: 'string', v };
  return { kind: 'string', v: regoText(v) };
}

const typeName = (a: Arg): string =>
  a.kind === 'big' ? '*big.Int' : a.kind === 'float' ? 'float64' : a.kind === 'int' ? 'int64' : a.kind;

function argText(a: Arg): string {
  if (a.kind === 'float') return formatFloat(a.v, 'g', -1);
  return String(a.v);
}

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  width: number | undefined;
  prec: number | undefined;
}

function pad(s: string, spec: Spec, numeric: boolean): string {
  if (spec.width === undefined || [...s].length >= spec.width) return s;
  const n = spec.width - [...s].length;
  if (spec.minus) return s + ' '.repeat(n);
  if (spec.zero && numeric) {
    const sign = s[0] === '-' || s[0] === '+' || s[0] === ' ' ? s[0] : '';
    return sign + '0'.repeat(n) + s.slice(sign.length);
  }
  if (spec.zero && !numeric) return '0'.repeat(n) + s;
  return ' '.repeat(n) + s;
}

/** Exact decimal digits of a double, rounded half-to-even at `frac` fractional digits (strconv's rounding). */
function toFixedExact(x: number, frac: number): string {
  const neg = x < 0 || Object.is(x, -0);
  const exact = Math.abs(x).toFixed(Math.min(100, Math.max(frac + 30, 40)));
  const [intPart, fracPart = ''] = exact.split('.');
  let digits = intPart! + fracPart.slice(0, frac);
  const rest = fracPart.slice(frac);
  const first = rest.charCodeAt(0) - 48;
  const tail = rest.slice(1).replace(/0+$/, '');
  const last = digits.charCodeAt(digits.length - 1) - 48;
  if (first > 5 || (first === 5 && (tail !== '' || last % 2 === 1))) {
    digits = (BigInt(digits) + 1n).toString().padStart(digits.length, '0');
  }
  const ip = digits.slice(0, digits.length - frac) || '0';
  const fp = digits.slice(digits.length - frac);
  return (neg ? '-' : '') + ip + (frac > 0 ? `.${fp}` : '');
}

/** strconv.FormatFloat(x, fmt, prec, 64) for fmt in e, f, g (prec -1 = shortest). */
export function formatFloat(x: number, fmt: 'e' | 'f' | 'g', prec: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  const neg = x < 0 || Object.is(x, -0);
  const sign = neg ? '-' : '';
  // Shortest digits and decimal exponent from JS (which also prints the shortest round-trip form).
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expStr);
  const expText = (e: number): string => (e < 0 ? '-' : '+') + String(Math.abs(e)).padStart(2, '0');
  if (fmt === 'f') {
    if (prec < 0) {
      const dp = exp + 1;
      const ip = dp > 0 ? digits.slice(0, dp).padEnd(dp, '0') : '0';
      const fp = dp >= digits.length ? '' : dp >= 0 ? digits.slice(dp) : '0'.repeat(-dp) + digits;
      return sign + ip + (fp ? `.${fp}` : '');
    }
    return toFixedExact(x, prec);
  }
  if (fmt === 'e') {
    if (prec < 0)
      return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${expText(exp)}`;
    const [m, e] = Math.abs(x).toExponential(prec).split('e') as [string, string];
    return `${sign}${m}e${expText(Number(e))}`;
  }
  // %g: shortest digits switch to exponent form at 1e+06 (Go fixes eprec at 6 for the shortest form).
  if (prec < 0) return exp < -4 || exp >= 6 ? formatFloat(x, 'e', -1) : formatFloat(x, 'f', -1);
  const p = prec === 0 ? 1 : prec;
  const [m2, e2] = Math.abs(x)
    .toExponential(Math.min(p, 100) - 1)
    .split('e') as [string, string];
  const d = m2.replace('.', '').replace(/0+$/, '') || '0';
  const ex = Number(e2);
  let eprec = p;
  if (eprec > d.length && d.length >= ex + 1) eprec = d.length;
  if (ex < -4 || ex >= eprec) return `${sign}${d[0]}${d.length > 1 ? `.${d.slice(1)}` : ''}e${expText(ex)}`;
  const dp = ex + 1;
  if (dp <= 0) return `${sign}0.${'0'.repeat(-dp)}${d}`;
  if (dp >= d.length) return sign + d + '0'.repeat(dp - d.length);
  return `${sign}${d.slice(0, dp)}.${d.slice(dp)}`;
}

function formatInt(a: bigint, verb: string, spec: Spec): string | undefined {
  const neg = a < 0n;
  const abs = neg ? -a : a;
  let body: string;
  switch (verb) {
    case 'd':
    case 'v':
      body = abs.toString(10);
      break;
    case 'b':
      body = abs.toString(2);
      break;
    case 'o':
      body = (spec.sharp ? '0' : '') + abs.toString(8);
      break;
    case 'O':
      body = `0o${abs.toString(8)}`;
      break;
    case 'x':
      body = (spec.sharp ? '0x' : '') + abs.toString(16);
      break;
    case 'X':
      body = (spec.sharp ? '0X' : '') + abs.toString(16).toUpperCase();
      break;
    case 'c':
      return String.fromCodePoint(Number(a));
    case 'q':
      return `'${String.fromCodePoint(Number(a))}'`;
    case 'U':
      return `U+${abs.toString(16).toUpperCase().padStart(4, '0')}`;
    default:
      return undefined;
  }
  if (spec.prec !== undefined) body = body.padStart(spec.prec, '0');
  const sign = neg ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  return sign + body;
}

function formatString(s: string, verb: string, spec: Spec): string | undefined {
  const truncated = spec.prec !== undefined ? [...s].slice(0, spec.prec).join('') : s;
  switch (verb) {
    case 's':
    case 'v':
      return truncated;
    case 'q':
      return goQuote(truncated);
    case 'x':
    case 'X': {
      const hex = Buffer.from(truncated, 'utf8').toString('hex');
      return verb === 'X' ? hex.toUpperCase() : hex;
    }
    default:
      return undefined;
  }
}

function formatFloatVerb(x: number, verb: string, spec: Spec): string | undefined {
  let s: string;
  switch (verb) {
    case 'v':
    case 'g':
      s = formatFloat(x, 'g', spec.prec ?? -1);
      break;
    case 'G':
      s = formatFloat(x, 'g', spec.prec ?? -1).toUpperCase();
      break;
    case 'f':
    case 'F':
      s = formatFloat(x, 'f', spec.prec ?? 6);
      break;
    case 'e':
      s = formatFloat(x, 'e', spec.prec ?? 6);
      break;
    case 'E':
      s = formatFloat(x, 'e', spec.prec ?? 6).toUpperCase();
      break;
    default:
      return undefined;
  }
  if (spec.plus && !s.startsWith('-')) s = `+${s}`;
  else if (spec.space && !s.startsWith('-')) s = ` ${s}`;
  return s;
}

/** Go's fmt.Sprintf with OPA's argument conversion. */
export function sprintf(format: string, values: readonly unknown[]): string {
  const args = values.map(toArg);
  let out = '';
  let argNum = 0;
  let i = 0;
  const n = format.length;
  while (i < n) {
    const pct = format.indexOf('%', i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    const spec: Spec = {
      minus: false,
      plus: false,
      sharp: false,
      space: false,
      zero: false,
      width: undefined,
      prec: undefined,
    };
    for (; i < n; i++) {
      const c = format[i];
      if (c === '-') spec.minus = true;
      else if (c === '+') spec.plus = true;
      else if (c === '#') spec.sharp = true;
      else if (c === ' ') spec.space = true;
      else if (c === '0') spec.zero = !spec.minus;
      else break;
    }
    const num = (): number | undefined => {
      let j = i;
      while (j < n && format.charCodeAt(j) >= 48 && format.charCodeAt(j) <= 57) j++;
      if (j === i) return undefined;
      const v = Number(format.slice(i, j));
      i = j;
      return v;
    };
    if (format[i] === '*') {
      i++;
      const a = args[argNum++];
      spec.width = a?.kind === 'int' ? Number(a.v) : undefined;
      if (a?.kind !== 'int') out += '%!(BADWIDTH)';
      else if (spec.width! < 0) {
        spec.minus = true;
        spec.width = -spec.width!;
      }
    } else spec.width = num();
    if (format[i] === '.') {
      i++;
      if (format[i] === '*') {
        i++;
        const a = args[argNum++];
        spec.prec = a?.kind === 'int' ? Number(a.v) : undefined;
        if (a?.kind !== 'int') out += '%!(BADPREC)';
      } else spec.prec = num() ?? 0;
    }
    if (i >= n) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    const arg = args[argNum];
    if (arg === undefined) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    argNum++;
    let text: string | undefined;
    let numeric = false;
    if (arg.kind === 'int' || arg.kind === 'big') {
      text = formatInt(arg.v, verb, spec);
      numeric = true;
    } else if (arg.kind === 'float') {
      text = formatFloatVerb(arg.v, verb, spec);
      numeric = true;
    } else text = formatString(arg.v, verb, spec);
    if (text === undefined) out += `%!${verb}(${typeName(arg)}=${argText(arg)})`;
    else out += pad(text, spec, numeric);
  }
  if (argNum < args.length) {
    out += `%!(EXTRA ${args
      .slice(argNum)
      .map((a) => `${typeName(a)}=${argText(a)}`)
      .join(', ')})`;
  }
  return out;
}
