// The package path of a Rego module, read without a Rego parser: what bundle roots are checked against.

const IDENTIFIER = /[A-Za-z_][A-Za-z0-9_]*/y;
const QUOTED = /"(?:[^"\\\n]|\\.)*"/y;
const RAW = /`[^`]*`/y;

/**
 * The package of a Rego module as a bundle-root path (`package envoy.authz` → `envoy/authz`,
 * `package a["b-c"]` → `a/b-c`), or `undefined` when the module does not start with a package
 * clause this reader understands. Segments are escaped like OPA's `Ref.Ptr` (Go's url.PathEscape).
 * This is not a validator: `opa check` is; it only has to agree with OPA on well-formed modules.
 */
export function regoPackagePath(source: string): string | undefined {
  let i = skipTrivia(source, 0);
  if (!source.startsWith('package', i)) return undefined;
  i += 'package'.length;
  const afterKeyword = skipTrivia(source, i);
  if (afterKeyword === i) return undefined;
  i = afterKeyword;
  const segments: string[] = [];
  const first = match(IDENTIFIER, source, i);
  if (first === undefined) return undefined;
  segments.push(first);
  i += first.length;
  for (;;) {
    if (source[i] === '.') {
      const name = match(IDENTIFIER, source, i + 1);
      if (name === undefined) return undefined;
      segments.push(name);
      i += 1 + name.length;
    } else if (source[i] === '[') {
      const literal = match(QUOTED, source, i + 1) ?? match(RAW, source, i + 1);
      if (literal === undefined || source[i + 1 + literal.length] !== ']') return undefined;
      const value = literal.startsWith('`') ? literal.slice(1, -1) : parseJsonString(literal);
      if (value === undefined) return undefined;
      segments.push(value);
      i += 2 + literal.length;
    } else {
      break;
    }
  }
  return segments.map(pathEscape).join('/');
}

function skipTrivia(source: string, start: number): number {
  let i = start;
  while (i < source.length) {
    const c = source[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\uFEFF') {
      i++;
    } else if (c === '#') {
      while (i < source.length && source[i] !== '\n') i++;
    } else {
      break;
    }
  }
  return i;
}

function match(pattern: RegExp, source: string, at: number): string | undefined {
  pattern.lastIndex = at;
  return pattern.exec(source)?.[0];
}

function parseJsonString(literal: string): string | undefined {
  try {
    const value: unknown = JSON.parse(literal);
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Go's url.PathEscape: keeps unreserved characters and `$&+:=@`, percent-encodes the UTF-8 of the rest. */
export function pathEscape(segment: string): string {
  let out = '';
  for (const byte of Buffer.from(segment, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~$&+:=@]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
