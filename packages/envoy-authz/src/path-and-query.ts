// `parsed_path` and `parsed_query` from a request path, with the Go net/url semantics OPA-Envoy gets them by (PathUnescape, ParseQuery).
import { RequestParseError } from './errors.ts';
import { setOwn } from './json-value.ts';
import { decodeUtf8 } from './utf8-decoding.ts';

export interface ParsedPathAndQuery {
  parsedPath: string[];
  parsedQuery: Record<string, string[]>;
}

/**
 * What OPA-Envoy does (envoyauth/request.go, getParsedPathAndQuery), and so what policies see:
 * - the path is cut at the first `?` (a `#` is not special: Envoy has already dropped fragments);
 * - the whole path is percent-decoded first and only then split on `/`, so `%2F` splits like `/`
 *   (`/a%2Fb` → `["a", "b"]`) and `%2e%2e` is the segment `..` (no dot-segment removal);
 * - all leading slashes are trimmed before splitting (`//admin` → `["admin"]`), inner empty
 *   segments stay (`/a//b` → `["a", "", "b"]`), and `/` alone is `[""]`;
 * - `+` in the path is a plus; in the query it is a space;
 * - a malformed escape (`%zz`, a trailing `%4`) anywhere, or a `;` in the query, fails the request
 *   (OPA-Envoy answers 400): Go's ParseQuery refuses `;` separators since Go 1.17;
 * - query keys keep every value in order (`?a=1&a=2` → `{a: ["1", "2"]}`), empty pairs are skipped.
 * Decoded bytes that are not UTF-8 come out as U+FFFD, one per bad byte, as OPA's JSON would have it.
 * Throws RequestParseError.
 */
export function parsePathAndQuery(path: string): ParsedPathAndQuery {
  const q = path.indexOf('?');
  const rawPath = q === -1 ? path : path.slice(0, q);
  const rawQuery = q === -1 ? '' : path.slice(q + 1);
  const decoded = percentDecode(rawPath, false);
  return { parsedPath: decoded.replace(/^\/+/, '').split('/'), parsedQuery: parseQuery(rawQuery) };
}

/** Go's url.ParseQuery: `&`-separated pairs, `+` as space; throws RequestParseError on its errors. */
export function parseQuery(query: string): Record<string, string[]> {
  const values = new Map<string, string[]>();
  let firstError: string | undefined;
  for (const pair of query === '' ? [] : query.split('&')) {
    if (pair.includes(';')) {
      // Go keeps going but reports this one whatever came before.
      firstError = 'invalid semicolon separator in query';
      continue;
    }
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = percentDecode(eq === -1 ? pair : pair.slice(0, eq), true);
      value = percentDecode(eq === -1 ? '' : pair.slice(eq + 1), true);
    } catch (err) {
      firstError ??= err instanceof RequestParseError ? err.message : String(err);
      continue;
    }
    const list = values.get(key);
    if (list) list.push(value);
    else values.set(key, [value]);
  }
  if (firstError !== undefined) throw new RequestParseError(firstError);
  const out: Record<string, string[]> = {};
  for (const [k, v] of values) setOwn(out, k, v);
  return out;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Go's url.PathUnescape (queryComponent false) and url.QueryUnescape (true). */
export function percentDecode(s: string, queryComponent: boolean): string {
  const percent = s.indexOf('%');
  if (percent === -1 && !(queryComponent && s.includes('+'))) return s;
  // Go validates every escape before decoding any.
  for (let i = percent; i !== -1 && i < s.length; i = s.indexOf('%', i + 3)) {
    if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
      throw new RequestParseError(`invalid URL escape ${JSON.stringify(s.slice(i, i + 3))}`);
    }
  }
  const bytes: number[] = [];
  let literalStart = 0;
  const flushLiteral = (end: number): void => {
    if (end > literalStart) for (const b of Buffer.from(s.slice(literalStart, end), 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      flushLiteral(i);
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
      literalStart = i + 1;
    } else if (c === 0x2b && queryComponent) {
      flushLiteral(i);
      bytes.push(0x20);
      literalStart = i + 1;
    }
  }
  flushLiteral(s.length);
  return decodeUtf8(Uint8Array.from(bytes));
}
