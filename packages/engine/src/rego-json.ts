// JSON text <-> JS values for values crossing the WASM boundary, exact for integers beyond 2^53 and for sets.
//
// OPA numbers are arbitrary precision and time builtins trade in nanoseconds (~1.7e18), which a JS number
// cannot hold exactly; so integers outside the safe range become bigint. The parser also reads the Rego
// value syntax that `opa_value_dump` emits (`set()`, `{1, 2}`), so builtins that take sets see a JS Set.

/**
 * Parses JSON, or with `rego` the Rego value text `opa_value_dump` emits (sets become Set). Integers beyond
 * Number.MAX_SAFE_INTEGER become bigint.
 */
export function parseValue(text: string, rego = false): unknown {
  // Fast path: JSON without a long digit run is exactly what JSON.parse reads.
  if (!rego && !LONG_DIGITS.test(text)) return JSON.parse(text);
  const p = new Parser(text);
  const v = p.value();
  p.ws();
  if (p.i !== text.length) throw new SyntaxError(`unexpected text at ${p.i}`);
  return v;
}

const LONG_DIGITS = /\d{16}/;

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else break;
    }
  }

  value(): unknown {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.objectOrSet();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === 't') return this.literal('true', true);
    if (c === 'f') return this.literal('false', false);
    if (c === 'n') return this.literal('null', null);
    if (c === 's') return this.literal('set()', new Set());
    return this.number();
  }

  literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) throw new SyntaxError(`unexpected token at ${this.i}`);
    this.i += word.length;
    return v;
  }

  string(): string {
    const start = this.i;
    this.i++;
    let escaped = false;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '\\') {
        escaped = true;
        this.i += 2;
      } else if (c === '"') {
        this.i++;
        const raw = this.s.slice(start, this.i);
        return escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      } else this.i++;
    }
    throw new SyntaxError('unterminated string');
  }

  number(): number | bigint {
    const m = NUMBER.exec(this.s.slice(this.i, this.i + 400));
    if (m === null) throw new SyntaxError(`unexpected token at ${this.i}`);
    const lit = m[0];
    this.i += lit.length;
    const n = Number(lit);
    if (m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n)) return BigInt(lit);
    return n;
  }

  array(): unknown[] {
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') throw new SyntaxError(`expected , or ] at ${this.i - 1}`);
    }
  }

  objectOrSet(): Record<string, unknown> | Set<unknown> {
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return {};
    }
    const first = this.value();
    this.ws();
    if (this.s[this.i] === ':') {
      const obj: Record<string, unknown> = {};
      for (let key = first; ; ) {
        this.i++; // ':'
        const v = this.value();
        defineKey(obj, typeof key === 'string' ? key : stringifyValue(key), v);
        this.ws();
        const c = this.s[this.i++];
        if (c === '}') return obj;
        if (c !== ',') throw new SyntaxError(`expected , or } at ${this.i - 1}`);
        key = this.value();
        this.ws();
        if (this.s[this.i] !== ':') throw new SyntaxError(`expected : at ${this.i}`);
      }
    }
    const set = new Set<unknown>([first]);
    for (;;) {
      const c = this.s[this.i++];
      if (c === '}') return set;
      if (c !== ',') throw new SyntaxError(`expected , or } at ${this.i - 1}`);
      set.add(this.value());
      this.ws();
    }
  }
}

const NUMBER = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/;

// `__proto__` is a legal JSON key; assigning it would change the prototype instead of adding a key.
function defineKey(obj: Record<string, unknown>, key: string, v: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true });
  else obj[key] = v;
}

/** Result of serializing a builtin's value: `rego` tells the caller the text holds a set (needs the Rego parser). */
export interface Serialized {
  text: string;
  rego: boolean;
}

/** Serializes a JS value (bigint, Set, arrays, plain objects, JSON scalars) as JSON, or Rego text if it has a set. */
export function serializeValue(v: unknown, maySet = true): Serialized {
  // Scalars first: time builtins return bigints, and JSON.stringify would throw on them (slowly).
  if (typeof v === 'bigint') return { text: v.toString(), rego: false };
  if (typeof v === 'boolean') return { text: v ? 'true' : 'false', rego: false };
  if (!maySet) {
    try {
      return { text: JSON.stringify(v), rego: false };
    } catch {
      // a bigint somewhere: take the slow path below
    }
  }
  const state = { rego: false };
  const text = write(v, state);
  return { text, rego: state.rego };
}

/** JSON text for a value; sets are written as arrays (what `opa eval` prints). */
export function stringifyValue(v: unknown): string {
  return write(v, { rego: false }, true);
}

function write(v: unknown, state: { rego: boolean }, setsAsArrays = false): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError('non-finite number');
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) return `[${v.map((x) => write(x, state, setsAsArrays)).join(',')}]`;
      if (v instanceof Set) {
        if (setsAsArrays) return `[${[...v].map((x) => write(x, state, true)).join(',')}]`;
        state.rego = true;
        return v.size === 0 ? 'set()' : `{${[...v].map((x) => write(x, state)).join(',')}}`;
      }
      const parts: string[] = [];
      for (const [k, x] of Object.entries(v))
        parts.push(`${JSON.stringify(k)}:${write(x, state, setsAsArrays)}`);
      return `{${parts.join(',')}}`;
    }
    default:
      throw new TypeError(`cannot serialize ${typeof v}`);
  }
}
